//! `podrun` as a user runs it.

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

use crate::support::{self, Scratch, app};

fn podrun() -> Command {
    let mut cmd = Command::cargo_bin("podrun").unwrap();
    cmd.env("PODRUN_CACHE_DIR", support::shared_cache())
        .env_remove("PODRUN_CONFIG")
        .env_remove("PODRUN_LOG");
    cmd
}

fn hello() -> Command {
    let mut cmd = podrun();
    cmd.current_dir(support::root().join("examples/hello"));
    cmd
}

fn render_json(cmd: &mut Command) -> Value {
    let out = cmd.assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn render_prints_the_final_pod_as_yaml() {
    let out = hello()
        .args([
            "render",
            "-a",
            "hello",
            "-c",
            "sh -c 'echo hello; exit 3'",
            "--run-id",
            "abc",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let pod: Value = serde_saphyr::from_slice(&out).unwrap();
    assert_eq!(pod["metadata"]["name"], "hello-abc");
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    assert_eq!(
        pod["spec"]["containers"][0]["args"],
        serde_json::json!(["sh", "-c", "echo hello; exit 3"])
    );
    // The original format's empty cpu values mean no cpu.
    assert_eq!(
        pod["spec"]["containers"][0]["resources"]["limits"],
        serde_json::json!({"memory": "64Mi"})
    );
}

#[test]
fn appconfig_path_and_config_find_the_file() {
    let dir = support::root().join("examples/hello");
    let pod = render_json(
        podrun()
            .args(["render", "-o", "json", "-a", "hello", "-p"])
            .arg(&dir),
    );
    assert_eq!(pod["kind"], "Pod");
    let pod = render_json(
        podrun()
            .args(["render", "-o", "json", "-a", "hello", "--config"])
            .arg(dir.join("pod-runner.yaml")),
    );
    assert_eq!(pod["kind"], "Pod");
}

#[test]
fn hostile_commands_stay_arguments() {
    let hostile = "x\", \"y\"]\n    privileged: true\n  hostNetwork: true\n  z: [\"";
    let pod = render_json(
        hello()
            .args(["render", "-o", "json", "-a", "hello", "--"])
            .arg(hostile)
            .arg("{{ .Name }}"),
    );
    assert_eq!(
        pod["spec"]["containers"][0]["args"],
        serde_json::json!([hostile, "{{ .Name }}"])
    );
    assert!(pod["spec"].get("hostNetwork").is_none());
    let pod = render_json(hello().args([
        "render",
        "-o",
        "json",
        "-a",
        "hello",
        "-c",
        "a,b: [c] 'd: \"e\"' '#f' x#y #z",
    ]));
    // Split like a shell: quotes group, `#` starting a word begins a comment.
    assert_eq!(
        pod["spec"]["containers"][0]["args"],
        serde_json::json!(["a,b:", "[c]", "d: \"e\"", "#f", "x#y"])
    );
}

#[test]
fn explain_shows_each_hook_and_its_changes() {
    hello()
        .args(["render", "-a", "hello", "-c", "true", "--explain"])
        .assert()
        .success()
        .stderr(
            predicate::str::contains("1. render hook go-template")
                .and(predicate::str::contains("2. mutate hook restart-never"))
                .and(predicate::str::contains(
                    "add /spec/restartPolicy = \"Never\"",
                ))
                .and(predicate::str::contains("3. mutate hook deadline"))
                .and(predicate::str::contains(
                    "add /spec/activeDeadlineSeconds = 86400",
                ))
                .and(predicate::str::contains("4. mutate hook labels")),
        );
}

#[test]
fn timeouts_take_go_durations() {
    let pod = render_json(hello().args([
        "render",
        "-a",
        "hello",
        "-c",
        "true",
        "-o",
        "json",
        "--timeout",
        "1h20m30s",
    ]));
    assert_eq!(pod["spec"]["activeDeadlineSeconds"], 4830);
    hello()
        .args(["render", "-a", "hello", "-c", "true", "--timeout", "1h20"])
        .assert()
        .code(125)
        .stderr(predicate::str::contains("not a duration"));
}

#[test]
fn completions_and_the_man_page_come_from_the_same_definitions() {
    for (shell, marker) in [
        ("bash", "_podrun()"),
        ("zsh", "#compdef podrun"),
        ("fish", "complete -c podrun"),
    ] {
        podrun()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains(marker).and(predicate::str::contains("render")));
    }
    podrun().args(["man"]).assert().success().stdout(
        predicate::str::contains(".TH podrun")
            .and(predicate::str::contains("completions"))
            .and(predicate::str::contains("render")),
    );
}

#[test]
fn hooks_list_names_the_builtins() {
    podrun().args(["hooks", "list"]).assert().success().stdout(
        predicate::str::contains("go-template    render")
            .and(predicate::str::contains("restart-never  mutate"))
            .and(predicate::str::contains("deadline"))
            .and(predicate::str::contains("labels")),
    );
}

#[test]
fn usage_errors_exit_125() {
    podrun().args(["render"]).assert().code(125);
    podrun()
        .args(["render", "-a", "x", "--bogus"])
        .assert()
        .code(125);
    podrun().args(["--help"]).assert().success();
    hello()
        .args(["render", "-a", "nope"])
        .assert()
        .code(125)
        .stderr(predicate::str::contains(
            "no application named \"nope\" (it has: hello)",
        ));
    hello()
        .args(["render", "-a", "hello", "-c", "echo 'unclosed"])
        .assert()
        .code(125)
        .stderr(predicate::str::contains("unclosed quote"));
    let dir = tempfile::tempdir().unwrap();
    podrun()
        .current_dir(dir.path())
        .args(["render", "-a", "hello"])
        .assert()
        .code(125)
        .stderr(predicate::str::contains("pod-runner.yaml does not exist"));
}

/// Renders with a scratch config and returns (exit code, stderr).
fn render_config(config: &str) -> (i32, String) {
    let scratch = Scratch::new(config);
    let out = podrun()
        .current_dir(scratch.path())
        .args(["render", "-a", "hello"])
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_errors_name_file_line_and_field() {
    let cases = [
        (app("Hello", ""), "line 2"),
        (app("hello", "  timeout: soon\n"), "not a duration"),
        (app("hello", "  colour: red\n"), "colour"),
        (
            app("hello", "    uid: root\n"),
            "not a valid user or group id",
        ),
        (
            app("hello", "    resource-limits: {memory: lots}\n"),
            "not a Kubernetes quantity",
        ),
        (
            app("hello", "  hooks:\n    mutate: [restart-nevr]\n"),
            "line 7",
        ),
        (
            app("hello", "  hooks:\n    mutate: [go-template]\n"),
            "is a render hook, not a mutate hook",
        ),
        (
            app("hello", "  hooks:\n    mutate: [missing.wasm]\n"),
            "missing.wasm does not exist",
        ),
        (
            app(
                "hello",
                "  hooks:\n    render: {hook: go-template, with: 3}\n",
            ),
            "`with:` must be a map",
        ),
        (
            app(
                "hello",
                "  hooks:\n    mutate: [{hook: deadline, deadline-ms: 0}]\n",
            ),
            "deadline-ms must be",
        ),
        (
            "applications:\n- name: hello\n  template: nowhere.tmpl\n  container: {image: x}\n"
                .into(),
            "nowhere.tmpl does not exist",
        ),
        (
            format!(
                "{}{}",
                app("hello", ""),
                &app("hello", "")["applications:\n".len()..]
            ),
            "defined twice",
        ),
        ("applications: [".into(), "pod-runner.yaml"),
        (
            "applications:\n- name: hello\n  template: http://example.invalid/t.tmpl\n  container: {image: x}\n".into(),
            "must use https",
        ),
    ];
    for (config, expected) in cases {
        let (code, stderr) = render_config(&config);
        assert_eq!(code, 125, "{config}\n{stderr}");
        assert!(
            stderr.contains("pod-runner.yaml"),
            "no file name for:\n{config}\n{stderr}"
        );
        assert!(
            stderr.contains(expected),
            "expected {expected:?} for:\n{config}\ngot: {stderr}"
        );
    }
}

#[test]
fn hook_failures_and_denials_have_their_own_codes() {
    let deny = app(
        "hello",
        "  hooks:\n    mutate: [{hook: misbehave.wasm, with: {do: deny}}]\n",
    );
    let (code, stderr) = render_config(&deny);
    assert_eq!(code, 121, "{stderr}");
    assert!(
        stderr.contains("misbehave.wasm denied the run: pods of this team need a cost centre"),
        "{stderr}"
    );
    let hang = app(
        "hello",
        "  hooks:\n    mutate: [{hook: misbehave.wasm, deadline-ms: 20, with: {do: loop}}]\n",
    );
    let (code, stderr) = render_config(&hang);
    assert_eq!(code, 122, "{stderr}");
    assert!(
        stderr.contains("ran past its deadline of 20 ms"),
        "{stderr}"
    );
}

#[test]
fn an_invalid_rendered_pod_names_the_field() {
    let scratch = Scratch::new(&app("hello", ""));
    std::fs::write(
        scratch.path().join("templates/pod.tmpl"),
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: x\n    args: {{ .Container.Arguments }}\n    ports: [{containerPort: many}]\n",
    )
    .unwrap();
    podrun()
        .current_dir(scratch.path())
        .args(["render", "-a", "hello", "-c", "a"])
        .assert()
        .code(125)
        .stderr(predicate::str::contains(
            "templates/pod.tmpl does not render a valid Pod",
        ))
        .stderr(predicate::str::contains("spec.containers[0]"));
    std::fs::write(
        scratch.path().join("templates/pod.tmpl"),
        "kind: {{ .Nmae }}\n",
    )
    .unwrap();
    podrun()
        .current_dir(scratch.path())
        .args(["render", "-a", "hello"])
        .assert()
        .code(125)
        .stderr(predicate::str::contains("cannot render the template"))
        .stderr(predicate::str::contains("Nmae"));
    // A key YAML would pair with the wrong value is refused, with its line.
    std::fs::write(
        scratch.path().join("templates/pod.tmpl"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  !!int x: 1\n  name: p\n",
    )
    .unwrap();
    podrun()
        .current_dir(scratch.path())
        .args(["render", "-a", "hello"])
        .assert()
        .code(125)
        .stderr(predicate::str::contains("does not match its tag"))
        .stderr(predicate::str::contains("!!int x: 1"));
}

#[test]
fn parameters_reach_the_template() {
    let scratch = Scratch::new(&app("hello", "  parameters: [team]\n"));
    std::fs::write(
        scratch.path().join("templates/pod.tmpl"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  labels: {team: {{ .Params.team }}}\nspec:\n  containers: [{name: x, image: {{ .Container.Image }}}]\n",
    )
    .unwrap();
    let out = podrun()
        .current_dir(scratch.path())
        .args([
            "render",
            "-a",
            "hello",
            "-o",
            "json",
            "--param",
            "team=a: b",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let pod: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(pod["metadata"]["labels"]["team"], "a: b");
    podrun()
        .current_dir(scratch.path())
        .args(["render", "-a", "hello"])
        .assert()
        .code(125)
        .stderr(predicate::str::contains("--param team=VALUE"));
}

fn convert(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut cmd = podrun();
    cmd.current_dir(support::root()).arg("convert").args(args);
    if let Some(input) = stdin {
        cmd.write_stdin(input.to_string());
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn convert_sequences_workloads_and_passes_the_rest() {
    let (code, out, err) = convert(&["-f", "tests/fixtures/convert/mixed.yaml"], None);
    assert_eq!(code, 0, "{err}");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&out).unwrap();
    assert_eq!(docs.len(), 4);
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&docs[0]["spec"]["initContainers"]),
        ["setup", "first", "second"]
    );
    assert_eq!(names(&docs[0]["spec"]["containers"]), ["third"]);
    assert_eq!(
        names(&docs[1]["spec"]["template"]["spec"]["initContainers"]),
        ["extract"]
    );
    let cron = &docs[2]["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(names(&cron["containers"]), ["b"]);
    assert_eq!(
        docs[3],
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "fast"}})
    );
}

#[test]
fn convert_reads_stdin_and_takes_hook_settings() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: a, image: x, command: [a]}\n  - {name: b, image: x, command: [b]}\n";
    let (code, out, err) = convert(
        &["-f", "-", "--hook", r#"sequence={"strategy":"entrypoint"}"#],
        Some(pod),
    );
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_saphyr::from_str(out.trim_start_matches("---\n")).unwrap();
    assert_eq!(
        doc["spec"]["containers"][1]["command"],
        serde_json::json!(["/bin/sh", "-c"])
    );
    let no_command = pod.replace(", command: [b]", "");
    let (code, _, err) = convert(
        &["-f", "-", "--hook", r#"sequence={"strategy":"entrypoint"}"#],
        Some(&no_command),
    );
    assert_eq!(code, 122, "{err}");
    assert!(
        err.contains("document 1 (Pod p)") && err.contains("container b has no command"),
        "{err}"
    );
    let (code, _, err) = convert(&["-f", "-"], Some("kind: [\n"));
    assert_eq!(code, 125, "{err}");
    let (code, _, err) = convert(&["-f", "-", "--hook", "nope"], Some(pod));
    assert_eq!(code, 125, "{err}");
}

#[test]
fn hook_test_runs_a_hook_on_a_fixture_and_checks_expectations() {
    let fixtures = "tests/fixtures/hooks";
    let hook_test = |args: &[&str]| {
        let out = podrun()
            .current_dir(support::root())
            .args(["hook", "test"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = hook_test(&[
        "restart-never",
        "-i",
        &format!("{fixtures}/pod.yaml"),
        "--expect",
        &format!("{fixtures}/pod.expected.yaml"),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok:"), "{out}");
    let (code, out, _) = hook_test(&[
        "restart-never",
        "-i",
        &format!("{fixtures}/pod.yaml"),
        "--expect",
        &format!("{fixtures}/pod.yaml"),
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("/spec/restartPolicy is \"Never\""), "{out}");
    let rules = "{rules: [{name: retry, action: fail-retryable, on-exit-codes: {operator: In, values: [75]}}]}";
    let (code, out, err) = hook_test(&[
        "default-classifier",
        "-i",
        &format!("{fixtures}/failed-pod.yaml"),
        "--with",
        rules,
    ]);
    assert_eq!(code, 0, "{err}");
    let verdict: Value = serde_saphyr::from_str(&out).unwrap();
    assert_eq!(
        (verdict["retryable"].as_bool(), verdict["rule"].as_str()),
        (Some(true), Some("retry"))
    );
    let guest = support::guest("misbehave").display().to_string();
    let (code, _, err) = hook_test(&[
        &guest,
        "-i",
        &format!("{fixtures}/pod.yaml"),
        "--with",
        "{do: deny}",
    ]);
    assert_eq!(code, 121, "{err}");
}

#[test]
fn an_unreachable_https_template_is_a_clear_error() {
    let scratch = Scratch::new(
        "applications:\n- name: hello\n  template: https://127.0.0.1:9/pod.tmpl\n  container: {image: x}\n",
    );
    podrun()
        .current_dir(scratch.path())
        .args(["render", "-a", "hello"])
        .assert()
        .code(125)
        .stderr(predicate::str::contains(
            "cannot read the template https://127.0.0.1:9/pod.tmpl",
        ));
}
