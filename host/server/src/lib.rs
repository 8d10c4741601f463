//! `podrun serve`: runs submitted over HTTP, stored before their pods
//! exist, run by workers with podrun's library, and followed again after a
//! restart.
//!
//! - [`api`]: the HTTP API;
//! - [`store`]: runs and their logs in SQLite or Postgres, and the leases
//!   by which servers sharing a store share its runs;
//! - [`state`]: where a run stands, moving only forward;
//! - `callback`: POSTs a run's end to the URL its submitter gave;
//! - `worker`: takes queued runs and runs them, takes over the runs of
//!   servers that died, renews leases.
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

pub mod api;
mod callback;
mod metrics;
mod resume;
pub mod state;
pub mod store;
mod worker;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use podrun::cancel::{Cancel, Reason};
use podrun::config::Config;
use podrun::hooks::Hooks;
use podrun::runtime::Runtime;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};

use crate::store::{Store, StoreError};

/// How to serve.
pub struct Options {
    /// The applications.
    pub config: Config,
    /// The hook engine every run shares.
    pub hooks: Hooks,
    /// Where pods run.
    pub runtime: Box<dyn Runtime>,
    /// The store's address: `sqlite:PATH` or `postgres://…`. Servers
    /// sharing a store share its queue.
    pub store: String,
    /// How long a server's hold on a run lasts unless renewed: a server
    /// that dies leaves its runs to the others (or to itself, started
    /// again) this long after its last renewal.
    pub lease: Duration,
    /// The hosts a run's `callbackUrl` may name (`host` or `host:port`;
    /// `*` for any). None by default: a callback makes the server send a
    /// request wherever it is told to.
    pub callback_hosts: Vec<String>,
    /// How long ended runs are kept, with their logs.
    pub retention: Duration,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Runs at once, at most; the others wait in the queue.
    pub max_running: usize,
    /// Bytes of log kept per run; the rest is cut, and the run says so.
    pub log_bytes: i64,
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// How long open connections get to close at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Runs at once, at most, whatever `max_running` says.
const MAX_PLACES: usize = 100_000;

/// The shortest lease: renewed three times a lease, and a renewal must
/// not crowd the store.
const MIN_LEASE: Duration = Duration::from_secs(1);

/// How long runs on the local runtime get to stop at shutdown.
const STOP_WAIT: Duration = Duration::from_secs(60);

/// What the API and the workers share.
pub(crate) struct Shared {
    store: Store,
    hooks: Hooks,
    config: Config,
    runtime: Box<dyn Runtime>,
    /// Each run a worker here runs.
    running: Mutex<HashMap<String, worker::Handle>>,
    /// Bumped at every change of a run or its log: wakes log followers.
    changes: watch::Sender<u64>,
    /// Wakes the queue when a run is submitted.
    queued: Notify,
    /// Free places for runs.
    slots: Arc<Semaphore>,
    /// All places.
    places: usize,
    log_bytes: i64,
    lease: Duration,
    callback_hosts: Vec<String>,
    retention: Duration,
    metrics: metrics::Metrics,
    /// Claims in flight (see `worker::renew`).
    claiming: std::sync::atomic::AtomicUsize,
    /// Tenants' submits per minute.
    rates: api::RateLimits,
}

impl Shared {
    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// A server bound to its address, its store open, not yet serving.
pub struct Server {
    shared: Arc<Shared>,
    listener: TcpListener,
}

impl Server {
    /// Opens the store (applying its migrations) and binds the address.
    pub async fn bind(options: Options) -> Result<Server, Error> {
        // Unique per process: a server started again takes its old runs
        // over as any other server would.
        let owner = format!("{}-{}", std::process::id(), podrun::run_id::new());
        let limits = store::Limits {
            applications: options
                .config
                .applications
                .iter()
                .filter_map(|a| Some((a.name.value.0.clone(), a.max_running?.get())))
                .collect(),
            tenants: options
                .config
                .tenants
                .iter()
                .filter_map(|t| Some((t.name.value.0.clone(), t.max_concurrent?.get())))
                .collect(),
        };
        let store = Store::open(&options.store, &owner)
            .await?
            .with_limits(limits);
        let listener = TcpListener::bind(options.listen)
            .await
            .map_err(|source| Error::Listen {
                addr: options.listen,
                source,
            })?;
        if options.config.tenants.is_empty() && !options.listen.ip().is_loopback() {
            tracing::warn!(
                "{} has no tenants, so anyone who reaches {} may submit runs: \
                 add `tenants:` with tokens, or listen on a loopback address",
                options.config.path.display(),
                options.listen
            );
        }
        if !options.config.tenants.is_empty() && !options.listen.ip().is_loopback() {
            tracing::warn!(
                "tenants' tokens travel in the clear to {}: serve it behind a TLS proxy",
                options.listen
            );
        }
        let places = options.max_running.clamp(1, MAX_PLACES);
        let shared = Arc::new(Shared {
            store,
            hooks: options.hooks,
            config: options.config,
            runtime: options.runtime,
            running: Mutex::new(HashMap::new()),
            changes: watch::Sender::new(0),
            queued: Notify::new(),
            slots: Arc::new(Semaphore::new(places)),
            places,
            log_bytes: options.log_bytes,
            lease: options.lease.max(MIN_LEASE),
            callback_hosts: options.callback_hosts,
            retention: options.retention,
            metrics: metrics::Metrics::new(),
            claiming: std::sync::atomic::AtomicUsize::new(0),
            rates: api::RateLimits::default(),
        });
        Ok(Server { shared, listener })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.listener.local_addr().map_err(Error::Serve)
    }

    /// Serves until `shutdown` resolves, taking queued runs and the runs
    /// of servers that stopped. At shutdown, runs on a cluster are left
    /// as they are and their leases given up: another server, or this one
    /// started again, follows them at once.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let tasks = [
            tokio::spawn(worker::take_over(self.shared.clone())),
            tokio::spawn(worker::queue(self.shared.clone())),
            tokio::spawn(worker::renew(self.shared.clone())),
            tokio::spawn(callback::deliver(self.shared.clone())),
            tokio::spawn(worker::sweep(self.shared.clone())),
        ];
        let app = api::router(self.shared.clone());
        let (stop, stopping) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let mut stopped = stopping.clone();
        let serving = axum::serve(self.listener, app).with_graceful_shutdown(async move {
            let mut stopping = stopping;
            let _ = stopping.wait_for(|s| *s).await;
        });
        // Open log streams would hold a graceful shutdown forever: they
        // get a few seconds, then the server stops all the same (their
        // clients resume from the offset they reached).
        let served = tokio::select! {
            served = serving => served.map_err(Error::Serve),
            _ = async {
                let _ = stopped.wait_for(|s| *s).await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => Ok(()),
        };
        for task in &tasks {
            task.abort();
        }
        // A cluster's pods run on without the server, and the next start
        // follows them. The local runtime's processes would be orphaned:
        // they are stopped with their grace period, and their runs end
        // cancelled.
        if !self.shared.runtime.reattaches() {
            let cancels: Vec<Cancel> = self
                .shared
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .map(|h| h.cancel.clone())
                .collect();
            for cancel in cancels {
                cancel.cancel(Reason::Terminate);
            }
            let all = u32::try_from(self.shared.places).unwrap_or(u32::MAX);
            let _ = tokio::time::timeout(STOP_WAIT, self.shared.slots.acquire_many(all)).await;
        } else if let Err(e) = self.shared.store.release_leases().await {
            tracing::warn!("cannot give up leases: {e}; they run out by themselves");
        }
        served
    }
}
