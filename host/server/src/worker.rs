//! Workers: take queued runs from the store, run them with podrun's
//! library, and store what they print and how they end.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use podrun::cancel::{Cancel, Reason};
use podrun::context::RunContext;
use podrun::exit::Code;
use podrun::lifecycle::{self, Io, Notice, Options, RunError, Sink};
use podrun::result::RunResult;
use podrun::runtime::StartError;
use podrun::runtime::Stdin;
use podrun::runtime::kube::KubeError;
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc};

use crate::Shared;
use crate::resume::{self, Overlap, Resume};
use crate::state::State;
use crate::store::{Gap, Work};

/// What a server keeps of each run it runs.
#[derive(Clone)]
pub(crate) struct Handle {
    /// Stops the run's pod (a cancel over the API).
    pub(crate) cancel: Cancel,
    /// Stops following the run without touching its pod: another server
    /// holds it now.
    abandon: Arc<Notify>,
}

/// Takes queued runs while a place is free, for as long as the server
/// runs.
pub(crate) async fn queue(shared: Arc<Shared>) {
    loop {
        let Ok(permit) = shared.slots.clone().acquire_owned().await else {
            return;
        };
        let claiming = Claiming::new(&shared);
        match shared.store.claim(shared.lease).await {
            Ok(Some(work)) => {
                shared.changed();
                follow(&shared, work, false, permit);
                drop(claiming);
            }
            Ok(None) => {
                drop(claiming);
                drop(permit);
                // A submit here wakes the queue; the timer finds runs
                // submitted to other servers.
                tokio::select! {
                    _ = shared.queued.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            Err(e) => {
                drop(claiming);
                drop(permit);
                tracing::warn!("cannot take a queued run: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Takes over the runs whose server stopped or died (their lease ran
/// out), for as long as the server runs: on a runtime whose pods outlive
/// their server they are followed again (the pod is found by its run id,
/// never created twice); on one whose pods die with it they end `lost`.
pub(crate) async fn take_over(shared: Arc<Shared>) {
    loop {
        let Ok(permit) = shared.slots.clone().acquire_owned().await else {
            return;
        };
        let claiming = Claiming::new(&shared);
        match shared.store.take_over(shared.lease).await {
            // This server's own lease ran out (the store was away for
            // longer) while it went on following the run: it still does.
            Ok(Some(work)) if lock(&shared.running).contains_key(&work.id) => drop(permit),
            Ok(Some(work)) if shared.runtime.reattaches() => {
                tracing::info!("following run {} again", work.id);
                follow(&shared, work, true, permit);
                drop(claiming);
            }
            Ok(Some(work)) => {
                drop(claiming);
                drop(permit);
                lose(&shared, &work).await;
            }
            Ok(None) => {
                drop(claiming);
                drop(permit);
                tokio::time::sleep(shared.lease / 3).await;
            }
            Err(e) => {
                drop(claiming);
                drop(permit);
                tracing::warn!("cannot take over runs: {e}");
                tokio::time::sleep(shared.lease / 3).await;
            }
        }
    }
}

/// Counts a claim in flight: until it has registered the run it took,
/// leases held but not followed may be that run's.
struct Claiming<'a>(&'a AtomicUsize);

impl<'a> Claiming<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.claiming.fetch_add(1, Ordering::SeqCst);
        Claiming(&shared.claiming)
    }
}

impl Drop for Claiming<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers `work` as followed here, then runs it.
fn follow(shared: &Arc<Shared>, work: Work, resumed: bool, permit: OwnedSemaphorePermit) {
    let handle = Handle {
        cancel: Cancel::new(),
        abandon: Arc::new(Notify::new()),
    };
    lock(&shared.running).insert(work.id.clone(), handle.clone());
    tokio::spawn(execute(shared.clone(), work, resumed, permit, handle));
}

/// Ends a run taken over on a runtime whose containers died with the
/// server that ran them.
async fn lose(shared: &Shared, work: &Work) {
    let lost = RunResult {
        run_id: work.id.clone(),
        runtime: shared.runtime.name().into(),
        outcome: "lost".into(),
        reason: "ServerGone".into(),
        message: format!(
            "the server running it stopped while the run was {}; the {} runtime's \
             containers do not outlive it, so the run cannot be followed again",
            work.state,
            shared.runtime.name()
        ),
        exit_code: Code::Cluster.number(),
        retryable: true,
        ..RunResult::default()
    };
    match shared
        .store
        .finish(&work.id, State::Lost, Some(&json(&lost)), None)
        .await
    {
        Ok(ended) => {
            if ended {
                shared.metrics.run_ended(State::Lost);
            }
            shared.changed();
        }
        // Still taken by this server: its lease runs out, and the next
        // try ends it.
        Err(e) => tracing::warn!("cannot end lost run {}: {e}", work.id),
    }
}

/// Renews this server's leases for as long as it runs; hears of cancels
/// asked on other servers, and lets go of runs another server took.
pub(crate) async fn renew(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(shared.lease / 3).await;
        // Taken before the renewal: a run claimed meanwhile is not in
        // its answer, and must not look taken by another server.
        let handles: Vec<(String, Handle)> = shared
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, h)| (id.clone(), h.clone()))
            .collect();
        let held = match shared.store.renew(shared.lease).await {
            Ok(held) => held,
            Err(e) => {
                // Runs go on; if the store stays away past the lease,
                // another server takes them and this one is fenced off.
                tracing::warn!("cannot renew leases: {e}");
                continue;
            }
        };
        let held: HashMap<String, bool> = held.into_iter().collect();
        // Held but followed by no worker here (its claim could not read
        // it, or its worker is gone): let another server (or this one)
        // take it over.
        if shared.claiming.load(Ordering::SeqCst) == 0 {
            let following: Vec<String> = lock(&shared.running).keys().cloned().collect();
            for id in held.keys().filter(|id| !following.contains(id)) {
                tracing::warn!("run {id} is held here but not followed: letting it go");
                let _ = shared.store.release_lease(id).await;
            }
        }
        for (id, handle) in handles {
            match held.get(&id) {
                Some(true) => handle.cancel.cancel(Reason::Request),
                Some(false) => {}
                None => handle.abandon.notify_one(),
            }
        }
    }
}

/// Deletes ended runs past their retention, for as long as the server
/// runs; in batches, so the store is never held long.
pub(crate) async fn sweep(shared: Arc<Shared>) {
    let every = (shared.retention / 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::time::sleep(every).await;
        let keep = i64::try_from(shared.retention.as_millis()).unwrap_or(i64::MAX);
        let before = crate::store::now().saturating_sub(keep);
        loop {
            match shared.store.sweep(before, 500).await {
                Ok(500) => tokio::task::yield_now().await,
                Ok(n) => {
                    if n > 0 {
                        tracing::info!("deleted {n} runs past retention");
                        shared.changed();
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!("cannot delete runs past retention: {e}");
                    break;
                }
            }
        }
    }
}

/// Runs `work` to its end and stores it; `resumed` for a run another
/// server (or this one before a restart) had started.
async fn execute(
    shared: Arc<Shared>,
    work: Work,
    resumed: bool,
    _slot: OwnedSemaphorePermit,
    handle: Handle,
) {
    let id = work.id.clone();
    // Unregistered however this ends, a panic included.
    struct Registered<'a>(&'a Shared, &'a str);
    impl Drop for Registered<'_> {
        fn drop(&mut self) {
            lock(&self.0.running).remove(self.1);
        }
    }
    let registered = Registered(&shared, &id);
    let result = tokio::select! {
        result = run(&shared, work, resumed, handle.clone()) => Some(result),
        _ = handle.abandon.notified() => None,
    };
    // Registered until its end is stored: a renewal meanwhile must not
    // take it for a run nobody follows.
    let result = match result {
        Some(Ok(result)) => result,
        Some(Err(GiveUp(why))) => {
            tracing::warn!("run {id}: {why}; letting another server take it");
            let _ = Box::pin(shared.store.release_lease(&id)).await;
            // Not taken again at once by a server that cannot follow it.
            tokio::time::sleep(Duration::from_secs(1)).await;
            return;
        }
        None => {
            tracing::warn!("run {id} is held by another server now: no longer followed here");
            return;
        }
    };
    let state = match result.outcome.as_str() {
        "succeeded" => State::Succeeded,
        "interrupted" => State::Cancelled,
        "lost" => State::Lost,
        _ => State::Failed,
    };
    let text = json(&result);
    // The store may be down for a while: the run has ended all the same,
    // and its end is written once the store is back (unless another
    // server took the run meanwhile, and ends it itself).
    let mut wait = Duration::from_millis(100);
    loop {
        match Box::pin(shared.store.finish(&id, state, Some(&text), None)).await {
            Ok(ended) => {
                if ended {
                    shared.metrics.run_ended(state);
                }
                break;
            }
            Err(e) => {
                tracing::warn!("cannot store the end of run {id}: {e}; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
    drop(registered);
    // A place is free: for an application at its limit too.
    shared.queued.notify_one();
    shared.changed();
}

/// Why a worker stopped before the run's pod was followed: the run is
/// left to be taken over, not ended.
struct GiveUp(String);

async fn run(
    shared: &Arc<Shared>,
    mut work: Work,
    resumed: bool,
    handle: Handle,
) -> Result<RunResult, GiveUp> {
    let cancel = handle.cancel;
    let failed = |reason: &str, message: String, code: Code| RunResult {
        run_id: work.id.clone(),
        runtime: shared.runtime.name().into(),
        outcome: "failed".into(),
        reason: reason.into(),
        message,
        exit_code: code.number(),
        ..RunResult::default()
    };
    // What is kept across the awaits below is kept for the whole run,
    // for every run in flight: the pod boxed, the store's and the hooks'
    // futures boxed as they are awaited, and the JSON dropped once parsed.
    let (pod_json, context_json) = (
        std::mem::take(&mut work.pod),
        std::mem::take(&mut work.context),
    );
    let pod: Box<Pod> = match serde_json::from_str(&pod_json) {
        Ok(p) => p,
        Err(e) => {
            return Ok(failed(
                "StoreCorrupt",
                format!("the stored pod: {e}"),
                Code::Usage,
            ));
        }
    };
    let context: RunContext = match serde_json::from_str(&context_json) {
        Ok(c) => c,
        Err(e) => {
            return Ok(failed(
                "StoreCorrupt",
                format!("the stored context: {e}"),
                Code::Usage,
            ));
        }
    };
    drop((pod_json, context_json));
    // Servers sharing a store may run different runtimes: the one that
    // runs the run decides.
    if let Err(e) = podrun::pipeline::check_runtime(
        &shared.config,
        context.tenant.as_deref(),
        shared.runtime.name(),
    ) {
        // A resumed run's pod may be running: left to a server that may
        // follow it, not ended with its pod unwatched.
        if resumed {
            return Err(GiveUp(e.to_string()));
        }
        return Ok(failed("NotAllowed", e.to_string(), e.exit_code()));
    }
    let classifiers = match Box::pin(podrun::pipeline::classifiers(
        &shared.hooks,
        &shared.config,
        &work.application,
        context.tenant.as_deref(),
    ))
    .await
    {
        Ok(c) => c,
        // A resumed run's pod may be running: it is left to a server
        // that can load the hooks, not ended with its pod unwatched.
        Err(e) if resumed => return Err(GiveUp(format!("its classifiers: {e}"))),
        Err(e) => return Ok(failed("HookFailed", e.to_string(), e.exit_code())),
    };
    // A log already cut stores nothing more: nothing to match.
    let skip = match work.log_truncated {
        true => HashMap::new(),
        false => match Box::pin(resume::stored(&shared.store, &work.id)).await {
            Ok(s) => s,
            Err(e) => return Err(GiveUp(format!("cannot read its log: {e}"))),
        },
    };
    // A pod that may have been created is only ever followed: if it is
    // gone, the run ends lost rather than running twice. The mark is
    // stored before the pod is created.
    let follow_only = resumed && (work.state == State::Running || work.pod_requested);
    if !follow_only && shared.runtime.reattaches() {
        match Box::pin(shared.store.request_pod(&work.id)).await {
            Ok(true) => {}
            Ok(false) => return Err(GiveUp("another server holds it".into())),
            Err(e) => return Err(GiveUp(format!("cannot mark its pod as requested: {e}"))),
        }
    }
    // A cancel asked for before this worker could hear it. A resumed run's
    // pod may be running: it is found first, then stopped.
    let mut cancel_on_start = None;
    let asked = work.cancel_requested
        || matches!(Box::pin(shared.store.get(&work.id)).await, Ok(Some(r)) if r.cancel_requested);
    if asked {
        if resumed {
            cancel_on_start = Some(cancel.clone());
        } else {
            cancel.cancel(Reason::Request);
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write(
        shared.clone(),
        work.id.clone(),
        handle.abandon,
        (work.log_lines, work.log_bytes, work.log_truncated),
        rx,
    ));
    let mut sink = StoreSink {
        shared: shared.clone(),
        tx,
        bytes: work.log_bytes,
        cap: shared.log_bytes,
        truncated: work.log_truncated,
        skip,
        gaps: 0,
        run_id: work.id.clone(),
        cancel_on_start,
    };
    let io = Io {
        cancel,
        stdin: work
            .stdin
            .map(|bytes| Box::new(Cursor::new(bytes)) as Stdin),
        sink: &mut sink,
    };
    // A run abandoned to another server leaves its pod to that server.
    let options = Options {
        existing_only: follow_only,
        keep_when_dropped: true,
        ..Options::default()
    };
    let ran = lifecycle::run(
        shared.runtime.as_ref(),
        pod,
        &context,
        &classifiers,
        &options,
        io,
    )
    .await;
    sink.finish();
    drop(sink);
    // Every line is stored before the run's end is: a client following
    // the log has all of it once it sees the run ended.
    let _ = writer.await;
    Ok(match ran {
        Ok(result) => result,
        Err(RunError::Start(StartError::Kube(e @ KubeError::NoPod(_)))) => RunResult {
            outcome: "lost".into(),
            reason: "PodGone".into(),
            message: format!(
                "{e} while no server watched it: how it ended is not known, and it is not run again"
            ),
            retryable: true,
            ..failed("PodGone", String::new(), Code::Cluster)
        },
        Err(e) => failed("RunFailed", e.to_string(), e.exit_code()),
    })
}

fn json(result: &RunResult) -> String {
    serde_json::to_string(result).unwrap_or_else(|_| "{}".into())
}

/// What a run's sink hands to its log writer.
enum Msg {
    Line(String, Vec<u8>),
    /// The log reached its cap: what follows is not stored.
    Truncated,
    /// Lines may be missing here.
    Gap(Option<String>, String),
    Started,
}

/// Container output and notices of one run, sent to its writer in order.
struct StoreSink {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Msg>,
    bytes: i64,
    cap: i64,
    truncated: bool,
    /// Lines already stored per container: a resumed run's pod shows its
    /// log again from the start, and those are not stored twice.
    skip: HashMap<String, Resume>,
    /// Gaps said so far.
    gaps: usize,
    run_id: String,
    /// Cancelled once the pod is found (a cancel asked for while no
    /// server followed the run).
    cancel_on_start: Option<Cancel>,
}

/// Gaps stored per run and server; more say nothing new.
const MAX_GAPS: usize = 100;

impl StoreSink {
    fn line(&mut self, container: &str, line: &[u8]) {
        if let Some(resume) = self.skip.get_mut(container)
            && resume.open()
        {
            if let Some(overlap) = resume.next(line) {
                self.resumed(container, overlap);
            }
            return;
        }
        self.store(container, line);
    }

    fn resumed(&mut self, container: &str, overlap: Overlap) {
        if let Some(why) = overlap.gap {
            self.gap(
                Some(container),
                format!("the log of container {container} {why}"),
            );
        }
        for line in overlap.new {
            self.store(container, &line);
        }
    }

    /// Settles the logs that ended before their overlap was known: what
    /// they kept is not dropped, and a gap is said.
    fn finish(&mut self) {
        let open: Vec<(String, Overlap)> = self
            .skip
            .iter_mut()
            .filter(|(_, r)| r.open())
            .map(|(c, r)| (c.clone(), r.settle()))
            .collect();
        for (container, overlap) in open {
            self.resumed(&container, overlap);
        }
    }

    fn store(&mut self, container: &str, line: &[u8]) {
        if self.truncated {
            return;
        }
        self.bytes += line.len() as i64 + 1;
        if self.bytes > self.cap {
            self.truncated = true;
            let _ = self.tx.send(Msg::Truncated);
            return;
        }
        let _ = self
            .tx
            .send(Msg::Line(container.to_string(), line.to_vec()));
    }

    fn gap(&mut self, container: Option<&str>, message: String) {
        tracing::warn!("run {}: {message}", self.run_id);
        if self.truncated || self.gaps >= MAX_GAPS {
            return;
        }
        self.gaps += 1;
        let _ = self
            .tx
            .send(Msg::Gap(container.map(str::to_string), message));
    }
}

impl Sink for StoreSink {
    fn log(&mut self, container: &str, lines: &[u8]) {
        for line in lines.split_inclusive(|b| *b == b'\n') {
            self.line(container, line.strip_suffix(b"\n").unwrap_or(line));
        }
    }

    fn notice(&mut self, notice: Notice<'_>) {
        match notice {
            Notice::Started { reattached, .. } => {
                self.shared.metrics.pod_started(reattached);
                let _ = self.tx.send(Msg::Started);
                if let Some(cancel) = self.cancel_on_start.take() {
                    cancel.cancel(Reason::Request);
                }
            }
            Notice::Warning(w) => tracing::warn!("run {}: {w}", self.run_id),
            Notice::LogGap { container, message } => self.gap(container, message.to_string()),
            Notice::Prepared(_) | Notice::Status { .. } | Notice::Observed { .. } => {}
        }
    }
}

/// Stores a run's lines in batches, in order; retries while the store is
/// down, so that no line is lost.
async fn write(
    shared: Arc<Shared>,
    id: String,
    abandon: Arc<Notify>,
    (mut next, mut bytes, mut truncated): (i64, i64, bool),
    mut rx: mpsc::UnboundedReceiver<Msg>,
) {
    let mut batch: Vec<(String, Vec<u8>)> = Vec::new();
    let mut gaps: Vec<Gap> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut started = false;
        let mut msg = Some(first);
        while let Some(m) = msg {
            match m {
                Msg::Line(container, line) => {
                    bytes += line.len() as i64 + 1;
                    batch.push((container, line));
                }
                Msg::Truncated => truncated = true,
                Msg::Gap(container, message) => gaps.push(Gap {
                    at: next + batch.len() as i64,
                    container,
                    message,
                }),
                Msg::Started => started = true,
            }
            msg = if batch.len() < 1000 {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        let mut wait = Duration::from_millis(100);
        while !batch.is_empty() || !gaps.is_empty() || truncated {
            match shared
                .store
                .append_logs(&id, next, &batch, &gaps, bytes, truncated)
                .await
            {
                Ok(true) => break,
                Ok(false) => {
                    // Another server holds the run: it reads the pod's
                    // log itself.
                    abandon.notify_one();
                    return;
                }
                Err(e) => {
                    tracing::warn!("cannot store the log of run {id}: {e}; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
        next += batch.len() as i64;
        batch.clear();
        gaps.clear();
        if started {
            while let Err(e) = shared.store.running(&id).await {
                tracing::warn!("cannot store that run {id} runs: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        shared.changed();
    }
}

#[cfg(test)]
mod tests {
    fn future_size<A, B, C, D, E, F: std::future::Future>(_: fn(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Each run in flight holds its worker's future for as long as it
    /// runs: the server's memory per run (a goal of the server bench)
    /// grows with it. It was 14 KB before the pod and the one-off store
    /// and hook calls were boxed.
    #[test]
    fn a_run_in_flight_holds_a_small_future() {
        let size = future_size(super::execute as fn(_, _, _, _, _) -> _);
        assert!(size <= 5 * 1024, "the worker's future takes {size} bytes");
    }
}
