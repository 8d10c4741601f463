//! The server's Prometheus metrics: runs by state and queue depth (read
//! from the store when scraped, so they count every server's runs), and
//! this server's submit and hook latency, pods started, runs ended and
//! callbacks.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::State;

type Labels = Vec<(&'static str, String)>;

/// Every metric, registered once.
pub(crate) struct Metrics {
    registry: Registry,
    runs: Family<Labels, Gauge>,
    queue_depth: Gauge,
    places_free: Gauge,
    submit: Histogram,
    prepare: Histogram,
    pods: Family<Labels, Counter>,
    ended: Family<Labels, Counter>,
    callbacks: Family<Labels, Counter>,
}

/// 1 ms to about 16 s.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("podrun");
        let runs = Family::<Labels, Gauge>::default();
        let queue_depth = Gauge::default();
        let places_free = Gauge::default();
        let (submit, prepare) = (seconds(), seconds());
        let pods = Family::<Labels, Counter>::default();
        let ended = Family::<Labels, Counter>::default();
        let callbacks = Family::<Labels, Counter>::default();
        let r = &mut registry;
        r.register(
            "runs",
            "Runs in the store by state (all servers)",
            runs.clone(),
        );
        r.register(
            "queue_depth",
            "Runs waiting to start (all servers)",
            queue_depth.clone(),
        );
        r.register(
            "run_places_free",
            "Runs this server could start now",
            places_free.clone(),
        );
        r.register(
            "submit_duration_seconds",
            "Time to answer a submit, hooks included",
            submit.clone(),
        );
        r.register(
            "hook_duration_seconds",
            "Time of a submit's render and mutate hooks",
            prepare.clone(),
        );
        r.register(
            "pods_started",
            "Pods this server created, or found again and followed",
            pods.clone(),
        );
        r.register(
            "runs_ended",
            "Runs this server ended, by state",
            ended.clone(),
        );
        r.register(
            "callbacks",
            "Callback tries by this server, by how they went",
            callbacks.clone(),
        );
        Metrics {
            registry,
            runs,
            queue_depth,
            places_free,
            submit,
            prepare,
            pods,
            ended,
            callbacks,
        }
    }

    pub(crate) fn submitted(&self, took: Duration) {
        self.submit.observe(took.as_secs_f64());
    }

    pub(crate) fn prepared(&self, took: Duration) {
        self.prepare.observe(took.as_secs_f64());
    }

    pub(crate) fn pod_started(&self, reattached: bool) {
        let how = if reattached { "found" } else { "created" };
        self.pods.get_or_create(&vec![("how", how.into())]).inc();
    }

    pub(crate) fn run_ended(&self, state: State) {
        self.ended
            .get_or_create(&vec![("state", state.to_string())])
            .inc();
    }

    pub(crate) fn callback_tried(&self, outcome: &str) {
        self.callbacks
            .get_or_create(&vec![("outcome", outcome.into())])
            .inc();
    }

    /// The metrics as OpenMetrics text, with the store's `counts` of runs
    /// by state and this server's free places.
    pub(crate) fn text(&self, counts: &[(State, i64)], places_free: usize) -> String {
        for state in State::ALL {
            let n = counts
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n);
            self.runs
                .get_or_create(&vec![("state", state.to_string())])
                .set(n);
            if state == State::Queued {
                self.queue_depth.set(n);
            }
        }
        self.places_free
            .set(i64::try_from(places_free).unwrap_or(i64::MAX));
        let mut text = String::new();
        // Writing to a String does not fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}
