//! Where pods run. Every runtime reports the same things: the pod with a
//! Kubernetes PodStatus, and its containers' log lines, so that classifier
//! hooks and the console cannot tell runtimes apart.
//!
//! A runtime starts a pod and hands back a stream of [`Event`]s and one
//! [`Control`] handle, the shape of kube-runtime's watchers: the run's
//! lifecycle reads the stream and decides; the runtime only reports and
//! obeys.

pub mod kube;
pub mod local;
pub mod replay;

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use crate::exit::Code;

/// The statuses of a pod's init containers, then of its containers.
pub fn container_statuses(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    pod.status.iter().flat_map(|s| {
        s.init_container_statuses
            .iter()
            .flatten()
            .chain(s.container_statuses.iter().flatten())
    })
}

/// Names a pod whose template gives only `metadata.generateName`: the
/// prefix and the run id. Unlike a name the API server makes up, it is the
/// same for a restarted run, which finds its pod by it, and a run can never
/// make two pods.
pub fn name_for_run(pod: &mut Pod, run_id: &str) {
    let meta = &mut pod.metadata;
    if meta.name.as_deref().is_some_and(|n| !n.is_empty()) {
        return;
    }
    let prefix = meta.generate_name.as_deref().unwrap_or("pod-");
    // Within a DNS label, as the server keeps generated names.
    let room = 63usize.saturating_sub(run_id.len());
    let mut cut = prefix.len().min(room);
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    meta.name = Some(format!("{}{run_id}", &prefix[..cut]));
}

/// Bytes for the `worker` container's stdin.
pub type Stdin = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// What a running pod reports.
#[derive(Debug)]
pub enum Event {
    /// The pod, with its status, after a change, and its recent events as
    /// a JSON list (oldest first).
    /// Shared: the runtime keeps it to compare the next status with.
    Status(Arc<Pod>, String),
    /// The pod was deleted by someone else.
    Gone,
    /// Whole lines of a container's output, one or more (or the last,
    /// unterminated piece).
    Log {
        /// The container's name.
        container: String,
        /// The bytes, newline included when there was one.
        line: Vec<u8>,
    },
    /// Something went wrong beside the run (a delete that failed, a watch
    /// that keeps failing); the run goes on.
    Warning(String),
    /// Lines of the log may be missing here: a stream given up, or one
    /// resumed where it could not be shown to overlap. Said in the log's
    /// order, after the lines before the gap.
    LogGap {
        /// The container whose lines may be missing (`None`: any).
        container: Option<String>,
        /// What happened, for people.
        message: String,
    },
    /// Every container has stopped and every log line has been sent.
    Finished,
}

/// How a run asks its pod to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Stop gracefully: SIGTERM, then SIGKILL after the grace period.
    Graceful,
    /// Kill now.
    Kill,
}

/// What a run asks of its pod once started. Each call may come at any
/// time and more than once; the stream ends with [`Event::Finished`].
pub trait Control: Send + Sync {
    /// The verdict is in: deliver the last log lines, then end the pod,
    /// deleting it when `delete` (a runtime without deletion ignores it).
    fn finish(&self, delete: bool);
    /// Stop now, without waiting for logs.
    fn stop(&self, how: Stop, delete: bool);
}

/// A pod to start.
pub struct Start {
    /// The pod, as rendered and mutated.
    pub pod: Pod,
    /// The run it belongs to (labels it; a restarted run finds its pod).
    pub run_id: String,
    /// Where it runs; `None` for the runtime's default.
    pub namespace: Option<String>,
    /// Input for the `worker` container.
    pub stdin: Option<Stdin>,
    /// Only follow the run's existing pod, never create one: for a run
    /// whose pod may have run and gone already, which must not run twice.
    pub existing_only: bool,
    /// Leave the pod be if the run is dropped before its end (a server
    /// that lost a run to another server), instead of deleting it.
    pub keep_when_dropped: bool,
}

/// A started pod.
pub struct Started {
    /// What it reports, in order.
    pub events: BoxStream<'static, Event>,
    /// How to end it.
    pub control: Box<dyn Control>,
    /// The namespace it runs in, on runtimes that have them.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// Whether a pod of the same run was found and followed instead of a
    /// new one created.
    pub reattached: bool,
}

/// Why a pod could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The cluster refused or could not be reached.
    #[error(transparent)]
    Kube(#[from] kube::KubeError),
    /// The replay runtime was told to fail.
    #[error("{0}")]
    Replay(String),
}

impl StartError {
    /// The exit code this failure ends a run with.
    pub fn exit_code(&self) -> Code {
        match self {
            StartError::Kube(e) => e.exit_code(),
            StartError::Replay(_) => Code::Cluster,
        }
    }
}

/// The events a runtime's tasks send, as a stream.
pub(crate) fn stream(rx: tokio::sync::mpsc::UnboundedReceiver<Event>) -> BoxStream<'static, Event> {
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (e, rx))
    }))
}

/// Somewhere pods run: a cluster, this machine, a recording.
pub trait Runtime: Send + Sync {
    /// Its name in results (`kube`, `local`, `replay`).
    fn name(&self) -> &'static str;
    /// Whether a run's pod outlives the process that started it, so that a
    /// later start with the same run id finds it and follows it (a
    /// cluster's pods do; the local runtime's processes do not).
    fn reattaches(&self) -> bool {
        false
    }
    /// Creates the pod (or finds the run's existing one) and starts
    /// following it. Cancelling the returned future may leave a pod behind:
    /// await it, then stop what it started.
    fn start(&self, start: Start) -> BoxFuture<'_, Result<Started, StartError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: Option<&str>, generate: Option<&str>, run_id: &str) -> Option<String> {
        let mut pod = Pod::default();
        pod.metadata.name = name.map(String::from);
        pod.metadata.generate_name = generate.map(String::from);
        name_for_run(&mut pod, run_id);
        pod.metadata.name
    }

    #[test]
    fn a_generated_name_is_the_prefix_and_the_run_id_within_a_label() {
        assert_eq!(
            named(Some("mine"), Some("gen-"), "r1").as_deref(),
            Some("mine")
        );
        assert_eq!(named(None, Some("gen-"), "r1").as_deref(), Some("gen-r1"));
        assert_eq!(named(None, None, "r1").as_deref(), Some("pod-r1"));
        let long = "x".repeat(80);
        let name = named(None, Some(&long), "c0ffee0123456789").unwrap();
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("c0ffee0123456789"));
    }
}
