//! A runtime that plays back recorded observations instead of running
//! anything: the run's lifecycle, classifiers, cleanup and exit codes can
//! be tested, and measured, with no cluster and no processes.
//!
//! The recording is a list of steps, each after a delay from the one
//! before. When the run ends the pod, the replay obeys as a runtime would:
//! a finish delivers the log lines still recorded, a stop delivers none.
//! What the run asked is kept in [`ReplayRuntime::calls`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::mpsc;

use super::{Control, Event, Start, StartError, Started, Stop};

/// One recorded observation.
#[derive(Debug, Clone)]
pub enum Recorded {
    /// The pod's status changed; its recent events as a JSON list.
    Status(Box<Pod>, String),
    /// A line of a container's output.
    Log(String, Vec<u8>),
    /// The pod was deleted by someone else.
    Gone,
    /// A warning from the runtime.
    Warning(String),
    /// A possible gap in a container's log.
    LogGap(String, String),
    /// Every container stopped: the stream ends here.
    Finished,
}

/// What a run asked of the replayed pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// The pod was started, with stdin or without.
    Start {
        /// Whether stdin was attached.
        stdin: bool,
    },
    /// The verdict was in.
    Finish {
        /// Whether the pod was to be deleted.
        delete: bool,
    },
    /// The pod was stopped.
    Stop {
        /// How.
        how: Stop,
        /// Whether the pod was to be deleted.
        delete: bool,
    },
}

/// Plays one recording to each pod it starts.
#[derive(Debug, Clone, Default)]
pub struct ReplayRuntime {
    steps: Arc<[(Duration, Recorded)]>,
    start_delay: Duration,
    refuse: Option<String>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl ReplayRuntime {
    /// Plays `steps`, each after its delay from the one before.
    pub fn new(steps: Vec<(Duration, Recorded)>) -> Self {
        ReplayRuntime {
            steps: steps.into(),
            ..ReplayRuntime::default()
        }
    }

    /// Takes `delay` to start each pod, as creating one on a cluster does.
    pub fn starting_in(mut self, delay: Duration) -> Self {
        self.start_delay = delay;
        self
    }

    /// Fails to start any pod, with `message`.
    pub fn refusing(mut self, message: &str) -> Self {
        self.refuse = Some(message.into());
        self
    }

    /// What runs asked of the pods so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

fn record(calls: &Mutex<Vec<Call>>, call: Call) {
    if let Ok(mut c) = calls.lock() {
        c.push(call);
    }
}

impl super::Runtime for ReplayRuntime {
    fn name(&self) -> &'static str {
        "replay"
    }

    fn start(&self, start: Start) -> BoxFuture<'_, Result<Started, StartError>> {
        Box::pin(async move {
            tokio::time::sleep(self.start_delay).await;
            if let Some(m) = &self.refuse {
                return Err(StartError::Replay(m.clone()));
            }
            record(
                &self.calls,
                Call::Start {
                    stdin: start.stdin.is_some(),
                },
            );
            let (events_tx, events) = mpsc::unbounded_channel();
            let (control, control_rx) = mpsc::unbounded_channel();
            tokio::spawn(play(self.steps.clone(), events_tx, control_rx));
            Ok(Started {
                events: super::stream(events),
                control: Box::new(ReplayControl {
                    calls: self.calls.clone(),
                    control,
                }),
                namespace: start.namespace,
                name: start.pod.metadata.name.unwrap_or_default(),
                reattached: false,
            })
        })
    }
}

struct ReplayControl {
    calls: Arc<Mutex<Vec<Call>>>,
    control: mpsc::UnboundedSender<Call>,
}

impl Control for ReplayControl {
    fn finish(&self, delete: bool) {
        let call = Call::Finish { delete };
        record(&self.calls, call.clone());
        let _ = self.control.send(call);
    }

    fn stop(&self, how: Stop, delete: bool) {
        let call = Call::Stop { how, delete };
        record(&self.calls, call.clone());
        let _ = self.control.send(call);
    }
}

async fn play(
    steps: Arc<[(Duration, Recorded)]>,
    events: mpsc::UnboundedSender<Event>,
    mut control: mpsc::UnboundedReceiver<Call>,
) {
    let send = |r: &Recorded| {
        let _ = events.send(match r.clone() {
            // A copy per run, as a runtime's own pod would be.
            Recorded::Status(pod, recent) => Event::Status(Arc::from(pod), recent),
            Recorded::Log(container, line) => Event::Log { container, line },
            Recorded::Gone => Event::Gone,
            Recorded::Warning(w) => Event::Warning(w),
            Recorded::LogGap(container, message) => Event::LogGap {
                container: Some(container),
                message,
            },
            Recorded::Finished => Event::Finished,
        });
    };
    let mut next = 0;
    let ended = loop {
        let Some((delay, step)) = steps.get(next) else {
            // The recording is over and the pod still runs: it waits to
            // be ended.
            break control.recv().await;
        };
        tokio::select! {
            _ = tokio::time::sleep(*delay) => {
                send(step);
                next += 1;
                if matches!(step, Recorded::Finished) {
                    return;
                }
            }
            call = control.recv() => break call,
        }
    };
    // A finish delivers the lines still to come; a stop cuts them off.
    if let Some(Call::Finish { .. }) = ended {
        for (_, step) in steps.iter().skip(next) {
            if let Recorded::Log(..) = step {
                send(step);
            }
        }
    }
    let _ = events.send(Event::Finished);
}
