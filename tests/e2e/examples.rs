//! The example hooks in `examples/hooks`, built as components and used the
//! way their documentation says.

use assert_cmd::Command;
use serde_json::Value;

use crate::support::{self, Scratch, app};

fn podrun(dir: &std::path::Path) -> Command {
    support::podrun_in(dir)
}

#[test]
fn the_team_policy_labels_or_denies() {
    let hooks = "  parameters: [{name: team, default: \"\"}]\n  hooks:\n    mutate: [restart-never, {hook: team_policy.wasm}]\n";
    let limits = "    resource-limits: {memory: 64Mi}\n";
    let scratch = Scratch::new(&app("hello", &format!("{limits}{hooks}")));
    std::fs::copy(
        support::example("team-policy"),
        scratch.path().join("team_policy.wasm"),
    )
    .unwrap();
    let out = podrun(scratch.path())
        .args([
            "render",
            "-a",
            "hello",
            "-o",
            "json",
            "--param",
            "team=data",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let pod: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(pod["metadata"]["labels"]["team"], "data");
    // Without a team the policy refuses the run.
    podrun(scratch.path())
        .args(["render", "-a", "hello"])
        .assert()
        .code(121);

    let unlimited = Scratch::new(&app("hello", hooks));
    std::fs::copy(
        support::example("team-policy"),
        unlimited.path().join("team_policy.wasm"),
    )
    .unwrap();
    std::fs::write(
        unlimited.path().join("templates/pod.tmpl"),
        "apiVersion: v1\nkind: Pod\nspec:\n  containers: [{name: main, image: {{ .Container.Image }}}]\n",
    )
    .unwrap();
    support::fails_with(
        podrun(unlimited.path()).args(["render", "-a", "hello", "--param", "team=data"]),
        121,
        "every container needs a memory limit; main has none",
    );
}

#[test]
fn the_retry_classifier_marks_a_run_retryable() {
    let hooks = "  hooks:\n    classify: [{hook: retry_classifier.wasm, with: {retry-on: [75]}}, default-classifier]\n";
    let scratch = Scratch::new(&app("hello", hooks));
    std::fs::copy(
        support::example("retry-classifier"),
        scratch.path().join("retry_classifier.wasm"),
    )
    .unwrap();
    retry_classifier_decides(scratch.path());
}

/// A run in `dir` (whose config puts a retry classifier before the default
/// one) that exits 75 fails as retryable; other failures are the default
/// classifier's.
pub fn retry_classifier_decides(dir: &std::path::Path) {
    let run = |command: &str| {
        let out = podrun(dir)
            .args([
                "run",
                "--runtime",
                "local",
                "-a",
                "hello",
                "-o",
                "json",
                "-c",
                command,
            ])
            .output()
            .unwrap();
        let result: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        (out.status.code().unwrap(), result)
    };
    let (code, result) = run("sh -c 'exit 75'");
    assert_eq!(
        (
            code,
            result["retryable"].as_bool(),
            result["reason"].as_str()
        ),
        (75, Some(true), Some("TemporaryFailure")),
        "{result}"
    );
    let (code, result) = run("sh -c 'exit 2'");
    assert_eq!(
        (
            code,
            result["retryable"].as_bool(),
            result["reason"].as_str()
        ),
        (2, Some(false), Some("Error")),
        "{result}"
    );
}
