//! The Python example hook (examples/hooks/python-classifier), built by
//! its build.sh with componentize-py; `.ci/run` builds it and names the
//! component in PODRUN_TEST_PYTHON_HOOK.

use crate::support;

fn component() -> std::path::PathBuf {
    std::env::var_os("PODRUN_TEST_PYTHON_HOOK")
        .map(std::path::PathBuf::from)
        .expect("PODRUN_TEST_PYTHON_HOOK must name the built python-classifier.wasm")
}

#[test]
#[ignore = "needs the Python hook built: PODRUN_TEST_PYTHON_HOOK"]
fn the_python_classifier_decides_a_recorded_oom_kill_and_passes_others_on() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(component(), dir.path().join("python-classifier.wasm")).unwrap();
    let timelines = support::root().join("tests/fixtures/timelines");
    let replay = |timeline: &str, expect: Option<&std::path::Path>| {
        let mut cmd = support::podrun_in(dir.path());
        cmd.args([
            "hook",
            "replay",
            "python-classifier.wasm",
            "default-classifier",
            "--timeline",
        ])
        .arg(timelines.join(timeline));
        if let Some(expect) = expect {
            cmd.arg("--expect").arg(expect);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // The same expectation file the README shows.
    let expect = support::root().join("examples/hooks/python-classifier/oom.expect.yaml");
    replay("oom-killed.timeline.json", Some(&expect));
    // Another ending is left to the default classifier after it.
    let shown = replay("exit-code.timeline.json", None);
    assert!(
        shown.contains("failed Error (exit code 3) by default-classifier"),
        "{shown}"
    );
}
