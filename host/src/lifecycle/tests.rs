//! The lifecycle through the replay runtime: recorded statuses in, verdict,
//! cleanup and exit code out, with the real default classifier and no
//! cluster or process. Time is tokio's paused clock, so a 30 s pending
//! timeout takes no real time.

use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::*;
use crate::cancel::Reason;
use crate::config::{self, HookRef};
use crate::context::RunContext;
use crate::hooks::{EngineOptions, Hooks, Kind};
use crate::runtime::replay::{Call, Recorded, ReplayRuntime};

fn engine() -> &'static Hooks {
    static ENGINE: OnceLock<Hooks> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Hooks::new(EngineOptions {
            pool_size: 8,
            ..EngineOptions::default()
        })
        .unwrap()
    })
}

async fn default_classifier() -> Vec<Hook> {
    let spec =
        config::builtin_spec(&HookRef::named(config::DEFAULT_CLASSIFY), Kind::Classify).unwrap();
    vec![engine().load(&spec).await.unwrap()]
}

/// A pod recorded on the project's cluster (tests/fixtures/scenarios).
fn recorded(name: &str) -> Pod {
    let path = format!(
        "{}/../tests/fixtures/scenarios/kube-{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn pod(status: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
        "status": status,
    }))
    .unwrap()
}

fn waiting(reason: &str) -> Pod {
    pod(json!({"phase": "Pending", "containerStatuses": [{
        "name": "main", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"waiting": {"reason": reason, "message": "recorded"}}}]}))
}

fn running() -> Pod {
    pod(json!({"phase": "Running", "containerStatuses": [{
        "name": "main", "image": "busybox", "imageID": "", "ready": true, "restartCount": 0,
        "state": {"running": {}}}]}))
}

fn status(after_ms: u64, pod: Pod) -> (Duration, Recorded) {
    (
        Duration::from_millis(after_ms),
        Recorded::Status(Box::new(pod), "[]".into()),
    )
}

fn log(after_ms: u64, line: &str) -> (Duration, Recorded) {
    (
        Duration::from_millis(after_ms),
        Recorded::Log("main".into(), format!("{line}\n").into_bytes()),
    )
}

/// What a sink was told.
#[derive(Default)]
struct Seen {
    logs: Vec<String>,
    notices: Vec<String>,
    /// Lines and gaps, in the order they came.
    order: Vec<String>,
}

impl Sink for Seen {
    fn log(&mut self, container: &str, line: &[u8]) {
        let line = format!("{container}: {}", String::from_utf8_lossy(line).trim_end());
        self.order.push(line.clone());
        self.logs.push(line);
    }

    fn notice(&mut self, notice: Notice<'_>) {
        match notice {
            Notice::Started { name, .. } => self.notices.push(format!("started {name}")),
            Notice::Warning(w) => self.notices.push(format!("warning {w}")),
            Notice::LogGap { container, message } => {
                let gap = format!("gap {} {message}", container.unwrap_or("-"));
                self.order.push(gap.clone());
                self.notices.push(gap);
            }
            Notice::Prepared(_) | Notice::Status { .. } | Notice::Observed { .. } => {}
        }
    }
}

struct Outcome {
    result: RunResult,
    calls: Vec<Call>,
    seen: Seen,
}

async fn play(
    runtime: &ReplayRuntime,
    context: &RunContext,
    keep: Keep,
    cancel: Cancel,
) -> Outcome {
    play_cancelled(runtime, context, keep, cancel, |_| async {}).await
}

/// As [`play`], with `canceller` started once the classifiers are
/// loaded: loading takes real time, in which paused time may run ahead.
async fn play_cancelled<F>(
    runtime: &ReplayRuntime,
    context: &RunContext,
    keep: Keep,
    cancel: Cancel,
    canceller: impl FnOnce(Cancel) -> F,
) -> Outcome
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let classifiers = default_classifier().await;
    tokio::spawn(canceller(cancel.clone()));
    let mut seen = Seen::default();
    let io = Io {
        cancel,
        stdin: None,
        sink: &mut seen,
    };
    let pod = pod(json!({}));
    let result = run(
        runtime,
        pod,
        context,
        &classifiers,
        &Options {
            keep,
            ..Options::default()
        },
        io,
    )
    .await
    .unwrap();
    Outcome {
        result,
        calls: runtime.calls(),
        seen,
    }
}

fn context() -> RunContext {
    RunContext::bare("app", "run-1")
}

const START: Call = Call::Start { stdin: false };

#[tokio::test(start_paused = true)]
async fn a_pod_that_stays_pending_times_out_and_is_deleted() {
    let mut ctx = context();
    ctx.pending_timeout_seconds = Some(30);
    let unschedulable = pod(json!({"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/1 nodes are available: 1 Insufficient cpu."}]}));
    let replay = ReplayRuntime::new(vec![status(0, unschedulable)]);
    let out = play(&replay, &ctx, Keep::Never, Cancel::new()).await;
    assert_eq!(out.result.exit_code, 124, "{:?}", out.result);
    assert_eq!(out.result.outcome, "failed");
    assert!(
        out.result.run_ms_at_least(30_000),
        "{:?}",
        out.result.timings
    );
    assert_eq!(out.calls, [START, Call::Finish { delete: true }]);
}

/// When the classifiers were asked, from the pod's creation.
#[derive(Default)]
struct Asked(Vec<Duration>);

impl Sink for Asked {
    fn log(&mut self, _: &str, _: &[u8]) {}

    fn notice(&mut self, notice: Notice<'_>) {
        if let Notice::Observed { elapsed, .. } = notice {
            self.0.push(elapsed);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn classifiers_are_asked_often_while_a_pod_starts_and_seldom_once_it_runs() {
    let replay = ReplayRuntime::new(vec![
        status(0, waiting("ContainerCreating")),
        status(3_200, running()),
        status(20_000, recorded("success")),
        (Duration::ZERO, Recorded::Finished),
    ]);
    let classifiers = default_classifier().await;
    let mut asked = Asked::default();
    let io = Io {
        cancel: Cancel::new(),
        stdin: None,
        sink: &mut asked,
    };
    let result = run(
        &replay,
        pod(json!({})),
        &context(),
        &classifiers,
        &Options::default(),
        io,
    )
    .await
    .unwrap();
    assert_eq!(result.exit_code, 0, "{result:?}");
    let times = &asked.0;
    let starting = times
        .iter()
        .filter(|t| **t < Duration::from_millis(3_200))
        .count();
    // At the first status, then every 0.5 s for 3.2 s.
    assert!((6..=8).contains(&starting), "{times:?}");
    // At each status, then every 5 s for 20 s (not 40 times).
    let running = times.len() - starting;
    assert!((4..=6).contains(&running), "{times:?}");
}

#[tokio::test(start_paused = true)]
async fn an_image_error_inside_the_grace_is_waited_out() {
    let replay = ReplayRuntime::new(vec![
        status(0, waiting("ErrImagePull")),
        status(3_000, running()),
        log(100, "working"),
        status(500, recorded("success")),
        (Duration::ZERO, Recorded::Finished),
    ]);
    let out = play(&replay, &context(), Keep::Never, Cancel::new()).await;
    assert_eq!(out.result.outcome, "succeeded", "{:?}", out.result);
    assert_eq!(out.result.exit_code, 0);
    assert_eq!(out.seen.logs, ["main: working"]);
    assert_eq!(out.calls, [START, Call::Finish { delete: true }]);
}

#[tokio::test(start_paused = true)]
async fn an_image_error_past_the_grace_could_not_start() {
    let replay = ReplayRuntime::new(vec![status(0, waiting("ImagePullBackOff"))]);
    let out = play(&replay, &context(), Keep::Never, Cancel::new()).await;
    assert_eq!(out.result.exit_code, 126, "{:?}", out.result);
    assert!(!out.result.retryable);
    assert!(
        out.result.run_ms_at_least(5_000),
        "{:?}",
        out.result.timings
    );
    assert_eq!(out.calls, [START, Call::Finish { delete: true }]);
}

#[tokio::test(start_paused = true)]
async fn a_pod_deleted_by_someone_else_is_retryable_and_not_deleted_again() {
    let replay = ReplayRuntime::new(vec![
        status(0, running()),
        (Duration::from_secs(2), Recorded::Gone),
    ]);
    let out = play(&replay, &context(), Keep::Never, Cancel::new()).await;
    assert_eq!(out.result.reason, "PodDeleted", "{:?}", out.result);
    assert_eq!(out.result.exit_code, 123);
    assert!(out.result.retryable);
    assert_eq!(out.calls, [START, Call::Finish { delete: false }]);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_exceeded_on_the_cluster_is_124() {
    let replay = ReplayRuntime::new(vec![
        status(0, running()),
        status(2_000, recorded("deadline")),
        (Duration::ZERO, Recorded::Finished),
    ]);
    let out = play(&replay, &context(), Keep::Never, Cancel::new()).await;
    assert_eq!(out.result.reason, "DeadlineExceeded", "{:?}", out.result);
    assert_eq!(out.result.exit_code, 124);
}

#[tokio::test(start_paused = true)]
async fn a_failed_run_keeps_its_pod_when_asked_and_passes_the_exit_code_on() {
    let replay = ReplayRuntime::new(vec![status(0, recorded("exit-3"))]);
    let out = play(&replay, &context(), Keep::OnFailure, Cancel::new()).await;
    assert_eq!(out.result.exit_code, 3, "{:?}", out.result);
    assert_eq!(out.calls, [START, Call::Finish { delete: false }]);
    let replay = ReplayRuntime::new(vec![status(0, recorded("success"))]);
    let out = play(&replay, &context(), Keep::OnFailure, Cancel::new()).await;
    assert_eq!(out.calls, [START, Call::Finish { delete: true }]);
}

#[tokio::test(start_paused = true)]
async fn a_cancel_during_creation_stops_the_pod_once_it_exists() {
    let replay = ReplayRuntime::new(vec![status(0, running())]).starting_in(Duration::from_secs(2));
    let out = play_cancelled(
        &replay,
        &context(),
        Keep::Never,
        Cancel::new(),
        |later| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            later.cancel(Reason::Terminate);
        },
    )
    .await;
    assert_eq!(out.result.outcome, "interrupted", "{:?}", out.result);
    assert_eq!(out.result.reason, "SIGTERM");
    assert_eq!(out.result.exit_code, 143);
    assert_eq!(
        out.calls,
        [
            START,
            Call::Stop {
                how: Stop::Graceful,
                delete: true
            }
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_cancel_kills_and_keep_always_deletes_nothing() {
    let replay = ReplayRuntime::new(vec![status(0, running())]).starting_in(Duration::from_secs(1));
    let out = play_cancelled(
        &replay,
        &context(),
        Keep::Always,
        Cancel::new(),
        |later| async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            later.cancel(Reason::Interrupt);
            tokio::time::sleep(Duration::from_millis(10)).await;
            later.kill(Reason::Interrupt);
        },
    )
    .await;
    assert_eq!(out.result.exit_code, 130, "{:?}", out.result);
    assert_eq!(
        out.calls,
        [
            START,
            Call::Stop {
                how: Stop::Graceful,
                delete: false
            },
            Call::Stop {
                how: Stop::Kill,
                delete: false
            }
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_id_that_cannot_name_a_pod_is_refused_before_anything_starts() {
    let replay = ReplayRuntime::new(vec![status(0, running())]);
    let classifiers = default_classifier().await;
    for bad in ["", "UPPER", "a/b", &"x".repeat(41)] {
        let io = Io {
            cancel: Cancel::new(),
            stdin: None,
            sink: &mut (),
        };
        let ctx = RunContext::bare("app", bad);
        let err = run(
            &replay,
            pod(json!({})),
            &ctx,
            &classifiers,
            &Options::default(),
            io,
        )
        .await
        .unwrap_err();
        assert_eq!(err.exit_code(), Code::Usage, "{bad:?}");
    }
    assert!(replay.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_run_cancelled_before_it_starts_starts_nothing() {
    let replay = ReplayRuntime::new(vec![status(0, running())]);
    let cancel = Cancel::new();
    cancel.cancel(Reason::Request);
    let out = play(&replay, &context(), Keep::Never, cancel).await;
    assert_eq!(out.result.reason, "Cancelled");
    assert_eq!(out.result.exit_code, 130);
    assert!(out.calls.is_empty(), "{:?}", out.calls);
}

#[tokio::test(start_paused = true)]
async fn a_sidecar_that_lingers_does_not_hold_the_run() {
    // A native sidecar (an init container that always restarts) still
    // runs after the main container ended: the run is over.
    let lingering: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {
            "initContainers": [{"name": "proxy", "image": "busybox", "restartPolicy": "Always"}],
            "containers": [{"name": "main", "image": "busybox"}]},
        "status": {"phase": "Running",
            "initContainerStatuses": [{"name": "proxy", "image": "busybox", "imageID": "",
                "ready": true, "restartCount": 0, "state": {"running": {}}}],
            "containerStatuses": [{"name": "main", "image": "busybox", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}
    }))
    .unwrap();
    let replay = ReplayRuntime::new(vec![
        status(0, running()),
        status(1_000, lingering),
        log(100, "proxy draining"),
    ]);
    let out = play(&replay, &context(), Keep::Never, Cancel::new()).await;
    assert_eq!(out.result.outcome, "succeeded", "{:?}", out.result);
    // The verdict ended the pod; the line recorded after it still came.
    assert_eq!(out.calls, [START, Call::Finish { delete: true }]);
    assert_eq!(out.seen.logs, ["main: proxy draining"]);
}

#[tokio::test(start_paused = true)]
async fn a_runtime_warning_and_a_log_gap_reach_the_sink_in_order_and_a_refused_start_is_an_error() {
    let replay = ReplayRuntime::new(vec![
        (
            Duration::ZERO,
            Recorded::Warning("the watch keeps failing".into()),
        ),
        log(1, "before"),
        (
            Duration::from_millis(2),
            Recorded::LogGap("main".into(), "lines may be missing".into()),
        ),
        log(3, "after"),
        status(10, recorded("success")),
    ]);
    let out = play(&replay, &context(), Keep::Never, Cancel::new()).await;
    assert_eq!(
        out.seen.notices,
        [
            "started p",
            "warning the watch keeps failing",
            "gap main lines may be missing"
        ]
    );
    assert_eq!(
        out.seen.order,
        [
            "main: before",
            "gap main lines may be missing",
            "main: after"
        ]
    );

    let refusing = ReplayRuntime::new(Vec::new()).refusing("no room");
    let classifiers = default_classifier().await;
    let io = Io {
        cancel: Cancel::new(),
        stdin: None,
        sink: &mut (),
    };
    let err = run(
        &refusing,
        pod(json!({})),
        &context(),
        &classifiers,
        &Options::default(),
        io,
    )
    .await
    .unwrap_err();
    assert_eq!(err.exit_code(), Code::Cluster);
    assert!(refusing.calls().is_empty());
}

impl RunResult {
    fn run_ms_at_least(&self, ms: u64) -> bool {
        self.timings.run_ms >= ms
    }
}

/// A server holds one of these futures per run in flight, for as long as
/// the run runs: the pod and the hook calls are boxed, not kept inline.
#[tokio::test]
async fn a_run_in_flight_holds_a_small_future() {
    let runtime = ReplayRuntime::new(Vec::new());
    let context = context();
    let classifiers = Vec::new();
    let options = Options::default();
    let mut seen = Seen::default();
    let io = Io {
        cancel: Cancel::new(),
        stdin: None,
        sink: &mut seen,
    };
    let fut = run(
        &runtime,
        pod(json!({})),
        &context,
        &classifiers,
        &options,
        io,
    );
    let size = std::mem::size_of_val(&fut);
    assert!(
        size <= 2 * 1024,
        "lifecycle::run's future takes {size} bytes"
    );
}
