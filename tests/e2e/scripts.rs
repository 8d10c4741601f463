//! Script hooks: Rhai scripts run by the built-in interpreter component, in
//! the same sandbox as any hook, through the engine and the CLI.

use assert_cmd::Command;
use podrun::hooks::{HookError, Kind, Limits, Source, Spec, mutate};
use serde_json::Value;

use crate::support::{self, Scratch, app, context, pod};

fn podrun(dir: &std::path::Path) -> Command {
    support::podrun_in(dir)
}

fn script(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.rhai");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn spec(path: &std::path::Path, kind: Kind, limits: Limits) -> Spec {
    Spec {
        source: Source::Script(path.to_path_buf()),
        kind,
        settings: serde_json::json!({}),
        limits,
    }
}

#[tokio::test]
async fn a_script_is_compiled_once_per_run_and_again_after_a_failure() {
    let (_dir, path) = script(
        "fn mutate(object, ctx) {\n  if object.metadata.name == \"boom\" { throw \"boom\"; }\n  if object.metadata.name == \"spin\" { loop { let s = \"\".pad(3000000, 'x'); } }\n  patch(#{metadata: #{labels: #{seen: \"yes\"}}})\n}\n",
    );
    let limits = Limits {
        deadline: Some(std::time::Duration::from_millis(200)),
        ..Limits::default()
    };
    let hook = support::hooks()
        .load(&spec(&path, Kind::Mutate, limits))
        .await
        .unwrap();
    for _ in 0..20 {
        let m = hook.mutate(&context(), &pod()).await.unwrap().value;
        assert!(
            matches!(&m, mutate::Mutation::MergePatch(p) if p == r#"{"metadata":{"labels":{"seen":"yes"}}}"#),
            "{m:?}"
        );
    }
    assert_eq!(
        hook.instances(),
        1,
        "the script was compiled more than once"
    );
    // An error the script throws leaves the instance usable.
    let mut boom = pod();
    boom.json = boom.json.replace("\"p\"", "\"boom\"");
    let err = hook.mutate(&context(), &boom).await.unwrap_err();
    assert!(
        matches!(&err, HookError::Failed { message, .. } if message.contains("policy.rhai:2:")),
        "{err:?}"
    );
    assert_eq!(hook.instances(), 1);
    // A script stopped at its deadline loses its instance; the next call
    // gets a new one.
    let mut spin = pod();
    spin.json = spin.json.replace("\"p\"", "\"spin\"");
    let err = hook.mutate(&context(), &spin).await.unwrap_err();
    assert!(matches!(err, HookError::Deadline { .. }), "{err:?}");
    hook.mutate(&context(), &pod()).await.unwrap();
    assert_eq!(hook.instances(), 2);
}

#[tokio::test]
async fn a_runaway_script_is_stopped_like_any_hook() {
    let (dir, _) =
        script("fn mutate(object, ctx) {\n  loop { let s = \"\".pad(3000000, 'x'); }\n}");
    support::fails_with(
        podrun(dir.path())
            .args(["hook", "test", "policy.rhai", "-i"])
            .arg(support::root().join("examples/scripts/pod.yaml")),
        122,
        "ran past its deadline of 100 ms",
    );

    let (dir, path) = script("fn mutate(object, ctx) { let s = \"x\"; loop { s += s; } }");
    // A long deadline and a small cap, so that the memory cap stops it
    // before the interpreter's own 4 MiB string limit does.
    let limits = Limits {
        deadline: Some(std::time::Duration::from_secs(20)),
        memory: Some(6 << 20),
        ..Limits::default()
    };
    let err = support::hooks()
        .load(&spec(&path, Kind::Mutate, limits))
        .await
        .unwrap()
        .mutate(&context(), &pod())
        .await
        .unwrap_err();
    assert!(matches!(err, HookError::Memory { .. }), "{err:?}");
    drop(dir);
}

#[tokio::test]
async fn a_script_has_no_access_to_the_host() {
    // Rhai's `import` would read a file; the interpreter has no resolver,
    // and WASI gives hooks no files anyway.
    let (_dir, path) = script("import \"/etc/passwd\" as p;\nfn mutate(object, ctx) { () }");
    let err = support::hooks()
        .load(&spec(&path, Kind::Mutate, Limits::default()))
        .await
        .err()
        .expect("the import must fail");
    assert!(
        matches!(&err, HookError::Script { message, .. } if message.contains("policy.rhai:1:")),
        "{err:?}"
    );
}

#[test]
fn script_errors_in_a_config_name_the_line_and_column() {
    let hooks = "  hooks:\n    mutate: [restart-never, {script: policies/team.rhai}]\n";
    let scratch = Scratch::new(&app("hello", hooks));
    std::fs::create_dir(scratch.path().join("policies")).unwrap();
    std::fs::write(
        scratch.path().join("policies/team.rhai"),
        "fn mutate(object, ctx) {\n    let team = ;\n}\n",
    )
    .unwrap();
    support::fails_with(
        podrun(scratch.path()).args(["render", "-a", "hello"]),
        125,
        "policies/team.rhai:2:16: ",
    );

    // A classify script is checked before any pod exists.
    std::fs::write(
        scratch.config_path(),
        app(
            "hello",
            "  hooks:\n    classify: [{script: policies/team.rhai}]\n",
        ),
    )
    .unwrap();
    std::fs::write(
        scratch.path().join("policies/team.rhai"),
        "fn mutate(object, ctx) { () }\n",
    )
    .unwrap();
    let out = podrun(scratch.path())
        .args([
            "run",
            "--runtime",
            "local",
            "-a",
            "hello",
            "-c",
            "echo never",
        ])
        .assert()
        .code(125);
    let output = out.get_output();
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        err.contains("a classify script must define `fn classify(observation, ctx)`"),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("never"));

    // A missing script is a config error.
    std::fs::write(
        scratch.config_path(),
        app("hello", "  hooks:\n    mutate: [{script: nowhere.rhai}]\n"),
    )
    .unwrap();
    support::fails_with(
        podrun(scratch.path()).args(["render", "-a", "hello"]),
        125,
        "script \"nowhere.rhai\"",
    );
}

/// A scratch config whose application uses the example scripts.
fn with_example_scripts(hooks: &str) -> Scratch {
    let scratch = Scratch::new(&app("hello", hooks));
    for name in ["team-policy.rhai", "retry-classifier.rhai"] {
        std::fs::copy(
            support::root().join("examples/scripts").join(name),
            scratch.path().join(name),
        )
        .unwrap();
    }
    scratch
}

#[test]
fn the_example_team_policy_script_labels_or_denies() {
    let hooks = "    resource-limits: {memory: 64Mi}\n  parameters: [{name: team, default: \"\"}]\n  hooks:\n    mutate: [restart-never, {script: team-policy.rhai}]\n";
    let scratch = with_example_scripts(hooks);
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
        .success();
    let pod: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(pod["metadata"]["labels"]["team"], "data");
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("labelling the pod for team data"), "{err}");
    support::fails_with(
        podrun(scratch.path()).args(["render", "-a", "hello"]),
        121,
        "no team: pass --param team=NAME",
    );

    // The same script as the Rust example: a container without a memory
    // limit is refused.
    let unlimited = with_example_scripts(
        "  parameters: [team]\n  hooks:\n    mutate: [{script: team-policy.rhai}]\n",
    );
    support::fails_with(
        podrun(unlimited.path()).args(["render", "-a", "hello", "--param", "team=data"]),
        121,
        "every container needs a memory limit; hello has none",
    );
}

#[test]
fn the_example_scripts_pass_their_fixture_tests() {
    let examples = support::root().join("examples/scripts");
    podrun(&examples)
        .args([
            "hook",
            "test",
            "team-policy.rhai",
            "-i",
            "pod.yaml",
            "--with",
            "{default-team: platform}",
            "--expect",
            "pod.expected.yaml",
        ])
        .assert()
        .success();
    // A wrong expectation fails, with the difference.
    let out = podrun(&examples)
        .args([
            "hook",
            "test",
            "team-policy.rhai",
            "-i",
            "pod.yaml",
            "--param",
            "team=data",
            "--expect",
            "pod.expected.yaml",
        ])
        .assert()
        .code(1);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.contains("/metadata/labels/team is \"data\""),
        "{stdout}"
    );
}

#[test]
fn the_example_retry_script_classifies_a_local_run() {
    let hooks = "  hooks:\n    classify: [{script: retry-classifier.rhai, with: {retry-on: [75]}}, default-classifier]\n";
    crate::examples::retry_classifier_decides(with_example_scripts(hooks).path());
}

#[test]
fn a_new_script_hook_passes_its_own_test() {
    let dir = tempfile::tempdir().unwrap();
    let out = podrun(dir.path())
        .args(["hook", "new", "require-team", "--script"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    // The printed command is the test, and it passes as printed.
    let command = stdout.lines().nth(1).unwrap().trim();
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    assert_eq!(args[..2], ["hook", "test"], "{stdout}");
    podrun(dir.path()).args(&args).assert().success();
    // Without the parameter the new policy refuses the run.
    podrun(dir.path())
        .args([
            "hook",
            "test",
            "require-team/require-team.rhai",
            "-i",
            "require-team/fixture.yaml",
        ])
        .assert()
        .code(121);
    // It is never written over.
    podrun(dir.path())
        .args(["hook", "new", "require-team", "--script"])
        .assert()
        .code(125);
    podrun(dir.path())
        .args(["hook", "new", "Require_Team"])
        .assert()
        .code(125);
}

/// Builds a new Rust hook outside this repository against the SDK as
/// `cargo package` makes it (what a registry would hold), as the hook's
/// printed commands say, and tests the component it makes.
#[test]
fn a_new_rust_hook_builds_against_the_packaged_sdk_and_passes_its_own_test() {
    let dir = tempfile::tempdir().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let packaged = dir.path().join("package");
    let status = std::process::Command::new(&cargo)
        .current_dir(support::root())
        .args([
            "package",
            "-p",
            "podrun-hook-sdk",
            "--no-verify",
            "--allow-dirty",
            "--target-dir",
        ])
        .arg(&packaged)
        .status()
        .unwrap();
    assert!(status.success(), "cargo package");
    let version = env!("CARGO_PKG_VERSION");
    let status = std::process::Command::new("tar")
        .current_dir(dir.path())
        .arg("xzf")
        .arg(packaged.join(format!("package/podrun-hook-sdk-{version}.crate")))
        .status()
        .unwrap();
    assert!(status.success(), "tar");
    let sdk = dir.path().join(format!("podrun-hook-sdk-{version}"));
    assert!(
        sdk.join("wit/hook.wit").is_file(),
        "the package holds the contract"
    );
    podrun(dir.path())
        .args(["hook", "new", "team-label", "--sdk-path"])
        .arg(&sdk)
        .assert()
        .success();
    let krate = dir.path().join("team-label");
    // The workspace's versions, so the build needs nothing new.
    std::fs::copy(support::root().join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    // Kept between test runs: the SDK's dependencies build once.
    let target = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("new-hook-target");
    let status = std::process::Command::new(cargo)
        .current_dir(&krate)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .unwrap();
    assert!(status.success());
    podrun(&krate)
        .args(["hook", "test"])
        .arg(target.join("wasm32-wasip2/release/team_label.wasm"))
        .args([
            "-i",
            "fixture.yaml",
            "--param",
            "team=data",
            "--expect",
            "expected.yaml",
        ])
        .assert()
        .success();
}

#[test]
fn a_render_script_makes_the_pod_from_the_context() {
    let hooks = "  hooks:\n    render: {script: render.rhai}\n";
    let scratch = Scratch::new(&app("hello", hooks));
    std::fs::write(
        scratch.path().join("render.rhai"),
        r#"fn render(template, ctx) {
    #{apiVersion: "v1", kind: "Pod", metadata: #{name: `${ctx.name}-${ctx.run_id}`},
      spec: #{containers: [#{name: "main", image: ctx.image, command: ctx.arguments}]}}
}"#,
    )
    .unwrap();
    let out = podrun(scratch.path())
        .args([
            "render", "-a", "hello", "-o", "json", "--run-id", "r1", "-c",
        ])
        .arg("echo 'a\"b' $HOME")
        .assert()
        .success();
    let pod: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(pod["metadata"]["name"], "hello-r1");
    assert_eq!(pod["spec"]["containers"][0]["image"], "busybox:local");
    assert_eq!(
        pod["spec"]["containers"][0]["command"],
        serde_json::json!(["echo", "a\"b", "$HOME"])
    );
    // The default mutate hooks still run after a script renders.
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
}
