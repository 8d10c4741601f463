//! Hook engine benchmarks, with the goals from the project's issues.
//!
//! Criterion measures each case; a summary at the end prints the median of
//! individually timed calls beside its goal, and the `podrun render`
//! process against `kubectl create --dry-run=client` (which needs a
//! reachable cluster for its discovery; without one only podrun's figure is
//! printed).
//!
//! Run with `cargo bench -p podrun-cli --bench hooks`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use podrun::hooks::{
    CacheOptions, EngineOptions, Hook, Hooks, Kind, Limits, Source, Spec, render, types,
};

mod support;
use support::{block, root};

fn cache_dir() -> PathBuf {
    root().join("target/bench-hook-cache")
}

fn engine() -> Hooks {
    Hooks::new(EngineOptions {
        cache: CacheOptions::in_dir(cache_dir()),
        ..EngineOptions::default()
    })
    .unwrap()
}

fn app() -> podrun::context::RunContext {
    let r = |cpu: Option<&str>, memory: &str| podrun::context::Resources {
        cpu: cpu.map(String::from),
        memory: Some(memory.into()),
    };
    let mut app = podrun::context::RunContext::bare("report", "c0ffee0123456789");
    app.namespace = Some("batch".into());
    app.image = "registry.example/report:2.1".into();
    app.arguments = [
        "report",
        "--day",
        "2026-11-23",
        "--output",
        "s3://bucket/reports",
    ]
    .map(String::from)
    .to_vec();
    app.uid = Some("1000".into());
    app.gid = Some("1000".into());
    app.requests = r(Some("100m"), "64Mi");
    app.limits = r(None, "128Mi");
    app
}

fn pod() -> types::Object {
    let json = std::fs::read_to_string(root().join("host/benches/fixtures/pod-4k.json")).unwrap();
    types::Object {
        api_version: "v1".into(),
        kind: "Pod".into(),
        json: json.trim().to_string(),
    }
}

fn load(hooks: &Hooks, source: Source, kind: Kind, settings: serde_json::Value) -> Hook {
    block(hooks.load(&Spec {
        source,
        kind,
        settings,
        limits: Limits::default(),
    }))
    .unwrap()
}

fn template() -> render::Template {
    render::Template {
        source: "pod.tmpl".into(),
        text: std::fs::read_to_string(root().join("examples/hello/templates/pod.tmpl")).unwrap(),
    }
}

struct Cases {
    restart_never: Hook,
    deadline: Hook,
    typed: Hook,
    go_template: Hook,
    /// The same team policy as a Rust component and as a Rhai script.
    policy_rust: Hook,
    policy_script: Hook,
}

fn cases() -> Cases {
    let hooks = engine();
    let guests = Path::new(env!("PODRUN_TEST_GUESTS"));
    let guest = guests.join("podrun_test_misbehave.wasm");
    let team = serde_json::json!({"default-team": "platform"});
    Cases {
        policy_rust: load(
            &hooks,
            Source::File(guests.join("podrun_example_team_policy.wasm")),
            Kind::Mutate,
            team.clone(),
        ),
        policy_script: load(
            &hooks,
            Source::Script(root().join("examples/scripts/team-policy.rhai")),
            Kind::Mutate,
            team,
        ),
        restart_never: load(
            &hooks,
            Source::Builtin("restart-never"),
            Kind::Mutate,
            serde_json::json!({}),
        ),
        deadline: load(
            &hooks,
            Source::Builtin("deadline"),
            Kind::Mutate,
            serde_json::json!({}),
        ),
        typed: load(
            &hooks,
            Source::File(guest),
            Kind::Mutate,
            serde_json::json!({"do": "typed-round-trip"}),
        ),
        go_template: load(
            &hooks,
            Source::Builtin("go-template"),
            Kind::Render,
            serde_json::json!({}),
        ),
    }
}

fn bench_calls(c: &mut Criterion) {
    let cases = cases();
    let (app, pod, template) = (app(), pod(), template());
    let mut g = c.benchmark_group("hook-call");
    g.bench_function("mutate restart-never (4 KB pod, merge patch)", |b| {
        b.iter(|| block(cases.restart_never.mutate(&app, &pod)).unwrap())
    });
    g.bench_function("mutate deadline (4 KB pod, partial read)", |b| {
        b.iter(|| block(cases.deadline.mutate(&app, &pod)).unwrap())
    });
    g.bench_function("mutate typed round trip (4 KB pod, reference)", |b| {
        b.iter(|| block(cases.typed.mutate(&app, &pod)).unwrap())
    });
    g.bench_function("mutate team policy, Rust component", |b| {
        b.iter(|| block(cases.policy_rust.mutate(&app, &pod)).unwrap())
    });
    g.bench_function(
        "mutate team policy, Rhai script (one instance per run)",
        |b| b.iter(|| block(cases.policy_script.mutate(&app, &pod)).unwrap()),
    );
    g.bench_function("render go-template (hello template)", |b| {
        b.iter(|| block(cases.go_template.render(&app, &template)).unwrap())
    });
    g.finish();
}

fn podrun_render(cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_podrun"));
    cmd.env("PODRUN_CACHE_DIR", cache)
        .args(["render", "-a", "hello", "-c", "echo hello", "-p"])
        .arg(root().join("examples/hello"));
    cmd
}

fn run_ok(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(err.lines().last().unwrap_or("failed").to_string())
    }
}

fn bench_cli(c: &mut Criterion) {
    let cache = cache_dir();
    run_ok(&mut podrun_render(&cache)).unwrap();
    let mut g = c.benchmark_group("cli");
    g.sample_size(20);
    g.bench_function("podrun render, warm cache", |b| {
        b.iter(|| run_ok(&mut podrun_render(&cache)).unwrap())
    });
    g.finish();
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The median of `n` timed calls of `f`, after a tenth as many untimed
/// (a new engine's pool slots are first touched in those).
fn timed(n: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..n / 10 {
        f();
    }
    median(
        (0..n)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect(),
    )
}

fn verdict(ok: bool) -> &'static str {
    if ok { "meets goal" } else { "MISSES goal" }
}

/// Medians of individually timed calls, beside the goals.
fn summary(_: &mut Criterion) {
    let cases = cases();
    let (app, pod, template) = (app(), pod(), template());
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("\n== summary: medians of individually timed calls ==");
    let m = timed(3000, || {
        drop(block(cases.restart_never.mutate(&app, &pod)).unwrap())
    });
    println!(
        "mutate restart-never, 4 KB pod: {:7.1} µs   goal <= 40 µs   {}",
        us(m),
        verdict(us(m) <= 40.0)
    );
    compare_restart_never(&cases.restart_never, &app, &pod);
    let m = timed(3000, || {
        drop(block(cases.deadline.mutate(&app, &pod)).unwrap())
    });
    println!(
        "mutate deadline, 4 KB pod:      {:7.1} µs   goal <= 40 µs   {}",
        us(m),
        verdict(us(m) <= 40.0)
    );
    let m = timed(3000, || {
        drop(block(cases.typed.mutate(&app, &pod)).unwrap())
    });
    println!(
        "mutate typed round trip:        {:7.1} µs   (reference: full k8s-openapi parse + write)",
        us(m)
    );
    let rust = timed(3000, || {
        drop(block(cases.policy_rust.mutate(&app, &pod)).unwrap())
    });
    println!(
        "mutate team policy, Rust:       {:7.1} µs   (fresh instance per call)",
        us(rust)
    );
    let script = timed(3000, || {
        drop(block(cases.policy_script.mutate(&app, &pod)).unwrap())
    });
    let ratio = script.as_secs_f64() / rust.as_secs_f64();
    println!(
        "mutate team policy, Rhai script:{:7.1} µs   goal <= 300 µs  {}",
        us(script),
        verdict(us(script) <= 300.0)
    );
    println!(
        "script / Rust:                  {ratio:7.1} x    goal <= 10 x    {}",
        verdict(ratio <= 10.0)
    );
    let first_call = |hooks: &Hooks| {
        let hook = load(
            hooks,
            Source::Script(root().join("examples/scripts/team-policy.rhai")),
            Kind::Mutate,
            serde_json::json!({"default-team": "platform"}),
        );
        drop(block(hook.mutate(&app, &pod)).unwrap())
    };
    let shared = engine();
    let run = timed(50, || first_call(&shared));
    println!(
        "script: load + first call:      {:7.1} µs   (a new run: instance, compile, call)",
        us(run)
    );
    let fresh = timed(50, || first_call(&engine()));
    println!(
        "  the same, with a new engine:  {:7.1} µs   (a new process: engine, cache file, run)",
        us(fresh)
    );
    let m = timed(3000, || {
        drop(block(cases.go_template.render(&app, &template)).unwrap())
    });
    println!(
        "render go-template:             {:7.1} µs   goal <= 150 µs  {}",
        us(m),
        verdict(us(m) <= 150.0)
    );

    let cache = cache_dir();
    let warm = timed(30, || run_ok(&mut podrun_render(&cache)).unwrap());
    println!(
        "podrun render, warm cache:      {:7.1} ms",
        warm.as_secs_f64() * 1e3
    );
    let cold: Vec<Duration> = (0..3)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let start = Instant::now();
            run_ok(&mut podrun_render(dir.path())).unwrap();
            start.elapsed()
        })
        .collect();
    println!(
        "podrun render, cold cache:      {:7.1} ms   (compiles every hook once)",
        median(cold).as_secs_f64() * 1e3
    );

    let manifest = tempfile::NamedTempFile::new().unwrap();
    let out = podrun_render(&cache).output().unwrap();
    std::fs::write(manifest.path(), out.stdout).unwrap();
    let mut kubectl = Command::new("kubectl");
    kubectl
        .args(["create", "--dry-run=client", "-o", "yaml", "-f"])
        .arg(manifest.path());
    match run_ok(&mut kubectl) {
        Ok(()) => {
            let k = timed(30, || run_ok(&mut kubectl).unwrap());
            let ratio = warm.as_secs_f64() / k.as_secs_f64();
            println!(
                "kubectl create --dry-run=client:{:7.1} ms",
                k.as_secs_f64() * 1e3
            );
            println!(
                "podrun / kubectl:               {ratio:7.3}      goal <= 0.2     {}",
                verdict(ratio <= 0.2)
            );
        }
        Err(e) => println!(
            "kubectl create --dry-run=client: not measured ({e}); point KUBECONFIG at a cluster"
        ),
    }
}

/// With `PODRUN_BENCH_BASE_RESTART_NEVER` naming another build of
/// restart-never (an earlier commit's, or one linked with another stack
/// size), the two in interleaved rounds, and their ratio with its spread.
fn compare_restart_never(ours: &Hook, app: &podrun::context::RunContext, pod: &types::Object) {
    let Ok(path) = std::env::var("PODRUN_BENCH_BASE_RESTART_NEVER") else {
        return;
    };
    let base = load(
        &engine(),
        Source::File(path.into()),
        Kind::Mutate,
        serde_json::json!({}),
    );
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..20 {
        let x = timed(300, || drop(block(ours.mutate(app, pod)).unwrap()));
        let y = timed(300, || drop(block(base.mutate(app, pod)).unwrap()));
        ratios.push(x.as_secs_f64() / y.as_secs_f64());
        a.push(us(x));
        b.push(us(y));
    }
    let spread = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let ((am, al, ah), (bm, bl, bh), (rm, rl, rh)) = (spread(a), spread(b), spread(ratios));
    println!("restart-never, 20 interleaved rounds of 300 calls (median, min-max):");
    println!("  this build: {am:6.1} µs ({al:.1}-{ah:.1})");
    println!("  base:       {bm:6.1} µs ({bl:.1}-{bh:.1})");
    println!("  this/base:  {rm:6.2}    ({rl:.2}-{rh:.2})");
}

criterion_group!(benches, bench_calls, bench_cli, summary);
criterion_main!(benches);
