//! One run of a pod from start to verdict: every status change goes to the
//! classifier hooks, logs go to the console, signals stop the pod, and the
//! verdict becomes the exit code.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use tokio::signal::unix::{SignalKind, signal};

use crate::exit::Code;
use crate::hooks::{Hook, HookError, classify, types};
use crate::logs::Console;
use crate::result::{self, RunResult, Timings};
use crate::runtime::kube::KubePod;
use crate::runtime::local::LocalPod;
use crate::runtime::{Event, Stop};
use crate::status_server;

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// podrun's stdin goes to the container named `worker`, whose stdout is
    /// the run's output.
    pub stdin: bool,
    /// Serve `/healthy` and `/status` here while the pod runs.
    pub status_addr: Option<SocketAddr>,
    /// Container output goes to stderr (stdout carries the JSON result).
    pub logs_to_stderr: bool,
    /// What to do with a cluster pod at the end.
    pub keep: Keep,
}

/// Whether the pod is kept at the end of a run on a cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Keep {
    /// Delete it.
    #[default]
    Never,
    /// Keep it when the run failed, for a look.
    OnFailure,
    /// Keep it.
    Always,
}

/// SIGINT and SIGTERM, caught from before the pod is created so that a
/// signal during creation still cleans up.
pub struct Signals {
    sigint: Option<tokio::signal::unix::Signal>,
    sigterm: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Starts catching both signals (inside a tokio runtime).
    pub fn catch() -> Self {
        Signals {
            sigint: signal(SignalKind::interrupt()).ok(),
            sigterm: signal(SignalKind::terminate()).ok(),
        }
    }
}

/// A started pod, on either runtime.
pub enum Runner {
    /// On this machine.
    Local(LocalPod),
    /// On a cluster.
    Kube(KubePod),
}

impl Runner {
    async fn next(&mut self) -> Option<Event> {
        match self {
            Runner::Local(p) => p.next().await,
            Runner::Kube(p) => p.next().await,
        }
    }

    /// The verdict is in: end the pod (after its last logs).
    fn finish(&self, failed: bool, keep: Keep) {
        match self {
            Runner::Local(p) => p.stop(Stop::Graceful),
            Runner::Kube(p) => p.finish(delete(keep, failed)),
        }
    }

    /// A signal, or a failure of podrun: stop the pod now.
    fn interrupt(&self, how: Stop, keep: Keep) {
        match self {
            Runner::Local(p) => p.stop(how),
            Runner::Kube(p) => p.interrupt(keep != Keep::Always),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Runner::Local(_) => "local",
            Runner::Kube(_) => "kube",
        }
    }
}

fn delete(keep: Keep, failed: bool) -> bool {
    match keep {
        Keep::Never => true,
        Keep::OnFailure => !failed,
        Keep::Always => false,
    }
}

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The status server could not start.
    #[error("cannot serve the status on {addr}: {source}")]
    StatusServer {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

impl RunError {
    /// The exit code this failure ends podrun with.
    pub fn exit_code(&self) -> Code {
        match self {
            RunError::StatusServer { .. } => Code::Usage,
        }
    }
}

/// Follows a started pod until a classifier gives a final verdict, or a
/// signal stops it. `pod` is the pod as it was started.
pub async fn run(
    signals: Signals,
    mut running: Runner,
    pod: &Pod,
    app: &types::Application,
    classifiers: &[Hook],
    options: &Options,
) -> Result<RunResult, RunError> {
    let start = Instant::now();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let containers = spec.init_containers.iter().flatten().count() + spec.containers.len();
    let console = Console::new(containers, options.stdin, options.logs_to_stderr);
    let shared: status_server::Shared = Arc::new(RwLock::new(None));
    if let Some(addr) = options.status_addr {
        status_server::serve(addr, shared.clone())
            .await
            .map_err(|source| RunError::StatusServer { addr, source })?;
    }
    let Signals {
        mut sigint,
        mut sigterm,
    } = signals;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut latest: Option<Pod> = None;
    let mut events = String::from("[]");
    let mut verdict: Option<classify::Verdict> = None;
    let mut interrupted: Option<Code> = None;
    let mut failure: Option<HookError> = None;
    let mut gone = false;
    let mut progress = crate::logs::Progress::new();

    loop {
        let mut decide = false;
        tokio::select! {
            event = running.next() => match event {
                Some(Event::Status(pod, pod_events)) => {
                    if let Ok(mut s) = shared.write() {
                        *s = Some((*pod).clone());
                    }
                    latest = Some(*pod);
                    events = pod_events;
                    decide = true;
                }
                Some(Event::Log { container, line }) => {
                    progress.clear();
                    console.line(&container, &line);
                }
                Some(Event::Gone) => {
                    if verdict.is_none() && interrupted.is_none() && !gone {
                        gone = true;
                        running.finish(true, Keep::Always);
                    }
                }
                Some(Event::Finished) | None => break,
            },
            // Some verdicts depend on time alone (pending timeout, grace).
            _ = tick.tick() => decide = true,
            Some(_) = recv(&mut sigint) => stop_for_signal(&running, &mut interrupted, Code::Interrupted, options.keep),
            Some(_) = recv(&mut sigterm) => stop_for_signal(&running, &mut interrupted, Code::Terminated, options.keep),
        }
        if decide
            && let Some(pod) = &latest
            && verdict.is_none()
            && interrupted.is_none()
        {
            progress.show(pod, start.elapsed());
        }
        if decide
            && verdict.is_none()
            && interrupted.is_none()
            && failure.is_none()
            && !gone
            && let Some(pod) = &latest
        {
            match classify(classifiers, app, pod, &events, start.elapsed()).await {
                Ok(Some(v)) if v.outcome != classify::Outcome::Running => {
                    progress.clear();
                    running.finish(v.outcome == classify::Outcome::Failed, options.keep);
                    verdict = Some(v);
                }
                Ok(_) => {}
                Err(e) => {
                    failure = Some(e);
                    running.interrupt(Stop::Graceful, options.keep);
                }
            }
        }
    }
    progress.clear();
    if failure.is_none()
        && verdict.is_none()
        && interrupted.is_none()
        && !gone
        && let Some(pod) = &latest
    {
        match classify(classifiers, app, pod, &events, start.elapsed()).await {
            Ok(v) => verdict = v,
            Err(e) => failure = Some(e),
        }
    }
    let timings = Timings {
        prepare_ms: 0,
        run_ms: start.elapsed().as_millis() as u64,
    };
    let containers = result::containers(latest.as_ref());
    let base = RunResult {
        run_id: app.run_id.clone(),
        pod: pod_name,
        runtime: running.name().into(),
        outcome: String::new(),
        retryable: false,
        reason: String::new(),
        message: String::new(),
        exit_code: 0,
        evidence: Vec::new(),
        rule: None,
        containers,
        timings,
    };
    // A classifier that failed ends the run as failed by a hook; the pod
    // was stopped, and the result says why.
    if let Some(e) = failure
        && interrupted.is_none()
    {
        return Ok(RunResult {
            outcome: "failed".into(),
            reason: "HookFailed".into(),
            message: e.to_string(),
            exit_code: e.exit_code().number(),
            ..base
        });
    }
    if gone && interrupted.is_none() && verdict.is_none() {
        return Ok(RunResult {
            outcome: "failed".into(),
            retryable: true,
            reason: "PodDeleted".into(),
            message: "the pod was deleted by someone else".into(),
            exit_code: Code::Cluster.number(),
            ..base
        });
    }
    Ok(match (interrupted, verdict) {
        (Some(code), _) => RunResult {
            outcome: "interrupted".into(),
            reason: if code == Code::Interrupted {
                "SIGINT"
            } else {
                "SIGTERM"
            }
            .into(),
            message: "podrun was stopped; the pod was stopped with it".into(),
            exit_code: code.number(),
            retryable: true,
            ..base
        },
        (None, Some(v)) => {
            let succeeded = v.outcome == classify::Outcome::Succeeded;
            let exit_code = crate::exit::of_verdict(succeeded, v.exit_code);
            RunResult {
                outcome: result::outcome(v.outcome).into(),
                retryable: v.retryable,
                reason: v.reason,
                message: v.message,
                exit_code,
                evidence: v.evidence,
                rule: v.rule,
                ..base
            }
        }
        (None, None) => RunResult {
            outcome: "failed".into(),
            reason: "Unknown".into(),
            message: "the pod ended without a verdict from the classifiers".into(),
            exit_code: 1,
            ..base
        },
    })
}

async fn recv(s: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match s {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// The first signal stops the pod gracefully; a second one kills it and
/// exits at once.
fn stop_for_signal(running: &Runner, interrupted: &mut Option<Code>, code: Code, keep: Keep) {
    if interrupted.is_some() {
        running.interrupt(Stop::Kill, keep);
        // Give the supervisor a moment to deliver SIGKILL, then go.
        std::thread::sleep(Duration::from_millis(50));
        std::process::exit(code.number().into());
    }
    *interrupted = Some(code);
    eprintln!("podrun: stopping the pod (a second signal exits at once)");
    running.interrupt(Stop::Graceful, keep);
}

/// Asks each classifier in order; the first with an opinion decides.
pub async fn classify(
    classifiers: &[Hook],
    app: &types::Application,
    pod: &Pod,
    events: &str,
    elapsed: Duration,
) -> Result<Option<classify::Verdict>, HookError> {
    let observation = classify::Observation {
        pod: serde_json::to_string(pod).unwrap_or_default(),
        events: events.to_string(),
        elapsed_ms: elapsed.as_millis() as u64,
    };
    for hook in classifiers {
        let called = hook.classify(app, &observation).await?;
        if called.value.is_some() {
            return Ok(called.value);
        }
    }
    Ok(None)
}
