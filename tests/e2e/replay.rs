//! Recorded timelines as tests for classifiers: `podrun run --record`
//! and `podrun hook replay`.

use crate::support::{self, Scratch, app};

fn timelines() -> std::path::PathBuf {
    support::root().join("tests/fixtures/timelines")
}

#[test]
fn the_timelines_recorded_on_the_cluster_replay_to_their_expected_verdicts() {
    let out = support::podrun_in(&support::root())
        .args(["hook", "replay", "default-classifier", "--timeline"])
        .arg(timelines())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let count = std::fs::read_dir(timelines())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".timeline.json")
        })
        .count();
    assert!(count >= 12, "{count} timelines");
    assert!(
        stdout.contains(&format!("{count} timelines, 0 failed")),
        "{stdout}"
    );
}

#[test]
fn a_replay_that_differs_from_its_expectation_fails_naming_the_difference() {
    let dir = tempfile::tempdir().unwrap();
    let timeline = dir.path().join("oom.timeline.json");
    std::fs::copy(timelines().join("oom-killed.timeline.json"), &timeline).unwrap();
    let expect = dir.path().join("wrong.yaml");
    std::fs::write(&expect, "outcome: failed\nreason: Evicted\n").unwrap();
    let out = support::podrun_in(dir.path())
        .args(["hook", "replay", "default-classifier", "--timeline"])
        .arg(&timeline)
        .arg("--expect")
        .arg(&expect)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAILED") && stdout.contains("/reason is \"OOMKilled\""),
        "{stdout}"
    );

    // A timeline of a version this podrun does not read is refused.
    let text =
        std::fs::read_to_string(&timeline)
            .unwrap()
            .replacen("\"version\": 1", "\"version\": 9", 1);
    std::fs::write(&timeline, text).unwrap();
    support::fails_with(
        support::podrun_in(dir.path())
            .args(["hook", "replay", "default-classifier", "--timeline"])
            .arg(&timeline),
        125,
        "a timeline of version 9; this podrun reads version 1",
    );
}

#[test]
fn a_recorded_local_run_replays_to_its_own_verdict_through_any_classifier() {
    let scratch = Scratch::new(&app(
        "hello",
        "  parameters: [{name: secret, default: hunter2}]\n",
    ));
    let timeline = scratch.path().join("run.timeline.json");
    let out = support::podrun_in(scratch.path())
        .args(["run", "--runtime", "local", "-a", "hello", "--record"])
        .arg(&timeline)
        .args(["--", "sh", "-c", "echo s3cret-output; exit 3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let text = std::fs::read_to_string(&timeline).unwrap();
    for secret in ["hunter2", "s3cret-output"] {
        assert!(!text.contains(secret), "{secret} in the timeline");
    }
    let replay = |hooks: &[&str]| {
        let out = support::podrun_in(scratch.path())
            .args(["hook", "replay"])
            .args(hooks)
            .arg("--timeline")
            .arg(&timeline)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let shown = replay(&["default-classifier"]);
    assert!(
        shown.contains("failed Error (exit code 3) by default-classifier"),
        "{shown}"
    );
    // A team's classifier, asked first, decides the same run otherwise.
    std::fs::write(
        scratch.path().join("strict.rhai"),
        "fn classify(observation, ctx) {\n    if observation.pod.status?.phase == \"Failed\" {\n        \
         return #{outcome: \"failed\", reason: \"TeamRule\", exit_code: 9, retryable: true};\n    }\n    ()\n}\n",
    )
    .unwrap();
    let shown = replay(&["strict.rhai", "default-classifier"]);
    assert!(
        shown.contains("failed TeamRule (exit code 9) by strict.rhai"),
        "{shown}"
    );
}

/// The default classifier, with `settings`.
async fn default_classifier(settings: serde_json::Value) -> podrun::hooks::Hook {
    let spec = podrun::hooks::Spec {
        source: podrun::hooks::Source::Builtin("default-classifier"),
        kind: podrun::hooks::Kind::Classify,
        settings,
        limits: podrun::hooks::Limits::default(),
    };
    support::hooks().load(&spec).await.unwrap()
}

#[tokio::test]
async fn a_replay_comes_to_the_recorded_verdict_at_the_recorded_observation() {
    let plain = [default_classifier(serde_json::json!({})).await];
    // Recorded with the grace its config gives (image-late/pod-runner.yaml).
    let patient = [default_classifier(serde_json::json!({"image-grace-seconds": 30})).await];
    for entry in std::fs::read_dir(timelines()).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".timeline.json") {
            continue;
        }
        let timeline =
            podrun::timeline::Timeline::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let chain = if timeline.context.name == "image-late" {
            &patient
        } else {
            &plain
        };
        let replayed = podrun::timeline::replay(chain, &timeline).await.unwrap();
        assert_eq!(replayed.verdict, timeline.verdict, "{}", path.display());
        assert_eq!(
            replayed.fed,
            timeline.observations.len(),
            "{}",
            path.display()
        );
    }
    // Told which container is a sidecar, it ends the run when the main
    // container does, seconds before the deadline.
    let sidecar = podrun::timeline::Timeline::parse(
        &std::fs::read_to_string(timelines().join("sidecar.timeline.json")).unwrap(),
    )
    .unwrap();
    let chain = [default_classifier(serde_json::json!({"sidecars": ["proxy"]})).await];
    let replayed = podrun::timeline::replay(&chain, &sidecar).await.unwrap();
    let verdict = replayed.verdict.unwrap();
    assert_eq!(
        (verdict.outcome.as_str(), verdict.reason.as_str()),
        ("succeeded", "Completed")
    );
    assert!(replayed.fed < sidecar.observations.len());
    // The image that came late: inside a 30 s grace the run succeeds, past
    // the default 5 s it fails on the image error.
    let late = podrun::timeline::Timeline::parse(
        &std::fs::read_to_string(timelines().join("image-late.timeline.json")).unwrap(),
    )
    .unwrap();
    let failed = podrun::timeline::replay(&plain, &late)
        .await
        .unwrap()
        .verdict
        .unwrap();
    assert_eq!(failed.reason, "ErrImagePull");
    assert!(late.observations[failed.observation].elapsed_ms < 6_000);
    let ok = podrun::timeline::replay(&patient, &late)
        .await
        .unwrap()
        .verdict
        .unwrap();
    assert_eq!(ok.outcome, "succeeded");
}

#[test]
fn hook_test_takes_a_timeline_as_well_as_one_pod() {
    let out = support::podrun_in(&support::root())
        .args(["hook", "test", "default-classifier", "-i"])
        .arg(timelines().join("oom-killed.timeline.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(shown.contains("reason: OOMKilled"), "{shown}");
    assert!(shown.contains("observation: 9"), "{shown}");
    // Something that looks like a timeline but is not one says so.
    let dir = tempfile::tempdir().unwrap();
    let newer = dir.path().join("newer.json");
    std::fs::write(&newer, r#"{"version": 2, "observations": []}"#).unwrap();
    support::fails_with(
        support::podrun_in(dir.path())
            .args(["hook", "test", "default-classifier", "-i"])
            .arg(&newer),
        125,
        "a timeline of version 2",
    );
    // Replay reads regular files only: not a device that never ends.
    support::fails_with(
        support::podrun_in(dir.path()).args([
            "hook",
            "replay",
            "default-classifier",
            "--timeline",
            "/dev/zero",
        ]),
        125,
        "not a regular file",
    );
    // Any input a command reads has a bound, stdin included.
    let out = support::podrun_in(dir.path())
        .args(["hook", "test", "default-classifier", "-i", "-"])
        .write_stdin(vec![b' '; (64 << 20) + 1])
        .assert()
        .code(125);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("larger than 64 MiB"), "{stderr}");
}

/// `--record` writes the timeline as the run goes: each change is on disk
/// while the run goes on, so a podrun killed mid-run (no chance to write
/// at the end) leaves a readable timeline of what it had observed, with
/// no final verdict.
#[test]
fn a_killed_run_leaves_the_timeline_so_far() {
    let (dir, manifest) = support::write_manifest(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: long}}\nspec:\n  restartPolicy: Never\n  containers:\n{}{}",
        support::container("quick", "sleep 1.5"),
        support::container("main", "sleep 6")
    ));
    let path = dir.path().join("run.timeline.json");
    let mut podrun = std::process::Command::new(assert_cmd::cargo::cargo_bin("podrun"));
    let mut child = podrun
        .env("PODRUN_CACHE_DIR", support::shared_cache())
        .env_remove("KUBECONFIG")
        .args(["pod", "run", "--runtime", "local", "--record"])
        .arg(&path)
        .arg("-f")
        .arg(&manifest)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    // The first container's end, a change well after the run started.
    let quick_ended = |o: &podrun::timeline::Observation| {
        o.pod.as_ref().is_some_and(|p| {
            p["status"]["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["name"] == "quick" && c["state"]["terminated"].is_object())
        })
    };
    let timeline = loop {
        assert!(std::time::Instant::now() < deadline, "no change written");
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        if let Ok(text) = std::fs::read_to_string(&path) {
            // Never half a file: each read parses.
            let timeline = podrun::timeline::Timeline::parse(&text).unwrap();
            if timeline.observations.iter().any(quick_ended) {
                break timeline;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    // The run had not ended: its last call's decision, not a final one.
    assert!(
        timeline.verdict.as_ref().is_none_or(|d| !d.is_final()),
        "{:?}",
        timeline.verdict
    );
    let kept = podrun::timeline::Timeline::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(kept.observations.len() >= timeline.observations.len());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// A symbolic link named by the caller is written through once, at the end,
/// and stays a link.
#[test]
fn a_record_path_that_is_a_link_is_written_through_at_the_end() {
    let (dir, manifest) = support::write_manifest(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: short}}\nspec:\n  restartPolicy: Never\n  containers:\n{}",
        support::container("main", "echo hi")
    ));
    let target = dir.path().join("real.json");
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    support::podrun_in(dir.path())
        .args(["pod", "run", "--runtime", "local", "--record"])
        .arg(&link)
        .arg("-f")
        .arg(&manifest)
        .assert()
        .success();
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    let timeline =
        podrun::timeline::Timeline::parse(&std::fs::read_to_string(&target).unwrap()).unwrap();
    assert_eq!(timeline.verdict.unwrap().outcome, "succeeded");
}
