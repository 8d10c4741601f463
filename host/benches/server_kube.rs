//! `podrun serve` on a real cluster (`KUBECONFIG`; image `busybox:local`):
//!
//! - 100 runs at once (a node takes 110 pods): all succeed, and the API
//!   server counts one more pod watch for all of them
//!   (`apiserver_registered_watchers`), where 100 `podrun run` processes
//!   add one each;
//! - submit -> pod created, below the concurrency limit (criterion; goal:
//!   median <= 50 ms).
//!
//! `KUBECONFIG=… cargo bench -p podrun-cli --bench server_kube`

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

mod support;
use support::root;

const RUNS: usize = 100;

const TEMPLATE: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Name }}-{{ .UniqueId }}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: {{ .Name }}\n    image: {{ .Container.Image }}\n    imagePullPolicy: IfNotPresent\n    args: [{{ .Container.Arguments }}]\n";

fn write_app(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("app.tmpl"), TEMPLATE).unwrap();
    let config = dir.join("pod-runner.yaml");
    std::fs::write(
        &config,
        "applications:\n- name: worker\n  template: app.tmpl\n  container:\n    image: busybox:local\n",
    )
    .unwrap();
    config
}

/// The API server's count of registered pod watches.
fn pod_watches() -> usize {
    let out = Command::new("kubectl")
        .args(["get", "--raw", "/metrics"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("apiserver_registered_watchers{group=\"\",kind=\"Pod\",version=\"v1\"} ")
        })
        .and_then(|n| n.trim().parse().ok())
        .expect("apiserver_registered_watchers for pods")
}

struct Server {
    child: Child,
    base: String,
    agent: ureq::Agent,
}

impl Server {
    fn start(config: &Path, store: &Path) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_podrun"));
        command
            .env("PODRUN_CACHE_DIR", root().join("target/bench-hook-cache"))
            .args([
                "serve",
                "--runtime",
                "kube",
                "--listen",
                "127.0.0.1:0",
                "--config",
            ])
            .arg(config)
            .arg("--store")
            .arg(format!("sqlite:{}", store.display()));
        let (child, base) = support::serve(&mut command);
        Server {
            child,
            base,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into(),
        }
    }

    fn submit(&self, script: &str) -> String {
        let mut answer = self
            .agent
            .post(format!("{}/v1/runs", self.base))
            .header("content-type", "application/json")
            .send(json!({"application": "worker", "args": ["sh", "-c", script]}).to_string())
            .unwrap();
        assert_eq!(answer.status().as_u16(), 201);
        let run: Value =
            serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap();
        run["id"].as_str().unwrap().to_string()
    }

    fn run(&self, id: &str) -> Value {
        let mut answer = self
            .agent
            .get(format!("{}/v1/runs/{id}", self.base))
            .call()
            .unwrap();
        serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pods of podrun's running now.
fn running_pods() -> usize {
    let out = Command::new("kubectl")
        .args([
            "get",
            "pods",
            "-l",
            "podrun.dev/run-id",
            "--field-selector=status.phase=Running",
            "-o",
            "name",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Samples, until `done` says so, the most pods of podrun's running at
/// once and the most pod watches the API server had meanwhile.
fn peaks(done: impl Fn() -> bool) -> (usize, usize) {
    let (mut pods, mut watches) = (0, 0);
    let start = Instant::now();
    while !done() {
        pods = pods.max(running_pods());
        watches = watches.max(pod_watches());
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "the runs never ended"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    (pods, watches)
}

/// Submit -> the pod exists, seen by a watch on its run id.
fn submit_to_created(rt: &tokio::runtime::Runtime, server: &Server) -> Duration {
    let client = rt.block_on(kube::Client::try_default()).unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client);
    let start = Instant::now();
    let id = server.submit("true");
    let config = watcher::Config::default().labels(&format!("podrun.dev/run-id={id}"));
    let seen = rt.block_on(async {
        let mut stream = watcher(pods, config).applied_objects().boxed();
        stream.next().await;
        start.elapsed()
    });
    // The run goes on to its end before the next.
    while !matches!(
        server.run(&id)["state"].as_str(),
        Some("succeeded" | "failed")
    ) {
        std::thread::sleep(Duration::from_millis(50));
    }
    seen
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_app(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let before = pod_watches();
    let server = Server::start(&config, &dir.path().join("runs.db"));
    let ids: Vec<String> = (0..RUNS).map(|_| server.submit("sleep 60")).collect();
    let ended = |id: &String| {
        matches!(
            server.run(id)["state"].as_str(),
            Some("succeeded" | "failed" | "lost" | "cancelled")
        )
    };
    let (server_pods, server_watches) = peaks(|| ids.iter().all(ended));
    let failed = ids
        .iter()
        .filter(|id| server.run(id)["state"] != "succeeded")
        .count();
    assert_eq!(failed, 0, "every run succeeds");

    // The same hundred as `podrun run` processes.
    while running_pods() > 0 {
        std::thread::sleep(Duration::from_millis(500));
    }
    let idle = pod_watches();
    let cli: Vec<std::sync::Mutex<Child>> = (0..RUNS)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_podrun"))
                .env("PODRUN_CACHE_DIR", root().join("target/bench-hook-cache"))
                .args(["run", "--runtime", "kube", "--config"])
                .arg(&config)
                .args(["-a", "worker", "-c", "sh -c 'sleep 60'"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .map(std::sync::Mutex::new)
        .collect();
    let (cli_pods, cli_watches) = peaks(|| {
        cli.iter()
            .all(|c| c.lock().unwrap().try_wait().unwrap().is_some())
    });
    let cli_ok = cli
        .iter()
        .filter(|c| c.lock().unwrap().wait().unwrap().success())
        .count();
    println!(
        "{RUNS} runs through one server, all succeeded: at most {server_pods} pods running at once; API server pod watches {before} before, at most {server_watches} meanwhile (+{})",
        server_watches.saturating_sub(before)
    );
    println!(
        "{RUNS} podrun run processes, {cli_ok} succeeded: at most {cli_pods} pods running at once; pod watches {idle} before, at most {cli_watches} meanwhile (+{})",
        cli_watches.saturating_sub(idle)
    );

    let mut group = c.benchmark_group("server_kube");
    group.sample_size(20);
    group.bench_function("submit -> pod created (below the limit)", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| submit_to_created(&rt, &server)).sum())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
