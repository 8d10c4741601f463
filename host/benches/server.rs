//! `podrun serve` on the local runtime under load: 1,000 runs in flight at
//! once (each `sleep 40`), the server process's resident memory added per
//! run in flight (goal: <= 64 KB), `POST /v1/runs` latency while they run
//! (goal: p99 <= 20 ms), and submit -> pod started when below the
//! concurrency limit (criterion; goal: median <= 50 ms).
//!
//! `cargo bench -p podrun-cli --bench server` (needs a few thousand free
//! process slots; as root the runs also get memory cgroups).

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

mod support;
use support::root;

const IN_FLIGHT: usize = 1000;
const DURING: usize = 100;
const ROUNDS: usize = 3;
const CLIENTS: usize = 4;
/// Each run's length: the last of the 1,000 is submitted while the first
/// still run.
const SLEEP: &str = "20";

struct Server {
    child: Child,
    base: String,
    agent: ureq::Agent,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_podrun"));
        command
            .env("PODRUN_CACHE_DIR", root().join("target/bench-hook-cache"))
            .env_remove("KUBECONFIG")
            .args(["serve", "--runtime", "local", "--listen", "127.0.0.1:0"])
            .args(["--max-running", &(IN_FLIGHT + DURING + 50).to_string()])
            .arg("-p")
            .arg(root().join("examples/hello"))
            .arg("--store")
            .arg(format!("sqlite:{}", dir.path().join("runs.db").display()));
        let (child, base) = support::serve(&mut command);
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Server {
            child,
            base,
            agent,
            _dir: dir,
        }
    }

    /// Submits `args`; the run id and how long the answer took.
    fn submit(&self, args: &[&str]) -> (String, Duration) {
        let start = Instant::now();
        let mut answer = self
            .agent
            .post(format!("{}/v1/runs", self.base))
            .header("content-type", "application/json")
            .send(json!({"application": "hello", "args": args}).to_string())
            .unwrap();
        let took = start.elapsed();
        assert_eq!(answer.status().as_u16(), 201);
        let run: Value =
            serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap();
        (run["id"].as_str().unwrap().to_string(), took)
    }

    fn state(&self, id: &str) -> String {
        let mut answer = self
            .agent
            .get(format!("{}/v1/runs/{id}", self.base))
            .call()
            .unwrap();
        let run: Value =
            serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap();
        run["state"].as_str().unwrap_or_default().to_string()
    }

    /// Runs in each state, from the server's metrics.
    fn count(&self, state: &str) -> usize {
        let mut answer = self
            .agent
            .get(format!("{}/metrics", self.base))
            .call()
            .unwrap();
        let text = answer.body_mut().read_to_string().unwrap();
        let prefix = format!("podrun_runs{{state=\"{state}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    fn wait_for(&self, state: &str, n: usize, within: Duration) {
        let start = Instant::now();
        while self.count(state) < n {
            assert!(
                start.elapsed() < within,
                "{} runs {state} of {n} after {within:?}",
                self.count(state)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server process's resident memory, in bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        kb * 1024
    }

    /// Submit -> its pod started (the run `running`), polled every 2 ms.
    fn submit_to_started(&self) -> Duration {
        let start = Instant::now();
        let (id, _) = self.submit(&["sleep", "0.2"]);
        while self.state(&id) != "running" {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "run {id} never ran"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        start.elapsed()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Round {
    kb_per_run: f64,
    burst_rate: f64,
    burst_p99: Duration,
    during_p50: Duration,
    during_p99: Duration,
}

fn round(server: &Server, idle: u64, ended_before: usize) -> Round {
    let begin = Instant::now();
    // Submitted by a few clients at once, as schedulers would.
    let mut burst: Vec<Duration> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                scope.spawn(|| {
                    (0..IN_FLIGHT / CLIENTS)
                        .map(|_| server.submit(&["sleep", SLEEP]).1)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    let burst_rate = IN_FLIGHT as f64 / begin.elapsed().as_secs_f64();
    server.wait_for("running", IN_FLIGHT, Duration::from_secs(60));
    // The server's own memory with every run in flight: the median of a
    // few samples.
    let mut samples: Vec<u64> = (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(300));
            server.rss()
        })
        .collect();
    samples.sort();
    let added = samples[2].saturating_sub(idle);
    // Submits while they run.
    let mut during: Vec<Duration> = (0..DURING).map(|_| server.submit(&["true"]).1).collect();
    server.wait_for(
        "succeeded",
        ended_before + IN_FLIGHT + DURING,
        Duration::from_secs(150),
    );
    assert_eq!(server.count("failed"), 0, "every run succeeds");
    burst.sort();
    during.sort();
    Round {
        kb_per_run: added as f64 / IN_FLIGHT as f64 / 1024.0,
        burst_rate,
        burst_p99: percentile(&burst, 0.99),
        during_p50: percentile(&during, 0.5),
        during_p99: percentile(&during, 0.99),
    }
}

fn bench(c: &mut Criterion) {
    let server = Server::start();
    // Warm: hooks compiled, the store's pages touched.
    for _ in 0..20 {
        server.submit_to_started();
    }
    let mut group = c.benchmark_group("server");
    group.sample_size(30);
    group.bench_function("submit -> pod started (local, below the limit)", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| server.submit_to_started()).sum())
    });
    group.finish();

    let settled = server.count("succeeded");
    std::thread::sleep(Duration::from_secs(1));
    let idle = server.rss();
    let mut rounds = Vec::new();
    let mut ended = settled;
    for n in 0..ROUNDS {
        let r = round(&server, idle, ended);
        ended += IN_FLIGHT + DURING;
        println!(
            "round {}: {IN_FLIGHT} runs in flight, all succeeded; submitted at {:.0}/s by {CLIENTS} clients; server RSS +{:.1} KB per run; POST p99 {:.1} ms during the burst; while they ran p50 {:.1} ms, p99 {:.1} ms",
            n + 1,
            r.burst_rate,
            r.kb_per_run,
            ms(r.burst_p99),
            ms(r.during_p50),
            ms(r.during_p99)
        );
        rounds.push(r);
    }
    let spread = |f: &dyn Fn(&Round) -> f64| {
        let mut v: Vec<f64> = rounds.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let (kb, kb_min, kb_max) = spread(&|r| r.kb_per_run);
    let (p99, p99_min, p99_max) = spread(&|r| ms(r.during_p99));
    println!(
        "server: idle RSS {} MB; RSS added per run in flight: median {kb:.1} KB (min {kb_min:.1}, max {kb_max:.1}; goal <= 64); POST p99 while {IN_FLIGHT} run: median {p99:.1} ms (min {p99_min:.1}, max {p99_max:.1}; goal <= 20) over {ROUNDS} rounds",
        idle >> 20
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
