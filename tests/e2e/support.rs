//! Shared helpers: a hook cache shared by the whole test binary, scratch
//! config directories, and the test guests' components.

use std::path::{Path, PathBuf};

use podrun::config::Config;
use podrun::hooks::{
    CacheOptions, Called, EngineOptions, HookError, Hooks, Kind, Limits, Source, Spec, mutate,
    types,
};

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
    // The tests belong to host/cli.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// A hook loader on the shared cache.
pub fn hooks() -> Hooks {
    hooks_cached_in(&shared_cache())
}

/// A hook loader caching compiled components in `dir`.
pub fn hooks_cached_in(dir: &Path) -> Hooks {
    Hooks::new(EngineOptions {
        cache: CacheOptions::in_dir(dir.to_path_buf()),
        ..EngineOptions::default()
    })
    .unwrap()
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

/// What a `podrun` run printed and the result it wrote.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub result: serde_json::Value,
}

impl Run {
    /// Collects `out` and the JSON result written to `result_file`.
    pub fn collect(out: std::process::Output, result_file: &Path) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            result: std::fs::read_to_string(result_file)
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or(serde_json::Value::Null),
        }
    }
}

/// Writes a Pod manifest to a file in a fresh directory.
pub fn write_manifest(yaml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pod.yaml");
    std::fs::write(&path, yaml).unwrap();
    (dir, path)
}

/// Runs `podrun pod run --stdin -f PATH` with `input` on its stdin.
pub fn pod_run_with_stdin(
    mut podrun: std::process::Command,
    path: &Path,
    input: &[u8],
) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = podrun
        .args(["pod", "run", "--stdin", "-f"])
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// The component of an example hook under `examples/hooks/`.
pub fn example(name: &str) -> PathBuf {
    Path::new(env!("PODRUN_TEST_GUESTS"))
        .join(format!("podrun_example_{}.wasm", name.replace('-', "_")))
}

/// A container (YAML lines under `containers:`) that runs `script` with
/// `sh -c`, in the image a test cluster has.
pub fn container(name: &str, script: &str) -> String {
    format!(
        "  - name: {name}\n    image: busybox:local\n    imagePullPolicy: IfNotPresent\n    command: [sh, -c, {}]\n",
        serde_json::to_string(script).unwrap()
    )
}

/// `podrun` in `dir` with the shared hook cache and no cluster configured.
pub fn podrun_in(dir: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("podrun").unwrap();
    cmd.env("PODRUN_CACHE_DIR", shared_cache())
        .env_remove("KUBECONFIG")
        .env_remove("PODRUN_LOG")
        .current_dir(dir);
    cmd
}

/// Runs `cmd`, which must exit with `code` and say `text` on stderr.
pub fn fails_with(cmd: &mut assert_cmd::Command, code: i32, text: &str) {
    let out = cmd.assert().code(code);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains(text), "expected {text:?} in: {err}");
}

/// The context of a test call.
pub fn context() -> podrun::context::RunContext {
    podrun::context::RunContext::bare("t", "r1")
}

/// A small Pod, as a mutate hook gets it.
pub fn pod() -> types::Object {
    types::Object {
        api_version: "v1".into(),
        kind: "Pod".into(),
        json: r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}"#.into(),
    }
}

/// Calls the mutate hook `source` once with `settings` under `limits`.
pub async fn mutate_once(
    source: Source,
    settings: serde_json::Value,
    limits: Limits,
) -> Result<Called<mutate::Mutation>, HookError> {
    let spec = Spec {
        source,
        kind: Kind::Mutate,
        settings,
        limits,
    };
    hooks().load(&spec).await?.mutate(&context(), &pod()).await
}

/// Asserts that a podrun process exited with `code` and printed `stdout`.
pub fn exited(out: &std::process::Output, code: i32, stdout: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), stdout);
}
