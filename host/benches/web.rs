//! The web page with 10,000 stored runs: the time from navigating to the
//! runs page to its first page of runs shown in headless Chromium (goal:
//! <= 200 ms), against the same page with 100 stored runs, interleaved.
//! The time is the page's own `podrun:runs-rendered` mark, from the start
//! of the navigation: the HTML, the script, the API call and the table.
//!
//! `cargo bench -p podrun-cli --bench web` (needs Debian's chromium and
//! chromium-driver; PODRUN_BENCH_CHROMEDRIVER names another driver).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use podrun_server::store::{NewRun, Store};

mod support;
use support::{block, median, root};

const ROUNDS: usize = 20;

/// A server on a store holding `runs` ended runs.
struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(runs: usize) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = format!("sqlite:{}", dir.path().join("runs.db").display());
        block(fill(&store, runs));
        let mut command = Command::new(env!("CARGO_BIN_EXE_podrun"));
        command
            .env("PODRUN_CACHE_DIR", root().join("target/bench-hook-cache"))
            .env_remove("KUBECONFIG")
            .args(["serve", "--runtime", "local", "--listen", "127.0.0.1:0"])
            .arg("-p")
            .arg(root().join("examples/hello"))
            .arg("--store")
            .arg(&store);
        let (child, base) = support::serve(&mut command);
        Server {
            child,
            base,
            _dir: dir,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `runs` runs, ended (cancelled while queued) with a failed verdict.
async fn fill(address: &str, runs: usize) {
    let store = Store::open(address, "bench").await.unwrap();
    let result = r#"{"outcome":"failed","reason":"Cancelled","message":"cancelled","exitCode":130,"retryable":false,"evidence":[],"containers":[]}"#;
    for i in 0..runs {
        let id = format!("bench{i:011}");
        store
            .insert(&NewRun {
                id: &id,
                application: "hello",
                idempotency_key: None,
                body_hash: "-",
                pod: "{}",
                context: "{}",
                stdin: None,
                callback_url: None,
                tenant: None,
                changes: None,
            })
            .await
            .unwrap();
        store.cancel_queued(&id, result).await.unwrap();
    }
}

struct Browser {
    driver: Child,
    client: Client,
}

impl Browser {
    fn start() -> Option<Browser> {
        let driver_path = std::env::var("PODRUN_BENCH_CHROMEDRIVER")
            .unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        if !std::path::Path::new(&driver_path).exists() {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900"],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        let client = block(async {
            loop {
                let connector = hyper_util::client::legacy::connect::HttpConnector::new();
                match ClientBuilder::new(connector)
                    .capabilities(capabilities.clone())
                    .connect(&url)
                    .await
                {
                    Ok(client) => break client,
                    Err(_) if start.elapsed() < Duration::from_secs(20) => {
                        tokio::time::sleep(Duration::from_millis(200)).await
                    }
                    Err(e) => panic!("no browser session: {e}"),
                }
            }
        });
        Some(Browser { driver, client })
    }

    /// Milliseconds from navigating to `base`'s runs page to its first
    /// page of runs shown.
    fn runs_page(&self, base: &str) -> f64 {
        block(async {
            // A new document each time, not a hash change.
            self.client.goto("about:blank").await.unwrap();
            self.client.goto(&format!("{base}/#/runs")).await.unwrap();
            let start = Instant::now();
            loop {
                let rows = self
                    .client
                    .find_all(Locator::Css("#runs-table tbody tr"))
                    .await
                    .unwrap();
                if rows.len() >= 50 {
                    break;
                }
                assert!(start.elapsed() < Duration::from_secs(30), "no runs shown");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let at = self
                .client
                .execute(
                    "return performance.getEntriesByName('podrun:runs-rendered')[0].startTime",
                    vec![],
                )
                .await
                .unwrap();
            at.as_f64().unwrap()
        })
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = block(self.client.clone().close());
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn spread(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

fn main() {
    let Some(browser) = Browser::start() else {
        println!("web: not measured: no chromedriver (install chromium and chromium-driver)");
        return;
    };
    let started = Instant::now();
    let big = Server::start(10_000);
    let small = Server::start(100);
    println!(
        "stored 10,100 runs and started two servers in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Warm both (the browser's first page load, the servers' first query).
    browser.runs_page(&big.base);
    browser.runs_page(&small.base);
    let (mut with_big, mut with_small, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let b = browser.runs_page(&big.base);
        let s = browser.runs_page(&small.base);
        with_big.push(b);
        with_small.push(s);
        ratios.push(b / s);
    }
    let show = |v: &[f64]| {
        let (lo, hi) = spread(v);
        format!("{:.1} ({lo:.1}-{hi:.1})", median(v.to_vec()))
    };
    println!(
        "\n== the runs page, first page shown (ms from navigation; median, min-max over {ROUNDS} interleaved rounds) =="
    );
    let m = median(with_big.clone());
    println!(
        "10,000 stored runs: {} ms   goal <= 200 ms   {}",
        show(&with_big),
        if m <= 200.0 {
            "meets goal"
        } else {
            "MISSES goal"
        }
    );
    println!("   100 stored runs: {} ms", show(&with_small));
    println!("10,000 / 100:       {}", show(&ratios));
}
