//! Shared helpers: a hook cache shared by the whole test binary, scratch
//! config directories, and the test guests' components.

use std::path::{Path, PathBuf};

use podrun::config::Config;
use podrun::hooks::Hooks;

/// Compiled hooks are cached here for every test of this binary, so each
/// component is compiled once per test run.
pub fn shared_cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hook-cache")
}

/// The component of a test guest under `tests/guests/`.
pub fn guest(name: &str) -> PathBuf {
    Path::new(env!("PODRUN_TEST_GUESTS")).join(format!("podrun_test_{name}.wasm"))
}

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A hook loader on the shared cache.
pub fn hooks() -> Hooks {
    Hooks::new(Some(shared_cache())).unwrap()
}

/// A scratch directory with a config, the hello template and the
/// misbehaving guest next to it.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    /// `config` is the text of pod-runner.yaml.
    pub fn new(config: &str) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::copy(
            root().join("examples/hello/templates/pod.tmpl"),
            dir.path().join("templates/pod.tmpl"),
        )
        .unwrap();
        std::fs::copy(guest("misbehave"), dir.path().join("misbehave.wasm")).unwrap();
        std::fs::write(dir.path().join("pod-runner.yaml"), config).unwrap();
        Scratch { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("pod-runner.yaml")
    }

    pub fn config(&self) -> Config {
        Config::load(&self.config_path()).unwrap()
    }
}

/// An application `name` using the hello template and `extra` YAML lines
/// (indented as application fields).
pub fn app(name: &str, extra: &str) -> String {
    format!(
        "applications:\n- name: {name}\n  template: templates/pod.tmpl\n  container:\n    image: busybox:local\n{extra}"
    )
}
