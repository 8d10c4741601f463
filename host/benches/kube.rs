//! The Kubernetes runtime on a real cluster (`KUBECONFIG`; the only image
//! needed is `busybox:local`, or set `PODRUN_BENCH_IMAGE`):
//!
//! - container exit → podrun exit, above the moment the kubelet's status
//!   report of the terminated container reaches a watcher (goal: median
//!   ≤ 100 ms);
//! - log throughput through podrun for a pod printing 100 MB (goal:
//!   ≥ 100 MB/s, or the limit named);
//! - a whole short run of `echo` beside `kubectl run --rm -i
//!   --restart=Never` of the same command (goal: podrun ≤ 0.9 × kubectl's
//!   wall time), and beside `kubectl run` given podrun's pod spec, each run
//!   started at a random moment of the kubelet's one-second relist cycle.
//!
//! Run with `KUBECONFIG=… cargo bench -p podrun-cli --bench kube`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};

mod support;
use support::{median, root};

fn image() -> String {
    std::env::var("PODRUN_BENCH_IMAGE").unwrap_or_else(|_| "busybox:local".into())
}

fn manifest(name: &str, script: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {}\n    imagePullPolicy: IfNotPresent\n    command: [sh, -c, {}]\n",
        image(),
        serde_json::to_string(script).unwrap()
    )
}

fn podrun(dir: &Path, name: &str, script: &str) -> Command {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, manifest(name, script)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_podrun"));
    cmd.env("PODRUN_CACHE_DIR", root().join("target/bench-hook-cache"))
        .args(["pod", "run", "--runtime", "kube", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", podrun::run_id::new())
}

/// Seconds since the epoch, as f64.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Runs a pod that prints a line and exits a second later (its log is
/// followed when it ends), while a watcher notes when the terminated
/// container is first reported; returns podrun's exit time minus that
/// moment, in milliseconds.
fn exit_latency(rt: &tokio::runtime::Runtime, dir: &Path) -> f64 {
    let name = unique("exit");
    let reported = rt.block_on(async {
        let client = kube::Client::try_default().await.unwrap();
        let api: Api<Pod> = Api::default_namespaced(client);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut stream = watcher(api, config)
            .default_backoff()
            .applied_objects()
            .boxed();
        let mut child = podrun(dir, &name, "echo started; sleep 1; exit 0")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut reported = None;
        while let Some(Ok(pod)) = stream.next().await {
            let terminated = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some()))
                });
            if terminated {
                reported = Some(now());
                break;
            }
        }
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success());
        reported.unwrap()
    });
    // podrun has exited by now; its exit is bounded by when wait returned.
    (now() - reported) * 1000.0
}

/// 100 MB of 100-byte lines.
fn hundred_mb() -> String {
    let line = "0123456789".repeat(10);
    format!("yes {} | head -c 100000000", &line[..99])
}

/// Reads `child`'s stdout to its end; returns MB/s from the first byte to
/// the end, and the bytes read.
fn drain(mut child: std::process::Child) -> (f64, usize) {
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0usize;
    let mut first: Option<Instant> = None;
    loop {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        first.get_or_insert_with(Instant::now);
        total += n;
    }
    let took = first.map(|f| f.elapsed()).unwrap_or(Duration::from_secs(1));
    child.wait().unwrap();
    (total as f64 / 1e6 / took.as_secs_f64(), total)
}

/// The 100 MB pod through podrun.
fn throughput(dir: &Path) -> (f64, usize) {
    let child = podrun(dir, &unique("logs"), &hundred_mb())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    drain(child)
}

/// The same pod's log through `kubectl logs -f`, for comparison.
fn throughput_kubectl(dir: &Path) -> (f64, usize) {
    let name = unique("kubectl-logs");
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, manifest(&name, &hundred_mb())).unwrap();
    let kubectl = |args: &[&str]| {
        Command::new("kubectl")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
    };
    kubectl(&["apply", "-f", path.to_str().unwrap()]);
    kubectl(&[
        "wait",
        "--for=condition=Ready",
        &format!("pod/{name}"),
        "--timeout=60s",
    ]);
    let child = Command::new("kubectl")
        .args(["logs", "-f", &name])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let result = drain(child);
    kubectl(&["delete", "pod", &name, "--wait=false"]);
    result
}

/// An application as a scheduler would call it: one container running the
/// command, nothing else in the template.
const APP_TEMPLATE: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Name }}-{{ .UniqueId }}\nspec:\n  containers:\n  - name: {{ .Name }}\n    image: {{ .Container.Image }}\n    imagePullPolicy: IfNotPresent\n    args: [{{ .Container.Arguments }}]\n";

fn write_app(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("short.tmpl"), APP_TEMPLATE).unwrap();
    let config = dir.join("pod-runner.yaml");
    std::fs::write(
        &config,
        format!(
            "applications:\n- name: short\n  template: short.tmpl\n  container:\n    image: {}\n",
            image()
        ),
    )
    .unwrap();
    config
}

/// `podrun run` of the application, with the default hooks.
fn short_run_podrun(config: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_podrun"))
        .env("PODRUN_CACHE_DIR", root().join("target/bench-hook-cache"))
        .args(["run", "--runtime", "kube", "--config"])
        .arg(config)
        .args(["-a", "short", "-c", "sh -c 'echo hello'"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

/// The pod spec podrun's default hooks give the same application, for
/// `kubectl run --overrides` (the other fields they set do not change how
/// long the run takes).
const PODRUN_SPEC: &str = r#"{"spec":{"automountServiceAccountToken":false}}"#;

/// `kubectl run --rm -i` of the same command: as typed, or with `overrides`.
fn short_run_kubectl(overrides: Option<&str>) {
    let mut cmd = Command::new("kubectl");
    cmd.args([
        "run",
        &unique("kubectl"),
        "--rm",
        "-i",
        "--restart=Never",
        "--quiet",
    ])
    .arg(format!("--image={}", image()))
    .arg("--image-pull-policy=IfNotPresent");
    if let Some(o) = overrides {
        cmd.arg(format!("--overrides={o}"));
    }
    let out = cmd
        .args(["--", "sh", "-c", "echo hello"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Mean, its standard error, median and min of `v`, in seconds.
fn stats(v: &[f64]) -> String {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    format!(
        "mean {mean:.3} s ± {:.3}, median {:.3} s, min {min:.3} s",
        (var / n).sqrt(),
        median(v.to_vec())
    )
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn bench(c: &mut Criterion) {
    if std::env::var_os("KUBECONFIG").is_none() {
        println!(
            "kube benchmarks: not run (set KUBECONFIG to a cluster that has {})",
            image()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_app(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    short_run_podrun(&config); // warms the hook cache and the node

    let mut g = c.benchmark_group("kube");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    g.bench_function("whole short run: podrun run", |b| {
        b.iter(|| short_run_podrun(&config))
    });
    g.bench_function("whole short run: kubectl run --rm -i", |b| {
        b.iter(|| short_run_kubectl(None))
    });
    g.finish();

    println!("\n== summary ==");
    let latencies: Vec<f64> = (0..15).map(|_| exit_latency(&rt, dir.path())).collect();
    let latency = median(latencies.clone());
    let verdict = |ok: bool| if ok { "meets goal" } else { "MISSES goal" };
    println!(
        "container terminated (as reported) -> podrun exit, median of {}: {latency:7.1} ms   goal <= 100 ms   {}",
        latencies.len(),
        verdict(latency <= 100.0)
    );
    println!(
        "  mean {:.1} ms, max {:.1} ms",
        mean(&latencies),
        latencies.iter().copied().fold(0.0, f64::max)
    );
    let timed = |f: &dyn Fn()| {
        let s = Instant::now();
        f();
        s.elapsed().as_secs_f64()
    };
    // The kubelet reports a container's end at its next relist (every
    // second), so a short run's wall time varies by up to a second with the
    // moment it starts. Back-to-back runs of about a second lock onto that
    // cycle and compare nothing; a random pause before each run spreads the
    // starts over it, and runs are interleaved and many.
    let pause = || {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        std::thread::sleep(Duration::from_millis(u64::from(nanos % 1000)));
    };
    const RUNS: usize = 40;
    let (mut p, mut k, mut same) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        pause();
        p.push(timed(&|| short_run_podrun(&config)));
        pause();
        k.push(timed(&|| short_run_kubectl(None)));
        pause();
        same.push(timed(&|| short_run_kubectl(Some(PODRUN_SPEC))));
    }
    println!("whole short run, {RUNS} interleaved runs each:");
    println!("  podrun run:                             {}", stats(&p));
    println!("  kubectl run --rm -i:                    {}", stats(&k));
    println!("  kubectl run --rm -i, podrun's pod spec: {}", stats(&same));
    let ratio = mean(&p) / mean(&k);
    println!(
        "whole short run, podrun / kubectl run (ratio of means): {ratio:.2}   goal <= 0.9   {}",
        verdict(ratio <= 0.9)
    );
    println!(
        "whole short run, podrun / kubectl run with podrun's pod spec: {:.2}   (the tools alone)",
        mean(&p) / mean(&same)
    );
    let (mbps, bytes) = throughput(dir.path());
    println!(
        "log throughput, 100 MB pod, podrun:          {mbps:7.1} MB/s ({bytes} of 100000000 bytes)   goal >= 100 MB/s   {}",
        verdict(mbps >= 100.0 && bytes == 100_000_000)
    );
    let (mbps, bytes) = throughput_kubectl(dir.path());
    println!(
        "log throughput, 100 MB pod, kubectl logs -f: {mbps:7.1} MB/s ({bytes} of 100000000 bytes)   (the kubelet's own limit)"
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
