//! `podrun run --server URL`: the run is submitted to a `podrun serve`,
//! which owns the pod; podrun follows its log and exits with exactly the
//! code a local run would, so a scheduler keeps its contract.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use podrun::exit::Code;
use podrun::hooks::text::{MESSAGE_LIMIT, shown};
use podrun::result::RunResult;
use serde_json::{Value, json};

use crate::args::RunCommand;
use crate::console::cancel_on_signals;
use crate::{Failure, usage};

/// How often a lost connection is tried again before podrun gives up.
const ATTEMPTS: u32 = 5;

#[derive(Clone)]
pub(crate) struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// Why a request failed: the server's answer, or no answer.
pub(crate) enum Failed {
    Answer(u16, String),
    Transport(ureq::Error),
}

impl Client {
    pub(crate) fn new(base: &str, token: Option<String>) -> Client {
        // The server sends a keep-alive on a quiet log stream every 15 s:
        // a read that waits longer than this is a dead connection.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_per_read(Some(Duration::from_secs(45)))
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent,
        }
    }

    fn auth<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => request.header("authorization", format!("Bearer {t}")),
            None => request,
        }
    }

    /// A JSON answer to `method path`, retried while the server cannot be
    /// reached (the same idempotency key makes a retried submit safe).
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<(&Value, &str)>,
    ) -> Result<Value, Failed> {
        let url = format!("{}{path}", self.base);
        let mut wait = Duration::from_millis(200);
        for attempt in 1..=ATTEMPTS {
            let sent = match body {
                Some((body, key)) => self
                    .auth(self.agent.post(&url))
                    .header("idempotency-key", key)
                    .header("content-type", "application/json")
                    .send(body.to_string()),
                None if method == "POST" => self.auth(self.agent.post(&url)).send_empty(),
                None if method == "DELETE" => self.auth(self.agent.delete(&url)).call(),
                None => self.auth(self.agent.get(&url)).call(),
            };
            match sent {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    let text = response.body_mut().read_to_string().unwrap_or_default();
                    if status >= 400 {
                        return Err(Failed::Answer(status, text));
                    }
                    if text.is_empty() {
                        return Ok(Value::Null);
                    }
                    return serde_json::from_str(&text)
                        .map_err(|e| Failed::Answer(status, format!("not JSON: {e}")));
                }
                Err(e) if attempt == ATTEMPTS => return Err(Failed::Transport(e)),
                Err(_) => {
                    std::thread::sleep(wait);
                    wait *= 2;
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Copies the answer to GET `path` into `out` as it comes (a log may
    /// be larger than memory should hold).
    pub(crate) fn copy_to(&self, path: &str, out: &mut impl std::io::Write) -> Result<(), Failed> {
        let url = format!("{}{path}", self.base);
        let mut response = self
            .auth(self.agent.get(&url))
            .call()
            .map_err(Failed::Transport)?;
        let status = response.status().as_u16();
        if status >= 400 {
            let text = response.body_mut().read_to_string().unwrap_or_default();
            return Err(Failed::Answer(status, text));
        }
        std::io::copy(&mut response.into_body().into_reader(), out)
            .map_err(|e| Failed::Answer(0, format!("the answer was cut: {e}")))?;
        Ok(())
    }

    /// Follows run `id`'s log from line `next`, giving each line to
    /// `line`, until the run's end; reconnects where it was cut.
    pub(crate) fn follow(&self, id: &str, mut line: impl FnMut(&str, &str)) -> Result<(), Failed> {
        let url = format!("{}/v1/runs/{id}/logs?follow=true", self.base);
        let mut last: Option<String> = None;
        let mut gaps = HashSet::new();
        let mut failures = 0;
        loop {
            let mut request = self.auth(self.agent.get(&url));
            if let Some(last) = &last {
                request = request.header("last-event-id", last);
            }
            let response = match request.call() {
                Ok(r) if r.status().as_u16() < 400 => r,
                Ok(mut r) => {
                    let status = r.status().as_u16();
                    return Err(Failed::Answer(
                        status,
                        r.body_mut().read_to_string().unwrap_or_default(),
                    ));
                }
                Err(e) => {
                    failures += 1;
                    if failures == ATTEMPTS {
                        return Err(Failed::Transport(e));
                    }
                    std::thread::sleep(Duration::from_millis(500) * failures);
                    continue;
                }
            };
            let reader = BufReader::new(response.into_body().into_reader());
            let before = last.clone();
            if read_events(reader, &mut last, &mut gaps, &mut line) {
                return Ok(());
            }
            // Cut before the end: resume after the last line seen. Only
            // cuts in a row with no line between them count.
            if last != before {
                failures = 0;
            }
            failures += 1;
            if failures == ATTEMPTS {
                return Err(Failed::Answer(0, "the log stream keeps breaking".into()));
            }
            std::thread::sleep(Duration::from_millis(500) * failures);
        }
    }
}

/// Reads server-sent events: `line` events to `line`, their ids to `last`,
/// `gap` events not in `gaps` to stderr; whether the `end` event came.
fn read_events(
    mut reader: BufReader<impl Read>,
    last: &mut Option<String>,
    gaps: &mut HashSet<(Option<i64>, String)>,
    line: &mut impl FnMut(&str, &str),
) -> bool {
    let (mut id, mut event, mut data) = (None, String::new(), String::new());
    let mut text = String::new();
    loop {
        text.clear();
        match reader.read_line(&mut text) {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
        let field = text.trim_end_matches(['\r', '\n']);
        if field.is_empty() {
            match event.as_str() {
                "end" => return true,
                "line" => {
                    if let Ok(v) = serde_json::from_str::<Value>(&data) {
                        line(
                            v["container"].as_str().unwrap_or(""),
                            v["line"].as_str().unwrap_or(""),
                        );
                    }
                    if id.is_some() {
                        *last = id.take();
                    }
                }
                // Said where it is, as a run on this machine says it; once,
                // though a reconnect at its place sends it again.
                "gap" => {
                    if let Ok(v) = serde_json::from_str::<Value>(&data)
                        && gaps.insert((v["line"].as_i64(), v["message"].to_string()))
                    {
                        let message = v["message"].as_str().unwrap_or("lines may be missing");
                        eprintln!("podrun: {}", shown(message, MESSAGE_LIMIT));
                    }
                }
                _ => {}
            }
            event.clear();
            data.clear();
        } else if let Some(v) = field.strip_prefix("id: ") {
            id = Some(v.to_string());
        } else if let Some(v) = field.strip_prefix("event: ") {
            event = v.to_string();
        } else if let Some(v) = field.strip_prefix("data: ") {
            data = v.to_string();
        }
    }
}

/// The exit code and message for a request the server refused.
pub(crate) fn refused(what: &str, failed: Failed) -> Failure {
    match failed {
        Failed::Transport(e) => Failure::from((
            Code::Cluster,
            anyhow::anyhow!("cannot {what}: the server cannot be reached: {e}"),
        )),
        Failed::Answer(status, text) => {
            let error = serde_json::from_str::<Value>(&text).unwrap_or_default();
            let kind = error["error"]["code"].as_str().unwrap_or("");
            let message = error["error"]["message"]
                .as_str()
                .map(String::from)
                .unwrap_or(text);
            let code = match (status, kind) {
                (_, "denied") => Code::Denied,
                (_, "hook-failed") => Code::HookFailed,
                (_, "run-not-found") => Code::Cluster,
                (400..=499, _) => Code::Usage,
                _ => Code::Cluster,
            };
            Failure::from((
                code,
                anyhow::anyhow!("cannot {what}: the server answered {status}: {message}"),
            ))
        }
    }
}

/// The API token: from `file`, else `$PODRUN_TOKEN`, else none.
pub(crate) fn token(file: Option<&std::path::Path>) -> Result<Option<String>, Failure> {
    Ok(match (file, std::env::var("PODRUN_TOKEN")) {
        (Some(path), _) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?
                .trim()
                .to_string(),
        ),
        (None, Ok(t)) if !t.is_empty() => Some(t),
        _ => None,
    })
}

/// `podrun run --server URL`.
pub(crate) async fn run(args: RunCommand) -> Result<Code, Failure> {
    let server = args.server.clone().unwrap_or_default();
    for (set, flag) in [
        (args.run.run_id.is_some(), "--run-id"),
        (
            args.run.tenant.is_some(),
            "--tenant (the token names the tenant)",
        ),
        (args.exec.pending_timeout.is_some(), "--pending-timeout"),
        (args.exec.runtime.is_some(), "--runtime"),
        (args.exec.status_addr.is_some(), "--status-addr"),
        (args.exec.record.is_some(), "--record"),
        (args.pod_runner_form, "pod-runner's invocation"),
    ] {
        if set {
            return Err(usage(format!("{flag} cannot be used with --server")));
        }
    }
    let token = token(args.token_file.as_deref())?;
    let stdin = if args.exec.stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| usage(format!("cannot read stdin as text: {e}")))?;
        Some(text)
    } else {
        None
    };
    let mut body = json!({
        "application": args.run.application,
        "params": args.run.params.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
    });
    match &args.run.command {
        Some(command) => body["command"] = json!(command),
        None if !args.run.args.is_empty() => body["args"] = json!(args.run.args),
        None => {}
    }
    if let Some(ns) = &args.run.namespace {
        body["namespace"] = json!(ns);
    }
    if let Some(timeout) = args.run.timeout {
        body["timeout"] = json!(timeout);
    }
    if let Some(image) = &args.run.image {
        body["image"] = json!(image);
    }
    if let Some(path) = &args.run.pod_override {
        body["podOverride"] = crate::run::pod_override(path)?;
    }
    if let Some(r) = crate::run::resources(&args.run) {
        body["resources"] = json!({
            "requests": {"cpu": r.requests.cpu, "memory": r.requests.memory},
            "limits": {"cpu": r.limits.cpu, "memory": r.limits.memory},
        });
    }
    if let Some(stdin) = stdin {
        body["stdin"] = json!(stdin);
    }
    // Signals are caught from here on: a run submitted is never left
    // running because podrun died between submitting and following it.
    let cancel = cancel_on_signals();
    let client = Client::new(&server, token);
    // One key for this invocation: a submit retried after a lost answer
    // gives the same run.
    let key = podrun::run_id::new();
    let submit = client.clone();
    let run = blocking(move || submit.call("POST", "/v1/runs", Some((&body, &key))))
        .await
        .map_err(|f| refused("submit the run", f))?;
    let id = run["id"].as_str().unwrap_or_default().to_string();
    eprintln!("podrun: run {id} submitted");

    let (lines, mut received) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    let follower = client.clone();
    let follow_id = id.clone();
    let mut following = tokio::task::spawn_blocking(move || {
        follower.follow(&follow_id, |container, line| {
            let _ = lines.send((container.to_string(), line.to_string()));
        })
    });
    let json_output = args.exec.output == crate::args::RunFormat::Json;
    let mut containers = std::collections::BTreeSet::new();
    let mut cancelled = false;
    let followed = loop {
        tokio::select! {
            Some((container, line)) = received.recv() => {
                containers.insert(container.clone());
                let text = if containers.len() > 1 {
                    format!("[{container}] {line}\n")
                } else {
                    format!("{line}\n")
                };
                if json_output {
                    eprint!("{text}");
                } else {
                    crate::print_out(&text);
                }
            }
            done = &mut following => {
                while let Ok((_, line)) = received.try_recv() {
                    if json_output { eprintln!("{line}") } else { crate::print_out(&format!("{line}\n")) }
                }
                break done;
            }
            _ = cancel.cancelled(), if !cancelled => {
                cancelled = true;
                eprintln!("podrun: cancelling run {id} on the server");
                let c = client.clone();
                let path = format!("/v1/runs/{id}/cancel");
                let _ = blocking(move || c.call("POST", &path, None)).await;
            }
        }
    };
    match followed {
        Ok(Ok(())) => {}
        Ok(Err(f)) => return Err(refused("follow the run's log", f)),
        Err(e) => return Err(Failure::from((Code::Cluster, e))),
    }
    let get = client.clone();
    let path = format!("/v1/runs/{id}");
    let run = blocking(move || get.call("GET", &path, None))
        .await
        .map_err(|f| refused("read the run", f))?;
    let mut result: RunResult = serde_json::from_value(run["result"].clone()).map_err(|e| {
        Failure::from((
            Code::Cluster,
            anyhow::anyhow!("the server's result for run {id} is not one: {e}"),
        ))
    })?;
    // Cancelled for a signal here: the code and reason a local run would
    // give for it (the server knows only that it was asked to cancel).
    if let Some(reason) = cancel.state().reason
        && result.outcome == "interrupted"
    {
        result.exit_code = reason.exit_code().number();
        result.reason = reason.name().into();
    }
    crate::run::report(&result, &args.exec)
}

/// Runs a blocking request off the async executor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Failed> + Send + 'static,
) -> Result<T, Failed> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Failed::Answer(0, format!("the request failed: {e}"))))
}
