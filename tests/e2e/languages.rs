//! Hooks in Python and JavaScript: the example retry classifier in each
//! (examples/hooks/retry-classifier-python and -js, built by their build.sh
//! with the Bytecode Alliance's componentize tools) tested as the Rust and
//! Rhai ones are, and new hooks from `podrun hook new --lang`, built and
//! tested by the commands it prints. `.ci/run` builds the examples and names
//! the components in PODRUN_TEST_PYTHON_HOOK and PODRUN_TEST_JS_HOOK.

use std::path::{Path, PathBuf};

use crate::support::{self, Scratch, app};

fn component(var: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{var} must name the built example hook"))
}

/// A retry classifier (a component or a script) on recorded timelines: it
/// decides the run that asked for a retry, leaves others to the default
/// classifier, and, where it checks its settings, fails cleanly on one it
/// does not know.
fn decides_recorded_runs(hook: &Path, unknown_setting: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let name = hook.file_name().unwrap();
    std::fs::copy(hook, dir.path().join(name)).unwrap();
    let timelines = support::root().join("tests/fixtures/timelines");
    let replay = |timeline: &str| {
        let mut cmd = support::podrun_in(dir.path());
        cmd.args(["hook", "replay"])
            .arg(name)
            .arg("--timeline")
            .arg(timelines.join(timeline));
        cmd
    };
    // The command the README shows, with its expectation.
    replay("temporary-failure.timeline.json")
        .arg("default-classifier")
        .arg("--expect")
        .arg(support::root().join("examples/hooks/temporary-failure.expect.yaml"))
        .assert()
        .success();
    let out = replay("exit-code.timeline.json")
        .arg("default-classifier")
        .assert()
        .success();
    let shown = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        shown.contains("failed Error (exit code 3) by default-classifier"),
        "{shown}"
    );
    if let Some(message) = unknown_setting {
        support::fails_with(
            replay("temporary-failure.timeline.json").args(["--with", "{bogus: 1}"]),
            122,
            message,
        );
    }
}

/// The Rust and Rhai versions, on the same timelines and expectation.
#[test]
fn the_rust_and_rhai_examples_decide_recorded_runs() {
    decides_recorded_runs(
        &support::example("retry-classifier"),
        Some("unknown field `bogus`"),
    );
    decides_recorded_runs(
        &support::root().join("examples/scripts/retry-classifier.rhai"),
        None,
    );
}

/// The retry classifier `wasm` in a local run, as the Rust and Rhai
/// examples are tested.
fn classifies_local_runs(wasm: &Path) {
    let hooks = "  hooks:\n    classify: [{hook: retry.wasm, with: {retry-on: [75]}}, default-classifier]\n";
    let scratch = Scratch::new(&app("hello", hooks));
    std::fs::copy(wasm, scratch.path().join("retry.wasm")).unwrap();
    crate::examples::retry_classifier_decides(scratch.path());
}

/// `podrun hook new team --lang LANG`, then the commands it printed, run as
/// printed (they install the language's build tool from its registry);
/// the new hook passes its own test and refuses a run without a team.
fn a_new_hook_builds_as_printed(lang: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = support::podrun_in(dir.path())
        .args(["hook", "new", "team", "--lang", lang])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let commands: Vec<&str> = stdout.lines().skip(1).map(str::trim).collect();
    assert!(
        commands
            .last()
            .unwrap()
            .starts_with("podrun hook test team.wasm"),
        "{stdout}"
    );
    let podrun = assert_cmd::cargo::cargo_bin("podrun");
    let path = std::env::join_paths(
        std::iter::once(podrun.parent().unwrap().to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let status = std::process::Command::new("sh")
        .current_dir(dir.path())
        .env("PATH", path)
        .env("PODRUN_CACHE_DIR", support::shared_cache())
        .args(["-e", "-c", &commands.join("\n")])
        .status()
        .unwrap();
    assert!(status.success(), "{stdout}");
    support::fails_with(
        support::podrun_in(&dir.path().join("team")).args([
            "hook",
            "test",
            "team.wasm",
            "-i",
            "fixture.yaml",
        ]),
        121,
        "every run needs a team",
    );
}

mod python {
    const HOOK: &str = "PODRUN_TEST_PYTHON_HOOK";

    #[test]
    #[ignore = "needs the Python example built: PODRUN_TEST_PYTHON_HOOK"]
    fn the_example_classifier_decides_recorded_runs() {
        super::decides_recorded_runs(&super::component(HOOK), Some("unknown settings: bogus"));
    }

    #[test]
    #[ignore = "needs the Python example built: PODRUN_TEST_PYTHON_HOOK"]
    fn the_example_classifier_classifies_local_runs() {
        super::classifies_local_runs(&super::component(HOOK));
    }

    #[test]
    #[ignore = "installs componentize-py from PyPI"]
    fn a_new_python_hook_builds_as_printed_and_passes_its_test() {
        super::a_new_hook_builds_as_printed("python");
    }
}

mod js {
    const HOOK: &str = "PODRUN_TEST_JS_HOOK";

    #[test]
    #[ignore = "needs the JavaScript example built: PODRUN_TEST_JS_HOOK"]
    fn the_example_classifier_decides_recorded_runs() {
        super::decides_recorded_runs(&super::component(HOOK), Some("unknown settings: bogus"));
    }

    #[test]
    #[ignore = "needs the JavaScript example built: PODRUN_TEST_JS_HOOK"]
    fn the_example_classifier_classifies_local_runs() {
        super::classifies_local_runs(&super::component(HOOK));
    }

    #[test]
    #[ignore = "installs componentize-js from npm"]
    fn a_new_js_hook_builds_as_printed_and_passes_its_test() {
        super::a_new_hook_builds_as_printed("js");
    }
}
