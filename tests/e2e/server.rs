//! `podrun serve` as its clients use it: a real server process on the
//! local runtime with a real SQLite file, driven over HTTP.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{self, Scratch};

pub(crate) const CONFIG: &str = "applications:
- name: worker
  template: templates/pod.tmpl
  container:
    image: busybox:local
- name: denied
  template: templates/pod.tmpl
  container:
    image: busybox:local
  hooks:
    mutate: [{hook: misbehave.wasm, with: {do: deny}}]
- name: limited
  template: templates/pod.tmpl
  container:
    image: busybox:local
  max-running: 1
";

/// A `podrun serve` process; killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// A server on the local runtime.
    pub(crate) fn start(scratch: &Scratch, store: &str, extra: &[&str]) -> Server {
        Server::start_on(scratch, store, None, extra)
    }

    /// A server on the cluster of `kubeconfig`, or on the local runtime.
    pub(crate) fn start_on(
        scratch: &Scratch,
        store: &str,
        kubeconfig: Option<&Path>,
        extra: &[&str],
    ) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_podrun"));
        command
            .arg("serve")
            .arg("--config")
            .arg(scratch.config_path())
            .arg("--store")
            .arg(store)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("PODRUN_CACHE_DIR", support::shared_cache());
        match kubeconfig {
            Some(k) => command.args(["--runtime", "kube"]).env("KUBECONFIG", k),
            None => command
                .args(["--runtime", "local"])
                .env_remove("KUBECONFIG"),
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = stderr.clone();
        std::thread::spawn(move || {
            while let Some(Ok(line)) = lines.next() {
                if let Some(addr) = line.strip_prefix("podrun: serving on ") {
                    let _ = tx.send(addr.to_string());
                }
                log.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the server did not start: {}", stderr.lock().unwrap()));
        Server {
            child,
            base,
            stderr,
        }
    }

    /// What it printed so far.
    pub(crate) fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = self.url(path);
        let mut response = match (method, body) {
            ("GET", _) => with(agent.get(&url), headers).call(),
            ("DELETE", _) => with(agent.delete(&url), headers).call(),
            (_, Some(body)) => with(agent.post(&url), headers)
                .header("content-type", "application/json")
                .send(body),
            (_, None) => with(agent.post(&url), headers).send_empty(),
        }
        .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, text)
    }

    pub(crate) fn json(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.json_with(method, path, body, &[])
    }

    /// [`json`](Self::json) as the tenant of `token`.
    pub(crate) fn json_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let auth = format!("Bearer {token}");
        self.json_with(method, path, body, &[("authorization", &auth)])
    }

    fn json_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        let (status, text) = self.call(method, path, body.as_deref(), headers);
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub(crate) fn submit(&self, body: Value) -> String {
        let (status, run) = self.json("POST", "/v1/runs", Some(body));
        assert_eq!(status, 201, "{run}\n{}", self.stderr.lock().unwrap());
        run["id"].as_str().unwrap().to_string()
    }

    /// The run once `done` says so of it.
    pub(crate) fn wait(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let (status, run) = self.json("GET", &format!("/v1/runs/{id}"), None);
            assert_eq!(status, 200, "{run}");
            if done(&run) {
                return run;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "run {id} stays {run}\n{}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn ended(&self, id: &str) -> Value {
        self.wait(id, |r| {
            ["succeeded", "failed", "cancelled", "lost"]
                .contains(&r["state"].as_str().unwrap_or(""))
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn with<B>(
    mut request: ureq::RequestBuilder<B>,
    headers: &[(&str, &str)],
) -> ureq::RequestBuilder<B> {
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request
}

/// A scratch config for servers, and their store's address (SQLite).
pub(crate) fn scratch() -> (Scratch, String) {
    let scratch = Scratch::new(CONFIG);
    let store = format!("sqlite:{}", scratch.path().join("runs.db").display());
    (scratch, store)
}

/// A new database on the Postgres server `PODRUN_TEST_POSTGRES` names
/// (`postgres://USER@HOST:PORT`; `.ci/run` starts one), or `None` with a
/// note when there is none.
pub(crate) fn postgres_store() -> Option<String> {
    let Ok(server) = std::env::var("PODRUN_TEST_POSTGRES") else {
        eprintln!("PODRUN_TEST_POSTGRES is not set: this test needs a Postgres server");
        return None;
    };
    Some(new_database(&server))
}

/// Makes a new database on `server`; its address.
pub(crate) fn new_database(server: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!(
        "podrun_e2e_{}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let out = Command::new("psql")
        .arg(format!("{server}/postgres"))
        .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("{server}/{name}")
}

#[test]
fn a_run_is_queued_run_and_kept_with_its_verdict_log_and_result() {
    let (scratch, store) = scratch();
    let server = Server::start(&scratch, &store, &[]);
    let (status, run) = server.json(
        "POST",
        "/v1/runs",
        Some(json!({
            "application": "worker",
            "command": "sh -c 'echo one; tr a-z A-Z; exit 3'",
            "stdin": "from stdin\n",
        })),
    );
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["state"], "queued");
    let id = run["id"].as_str().unwrap();
    let run = server.ended(id);
    assert_eq!(run["state"], "failed", "{run}");
    assert_eq!(run["result"]["exitCode"], 3, "{run}");
    assert_eq!(run["result"]["runId"], id);
    assert_eq!(run["result"]["reason"], "Error");
    let (status, log) = server.call("GET", &format!("/v1/runs/{id}/logs"), None, &[]);
    assert_eq!((status, log.as_str()), (200, "one\nFROM STDIN\n"));
    let (_, result) = server.call("GET", &format!("/v1/runs/{id}/result"), None, &[]);
    assert_eq!(result, "one\nFROM STDIN\n", "the worker's output");
    let (_, tail) = server.call("GET", &format!("/v1/runs/{id}/logs?offset=1"), None, &[]);
    assert_eq!(tail, "FROM STDIN\n");

    // Listed, filtered and paged, newest first.
    let second = server.submit(json!({"application": "worker", "args": ["true"]}));
    server.ended(&second);
    let (_, page) = server.json("GET", "/v1/runs?limit=1", None);
    assert_eq!(page["runs"][0]["id"], second.as_str());
    let cursor = page["next"].as_str().unwrap();
    let (_, page) = server.json("GET", &format!("/v1/runs?limit=1&cursor={cursor}"), None);
    assert_eq!(page["runs"][0]["id"], id);
    assert!(page.get("next").is_none(), "{page}");
    let (_, failed) = server.json("GET", "/v1/runs?state=failed&application=worker", None);
    let ids: Vec<&str> = failed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id]);
    let (_, none) = server.json("GET", "/v1/runs?since=2999-01-01T00:00:00Z", None);
    assert_eq!(none["runs"], json!([]));

    // What it did, in Prometheus' terms.
    let (status, metrics) = server.call("GET", "/metrics", None, &[]);
    assert_eq!(status, 200);
    for line in [
        "podrun_runs{state=\"failed\"} 1",
        "podrun_runs{state=\"succeeded\"} 1",
        "podrun_runs{state=\"queued\"} 0",
        "podrun_queue_depth 0",
        "podrun_pods_started_total{how=\"created\"} 2",
        "podrun_runs_ended_total{state=\"failed\"} 1",
        "podrun_submit_duration_seconds_count 2",
        "podrun_hook_duration_seconds_count 2",
        "# EOF",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }

    // The store outlives the server: a new one shows the same runs.
    drop(server);
    let server = Server::start(&scratch, &store, &[]);
    let (_, run) = server.json("GET", &format!("/v1/runs/{id}"), None);
    assert_eq!(run["state"], "failed");
    let (_, log) = server.call("GET", &format!("/v1/runs/{id}/logs"), None, &[]);
    assert_eq!(log, "one\nFROM STDIN\n");
}

/// Reads server-sent events until `stop` says so: (id, event, data).
fn events(
    reader: &mut impl BufRead,
    mut stop: impl FnMut(&(Option<String>, String, String)) -> bool,
) -> Vec<(Option<String>, String, String)> {
    let mut out = Vec::new();
    let (mut id, mut event, mut data) = (None, String::new(), String::new());
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            return out;
        }
        let line = line.trim_end_matches('\n');
        if line.is_empty() {
            if !event.is_empty() {
                let e = (
                    id.take(),
                    std::mem::take(&mut event),
                    std::mem::take(&mut data),
                );
                let done = stop(&e);
                out.push(e);
                if done {
                    return out;
                }
            }
        } else if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("event: ") {
            event = v.to_string();
        } else if let Some(v) = line.strip_prefix("data: ") {
            data = v.to_string();
        }
    }
}

fn follow(server: &Server, id: &str, last: Option<&str>) -> BufReader<impl Read> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(server.url(&format!("/v1/runs/{id}/logs?follow=true")));
    if let Some(last) = last {
        request = request.header("last-event-id", last);
    }
    let response = request.call().unwrap();
    assert_eq!(response.status().as_u16(), 200);
    BufReader::new(response.into_body().into_reader())
}

#[test]
fn a_followed_log_resumes_where_it_was_cut_with_no_line_lost_or_repeated() {
    let (scratch, store) = scratch();
    let server = Server::start(&scratch, &store, &[]);
    let id = server.submit(json!({
        "application": "worker",
        "args": ["sh", "-c", "for i in $(seq 1 40); do echo line $i; sleep 0.02; done"],
    }));
    // Cut after five lines, while the run still prints.
    let mut reader = follow(&server, &id, None);
    let mut seen = 0;
    let first = events(&mut reader, |_| {
        seen += 1;
        seen == 5
    });
    assert_eq!(first.len(), 5, "{first:?}");
    drop(reader);
    let last = first.last().unwrap().0.clone().unwrap();
    let mut reader = follow(&server, &id, Some(&last));
    let rest = events(&mut reader, |e| e.1 == "end");
    let mut lines = Vec::new();
    for (_, event, data) in first.iter().chain(&rest) {
        if event == "line" {
            let v: Value = serde_json::from_str(data).unwrap();
            assert_eq!(v["container"], "worker");
            lines.push(v["line"].as_str().unwrap().to_string());
        }
    }
    let want: Vec<String> = (1..=40).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, want);
    let end = rest.last().unwrap();
    assert_eq!(end.1, "end");
    assert_eq!(
        serde_json::from_str::<Value>(&end.2).unwrap()["state"],
        "succeeded"
    );
}

#[test]
fn a_replayed_submit_returns_the_first_run_and_never_a_second() {
    let (scratch, store) = scratch();
    let server = Server::start(&scratch, &store, &[]);
    let body = json!({"application": "worker", "args": ["echo", "once"]}).to_string();
    let key = [("idempotency-key", "order-17")];
    let (status, first) = server.call("POST", "/v1/runs", Some(&body), &key);
    assert_eq!(status, 201, "{first}");
    let first: Value = serde_json::from_str(&first).unwrap();
    let (status, again) = server.call("POST", "/v1/runs", Some(&body), &key);
    assert_eq!(status, 200, "{again}");
    let again: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["id"], first["id"]);
    let other = json!({"application": "worker", "args": ["echo", "twice"]}).to_string();
    let (status, refused) = server.call("POST", "/v1/runs", Some(&other), &key);
    assert_eq!(status, 422, "{refused}");
    assert!(refused.contains("idempotency-key-reused"), "{refused}");
    server.ended(first["id"].as_str().unwrap());
    let (_, all) = server.json("GET", "/v1/runs", None);
    assert_eq!(all["runs"].as_array().unwrap().len(), 1, "{all}");
}

#[test]
fn bad_requests_are_refused_with_a_status_and_a_stable_code() {
    let (scratch, store) = scratch();
    let server = Server::start(&scratch, &store, &[]);
    let refused = |body: &str, status: u16, code: &str, text: &str| {
        let (got, answer) = server.call("POST", "/v1/runs", Some(body), &[]);
        assert_eq!(got, status, "{body}: {answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap_or_else(|_| panic!("{answer}"));
        assert_eq!(answer["error"]["code"], code, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(text), "{message}");
    };
    refused("{not json", 400, "bad-json", "");
    refused(
        r#"{"application": "worker", "privileged": true}"#,
        422,
        "bad-json",
        "unknown field `privileged`",
    );
    refused(
        r#"{"application": "worker", "image": "evil"}"#,
        403,
        "not-allowed",
        "image: application worker does not allow callers to set the image",
    );
    refused(
        r#"{"application": "nope"}"#,
        404,
        "unknown-application",
        "nope",
    );
    refused(
        r#"{"application": "worker", "command": "true", "args": ["true"]}"#,
        400,
        "bad-request",
        "not both",
    );
    refused(
        r#"{"application": "worker", "command": "sh -c 'unclosed"}"#,
        400,
        "bad-request",
        "command",
    );
    // A policy hook's denial is the submitter's answer, and nothing is queued.
    refused(
        r#"{"application": "denied", "args": ["true"]}"#,
        403,
        "denied",
        "pods of this team need a cost centre",
    );
    // The server answers once the body passes the limit, without reading
    // the rest: sent in part, so that the answer is not lost to a write
    // into a closed connection.
    let answer = {
        use std::io::Write;
        let addr = server.base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "POST /v1/runs HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{{",
            2 << 20
        )
        .unwrap();
        stream
            .write_all(&vec![b' '; (1 << 20) + (64 << 10)])
            .unwrap();
        // The connection stays open for the body never sent: read what
        // the answer holds.
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut answer = Vec::new();
        let mut buf = [0; 4096];
        while let Ok(n @ 1..) = stream.read(&mut buf) {
            answer.extend_from_slice(&buf[..n]);
            if answer.ends_with(b"}}") {
                break;
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    };
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body-too-large"), "{answer}");
    let (status, _) = server.call(
        "POST",
        "/v1/runs",
        Some(r#"{"application": "worker"}"#),
        &[("idempotency-key", "a key with spaces")],
    );
    assert_eq!(status, 400);
    let (_, all) = server.json("GET", "/v1/runs", None);
    assert_eq!(all["runs"], json!([]), "nothing was queued");
    for (path, status) in [
        ("/v1/runs/nope", 404),
        ("/v1/runs/nope/logs", 404),
        ("/v1/runs?state=done", 400),
        ("/v1/runs?limit=0", 400),
        ("/v1/runs?cursor=x", 400),
        ("/v1/runs?colour=red", 400),
        ("/v2/other", 404),
    ] {
        let (got, answer) = server.json("GET", path, None);
        assert_eq!(got, status, "{path}: {answer}");
        assert!(answer["error"]["code"].is_string(), "{path}: {answer}");
    }
    let (status, _) = server.call("GET", "/healthz", None, &[]);
    assert_eq!(status, 200);
    let (status, _) = server.call("GET", "/readyz", None, &[]);
    assert_eq!(status, 200);
}

#[test]
fn a_cancel_stops_a_running_run_and_ends_a_queued_one_and_release_forgets_them() {
    let (scratch, store) = scratch();
    // One run at a time: the second waits in the queue.
    let server = Server::start(&scratch, &store, &["--max-running", "1"]);
    let running = server
        .submit(json!({"application": "worker", "args": ["sh", "-c", "echo started; sleep 30"]}));
    let queued = server.submit(json!({"application": "worker", "args": ["echo", "never"]}));
    server.wait(&running, |r| {
        r["state"] == "running" && r["log"]["bytes"] != 0
    });
    let (_, q) = server.json("GET", &format!("/v1/runs/{queued}"), None);
    assert_eq!(q["state"], "queued", "{q}");

    let (status, q) = server.json("POST", &format!("/v1/runs/{queued}/cancel"), None);
    assert_eq!(status, 202, "{q}");
    assert_eq!(q["state"], "cancelled");
    assert_eq!(q["result"]["exitCode"], 130);
    let (status, r) = server.json("POST", &format!("/v1/runs/{running}/cancel"), None);
    assert_eq!(status, 202, "{r}");
    let started = Instant::now();
    let r = server.ended(&running);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "stopped with its grace period"
    );
    assert_eq!(r["state"], "cancelled", "{r}");
    assert_eq!(r["result"]["exitCode"], 130, "{r}");
    let (status, again) = server.json("POST", &format!("/v1/runs/{running}/cancel"), None);
    assert_eq!((status, &again["error"]["code"]), (409, &json!("finished")));
    let (_, log) = server.call("GET", &format!("/v1/runs/{queued}/logs"), None, &[]);
    assert_eq!(log, "", "the queued run never ran");

    // Released: its record and log are gone; a running run is not released.
    let busy = server.submit(json!({"application": "worker", "args": ["sleep", "30"]}));
    server.wait(&busy, |r| r["state"] == "running");
    let (status, answer) = server.json("DELETE", &format!("/v1/runs/{busy}"), None);
    assert_eq!(
        (status, &answer["error"]["code"]),
        (409, &json!("not-finished"))
    );
    let (status, _) = server.call("DELETE", &format!("/v1/runs/{running}"), None, &[]);
    assert_eq!(status, 204);
    let (status, _) = server.json("GET", &format!("/v1/runs/{running}"), None);
    assert_eq!(status, 404);
    let (status, _) = server.json("GET", &format!("/v1/runs/{running}/logs"), None);
    assert_eq!(status, 404);
    server.json("POST", &format!("/v1/runs/{busy}/cancel"), None);
    server.ended(&busy);
}

#[test]
fn a_server_killed_with_runs_in_flight_ends_each_exactly_once_after_a_restart() {
    let (scratch, store) = scratch();
    let mut server = Server::start(&scratch, &store, &["--max-running", "1", "--lease", "1"]);
    let running = server
        .submit(json!({"application": "worker", "args": ["sh", "-c", "echo in flight; sleep 3"]}));
    let queued = server.submit(json!({"application": "worker", "args": ["echo", "queued ran"]}));
    server.wait(&running, |r| {
        r["state"] == "running" && r["log"]["bytes"] != 0
    });
    // kill -9: nothing is said, nothing cleaned up.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);

    let server = Server::start(&scratch, &store, &["--max-running", "1", "--lease", "1"]);
    // The local runtime's processes do not outlive the server: the run
    // cannot be followed again, and says so instead of staying running.
    let r = server.ended(&running);
    assert_eq!(r["state"], "lost", "{r}");
    assert_eq!(r["result"]["reason"], "ServerGone", "{r}");
    assert_eq!(r["result"]["retryable"], true);
    let (_, log) = server.call("GET", &format!("/v1/runs/{running}/logs"), None, &[]);
    assert_eq!(log, "in flight\n", "what it printed before is kept");
    // The queued run runs once.
    let q = server.ended(&queued);
    assert_eq!(q["state"], "succeeded", "{q}");
    let (_, log) = server.call("GET", &format!("/v1/runs/{queued}/logs"), None, &[]);
    assert_eq!(log, "queued ran\n");
    let (_, all) = server.json("GET", "/v1/runs", None);
    assert_eq!(all["runs"].as_array().unwrap().len(), 2, "{all}");
}

#[test]
fn a_stopped_server_stops_its_local_runs_and_a_long_log_is_cut_and_said_to_be() {
    let (scratch, store) = scratch();
    let mut server = Server::start(&scratch, &store, &["--log-limit", "40"]);
    let long = server.submit(json!({
        "application": "worker",
        "args": ["sh", "-c", "for i in $(seq 1 100); do echo line $i; done"],
    }));
    let r = server.ended(&long);
    assert_eq!(r["state"], "succeeded");
    assert_eq!(r["log"]["truncated"], true, "{r}");
    let (_, log) = server.call("GET", &format!("/v1/runs/{long}/logs"), None, &[]);
    assert_eq!(log, "line 1\nline 2\nline 3\nline 4\nline 5\n");

    let sleeper = server.submit(json!({"application": "worker", "args": ["sleep", "60"]}));
    server.wait(&sleeper, |r| r["state"] == "running");
    // SIGTERM: its process is stopped, not orphaned, and the run says so.
    // SAFETY: kill has no memory effects.
    assert_eq!(
        unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) },
        0
    );
    let start = Instant::now();
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(start.elapsed() < Duration::from_secs(30));
    drop(server);
    let server = Server::start(&scratch, &store, &[]);
    let r = server.ended(&sleeper);
    assert_eq!(r["state"], "cancelled", "{r}");
    assert_eq!(r["result"]["exitCode"], 143, "{r}");
}

/// `podrun run --server` against `server`, with `args` after it.
fn client(server: &Server, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_podrun"));
    command
        .args(["run", "--server", &server.base])
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("PODRUN_TOKEN");
    command
}

#[test]
fn the_cli_submits_to_a_server_follows_it_and_exits_as_a_local_run_would() {
    let (scratch, store) = scratch();
    let server = Server::start(&scratch, &store, &[]);
    let out = client(
        &server,
        &[
            "-a",
            "worker",
            "-c",
            "sh -c 'echo hi; tr a-z A-Z; exit 3'",
            "--stdin",
            "-o",
            "json",
        ],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .and_then(|mut child| {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"shout\n")?;
        child.wait_with_output()
    })
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["exitCode"], 3);
    assert_eq!(result["outcome"], "failed");
    assert!(stderr.contains("hi\nSHOUT\n"), "{stderr}");

    // A denial is 121 with the hook's message, as on this machine.
    let out = client(&server, &["-a", "denied", "--", "true"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(121), "{stderr}");
    assert!(
        stderr.contains("pods of this team need a cost centre"),
        "{stderr}"
    );
    // No server there: the cluster's kind of failure, 123.
    let out = Command::new(env!("CARGO_BIN_EXE_podrun"))
        .args([
            "run",
            "--server",
            "http://127.0.0.1:9",
            "-a",
            "worker",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(123),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // SIGTERM cancels the run on the server, and the exit code is a local
    // run's for it.
    let mut child = client(
        &server,
        &["-a", "worker", "-c", "sh -c 'echo started; sleep 30'"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(first, "started\n");
    // SAFETY: kill has no memory effects.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    let (_, runs) = server.json("GET", "/v1/runs?state=cancelled", None);
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
}

#[test]
fn two_servers_on_one_postgres_share_the_queue_and_hear_each_others_cancels() {
    let Some(store) = postgres_store() else {
        return;
    };
    let scratch = Scratch::new(CONFIG);
    let flags = ["--max-running", "2", "--lease", "3"];
    let servers = [
        Server::start(&scratch, &store, &flags),
        Server::start(&scratch, &store, &flags),
    ];
    let ids: Vec<String> = (0..8)
        .map(|i| {
            servers[i % 2].submit(json!({
                "application": "worker",
                "args": ["sh", "-c", format!("echo run {i}; sleep 2")],
            }))
        })
        .collect();
    let mut holders = std::collections::HashSet::new();
    for (i, id) in ids.iter().enumerate() {
        let r = servers[(i + 1) % 2].ended(id);
        assert_eq!(r["state"], "succeeded", "{r}");
        holders.insert(r["server"].as_str().unwrap().to_string());
        let (_, log) = servers[0].call("GET", &format!("/v1/runs/{id}/logs"), None, &[]);
        assert_eq!(log, format!("run {i}\n"), "run once, logged once");
    }
    assert_eq!(holders.len(), 2, "both servers took runs: {holders:?}");

    // A cancel asked of one server stops a run the other one runs.
    let long = servers[0]
        .submit(json!({"application": "worker", "args": ["sh", "-c", "echo long; sleep 60"]}));
    let r = servers[0].wait(&long, |r| r["state"] == "running" && r["log"]["bytes"] != 0);
    let pid = |s: &Server| format!("{}-", s.child.id());
    let holder = r["server"].as_str().unwrap();
    let other = if holder.starts_with(&pid(&servers[0])) {
        &servers[1]
    } else {
        &servers[0]
    };
    let asked = Instant::now();
    let (status, _) = other.json("POST", &format!("/v1/runs/{long}/cancel"), None);
    assert_eq!(status, 202);
    let r = other.ended(&long);
    assert_eq!(r["state"], "cancelled", "{r}");
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "heard at a lease renewal"
    );
}

/// A throwaway Postgres server of this test's own, stopped when dropped.
struct Postgres {
    dir: PathBuf,
    url: String,
}

impl Postgres {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/postgres")
    }

    fn start(dir: &Path, port: Option<&str>) -> String {
        let out = Command::new(Postgres::script())
            .arg("start")
            .arg(dir)
            .args(port)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn stop(&self) {
        let out = Command::new(Postgres::script())
            .arg("stop")
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(out.status.success());
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn postgres_stopped_mid_run_fails_requests_with_503_and_the_run_catches_up() {
    if postgres_store().is_none() {
        return;
    }
    let scratch = Scratch::new(CONFIG);
    let dir = scratch.path().join("pg");
    let url = Postgres::start(&dir, None);
    let postgres = Postgres { dir, url };
    let port = postgres.url.rsplit(':').next().unwrap().to_string();
    let store = new_database(&postgres.url);
    let server = Server::start(&scratch, &store, &[]);
    let id = server.submit(json!({
        "application": "worker",
        "args": ["sh", "-c", "echo before; sleep 8; echo after"],
    }));
    server.wait(&id, |r| r["state"] == "running" && r["log"]["bytes"] != 0);

    postgres.stop();
    let (status, answer) = server.json("GET", &format!("/v1/runs/{id}"), None);
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "store-unavailable", "{answer}");
    let (status, _) = server.json("POST", "/v1/runs", Some(json!({"application": "worker"})));
    assert_eq!(status, 503);
    let (status, _) = server.call("GET", "/readyz", None, &[]);
    assert_eq!(status, 503);

    Postgres::start(&postgres.dir, Some(&port));
    let r = server.ended(&id);
    assert_eq!(r["state"], "succeeded", "{r}");
    let (_, log) = server.call("GET", &format!("/v1/runs/{id}/logs"), None, &[]);
    assert_eq!(
        log, "before\nafter\n",
        "nothing lost while the store was away"
    );
    let (_, all) = server.json("GET", "/v1/runs", None);
    assert_eq!(
        all["runs"].as_array().unwrap().len(),
        1,
        "nothing half-written: {all}"
    );
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_requests_with_503_and_no_line_is_lost_once_there_is_room() {
    let scratch = Scratch::new(CONFIG);
    let mount = scratch.path().join("small");
    std::fs::create_dir(&mount).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mount)
        .output()
        .unwrap();
    if !mounted.status.success() {
        // Mounting needs root, as CI has.
        eprintln!(
            "cannot mount a tmpfs: {}",
            String::from_utf8_lossy(&mounted.stderr)
        );
        return;
    }
    let _tmpfs = Tmpfs(mount.clone());
    let store = format!("sqlite:{}", mount.join("runs.db").display());
    let server = Server::start(&scratch, &store, &[]);
    let id = server.submit(json!({
        "application": "worker",
        "args": ["sh", "-c", "echo begin; sleep 3; i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); done"],
    }));
    server.wait(&id, |r| r["state"] == "running" && r["log"]["bytes"] != 0);
    // Fill the disk.
    let filler = mount.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k"])
        .arg(format!("of={}", filler.display()))
        .output();
    let big = "x".repeat(600 << 10);
    let (status, answer) = server.json(
        "POST",
        "/v1/runs",
        Some(json!({"application": "worker", "stdin": big})),
    );
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "store-unavailable", "{answer}");
    // The run goes on meanwhile; its lines wait for room.
    std::thread::sleep(Duration::from_secs(4));
    std::fs::remove_file(&filler).unwrap();
    let r = server.ended(&id);
    assert_eq!(r["state"], "succeeded", "{r}");
    let (_, log) = server.call("GET", &format!("/v1/runs/{id}/logs"), None, &[]);
    let want: String = std::iter::once("begin\n".to_string())
        .chain((0..300).map(|i| format!("line {i}\n")))
        .collect();
    assert_eq!(
        log,
        want,
        "no line lost or repeated\n{}",
        server.stderr.lock().unwrap()
    );
    let (_, all) = server.json("GET", "/v1/runs", None);
    assert_eq!(
        all["runs"].as_array().unwrap().len(),
        1,
        "nothing half-written: {all}"
    );
}

/// `podrun runs ARGS --server` against `server`: its exit code, stdout
/// and stderr.
fn runs(server: &Server, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_podrun"))
        .arg("runs")
        .args(args)
        .env("PODRUN_SERVER", &server.base)
        .env_remove("PODRUN_TOKEN")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn podrun_runs_lists_shows_follows_cancels_and_releases_a_servers_runs() {
    let (scratch, store) = scratch();
    let server = Server::start(&scratch, &store, &[]);
    let failed = server
        .submit(json!({"application": "worker", "args": ["sh", "-c", "echo a; echo b; exit 3"]}));
    server.ended(&failed);
    let long = server
        .submit(json!({"application": "worker", "args": ["sh", "-c", "echo long; sleep 30"]}));
    server.wait(&long, |r| r["state"] == "running" && r["log"]["bytes"] != 0);

    let (code, table, err) = runs(&server, &["list"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(
        rows[0].starts_with("ID") && rows[0].contains("STATE"),
        "{table}"
    );
    assert!(
        rows[1].starts_with(&long) && rows[1].contains("running"),
        "newest first: {table}"
    );
    assert!(
        rows[2].starts_with(&failed) && rows[2].contains("failed"),
        "{table}"
    );
    let (_, one, _) = runs(&server, &["list", "--limit", "1"]);
    assert_eq!(one.lines().count(), 2, "{one}");
    let (code, listed, _) = runs(&server, &["list", "--state", "failed", "-o", "json"]);
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], failed.as_str());

    let (code, shown, _) = runs(&server, &["get", &failed]);
    assert_eq!(code, 0);
    assert!(shown.contains("state:       failed"), "{shown}");
    assert!(shown.contains("exit code:   3"), "{shown}");
    let (_, yaml, _) = runs(&server, &["get", &failed, "-o", "yaml"]);
    assert!(yaml.contains("state: failed"), "{yaml}");
    let (code, log, _) = runs(&server, &["logs", &failed]);
    assert_eq!((code, log.as_str()), (0, "a\nb\n"));

    // Following a run's log ends when the run does (here, cancelled).
    let follower = Command::new(env!("CARGO_BIN_EXE_podrun"))
        .args(["runs", "logs", "-f", &long])
        .env("PODRUN_SERVER", &server.base)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (code, said, err) = runs(&server, &["cancel", &long]);
    assert_eq!(code, 0, "{err}");
    assert!(said.contains(&format!("run {long} cancelled")), "{said}");
    let followed = follower.wait_with_output().unwrap();
    assert!(followed.status.success());
    assert_eq!(String::from_utf8_lossy(&followed.stdout), "long\n");
    assert_eq!(server.ended(&long)["state"], "cancelled");

    let (code, _, _) = runs(&server, &["release", &failed]);
    assert_eq!(code, 0);
    let (code, _, err) = runs(&server, &["get", &failed]);
    assert_ne!(code, 0);
    assert!(err.contains("404"), "{err}");
    // Not a run id: refused before any request.
    let (code, _, err) = runs(&server, &["get", "../../metrics"]);
    assert_eq!(code, 125, "{err}");
}

/// An HTTP endpoint that answers each request with the next status of
/// `statuses` (the last one after that) and keeps the bodies it got.
fn receiver(statuses: &'static [u16]) -> (String, Arc<Mutex<Vec<Value>>>) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let bodies = got.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            bodies
                .lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            let status = statuses[n.min(statuses.len() - 1)];
            let _ = write!(
                reader.get_mut(),
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, got)
}

#[test]
fn a_runs_end_is_posted_to_its_callback_url_retried_until_taken_and_only_to_allowed_hosts() {
    let (scratch, store) = scratch();
    let server = Server::start(&scratch, &store, &["--callback-host", "127.0.0.1"]);
    let (url, got) = receiver(&[500, 204]);
    let id = server.submit(json!({
        "application": "worker",
        "args": ["sh", "-c", "echo x; exit 3"],
        "callbackUrl": url,
    }));
    let r = server.wait(&id, |r| r["callback"]["state"] == "delivered");
    assert_eq!(r["callback"]["attempts"], 2, "retried after a 500: {r}");
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    for body in &got {
        assert_eq!(body["id"], id.as_str());
        assert_eq!(body["state"], "failed");
        assert_eq!(body["result"]["exitCode"], 3);
    }

    for (callback, status, code) in [
        ("http://example.com/hook", 403, "callback-not-allowed"),
        (
            "http://127.0.0.1.example.com/hook",
            403,
            "callback-not-allowed",
        ),
        ("ftp://127.0.0.1/hook", 400, "bad-request"),
        ("http://user:secret@127.0.0.1:1/hook", 400, "bad-request"),
        ("not a url", 400, "bad-request"),
    ] {
        let (got, answer) = server.json(
            "POST",
            "/v1/runs",
            Some(json!({"application": "worker", "callbackUrl": callback})),
        );
        assert_eq!(got, status, "{callback}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{callback}: {answer}");
    }
    let (_, all) = server.json("GET", "/v1/runs", None);
    assert_eq!(
        all["runs"].as_array().unwrap().len(),
        1,
        "nothing queued: {all}"
    );

    // A server that allows no host takes no callback.
    drop(server);
    let server = Server::start(&scratch, &store, &[]);
    let (status, _) = server.json(
        "POST",
        "/v1/runs",
        Some(json!({"application": "worker", "callbackUrl": url})),
    );
    assert_eq!(status, 403);
}

#[test]
fn an_applications_limit_queues_its_runs_without_holding_others_and_ended_runs_go_after_retention()
{
    let (scratch, store) = scratch();
    let server = Server::start(&scratch, &store, &["--retention", "3s"]);
    let limited: Vec<String> = (0..3)
        .map(|i| {
            server.submit(json!({"application": "limited", "args": ["sh", "-c", format!("echo {i}; sleep 1")]}))
        })
        .collect();
    let other = server
        .submit(json!({"application": "worker", "args": ["sh", "-c", "echo other; sleep 1"]}));
    let mut other_ran_while_limited_waited = false;
    loop {
        // One query: a snapshot of all three at one moment.
        let (_, page) = server.json("GET", "/v1/runs?application=limited", None);
        let states: Vec<String> = page["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["state"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(states.len(), limited.len());
        let in_flight = states
            .iter()
            .filter(|s| *s == "starting" || *s == "running")
            .count();
        assert!(in_flight <= 1, "the limit is 1: {states:?}");
        let (_, o) = server.json("GET", &format!("/v1/runs/{other}"), None);
        if o["state"] == "running" && states.iter().any(|s| s == "queued") {
            other_ran_while_limited_waited = true;
        }
        if states.iter().all(|s| s == "succeeded") {
            break;
        }
        assert!(
            !states.iter().any(|s| s == "failed" || s == "lost"),
            "{states:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        other_ran_while_limited_waited,
        "runs of other applications are not held up"
    );
    // Kept for the retention period, then deleted with their logs.
    let (status, _) = server.json("GET", &format!("/v1/runs/{}", limited[2]), None);
    assert_eq!(status, 200);
    let start = Instant::now();
    loop {
        let (status, _) = server.json("GET", &format!("/v1/runs/{}", limited[2]), None);
        if status == 404 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "never deleted");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, _) = server.json("GET", &format!("/v1/runs/{}/logs", limited[0]), None);
    assert_eq!(status, 404);
}

#[test]
fn the_openapi_document_describes_every_endpoint_from_its_handler() {
    let (scratch, store) = scratch();
    let server = Server::start(&scratch, &store, &[]);
    let (status, doc) = server.json("GET", "/openapi.json", None);
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    let mut have: Vec<String> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "delete"].contains(&k.as_str()))
                .map(move |m| format!("{m} {path}"))
        })
        .collect();
    have.sort();
    assert_eq!(
        have,
        [
            "delete /v1/runs/{id}",
            "get /healthz",
            "get /metrics",
            "get /readyz",
            "get /v1/applications",
            "get /v1/runs",
            "get /v1/runs/{id}",
            "get /v1/runs/{id}/logs",
            "get /v1/runs/{id}/pod",
            "get /v1/runs/{id}/result",
            "post /v1/runs",
            "post /v1/runs/{id}/cancel",
        ]
    );
    let submit = &doc["components"]["schemas"]["Submit"];
    for field in [
        "application",
        "command",
        "args",
        "params",
        "namespace",
        "stdin",
        "callbackUrl",
    ] {
        assert!(
            submit["properties"][field].is_object(),
            "Submit.{field}: {submit}"
        );
    }
    assert_eq!(submit["required"], json!(["application"]), "{submit}");
    let states = &doc["components"]["schemas"]["State"]["enum"];
    assert_eq!(
        states,
        &json!([
            "queued",
            "starting",
            "running",
            "succeeded",
            "failed",
            "cancelled",
            "lost"
        ])
    );
    // Every documented answer an endpoint gives is one it can give: a
    // submit's statuses, as the tests above see them.
    let answers = doc["paths"]["/v1/runs"]["post"]["responses"]
        .as_object()
        .unwrap();
    for status in [
        "201", "200", "400", "403", "404", "413", "415", "422", "503",
    ] {
        assert!(answers.contains_key(status), "submit: {status}");
    }
    // Every route a client can call is in it: an undocumented one is 404.
    let (status, _) = server.json("GET", "/v1/other", None);
    assert_eq!(status, 404);
}
