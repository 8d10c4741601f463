//! Where pods run. Every runtime reports the same things: the pod with a
//! Kubernetes PodStatus, and its containers' log lines, so that classifier
//! hooks and the console cannot tell runtimes apart.

pub mod kube;
pub mod local;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// The statuses of a pod's init containers, then of its containers.
pub fn container_statuses(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    pod.status.iter().flat_map(|s| {
        s.init_container_statuses
            .iter()
            .flatten()
            .chain(s.container_statuses.iter().flatten())
    })
}

/// What a running pod reports.
#[derive(Debug)]
pub enum Event {
    /// The pod, with its status, after a change, and its recent events as
    /// a JSON list (oldest first).
    Status(Box<Pod>, String),
    /// The pod was deleted by someone else.
    Gone,
    /// One line (or the last, unterminated piece) of a container's output.
    Log {
        /// The container's name.
        container: String,
        /// The bytes, newline included when there was one.
        line: Vec<u8>,
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
