//! Tenants, tried as an attacker would: another tenant's runs, hooks that
//! try to undo the operator's policy or read tokens, parameters a tenant
//! was not granted, floods. A real `podrun serve` on the local runtime,
//! and the same allow-lists through the CLI.

use std::time::Duration;

use serde_json::{Value, json};

use crate::server::Server;
use crate::support::{self, Scratch};

/// A tenant hook that attacks as its run's `attack` parameter says.
const ATTACK: &str = r#"
fn mutate(object, ctx) {
    let attack = ctx.params.attack;
    if attack == "privileged" {
        object.spec.containers[0].securityContext = #{ privileged: true };
        return object;
    }
    if attack == "token" {
        object.spec.automountServiceAccountToken = true;
        return object;
    }
    if attack == "deadline" {
        object.spec.remove("activeDeadlineSeconds");
        return object;
    }
    if attack == "finalizer" {
        return patch(#{ metadata: #{ finalizers: ["example.com/keep"] } });
    }
    if attack == "label" {
        return patch(#{ metadata: #{ labels: #{ "podrun.dev/tenant": "team-a" } } });
    }
    if attack == "leak" {
        deny(`context ${ctx} object ${object}`);
    }
    ()
}
"#;

/// The config: two teams and a flooder sharing one server, under one
/// platform policy. `{a}`, `{b}`, `{c}` are the token hashes.
fn config(a: &str, b: &str, c: &str) -> String {
    format!(
        r#"applications:
- name: worker
  template: templates/pod.tmpl
  container:
    image: busybox:local
  namespace: shared
  parameters: [{{name: attack, default: ""}}]
  runtime-parameters:
    max-timeout: 1h
    max-resources: {{cpu: 1, memory: 256Mi}}
- name: report
  template: templates/pod.tmpl
  container:
    image: busybox:local
  namespace: reports
  runtime-parameters:
    image: true
    command: false
- name: admin
  template: templates/pod.tmpl
  container:
    image: busybox:local
  namespace: admin
policy:
  mutate: [api-token]
  validate:
  - {{hook: pod-security, with: {{level: baseline, require: [deadline, no-token, no-finalizers]}}}}
tenants:
- name: team-a
  tokens: ["{a}"]
  applications: [worker, report]
  namespaces: [team-a, reports]
  local-runtime: true
  runtime-parameters: {{image: false, max-resources: {{memory: 128Mi}}}}
- name: team-b
  tokens: ["{b}"]
  applications: [worker]
  local-runtime: true
  hooks:
    mutate: [{{script: attack.rhai}}]
- name: team-c
  tokens: ["{c}"]
  applications: [worker]
  submits-per-minute: 2
"#
    )
}

struct Tenants {
    _scratch: Scratch,
    server: Server,
    a: String,
    b: String,
    c: String,
}

/// A new token and its hash, as `podrun token new` prints them.
pub(crate) fn token() -> (String, String) {
    let out = support::podrun_in(std::path::Path::new("."))
        .args(["token", "new"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .trim()
            .to_string()
    };
    let (token, hash) = (field("token:"), field("hash:"));
    assert_eq!(podrun::config::TokenHash::of(&token).to_string(), hash);
    (token, hash)
}

fn scratch() -> (Scratch, [String; 3]) {
    let (a, b, c) = (token(), token(), token());
    let scratch = Scratch::new(&config(&a.1, &b.1, &c.1));
    std::fs::write(scratch.path().join("attack.rhai"), ATTACK).unwrap();
    (scratch, [a.0, b.0, c.0])
}

fn start() -> Tenants {
    let (scratch, [a, b, c]) = scratch();
    let store = format!("sqlite:{}", scratch.path().join("runs.db").display());
    let server = Server::start(&scratch, &store, &[]);
    Tenants {
        _scratch: scratch,
        server,
        a,
        b,
        c,
    }
}

impl Tenants {
    fn call(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.server.json_as(token, method, path, body)
    }

    /// The ids of the runs `token`'s tenant sees.
    fn listed(&self, token: &str) -> Vec<String> {
        let (status, page) = self.call(token, "GET", "/v1/runs", None);
        assert_eq!(status, 200, "{page}");
        page["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    }

    fn state(&self, token: &str, id: &str) -> String {
        let (_, run) = self.call(token, "GET", &format!("/v1/runs/{id}"), None);
        run["state"].as_str().unwrap_or_default().to_string()
    }

    /// Nothing in the server's log or in `text` gives a token away.
    fn no_secret_in(&self, text: &str) {
        for token in [&self.a, &self.b, &self.c] {
            assert!(!text.contains(token.as_str()), "a token in: {text}");
            let hash = podrun::config::TokenHash::of(token).to_string();
            assert!(!text.contains(&hash[7..]), "a token's hash in: {text}");
        }
    }
}

#[test]
fn a_tenant_sees_and_steers_only_its_own_runs_and_anothers_are_404() {
    let t = start();
    let (status, run) = t.call(
        &t.a,
        "POST",
        "/v1/runs",
        Some(json!({"application": "worker", "args": ["sh", "-c", "echo secret-of-a; sleep 30"]})),
    );
    assert_eq!(status, 201, "{run}\n{}", t.server.log());
    assert_eq!(run["tenant"], "team-a");
    let id = run["id"].as_str().unwrap().to_string();
    for _ in 0..600 {
        if t.state(&t.a, &id) == "running" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(t.state(&t.a, &id), "running");

    // Tenant B, trying every way to reach A's run.
    for (method, path) in [
        ("GET", format!("/v1/runs/{id}")),
        ("GET", format!("/v1/runs/{id}/logs")),
        ("GET", format!("/v1/runs/{id}/logs?follow=true")),
        ("GET", format!("/v1/runs/{id}/result")),
        ("POST", format!("/v1/runs/{id}/cancel")),
        ("DELETE", format!("/v1/runs/{id}")),
    ] {
        let (status, body) = t.call(&t.b, method, &path, None);
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "run-not-found");
        t.no_secret_in(&body.to_string());
    }
    assert!(t.listed(&t.b).is_empty());
    assert!(t.listed(&t.a).contains(&id), "A lists its own run");
    // A's run was not touched.
    assert_eq!(t.state(&t.a, &id), "running");
    let (_, log) = t.call(&t.a, "GET", &format!("/v1/runs/{id}/logs"), None);
    assert_eq!(log, "secret-of-a\n");

    // The same idempotency key from B makes B's own run, not A's.
    let key = [("idempotency-key", "nightly-1")];
    let submit = |token: &str| {
        let auth = format!("Bearer {token}");
        let (status, text) = t.server.call(
            "POST",
            "/v1/runs",
            Some(r#"{"application": "worker", "args": ["true"]}"#),
            &[key[0], ("authorization", &auth)],
        );
        let run: Value = serde_json::from_str(&text).unwrap();
        (status, run["id"].as_str().unwrap_or_default().to_string())
    };
    let (status, first) = submit(&t.a);
    assert_eq!(status, 201);
    let (status, other) = submit(&t.b);
    assert_eq!(status, 201, "B's submit is its own");
    assert_ne!(first, other);
    assert_eq!(
        submit(&t.a),
        (200, first.clone()),
        "A's replay finds A's run"
    );

    // Without a tenant's token, nothing.
    for auth in [
        None,
        Some("Bearer".to_string()),
        Some("Bearer podrun_0000".to_string()),
        Some(format!("Basic {}", t.a)),
        // The stored hash is not a token.
        Some(format!("Bearer {}", podrun::config::TokenHash::of(&t.a))),
    ] {
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let (status, body) = t
            .server
            .call("GET", &format!("/v1/runs/{id}"), None, &headers);
        assert_eq!(status, 401, "{auth:?}: {body}");
        assert!(body.contains("unauthenticated"), "{body}");
    }
    let (status, _) = t.server.call("GET", "/healthz", None, &[]);
    assert_eq!(status, 200, "probes need no token");
    // Paths spelt otherwise are not the open ones.
    for path in [
        "/v1/runs/",
        "//v1/runs",
        "/v1//runs",
        "/healthz/",
        "/HEALTHZ",
        "/v1/runs%2F",
    ] {
        let (status, body) = t.server.call("GET", path, None, &[]);
        assert_eq!(status, 401, "{path}: {body}");
    }

    // A steers its run to its end and forgets it.
    let (status, _) = t.call(&t.a, "POST", &format!("/v1/runs/{id}/cancel"), None);
    assert_eq!(status, 202);
    for _ in 0..600 {
        if t.state(&t.a, &id) == "cancelled" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(t.state(&t.a, &id), "cancelled");
    assert_eq!(
        t.call(&t.b, "DELETE", &format!("/v1/runs/{id}"), None).0,
        404
    );
    assert_eq!(
        t.call(&t.a, "DELETE", &format!("/v1/runs/{id}"), None).0,
        204
    );

    // Each request has its audit line, with the tenant and no token.
    let log = t.server.log();
    assert!(
        log.lines().any(|l| l.contains("audit")
            && l.contains("tenant=\"team-b\"")
            && l.contains(&format!("DELETE /v1/runs/{id}"))
            && l.contains("outcome=404")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("(unauthenticated)") && l.contains("outcome=401"))
    );
    t.no_secret_in(&log);
}

#[test]
fn a_tenants_hook_cannot_undo_the_operators_policy_nor_read_a_token() {
    let t = start();
    for (attack, field) in [
        (
            "privileged",
            "spec.containers[0].securityContext.privileged",
        ),
        ("token", "spec.automountServiceAccountToken"),
        ("deadline", "spec.activeDeadlineSeconds"),
        ("finalizer", "metadata.finalizers"),
    ] {
        let (status, body) = t.call(
            &t.b,
            "POST",
            "/v1/runs",
            Some(json!({"application": "worker", "params": {"attack": attack}})),
        );
        assert_eq!(status, 403, "{attack}: {body}");
        assert_eq!(body["error"]["code"], "denied", "{attack}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("pod-security"), "{attack}: {message}");
        assert!(message.contains(field), "{attack}: {message}");
    }
    // A hook that tries to show what it was given finds no token.
    let (status, body) = t.call(
        &t.b,
        "POST",
        "/v1/runs",
        Some(json!({"application": "worker", "params": {"attack": "leak"}})),
    );
    assert_eq!(status, 403, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("context"), "{message}");
    t.no_secret_in(message);
    // A request cannot name hooks of its own, nor drop the tenant's.
    for extra in [
        json!({"hooks": {"mutate": []}}),
        json!({"tenant": "team-a"}),
        json!({"policy": {}}),
    ] {
        let mut body = json!({"application": "worker", "params": {"attack": "privileged"}});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, answer) = t.call(&t.b, "POST", "/v1/runs", Some(body));
        assert_eq!(status, 422, "{extra}: {answer}");
    }
    assert!(t.listed(&t.b).is_empty(), "a refused run was queued");
    // Without an attack, B's runs run.
    let (status, run) = t.call(
        &t.b,
        "POST",
        "/v1/runs",
        Some(json!({"application": "worker", "args": ["true"]})),
    );
    assert_eq!(status, 201, "{run}");
}

#[test]
fn what_a_tenant_was_not_granted_is_refused_by_name_and_nothing_queued() {
    let t = start();
    let cases = [
        // team-b has no `report`, and `admin` is no one's.
        (&t.b, json!({"application": "report"}), "application"),
        (&t.a, json!({"application": "admin"}), "application"),
        (
            &t.a,
            json!({"application": "worker", "namespace": "team-b"}),
            "namespace",
        ),
        // Without a list of its own, only the application's namespace.
        (
            &t.b,
            json!({"application": "worker", "namespace": "default"}),
            "namespace",
        ),
        // `report` allows images, but team-a's grant narrows it.
        (
            &t.a,
            json!({"application": "report", "image": "evil:latest"}),
            "image",
        ),
        (
            &t.a,
            json!({"application": "report", "args": ["id"]}),
            "command",
        ),
        (
            &t.a,
            json!({"application": "worker", "podOverride": {"spec": {"hostPID": true}}}),
            "pod-override",
        ),
        (
            &t.a,
            json!({"application": "worker", "timeout": 7200}),
            "timeout",
        ),
        (
            &t.a,
            json!({"application": "worker", "resources": {"requests": {"memory": "200Mi"}}}),
            "resources.requests.memory: 200Mi is over the 134217728 bytes tenant team-a allows",
        ),
        (
            &t.a,
            json!({"application": "worker", "resources": {"limits": {"cpu": "1"}}}),
            "resources.limits.cpu: tenant team-a does not allow callers to set cpu",
        ),
        (
            &t.b,
            json!({"application": "worker", "resources": {"limits": {"memory": "1Gi"}}}),
            "resources.limits.memory",
        ),
        // team-c may not use the local runtime this server runs on.
        (&t.c, json!({"application": "worker"}), "local"),
    ];
    for (token, body, name) in cases {
        let (status, answer) = t.call(token, "POST", "/v1/runs", Some(body.clone()));
        assert_eq!(status, 403, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(name), "{body}: {message}");
    }
    for token in [&t.a, &t.b, &t.c] {
        assert!(t.listed(token).is_empty(), "a refused run was queued");
    }
    let (status, answer) = t.call(
        &t.b,
        "POST",
        "/v1/runs",
        Some(json!({"application": "worker", "resources": {"limits": {"memory": "lots"}}})),
    );
    assert_eq!(status, 400, "{answer}");
    // What was granted works: a namespace of its list, a timeout under
    // the maximum, resources within the bounds.
    let (status, run) = t.call(
        &t.a,
        "POST",
        "/v1/runs",
        Some(json!({
            "application": "worker", "namespace": "reports", "timeout": 60, "args": ["true"],
            "resources": {"requests": {"memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        })),
    );
    assert_eq!(status, 201, "{run}");
    let (status, run) = t.call(
        &t.b,
        "POST",
        "/v1/runs",
        Some(json!({"application": "worker", "resources": {"limits": {"cpu": "500m"}}})),
    );
    assert_eq!(status, 201, "{run}");
}

#[test]
fn a_flood_past_a_tenants_rate_gets_429_with_retry_after() {
    let (scratch, [_, _, c]) = scratch();
    // team-c's runs would be refused on the local runtime; on a cluster
    // they queue. The rate is checked before either.
    let store = format!("sqlite:{}", scratch.path().join("runs.db").display());
    let server = Server::start(&scratch, &store, &[]);
    let auth = format!("Bearer {c}");
    let submit = || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let response = agent
            .post(&server.url("/v1/runs"))
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .send(r#"{"application": "worker"}"#)
            .unwrap();
        let retry = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        (response.status().as_u16(), retry)
    };
    // Two fit in the minute (refused for the runtime, but counted).
    assert_eq!(submit().0, 403);
    assert_eq!(submit().0, 403);
    for _ in 0..5 {
        let (status, retry) = submit();
        assert_eq!(status, 429);
        let seconds: u64 = retry.expect("Retry-After").parse().unwrap();
        assert!((1..=30).contains(&seconds), "{seconds}");
    }
}

#[test]
fn the_cli_keeps_to_the_same_allow_lists_and_the_same_policy() {
    let (scratch, _) = scratch();
    let render = |args: &[&str]| {
        let mut cmd = support::podrun_in(scratch.path());
        cmd.arg("render").args(args).args(["-o", "json"]);
        cmd
    };
    for (args, code, text) in [
        (&["-a", "worker", "--image", "evil"][..], 125, "image"),
        (&["-a", "report", "-c", "id"][..], 125, "command"),
        (&["-a", "worker", "--timeout", "2h"][..], 125, "timeout"),
        (
            &["--tenant", "team-a", "-a", "worker", "-n", "team-b"][..],
            125,
            "namespace",
        ),
        (
            &["--tenant", "team-a", "-a", "report", "--image", "x"][..],
            125,
            "image",
        ),
        (
            &["--tenant", "team-b", "-a", "report"][..],
            125,
            "application",
        ),
        (
            &[
                "--tenant",
                "team-b",
                "-a",
                "worker",
                "--param",
                "attack=privileged",
            ][..],
            121,
            "privileged",
        ),
        (
            &["--tenant", "nobody", "-a", "worker"][..],
            125,
            "no tenant named",
        ),
    ] {
        support::fails_with(&mut render(args), code, text);
    }
    // A pod override where it is allowed; the policy still has the last
    // word.
    let override_file = scratch.path().join("override.yaml");
    std::fs::write(&override_file, "spec:\n  hostPID: true\n").unwrap();
    let with_override = scratch.path().join("pod-runner.yaml");
    let text = std::fs::read_to_string(&with_override).unwrap().replace(
        "    max-timeout: 1h",
        "    max-timeout: 1h\n    pod-override: [metadata.annotations, spec]",
    );
    std::fs::write(&with_override, text).unwrap();
    support::fails_with(
        &mut render(&[
            "-a",
            "worker",
            "--pod-override",
            override_file.to_str().unwrap(),
        ]),
        121,
        "spec.hostPID",
    );
    std::fs::write(&override_file, "metadata:\n  annotations:\n    note: hi\n").unwrap();
    let out = render(&[
        "-a",
        "worker",
        "--pod-override",
        override_file.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pod: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pod["metadata"]["annotations"]["note"], "hi");
    // The operator's mutate hook ran on a run with no tenant, and no
    // tenant label was made up.
    assert_eq!(pod["spec"]["automountServiceAccountToken"], false);
    assert!(pod["metadata"]["labels"].get("podrun.dev/tenant").is_none());

    // A tenant's hook cannot pass its run off as another tenant's.
    let out = render(&[
        "--tenant",
        "team-b",
        "-a",
        "worker",
        "--param",
        "attack=label",
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pod: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pod["metadata"]["labels"]["podrun.dev/tenant"], "team-b");
}

/// Enough of a token to use it in a guessing attack.
const TOKEN_SHOWN: usize = "podrun_".len() + 8;

#[test]
fn tenant_config_errors_name_their_line_and_column() {
    let (token, hash) = token();
    let base = "applications:\n- name: worker\n  template: templates/pod.tmpl\n  container:\n    image: busybox:local\n";
    for (tenants, expect) in [
        (
            format!(
                "tenants:\n- name: a\n  tokens: [\"{hash}\"]\n  applications: [worker, nightly]\n"
            ),
            "line 9, column 26: tenants[0].applications: no application named \"nightly\"",
        ),
        (
            format!(
                "tenants:\n- name: a\n  tokens: [\"{hash}\"]\n  applications: [worker]\n  namespaces: [a]\n- name: b\n  tokens: [\"{hash}\"]\n  applications: [worker]\n  namespaces: [b]\n"
            ),
            "line 12, column 12: tenants[1].tokens: this hash is also tenant \"a\"'s (at line 8, column 12)",
        ),
        (
            format!("tenants:\n- name: a\n  tokens: [\"{token}\"]\n  applications: [worker]\n"),
            "this is a token, not its hash",
        ),
        (
            "tenants:\n- name: a\n  applications: [worker]\n  max-concurrent: lots\n".to_string(),
            "max-concurrent",
        ),
        (
            "policy:\n  validate: [pod-securty]\n".to_string(),
            "policy.validate: \"pod-securty\" is not a built-in hook",
        ),
        (
            format!("tenants:\n- name: a\n  tokens: [\"{hash}\"]\n  applications: [worker]\n"),
            "line 9, column 18: tenants[0].applications: \"worker\" names no namespace, so tenant \"a\" needs `namespaces:`",
        ),
    ] {
        let scratch = Scratch::new(&format!("{base}{tenants}"));
        let out = support::podrun_in(scratch.path())
            .args(["render", "-a", "worker"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{err}");
        assert!(err.contains(expect), "expected {expect:?} in: {err}");
        assert!(
            !err.contains(&token[..TOKEN_SHOWN]),
            "the error repeats the token: {err}"
        );
    }
}

/// The first lines a server prints, up to the one saying where it serves.
fn start_lines(scratch: &Scratch, listen: &str) -> String {
    use std::io::BufRead;
    let store = format!("sqlite:{}", scratch.path().join("runs.db").display());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_podrun"))
        .args([
            "serve",
            "--runtime",
            "local",
            "--listen",
            listen,
            "--store",
            &store,
            "--config",
        ])
        .arg(scratch.config_path())
        .env("PODRUN_CACHE_DIR", support::shared_cache())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut text = String::new();
    for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        text.push_str(&line);
        text.push('\n');
        if line.contains("serving on") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    text
}

#[test]
fn a_server_open_to_anyone_or_speaking_tokens_in_the_clear_says_so() {
    let open = Scratch::new(crate::server::CONFIG);
    assert!(start_lines(&open, "0.0.0.0:0").contains("has no tenants, so anyone"));
    assert!(!start_lines(&open, "127.0.0.1:0").contains("has no tenants"));
    let (shared, _) = scratch();
    assert!(start_lines(&shared, "0.0.0.0:0").contains("travel in the clear"));
}

#[test]
fn a_tenants_classifier_follows_the_applications_and_its_limit_queues_its_runs() {
    let (token, hash) = token();
    let scratch = Scratch::new(&format!(
        "applications:\n- name: quiet\n  template: templates/pod.tmpl\n  container:\n    image: busybox:local\n  \
         namespace: q\n  hooks:\n    classify: [{{script: shrug.rhai}}]\n\
         tenants:\n- name: team-a\n  tokens: [\"{hash}\"]\n  applications: [quiet]\n  local-runtime: true\n  \
         max-concurrent: 1\n  hooks: {{classify: [{{script: verdict.rhai}}]}}\n"
    ));
    std::fs::write(
        scratch.path().join("shrug.rhai"),
        "fn classify(observation, ctx) { () }\n",
    )
    .unwrap();
    std::fs::write(
        scratch.path().join("verdict.rhai"),
        "fn classify(observation, ctx) {\n    let phase = observation.pod.status?.phase;\n    \
         if phase == \"Succeeded\" || phase == \"Failed\" {\n        \
         return #{outcome: \"failed\", reason: \"TenantSays\", message: \"team-a's classifier\", exit_code: 7};\n    }\n    ()\n}\n",
    )
    .unwrap();
    // The application's classifier has no opinion: the tenant's decides.
    let out = support::podrun_in(scratch.path())
        .args([
            "run",
            "--runtime",
            "local",
            "--tenant",
            "team-a",
            "-a",
            "quiet",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Over HTTP, one of the tenant's runs at a time.
    let store = format!("sqlite:{}", scratch.path().join("runs.db").display());
    let server = Server::start(&scratch, &store, &[]);
    let auth = format!("Bearer {token}");
    let call = |method: &str, path: &str, body: Option<&str>| {
        let (status, text) = server.call(method, path, body, &[("authorization", &auth)]);
        (
            status,
            serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)),
        )
    };
    let body = r#"{"application": "quiet", "args": ["sleep", "2"]}"#;
    let (_, first) = call("POST", "/v1/runs", Some(body));
    let (_, second) = call("POST", "/v1/runs", Some(body));
    let state = |run: &Value| {
        let (_, run) = call(
            "GET",
            &format!("/v1/runs/{}", run["id"].as_str().unwrap()),
            None,
        );
        run
    };
    let start = std::time::Instant::now();
    while state(&first)["state"] != "running" {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            state(&first)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        state(&second)["state"],
        "queued",
        "the limit let a second run start"
    );
    let start = std::time::Instant::now();
    while state(&second)["state"] != "failed" {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            state(&second)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let first = state(&first);
    assert_eq!(first["result"]["reason"], "TenantSays", "{first}");
}

#[test]
fn a_validate_hook_that_changes_the_pod_fails_the_run() {
    // The default `labels` hook ran before: as a validate hook it changes
    // nothing and passes. A hook that marks the pod does change it.
    let scratch = Scratch::new(&format!(
        "{}policy:\n  validate: [labels, {{script: mark.rhai}}]\n",
        support::app("worker", "")
    ));
    std::fs::write(
        scratch.path().join("mark.rhai"),
        "fn mutate(object, ctx) { patch(#{ metadata: #{ annotations: #{ validated: \"yes\" } } }) }\n",
    )
    .unwrap();
    support::fails_with(
        support::podrun_in(scratch.path()).args(["render", "-a", "worker"]),
        122,
        "a validate hook may only allow or deny, and this one changed the pod",
    );
    // One that only judges lets the pod through unchanged.
    let scratch = Scratch::new(&format!(
        "{}policy:\n  validate: [pod-security]\n",
        support::app("worker", "")
    ));
    support::podrun_in(scratch.path())
        .args(["render", "-a", "worker"])
        .assert()
        .success();
}
