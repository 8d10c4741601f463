//! The same classify hook, the retry classifier, written in Rust, Rhai,
//! Python and JavaScript (examples/hooks/retry-classifier*,
//! examples/scripts/retry-classifier.rhai): what each costs podrun.
//!
//! Criterion measures one call of each; the summary then prints, per
//! language, the size of what the author ships, the build, the first
//! compile (a cold cache), a load from the cache (a new process), and the
//! call time against the default deadline. Languages are measured
//! interleaved, round by round, and the ratios to Rust are the medians of
//! the rounds' ratios with their spread.
//!
//! The Python and JavaScript hooks are built by their build.sh into
//! target/python-hooks and target/js-hooks (the first time, that installs
//! componentize-py from PyPI and componentize-js from npm).
//!
//! Run with `cargo bench -p podrun-cli --bench languages`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use podrun::hooks::{CacheOptions, EngineOptions, Hook, Hooks, Kind, Limits, Source, Spec};
use podrun::hooks::{Defaults, classify};

mod support;
use support::{block, median, root};

struct Language {
    name: &'static str,
    source: Source,
    /// What the author ships: the component, or the script.
    shipped: PathBuf,
    /// Seconds to build it from source with its tool installed, when it is
    /// built here.
    build: Option<f64>,
}

/// Runs an example's build.sh and returns the component and the time the
/// build took (its tool installed by an untimed first run).
fn build(script: &str, out: &str) -> (PathBuf, f64) {
    let run = || {
        let start = Instant::now();
        let output = Command::new(root().join(script))
            .arg(root().join(out))
            .output()
            .expect("run build.sh");
        assert!(
            output.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let path = String::from_utf8(output.stdout).unwrap();
        (PathBuf::from(path.trim()), start.elapsed().as_secs_f64())
    };
    run();
    run()
}

/// Built once for both groups.
fn languages() -> &'static [Language] {
    static LANGUAGES: std::sync::OnceLock<Vec<Language>> = std::sync::OnceLock::new();
    LANGUAGES.get_or_init(build_all)
}

fn build_all() -> Vec<Language> {
    let guests = Path::new(env!("PODRUN_TEST_GUESTS"));
    let rust = guests.join("podrun_example_retry_classifier.wasm");
    let rhai = root().join("examples/scripts/retry-classifier.rhai");
    let (python, python_build) = build(
        "examples/hooks/retry-classifier-python/build.sh",
        "target/python-hooks",
    );
    let (js, js_build) = build(
        "examples/hooks/retry-classifier-js/build.sh",
        "target/js-hooks",
    );
    vec![
        Language {
            name: "Rust",
            source: Source::File(rust.clone()),
            shipped: rust,
            build: None,
        },
        Language {
            name: "Rhai",
            source: Source::Script(rhai.clone()),
            shipped: rhai,
            build: None,
        },
        Language {
            name: "Python",
            source: Source::File(python.clone()),
            shipped: python,
            build: Some(python_build),
        },
        Language {
            name: "JavaScript",
            source: Source::File(js.clone()),
            shipped: js,
            build: Some(js_build),
        },
    ]
}

fn engine(cache: &Path) -> Hooks {
    Hooks::new(EngineOptions {
        cache: CacheOptions::in_dir(cache.to_path_buf()),
        ..EngineOptions::default()
    })
    .unwrap()
}

fn load(hooks: &Hooks, source: &Source) -> Hook {
    block(hooks.load(&Spec {
        source: source.clone(),
        kind: Kind::Classify,
        settings: serde_json::json!({"retry-on": [75]}),
        limits: Limits::default(),
    }))
    .unwrap()
}

/// The last observation of the recorded run that exited 75: every
/// language's hook decides on it.
fn observation() -> classify::Observation {
    let path = root().join("tests/fixtures/timelines/temporary-failure.timeline.json");
    let timeline: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let last = timeline["observations"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|o| o.get("pod").is_some())
        .unwrap();
    classify::Observation {
        pod: last["pod"].to_string(),
        events: "[]".into(),
        elapsed_ms: last["elapsedMs"].as_u64().unwrap(),
    }
}

fn call(hook: &Hook, app: &podrun::context::RunContext, obs: &classify::Observation) {
    let verdict = block(hook.classify(app, obs)).unwrap();
    assert_eq!(
        verdict.value.map(|v| v.reason).as_deref(),
        Some("TemporaryFailure")
    );
}

fn bench_calls(c: &mut Criterion) {
    let cache = tempfile::tempdir().unwrap();
    let hooks = engine(cache.path());
    let app = podrun::context::RunContext::bare("retry", "c0ffee0123456789");
    let obs = observation();
    let mut g = c.benchmark_group("classify, retry classifier");
    g.sample_size(20);
    for lang in languages() {
        let hook = load(&hooks, &lang.source);
        g.bench_function(lang.name, |b| b.iter(|| call(&hook, &app, &obs)));
    }
    g.finish();
}

fn spread(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

fn timed(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

/// Per language, `rounds` samples of `sample`, taken language after
/// language within each round.
fn interleaved(
    langs: &[Language],
    rounds: usize,
    mut sample: impl FnMut(&Language) -> f64,
) -> Vec<Vec<f64>> {
    let mut out = vec![Vec::new(); langs.len()];
    for _ in 0..rounds {
        for (i, lang) in langs.iter().enumerate() {
            out[i].push(sample(lang));
        }
    }
    out
}

fn summary(_: &mut Criterion) {
    let langs = languages();
    let app = podrun::context::RunContext::bare("retry", "c0ffee0123456789");
    let obs = observation();
    let deadline = Defaults::default().deadline;

    // A cold cache each time: what the first run with a new hook pays.
    let compile = interleaved(langs, 5, |lang| {
        let cache = tempfile::tempdir().unwrap();
        let hooks = engine(cache.path());
        timed(|| drop(load(&hooks, &lang.source)))
    });
    // A new engine on a warm cache: what every new process pays.
    let warm = tempfile::tempdir().unwrap();
    for lang in langs {
        drop(load(&engine(warm.path()), &lang.source));
    }
    let cached = interleaved(langs, 10, |lang| {
        let hooks = engine(warm.path());
        timed(|| drop(load(&hooks, &lang.source)))
    });
    // Calls on loaded hooks: each round times 20 calls per language.
    let hooks = engine(warm.path());
    let loaded: Vec<Hook> = langs.iter().map(|l| load(&hooks, &l.source)).collect();
    let mut per_call = vec![Vec::new(); langs.len()];
    let mut first = vec![Vec::new(); langs.len()];
    for _ in 0..30 {
        for (i, hook) in loaded.iter().enumerate() {
            first[i].push(timed(|| call(hook, &app, &obs)));
            let calls = 20;
            let total = timed(|| {
                for _ in 0..calls {
                    call(hook, &app, &obs)
                }
            });
            per_call[i].push(total / calls as f64);
        }
    }

    println!("\n== the retry classifier in four languages (medians; spread min-max) ==");
    println!(
        "{:<11} {:>10} {:>9} {:>17} {:>17} {:>19} {:>15}",
        "language", "size", "build", "first compile", "load, cached", "per call", "call / Rust"
    );
    let ms = |s: f64| s * 1e3;
    for (i, lang) in langs.iter().enumerate() {
        let size = std::fs::metadata(&lang.shipped).unwrap().len();
        let size = if size >= 1 << 20 {
            format!("{:.1} MB", size as f64 / 1e6)
        } else {
            format!("{:.1} KB", size as f64 / 1e3)
        };
        let build = lang.build.map_or("-".to_string(), |s| format!("{s:.1} s"));
        let (lo, hi) = spread(&compile[i]);
        let compile_s = format!("{:.2} s ({lo:.2}-{hi:.2})", median(compile[i].clone()));
        let (lo, hi) = spread(&cached[i]);
        let cached_s = format!(
            "{:.1} ms ({:.1}-{:.1})",
            ms(median(cached[i].clone())),
            ms(lo),
            ms(hi)
        );
        let (lo, hi) = spread(&per_call[i]);
        let call_s = format!(
            "{:.3} ms ({:.3}-{:.3})",
            ms(median(per_call[i].clone())),
            ms(lo),
            ms(hi)
        );
        let ratios: Vec<f64> = per_call[i]
            .iter()
            .zip(&per_call[0])
            .map(|(t, rust)| t / rust)
            .collect();
        let (lo, hi) = spread(&ratios);
        let ratio_s = format!("{:.1}x ({lo:.1}-{hi:.1})", median(ratios.clone()));
        println!(
            "{:<11} {:>10} {:>9} {:>17} {:>17} {:>19} {:>15}",
            lang.name, size, build, compile_s, cached_s, call_s, ratio_s
        );
    }
    println!(
        "\nThe default deadline is {} ms a call; the slowest call per language:",
        deadline.as_millis()
    );
    for (i, lang) in langs.iter().enumerate() {
        let worst = per_call[i]
            .iter()
            .chain(&first[i])
            .copied()
            .fold(0.0, f64::max);
        let share = worst / deadline.as_secs_f64();
        println!(
            "  {:<11} {:7.3} ms, {:5.1}% of the deadline",
            lang.name,
            ms(worst),
            share * 100.0
        );
    }
}

criterion_group!(benches, bench_calls, summary);
criterion_main!(benches);
