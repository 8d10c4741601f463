//! The local runtime: from starting `podrun run` to the first line of the
//! container's output, with a warm hook cache (goal: median <= 20 ms).
//!
//! Run with `cargo bench -p podrun-cli --bench local`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

mod support;
use support::root;

/// Starts `podrun run` of the hello example and returns the time to its
/// first line of output; the run is then waited for.
fn first_line() -> Duration {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_podrun"))
        .env("PODRUN_CACHE_DIR", root().join("target/bench-hook-cache"))
        .args([
            "run",
            "--runtime",
            "local",
            "-a",
            "hello",
            "-c",
            "echo first",
            "-p",
        ])
        .arg(root().join("examples/hello"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let took = start.elapsed();
    assert_eq!(line, "first\n");
    assert!(child.wait().unwrap().success());
    took
}

/// A container printing 100 MB, through podrun to a pipe.
fn throughput() -> (f64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pod.yaml");
    let line = &"0123456789".repeat(10)[..99];
    std::fs::write(
        &path,
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: logs}}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: main\n    image: busybox\n    command: [sh, -c, 'yes {line} | head -c 100000000']\n"),
    )
    .unwrap();
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_podrun"))
        .env("PODRUN_CACHE_DIR", root().join("target/bench-hook-cache"))
        .args(["pod", "run", "--runtime", "local", "-f"])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let bytes =
        std::io::copy(&mut child.stdout.take().unwrap(), &mut std::io::sink()).unwrap() as usize;
    child.wait().unwrap();
    (bytes as f64 / 1e6 / start.elapsed().as_secs_f64(), bytes)
}

fn bench(c: &mut Criterion) {
    first_line(); // warms the hook cache
    let mut g = c.benchmark_group("local");
    g.sample_size(30);
    g.bench_function("podrun run start -> first line", |b| b.iter(first_line));
    g.finish();
    let mut samples: Vec<Duration> = (0..40).map(|_| first_line()).collect();
    samples.sort();
    let median = samples[samples.len() / 2].as_secs_f64() * 1e3;
    let verdict = if median <= 20.0 {
        "meets goal"
    } else {
        "MISSES goal"
    };
    println!(
        "\n== summary ==\npodrun run start -> first line: {median:6.1} ms   goal <= 20 ms   {verdict}"
    );
    let (mbps, bytes) = throughput();
    println!("log throughput, 100 MB of 100-byte lines: {mbps:.0} MB/s ({bytes} bytes)");
}

criterion_group!(benches, bench);
criterion_main!(benches);
