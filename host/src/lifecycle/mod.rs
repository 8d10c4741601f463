//! One run of a pod from start to verdict: the runtime starts the pod and
//! reports; every status change goes to the classifier hooks; the first
//! final verdict ends the pod; a cancel stops it. What the run shows goes
//! to a [`Sink`] the caller provides.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
// Tokio's clock, so that tests with a paused clock see time pass.
use tokio::time::Instant;

use crate::cancel::{self, Cancel};
use crate::context::RunContext;
use crate::exit::Code;
use crate::hooks::{Hook, HookError, classify};
use crate::result::{self, RunResult};
use crate::runtime::{Event, Runtime, Start, StartError, Stdin, Stop};

/// How to run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// What to do with a cluster pod at the end.
    pub keep: Keep,
    /// Only follow the run's existing pod, never create one (see
    /// [`crate::runtime::Start::existing_only`]).
    pub existing_only: bool,
    /// Leave a cluster pod be if this run is dropped before its end (see
    /// [`crate::runtime::Start::keep_when_dropped`]).
    pub keep_when_dropped: bool,
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

impl Keep {
    fn delete(self, failed: bool) -> bool {
        match self {
            Keep::Never => true,
            Keep::OnFailure => !failed,
            Keep::Always => false,
        }
    }
}

/// What a run tells its caller while it goes, besides container output.
#[derive(Debug)]
pub enum Notice<'a> {
    /// The pod is ready to start: rendered and mutated, with what each
    /// hook did (given by [`crate::run::run`]).
    Prepared(&'a crate::pipeline::Prepared),
    /// The runtime started the pod (or found the run's pod and follows it).
    Started {
        /// The run's id.
        run_id: &'a str,
        /// Its namespace, on runtimes that have them.
        namespace: Option<&'a str>,
        /// Its name.
        name: &'a str,
        /// Whether it was found rather than created.
        reattached: bool,
    },
    /// The pod as last seen: at each change, and every half second while
    /// no verdict is in.
    Status {
        /// The pod.
        pod: &'a Pod,
        /// Time since the run started.
        elapsed: Duration,
        /// Whether the run still waits for a verdict.
        undecided: bool,
    },
    /// What the classifiers were given, and what they decided: one
    /// moment of the run's timeline (see [`crate::timeline`]).
    Observed {
        /// The pod.
        pod: &'a Pod,
        /// Its recent events, as the classifiers got them (a JSON list).
        events: &'a str,
        /// Time since the pod was created.
        elapsed: Duration,
        /// The hook that gave a verdict, and the verdict; `None` when none
        /// had an opinion.
        decided: Option<(&'a str, &'a classify::Verdict)>,
    },
    /// Something went wrong beside the run; it goes on.
    Warning(&'a str),
    /// Lines of the log may be missing here (see
    /// [`crate::runtime::Event::LogGap`]); in order with the lines.
    LogGap {
        /// The container whose lines may be missing (`None`: any).
        container: Option<&'a str>,
        /// What happened, for people.
        message: &'a str,
    },
}

/// Where a run's output and notices go.
pub trait Sink: Send {
    /// Whole lines of a container's output, one or more, each with its
    /// newline (or the last, unterminated piece).
    fn log(&mut self, container: &str, line: &[u8]);
    /// A notice.
    fn notice(&mut self, notice: Notice<'_>);
}

/// A sink that drops everything.
impl Sink for () {
    fn log(&mut self, _: &str, _: &[u8]) {}
    fn notice(&mut self, _: Notice<'_>) {}
}

/// What a run is given from outside.
pub struct Io<'a> {
    /// Stops the run.
    pub cancel: Cancel,
    /// Input for the `worker` container.
    pub stdin: Option<Stdin>,
    /// Where output and notices go.
    pub sink: &'a mut dyn Sink,
}

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The runtime could not start the pod.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The run id cannot name a pod or label it.
    #[error("the run id {0:?} is not valid: use 1 to 40 lowercase letters, digits and dashes")]
    RunId(String),
}

impl RunError {
    /// The exit code this failure ends podrun with.
    pub fn exit_code(&self) -> Code {
        match self {
            RunError::Start(e) => e.exit_code(),
            RunError::RunId(_) => Code::Usage,
        }
    }
}

/// Starts `pod` on `runtime` and follows it until a classifier gives a
/// final verdict or the run is cancelled. `context` is what the hooks are
/// told about the run.
pub fn run(
    runtime: &dyn Runtime,
    pod: impl Into<Box<Pod>>,
    context: &RunContext,
    classifiers: &[Hook],
    options: &Options,
    io: Io<'_>,
) -> impl Future<Output = Result<RunResult, RunError>> + Send {
    // An async fn keeps its arguments for as long as it runs: the pod is
    // passed on boxed (a caller holding it boxed already passes the box).
    follow(runtime, pod.into(), context, classifiers, options, io)
}

async fn follow(
    runtime: &dyn Runtime,
    pod: Box<Pod>,
    context: &RunContext,
    classifiers: &[Hook],
    options: &Options,
    io: Io<'_>,
) -> Result<RunResult, RunError> {
    let start = Instant::now();
    let Io {
        cancel,
        stdin,
        sink,
    } = io;
    let mut base = RunResult {
        run_id: context.run_id.clone(),
        pod: pod.metadata.name.clone().unwrap_or_default(),
        runtime: runtime.name().into(),
        ..RunResult::default()
    };
    if !crate::run_id::is_valid(&context.run_id) {
        return Err(RunError::RunId(context.run_id.clone()));
    }
    if let Some(reason) = cancel.state().reason {
        return Ok(interrupted(
            reason,
            "the run was cancelled before its pod was started",
            base,
        ));
    }
    let mut cancelled = cancel.subscribe();
    let started = runtime
        .start(Start {
            pod: *pod,
            run_id: context.run_id.clone(),
            namespace: context.namespace.clone(),
            stdin,
            existing_only: options.existing_only,
            keep_when_dropped: options.keep_when_dropped,
        })
        .await?;
    sink.notice(Notice::Started {
        run_id: &context.run_id,
        namespace: started.namespace.as_deref(),
        name: &started.name,
        reattached: started.reattached,
    });
    base.pod = started.name.clone();
    let control = started.control;
    let mut events = started.events;
    // Classifiers time the pod from its creation, not from the request.
    let created = Instant::now();

    // Classifiers are asked again after a while without a status change,
    // for verdicts that depend on time alone (pending timeout, grace).
    let mut ask = Box::pin(tokio::time::sleep(ASK_STARTING));
    // Shared with the runtime, and the hook calls below boxed: what a
    // run holds while it waits is this future and the pod, times the runs
    // in flight.
    let mut latest: Option<Arc<Pod>> = None;
    let mut pod_events = String::from("[]");
    let mut verdict: Option<classify::Verdict> = None;
    let mut interrupted_by: Option<cancel::Reason> = None;
    let mut killed = false;
    let mut cancel_open = true;
    let mut failure: Option<HookError> = None;
    let mut gone = false;
    // A cancel that came while the pod was being created acts at once.
    let mut on_cancel = |state: cancel::State, by: &mut Option<cancel::Reason>| {
        let delete = options.keep != Keep::Always;
        if let Some(reason) = state.reason
            && by.is_none()
        {
            *by = Some(reason);
            control.stop(Stop::Graceful, delete);
        }
        if state.kill && !killed {
            killed = true;
            control.stop(Stop::Kill, delete);
        }
    };
    on_cancel(*cancelled.borrow_and_update(), &mut interrupted_by);

    loop {
        let mut decide = false;
        let mut changed = false;
        tokio::select! {
            event = events.next() => match event {
                Some(Event::Status(pod, recent)) => {
                    latest = Some(pod);
                    pod_events = recent;
                    decide = true;
                    changed = true;
                }
                Some(Event::Log { container, line }) => sink.log(&container, &line),
                Some(Event::Warning(w)) => sink.notice(Notice::Warning(&w)),
                Some(Event::LogGap { container, message }) => sink.notice(Notice::LogGap {
                    container: container.as_deref(),
                    message: &message,
                }),
                Some(Event::Gone) => {
                    if verdict.is_none() && interrupted_by.is_none() && !gone {
                        gone = true;
                        control.finish(false);
                    }
                }
                Some(Event::Finished) | None => break,
            },
            _ = &mut ask => decide = true,
            changed = cancelled.changed(), if cancel_open => match changed {
                Ok(()) => on_cancel(*cancelled.borrow_and_update(), &mut interrupted_by),
                Err(_) => cancel_open = false,
            },
        }
        let undecided = verdict.is_none() && interrupted_by.is_none() && failure.is_none() && !gone;
        if let Some(pod) = &latest
            && decide
            && (undecided || changed)
        {
            sink.notice(Notice::Status {
                pod,
                elapsed: created.elapsed(),
                undecided,
            });
        }
        if decide
            && undecided
            && let Some(pod) = &latest
        {
            let elapsed = created.elapsed();
            let decided = Box::pin(classify_with_hook(
                classifiers,
                context,
                pod,
                &pod_events,
                elapsed,
            ))
            .await;
            if let Ok(found) = &decided {
                sink.notice(Notice::Observed {
                    pod,
                    events: &pod_events,
                    elapsed,
                    decided: found.as_ref().map(|(i, v)| (classifiers[*i].name(), v)),
                });
            }
            match decided.map(|found| found.map(|(_, v)| v)) {
                Ok(Some(v)) if v.outcome != classify::Outcome::Running => {
                    let failed = v.outcome == classify::Outcome::Failed;
                    control.finish(options.keep.delete(failed));
                    verdict = Some(v);
                }
                Ok(_) => {}
                Err(e) => {
                    failure = Some(e);
                    control.stop(Stop::Graceful, options.keep != Keep::Always);
                }
            }
            if verdict.is_some() || failure.is_some() {
                sink.notice(Notice::Status {
                    pod,
                    elapsed: created.elapsed(),
                    undecided: false,
                });
            }
        }
        if decide {
            // Counted from the end of this ask, so a slow classifier is not
            // asked again at once.
            let every = match &latest {
                Some(pod) if !starting(pod) => ASK_RUNNING,
                _ => ASK_STARTING,
            };
            ask.as_mut().reset(Instant::now() + every);
        }
    }
    // The pod ended before a verdict: the classifiers see its last state.
    if failure.is_none()
        && verdict.is_none()
        && interrupted_by.is_none()
        && !gone
        && let Some(pod) = &latest
    {
        let elapsed = created.elapsed();
        match Box::pin(classify_with_hook(
            classifiers,
            context,
            pod,
            &pod_events,
            elapsed,
        ))
        .await
        {
            Ok(found) => {
                sink.notice(Notice::Observed {
                    pod,
                    events: &pod_events,
                    elapsed,
                    decided: found.as_ref().map(|(i, v)| (classifiers[*i].name(), v)),
                });
                verdict = found.map(|(_, v)| v);
            }
            Err(e) => failure = Some(e),
        }
    }
    base.timings.run_ms = start.elapsed().as_millis() as u64;
    base.containers = result::containers(latest.as_deref());
    Ok(conclude(base, interrupted_by, failure, gone, verdict))
}

/// How long classifiers wait to be asked again without a status change:
/// often while the pod starts, when time-only verdicts (image grace,
/// pending timeout) come; seldom once its containers run, so that a
/// thousand runs in flight cost little.
const ASK_STARTING: Duration = Duration::from_millis(500);
const ASK_RUNNING: Duration = Duration::from_secs(5);

/// Whether `pod` is still starting: not yet running, or with a container
/// that waits (to be created, for its image, after a crash).
fn starting(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return true;
    };
    status.phase.as_deref() != Some("Running")
        || status
            .init_container_statuses
            .iter()
            .chain(&status.container_statuses)
            .flatten()
            .any(|c| c.state.as_ref().is_none_or(|s| s.waiting.is_some()))
}

/// The result, from what ended the run.
fn conclude(
    base: RunResult,
    interrupted_by: Option<cancel::Reason>,
    failure: Option<HookError>,
    gone: bool,
    verdict: Option<classify::Verdict>,
) -> RunResult {
    if let Some(reason) = interrupted_by {
        return interrupted(
            reason,
            "podrun was stopped; the pod was stopped with it",
            base,
        );
    }
    // A classifier that failed ends the run as failed by a hook; the pod
    // was stopped, and the result says why.
    if let Some(e) = failure {
        return RunResult {
            outcome: "failed".into(),
            reason: "HookFailed".into(),
            message: e.to_string(),
            exit_code: e.exit_code().number(),
            ..base
        };
    }
    match verdict {
        Some(v) => {
            let succeeded = v.outcome == classify::Outcome::Succeeded;
            RunResult {
                outcome: result::outcome(v.outcome).into(),
                retryable: v.retryable,
                reason: v.reason,
                message: v.message,
                exit_code: crate::exit::of_verdict(succeeded, v.exit_code),
                evidence: v.evidence,
                rule: v.rule,
                ..base
            }
        }
        None if gone => RunResult {
            outcome: "failed".into(),
            retryable: true,
            reason: "PodDeleted".into(),
            message: "the pod was deleted by someone else".into(),
            exit_code: Code::Cluster.number(),
            ..base
        },
        None => RunResult {
            outcome: "failed".into(),
            reason: "Unknown".into(),
            message: "the pod ended without a verdict from the classifiers".into(),
            exit_code: 1,
            ..base
        },
    }
}

/// The result of a run cancelled before its pod was started.
pub fn cancelled_before_start(reason: cancel::Reason, run_id: &str, runtime: &str) -> RunResult {
    let base = RunResult {
        run_id: run_id.to_string(),
        runtime: runtime.to_string(),
        ..RunResult::default()
    };
    interrupted(
        reason,
        "podrun was stopped before the pod was created",
        base,
    )
}

fn interrupted(reason: cancel::Reason, message: &str, base: RunResult) -> RunResult {
    RunResult {
        outcome: "interrupted".into(),
        reason: reason.name().into(),
        message: message.into(),
        exit_code: reason.exit_code().number(),
        retryable: true,
        ..base
    }
}

/// Asks each classifier in order; the first with an opinion decides.
pub async fn classify(
    classifiers: &[Hook],
    app: &RunContext,
    pod: &Pod,
    events: &str,
    elapsed: Duration,
) -> Result<Option<classify::Verdict>, HookError> {
    Ok(classify_with_hook(classifiers, app, pod, events, elapsed)
        .await?
        .map(|(_, v)| v))
}

/// As [`classify`], with the position in `classifiers` of the hook that
/// gave the verdict.
pub async fn classify_with_hook(
    classifiers: &[Hook],
    app: &RunContext,
    pod: &Pod,
    events: &str,
    elapsed: Duration,
) -> Result<Option<(usize, classify::Verdict)>, HookError> {
    let observation = classify::Observation {
        pod: serde_json::to_string(pod).unwrap_or_default(),
        events: events.to_string(),
        elapsed_ms: elapsed.as_millis() as u64,
    };
    for (i, hook) in classifiers.iter().enumerate() {
        let called = hook.classify(app, &observation).await?;
        if let Some(verdict) = called.value {
            return Ok(Some((i, verdict)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
