//! 1,000 runs at once in one process, through the replay runtime, with the
//! real default hooks: render, the four default mutate hooks, and the
//! default classifier on each observation. Every run must succeed, hook
//! instances in use must never exceed the pool, and the resident memory
//! added per run in flight is reported (goal: ≤ 64 KB).
//!
//! `cargo bench -p podrun --bench runs`

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::Pod;
use podrun::cancel::Cancel;
use podrun::config::Config;
use podrun::hooks::{EngineOptions, Hooks};
use podrun::lifecycle::{Io, Notice, Options, Sink};
use podrun::pipeline::Request;
use podrun::runtime::replay::{Recorded, ReplayRuntime};

const RUNS: usize = 1000;
const POOL: u32 = 64;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn pod(status: serde_json::Value) -> Box<Pod> {
    Box::new(
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]},
            "status": status,
        }))
        .unwrap(),
    )
}

/// Pending, running for two seconds with some output, succeeded.
fn recording() -> Vec<(Duration, Recorded)> {
    let container = |state: serde_json::Value| {
        serde_json::json!([{"name": "main", "image": "busybox", "imageID": "",
            "ready": false, "restartCount": 0, "state": state}])
    };
    let status = |ms, phase, state| {
        (
            Duration::from_millis(ms),
            Recorded::Status(
                pod(serde_json::json!({"phase": phase, "containerStatuses": container(state)})),
                "[]".into(),
            ),
        )
    };
    let mut steps = vec![
        status(
            0,
            "Pending",
            serde_json::json!({"waiting": {"reason": "ContainerCreating"}}),
        ),
        status(200, "Running", serde_json::json!({"running": {}})),
    ];
    for i in 0..10 {
        steps.push((
            Duration::from_millis(200),
            Recorded::Log("main".into(), format!("line {i}\n").into_bytes()),
        ));
    }
    steps.push(status(
        0,
        "Succeeded",
        serde_json::json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
    ));
    steps.push((Duration::ZERO, Recorded::Finished));
    steps
}

/// Counts what a run shows; keeps nothing.
struct Counting(Arc<AtomicUsize>);

impl Sink for Counting {
    fn log(&mut self, _: &str, _: &[u8]) {}
    fn notice(&mut self, notice: Notice<'_>) {
        if let Notice::Started { .. } = notice {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Gives the heap's free memory back to the system.
fn trim() {
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
}

fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64
}

struct Setup {
    hooks: Hooks,
    config: Arc<Config>,
    replay: ReplayRuntime,
}

impl Setup {
    async fn one(&self, started: Arc<AtomicUsize>) -> bool {
        let request = Request {
            application: "hello".into(),
            arguments: vec!["sh".into(), "-c".into(), "echo hi".into()],
            ..Request::default()
        };
        let mut sink = Counting(started);
        let io = Io {
            cancel: Cancel::new(),
            stdin: None,
            sink: &mut sink,
        };
        let result = podrun::run::run(
            &self.hooks,
            &self.config,
            &request,
            &self.replay,
            &Options::default(),
            io,
        )
        .await;
        matches!(result, Ok(r) if r.outcome == "succeeded")
    }
}

/// What one batch measured.
struct Batch {
    took: Duration,
    rss_added: u64,
    peak_in_use: usize,
}

async fn batch(setup: &Arc<Setup>, idle: u64) -> Batch {
    let started = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let begin = Instant::now();
    let tasks: Vec<_> = (0..RUNS)
        .map(|_| {
            let setup = setup.clone();
            let started = started.clone();
            let finished = finished.clone();
            tokio::spawn(async move {
                let ok = setup.one(started).await;
                finished.fetch_add(1, Ordering::Relaxed);
                ok
            })
        })
        .collect();
    // RSS is sampled while every run is in flight: all started, none done.
    let monitor = {
        let (setup, started, finished) = (setup.clone(), started.clone(), finished.clone());
        tokio::spawn(async move {
            let (mut peak_rss, mut peak_in_use) = (0, 0);
            while finished.load(Ordering::Relaxed) < RUNS {
                peak_in_use = peak_in_use.max(setup.hooks.instances_in_use());
                if started.load(Ordering::Relaxed) == RUNS && finished.load(Ordering::Relaxed) == 0
                {
                    peak_rss = peak_rss.max(rss());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (peak_rss, peak_in_use)
        })
    };
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap());
    }
    let took = begin.elapsed();
    let (peak_rss, peak_in_use) = monitor.await.unwrap();
    assert_eq!(ok, RUNS, "every run succeeds");
    assert!(peak_rss > 0, "RSS was sampled with every run in flight");
    assert!(peak_in_use <= POOL as usize);
    Batch {
        took,
        rss_added: peak_rss.saturating_sub(idle),
        peak_in_use,
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = Config::load(&root().join("examples/hello/pod-runner.yaml")).unwrap();
    let setup = Arc::new(Setup {
        hooks: Hooks::new(EngineOptions {
            pool_size: POOL,
            ..EngineOptions::default()
        })
        .unwrap(),
        config: Arc::new(config),
        replay: ReplayRuntime::new(recording()),
    });
    // A first batch compiles the hooks and touches every slot of the
    // instance pool (its memory is kept resident, bounded by the pool, not
    // by the runs). The heap those runs freed is given back before the
    // idle RSS is read, so each batch's runs are measured on fresh memory.
    let warm = rt.block_on(batch(&setup, 0));
    trim();
    let idle = rss();
    println!(
        "warm-up batch: RSS {} MB at its peak, {} MB idle after it",
        warm.rss_added >> 20,
        idle >> 20
    );
    let mut batches = Vec::new();
    let mut group = c.benchmark_group("runs");
    group.sample_size(10);
    group.bench_function("1000 runs at once (replay, default hooks)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                trim();
                let measured = rt.block_on(batch(&setup, idle));
                total += measured.took;
                batches.push(measured);
            }
            total
        })
    });
    group.finish();
    let mut per_run: Vec<f64> = batches
        .iter()
        .map(|b| b.rss_added as f64 / RUNS as f64 / 1024.0)
        .collect();
    per_run.sort_by(f64::total_cmp);
    let median = per_run[per_run.len() / 2];
    let peak_in_use = batches.iter().map(|b| b.peak_in_use).max().unwrap_or(0);
    println!(
        "resident memory added per run in flight: median {median:.1} KB (min {:.1}, max {:.1}) over {} batches of {RUNS}; idle RSS {} MB; hook instances in use at most {peak_in_use} of {POOL}",
        per_run[0],
        per_run[per_run.len() - 1],
        per_run.len(),
        idle >> 20,
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
