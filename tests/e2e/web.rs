//! The page of `podrun serve`, in a real browser: headless Chromium driven
//! over WebDriver (chromedriver) against a real server with two tenants on
//! the local runtime. The browser tests need PODRUN_TEST_CHROMEDRIVER (the
//! driver; `.ci/run` installs Debian's chromium and chromium-driver) and
//! write screenshots to target/web-screenshots.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::server::Server;
use crate::support::{self, Scratch};
use crate::tenants::token;

fn config(a: &str, b: &str) -> String {
    format!(
        r#"applications:
- name: hello
  template: templates/pod.tmpl
  container:
    image: busybox:local
  namespace: shared
  parameters: [{{name: team, default: platform}}]
  runtime-parameters:
    max-timeout: 1h
    max-resources: {{cpu: 1, memory: 1Gi}}
    pod-override: [metadata.annotations]
- name: secret
  template: templates/secret.tmpl
  container:
    image: busybox:local
  namespace: shared
  hooks:
    mutate: [{{script: add-key.rhai}}, {{script: drop-note.rhai}}]
tenants:
- name: team-a
  tokens: ["{a}"]
  applications: [hello]
  local-runtime: true
- name: team-b
  tokens: ["{b}"]
  applications: [hello, secret]
  local-runtime: true
  submits-per-minute: 2
"#
    )
}

/// A server with two tenants, and their tokens.
struct Site {
    scratch: Scratch,
    server: Server,
    a: String,
    b: String,
}

impl Site {
    fn start() -> Site {
        let (a, b) = (token(), token());
        let scratch = Scratch::new(&config(&a.1, &b.1));
        std::fs::write(
            scratch.path().join("templates/secret.tmpl"),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Name }}-{{ .UniqueId }}\nspec:\n  containers:\n  - name: main\n    image: {{ .Container.Image }}\n    command: [sh, -c, 'echo connecting']\n    env:\n    - {name: DB_PASSWORD, value: hunter2-from-the-operator}\n",
        )
        .unwrap();
        // A hook that puts a secret of its own into the pod.
        std::fs::write(
            scratch.path().join("add-key.rhai"),
            "fn mutate(object, ctx) {\n    object.spec.containers[0].env.push(#{name: \"API_KEY\", value: \"sesame-from-a-hook\"});\n    object.metadata.annotations = #{note: \"token-for-the-next-hook\"};\n    object\n}\n",
        )
        .unwrap();
        // And one that takes out what the first left for it.
        std::fs::write(
            scratch.path().join("drop-note.rhai"),
            "fn mutate(object, ctx) {\n    object.metadata.annotations.remove(\"note\");\n    object\n}\n",
        )
        .unwrap();
        let store = format!("sqlite:{}", scratch.path().join("runs.db").display());
        let server = Server::start(&scratch, &store, &[]);
        Site {
            scratch,
            server,
            a: a.0,
            b: b.0,
        }
    }

    fn call(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.server.json_as(token, method, path, body)
    }

    fn submit(&self, token: &str, command: &str) -> String {
        self.submit_to(token, json!({"application": "hello", "command": command}))
    }

    fn submit_to(&self, token: &str, body: Value) -> String {
        let (status, run) = self.call(token, "POST", "/v1/runs", Some(body));
        assert_eq!(status, 201, "{run}");
        run["id"].as_str().unwrap().to_string()
    }

    fn state(&self, token: &str, id: &str) -> String {
        let (_, run) = self.call(token, "GET", &format!("/v1/runs/{id}"), None);
        run["state"].as_str().unwrap_or_default().to_string()
    }

    /// Says, as the server that ran ended run `id` would, that lines of its
    /// log may be missing before line `at` (a log stream given up or not
    /// shown to continue: the kube runtime's case, not the local one's).
    fn say_gap(&self, token: &str, id: &str, at: i64, message: &str) {
        let (_, run) = self.call(token, "GET", &format!("/v1/runs/{id}"), None);
        let owner = run["server"].as_str().expect("the server that ran it");
        let bytes = run["log"]["bytes"].as_i64().unwrap();
        let address = format!("sqlite:{}", self.scratch.path().join("runs.db").display());
        let gap = podrun_server::store::Gap {
            at,
            container: Some("hello".into()),
            message: message.into(),
        };
        // A thread of its own: callers may be inside a runtime already.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                tokio::runtime::Runtime::new().unwrap().block_on(async {
                    let store = podrun_server::store::Store::open(&address, owner)
                        .await
                        .unwrap();
                    let gaps = [gap];
                    let stored = store.append_logs(id, at, &[], &gaps, bytes, false);
                    assert!(stored.await.unwrap(), "stored as its server");
                });
            });
        });
    }

    /// Neither token is in `text`.
    fn no_token_in(&self, text: &str, what: &str) {
        for token in [&self.a, &self.b] {
            assert!(!text.contains(token.as_str()), "a token in {what}");
        }
    }
}

/// chromedriver and a headless Chromium session through it; both go
/// when it is dropped, a failed test's included.
struct Browser {
    driver: Child,
    client: Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        let driver_path = std::env::var("PODRUN_TEST_CHROMEDRIVER")
            .expect("PODRUN_TEST_CHROMEDRIVER must name chromedriver");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Its own process group: Chromium goes with the driver.
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let chromium =
            std::env::var("PODRUN_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let mut capabilities = serde_json::Map::new();
        // What the page's console gets (CSP violations, script errors).
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                // This machine's network is closed: no background calls.
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display())],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(e) if start.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no browser session: {e}"),
            }
        };
        Browser {
            driver,
            client,
            _profile: profile,
        }
    }

    async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until `css`'s text satisfies `ok`; returns it.
    async fn until(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let text = self.text(css).await;
            if ok(&text) {
                return text;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{css} says {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn displayed(&self, css: &str) -> bool {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e.is_displayed().await.unwrap_or(false),
            Err(_) => false,
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let input = self.client.find(Locator::Css(css)).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Saves a screenshot as target/web-screenshots/NAME.png.
    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = support::root().join("target/web-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// What the page's console got since the last call: errors and
    /// warnings, CSP violations among them (chromedriver's log endpoint).
    async fn console(&self) -> Vec<String> {
        let entries = self.client.issue_cmd(BrowserLog).await.unwrap();
        entries
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
            .map(|e| format!("{} {}", e["source"], e["message"]))
            .collect()
    }

    /// Sends keys to whatever has the focus, as a keyboard would.
    async fn keys(&self, keys: &str) {
        let focused = self.client.active_element().await.unwrap();
        focused.send_keys(keys).await.unwrap();
    }

    /// What has the focus, as `TAG#id[href]`.
    async fn focused(&self) -> String {
        let shown = self
            .client
            .execute(
                "const e = document.activeElement;
                 return e.tagName + '#' + e.id + (e.getAttribute('href') ? '[' + e.getAttribute('href') + ']' : '')",
                vec![],
            )
            .await
            .unwrap();
        shown.as_str().unwrap_or_default().to_string()
    }

    /// What on the page is hard to read or to name: text below WCAG's
    /// 4.5:1 contrast against its background, and controls with no label.
    async fn inaccessible(&self) -> Value {
        self.client
            .execute(
                r##"
const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
const luminance = (color) => {
  const [r, g, b] = color.match(/[\d.]+/g).slice(0, 3).map(Number).map(channel);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
};
const background = (e) => {
  for (; e; e = e.parentElement) {
    const c = getComputedStyle(e).backgroundColor;
    const parts = c.match(/[\d.]+/g);
    if (parts && (parts.length < 4 || Number(parts[3]) > 0)) return c;
  }
  return "rgb(255, 255, 255)";
};
const name = (e) => e.tagName + "#" + e.id + "." + e.className;
const contrast = [];
for (const e of document.querySelectorAll("body *")) {
  if (!e.checkVisibility() || e.disabled) continue;
  if (![...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
  const [a, b] = [luminance(getComputedStyle(e).color), luminance(background(e))];
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < 4.5) contrast.push(name(e) + " " + ratio.toFixed(2));
}
const unlabelled = [...document.querySelectorAll("input, select, textarea, button")]
  .filter((e) => e.checkVisibility())
  .filter((e) => !(e.labels?.length || e.getAttribute("aria-label") || (e.tagName === "BUTTON" && e.textContent.trim())))
  .map(name);
return { contrast, unlabelled };
"##,
                vec![],
            )
            .await
            .unwrap()
    }

    /// Presses Tab until the focus is on what `want` matches; the number of
    /// presses it took.
    async fn tab_to(&self, want: &str) -> usize {
        for n in 1..=60 {
            self.keys(TAB).await;
            if self.focused().await == want {
                return n;
            }
        }
        panic!("Tab never reached {want}; last at {}", self.focused().await)
    }

    async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

const TAB: &str = "\u{e004}";
const ENTER: &str = "\u{e007}";

/// chromedriver's (non-W3C) read of the browser's console log.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the driver's own process group.
        unsafe { libc::kill(-(self.driver.id() as i32), libc::SIGKILL) };
        let _ = self.driver.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and its driver: PODRUN_TEST_CHROMEDRIVER"]
async fn a_tenant_signs_in_sees_its_runs_submits_follows_reads_evidence_and_cancels() {
    let site = Site::start();
    let base = site.server.url("");
    let theirs = site.submit(&site.b, "echo from team b");
    let failed = site.submit(&site.a, "sh -c 'echo failing; echo after-the-gap; exit 3'");
    let browser = Browser::start().await;

    // A bad token: the sign-in form again, with a message.
    browser.client.goto(&format!("{base}/")).await.unwrap();
    browser.until("#signin-title", |t| t == "Sign in").await;
    browser
        .fill("#token", &format!("podrun_{}", "0".repeat(64)))
        .await;
    browser.click("#signin-form button[type=submit]").await;
    browser
        .until("#signin-error", |t| t == "The token was not accepted.")
        .await;
    assert!(browser.displayed("#signin").await);
    assert!(!browser.displayed("#runs").await);

    // Signed in with the keyboard alone (the token field has the focus):
    // the tenant's runs only.
    assert_eq!(browser.focused().await, "INPUT#token");
    browser.keys(&format!("{}{ENTER}", site.a)).await;
    let table = browser
        .until("#runs-table tbody", |t| t.contains(&failed))
        .await;
    assert!(!table.contains(&theirs), "another tenant's run: {table}");

    // The failed run's page, reached by Tab and Enter from the table; the
    // focus lands on its heading.
    let start = Instant::now();
    while site.state(&site.a, &failed) != "failed" {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{failed} did not fail"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    site.say_gap(
        &site.a,
        &failed,
        1,
        "the log of container hello was interrupted",
    );
    let link = format!("A#[#/runs/{failed}]");
    browser.client.refresh().await.unwrap();
    browser
        .until("#runs-table tbody", |t| t.contains(&failed))
        .await;
    let presses = browser.tab_to(&link).await;
    assert!(presses < 15, "{presses} presses of Tab to the first run");
    browser.keys(ENTER).await;
    // Its verdict and its evidence.
    browser
        .until("#verdict-fields", |t| t.contains("Error"))
        .await;
    assert_eq!(browser.focused().await, "H1#run-title");
    let shown = browser
        .client
        .execute(
            "return [...document.querySelectorAll('#verdict-fields dt')]
                .map(dt => dt.textContent + '=' + dt.nextElementSibling.textContent)",
            vec![],
        )
        .await
        .unwrap();
    for field in [
        "Outcome=failed",
        "Reason=Error",
        "Exit code=3",
        "Retryable=no",
    ] {
        assert!(shown.to_string().contains(field), "{field} in {shown}");
    }
    let evidence = browser.until("#evidence", |t| !t.is_empty()).await;
    assert!(evidence.contains("exitCode=3"), "{evidence}");
    browser.until("#log", |t| t.contains("failing")).await;
    // Where lines may be missing, said in the log after the line before.
    let log = browser
        .until("#log", |t| {
            t.contains("Lines may be missing") && t.contains("after-the-gap")
        })
        .await;
    let at = |text: &str| log.find(text).unwrap_or_else(|| panic!("{text} in {log}"));
    assert!(
        at("failing") < at("Lines may be missing here: the log of container hello was interrupted")
            && at("Lines may be missing") < at("after-the-gap"),
        "{log}"
    );
    // What each hook changed, in order.
    let changes = browser
        .until("#changes", |t| t.contains("restart-never"))
        .await;
    assert!(changes.starts_with("render hook"), "{changes}");
    assert!(changes.contains("/spec/restartPolicy"), "{changes}");
    browser.screenshot("failed-run").await;
    browser
        .client
        .execute(
            "document.querySelector('#log-title').scrollIntoView(); return true",
            vec![],
        )
        .await
        .unwrap();
    browser.screenshot("failed-run-log").await;
    let clean = json!({"contrast": [], "unlabelled": []});
    assert_eq!(browser.inaccessible().await, clean, "the run's page");

    // Submitted from the form; its log arrives while it runs.
    browser
        .client
        .goto(&format!("{base}/#/submit"))
        .await
        .unwrap();
    browser.until("#submit-app", |t| t.contains("hello")).await;
    // Each edit is checked as the API checks a submit: a timeout over the
    // application's limit is refused with the API's words, on its field.
    browser.fill("#submit-timeout", "7200").await;
    browser.keys(TAB).await;
    let problem = browser
        .until("#submit-error", |t| t.contains("timeout"))
        .await;
    let (_, refused) = site.call(
        &site.a,
        "POST",
        "/v1/runs?dryRun=true",
        Some(json!({"application": "hello", "params": {"team": "platform"}, "timeout": 7200})),
    );
    assert_eq!(problem, refused["error"]["message"].as_str().unwrap());
    let invalid = browser
        .client
        .execute(
            "const t = document.querySelector('#submit-timeout');
             return t.getAttribute('aria-invalid') + ' ' + t.getAttribute('aria-describedby')",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(invalid, json!("true submit-timeout-hint submit-error"));
    assert_eq!(browser.inaccessible().await, clean, "the form");
    browser.fill("#submit-timeout", "").await;
    // Resources past the bound, on their field; an override that is not
    // JSON is said before anything is sent.
    let memory = "[name='resources.limits.memory']";
    browser.fill(memory, "2Gi").await;
    browser.keys(TAB).await;
    browser
        .until("#submit-error", |t| t.contains("resources.limits.memory"))
        .await;
    let invalid = browser
        .client
        .execute(
            "return document.querySelector(\"[name='resources.limits.memory']\").getAttribute('aria-invalid')",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(invalid, json!("true"));
    browser.fill(memory, "").await;
    browser.fill("#submit-podOverride", "{not json").await;
    browser.keys(TAB).await;
    browser
        .until("#submit-error", |t| t.starts_with("podOverride: not JSON"))
        .await;
    browser.fill("#submit-podOverride", "").await;
    browser
        .fill(
            "#submit-command",
            "sh -c 'echo first; sleep 3; echo second'",
        )
        .await;
    browser.keys(TAB).await;
    browser
        .until("#submit-check", |t| t == "The server accepts this run.")
        .await;
    assert_eq!(browser.text("#submit-error").await, "");
    browser.click("#submit-form button[type=submit]").await;
    browser.until("#log", |t| t.contains("first")).await;
    // Live: the first line shows while the run still has seconds to go.
    assert!(!browser.text("#log").await.contains("second"));
    assert_ne!(browser.text("#run-state").await, "succeeded");
    browser.until("#log", |t| t.contains("second")).await;
    browser.until("#run-state", |t| t == "succeeded").await;
    // Its timeline: each step with its time.
    let timeline = browser.text("#run-timeline").await;
    for step in ["queued", "starting", "running", "succeeded"] {
        assert!(timeline.contains(step), "{step} in {timeline}");
    }
    assert!(!timeline.contains("not yet"), "{timeline}");

    // What a run prints is shown as text, never run as markup.
    let markup = site.submit(&site.a, "echo '<img src=x onerror=window.pwned=1>'");
    browser
        .client
        .goto(&format!("{base}/#/runs/{markup}"))
        .await
        .unwrap();
    browser
        .until("#log", |t| t.contains("<img src=x onerror=window.pwned=1>"))
        .await;
    let pwned = browser
        .client
        .execute(
            "return window.pwned === undefined && !document.querySelector('#log img')",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(pwned, Value::Bool(true));

    // Cancelled from its page.
    let long = site.submit(&site.a, "sleep 60");
    browser
        .client
        .goto(&format!("{base}/#/runs/{long}"))
        .await
        .unwrap();
    browser.until("#run-state", |t| t == "running").await;
    browser.click("#cancel").await;
    browser.until("#run-state", |t| t == "cancelled").await;
    assert_eq!(site.state(&site.a, &long), "cancelled");

    browser
        .client
        .goto(&format!("{base}/#/runs"))
        .await
        .unwrap();
    browser
        .until("#runs-table tbody", |t| t.contains(&long))
        .await;
    browser.screenshot("runs").await;
    assert_eq!(browser.inaccessible().await, clean, "the runs page");
    // And the check sees pale text and an unlabelled field.
    browser
        .client
        .execute(
            "const p = document.createElement('p'); p.id = 'pale'; p.textContent = 'pale';
             p.style.color = '#bbbbbb'; document.querySelector('main').append(p);
             const i = document.createElement('input'); i.id = 'nameless';
             document.querySelector('main').append(i); return true",
            vec![],
        )
        .await
        .unwrap();
    let found = browser.inaccessible().await;
    assert!(
        found["contrast"][0]
            .as_str()
            .is_some_and(|c| c.starts_with("P#pale")),
        "{found}"
    );
    assert_eq!(found["unlabelled"], json!(["INPUT#nameless."]));

    // On a phone's width the page fits: nothing scrolls sideways.
    browser.client.set_window_size(390, 844).await.unwrap();
    browser
        .client
        .goto(&format!("{base}/#/runs/{failed}"))
        .await
        .unwrap();
    browser.until("#evidence", |t| !t.is_empty()).await;
    browser.screenshot("failed-run-phone").await;
    let wide = browser
        .client
        .execute(
            "return [...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
                .map(e => e.tagName + '#' + e.id + '.' + e.className)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(wide, json!([]), "wider than a phone");

    // The console stayed clean: no CSP violation, no script error. Only
    // the API's 4xx answers the page handled (the bad token's 401, the
    // refused timeout's 403) are there, as network entries.
    let console: Vec<String> = browser
        .console()
        .await
        .into_iter()
        .filter(|m| !m.starts_with("\"network\""))
        .collect();
    assert_eq!(console, Vec::<String>::new());
    // And the check sees a violation: an inline script is refused.
    browser
        .client
        .execute(
            "const s = document.createElement('script'); s.textContent = 'window.ran = 1'; document.body.append(s); return true",
            vec![],
        )
        .await
        .unwrap();
    let ran = browser
        .client
        .execute("return window.ran === undefined", vec![])
        .await
        .unwrap();
    assert_eq!(ran, Value::Bool(true), "an inline script ran");
    let console = browser.console().await;
    assert!(
        console
            .iter()
            .any(|m| m.contains("Content Security Policy")),
        "{console:?}"
    );

    // No secret in the page or in what the server wrote.
    let source = browser.client.source().await.unwrap();
    site.no_token_in(&source, "the page");
    site.no_token_in(&site.server.log(), "the server's log");
    browser.close().await;
}

/// The page and its assets are served with a policy that allows no inline
/// script and no other origin, on every answer, and hold no secret.
#[test]
fn the_page_is_served_with_a_strict_content_security_policy() {
    let site = Site::start();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    for (path, kind) in [
        ("/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
        ("/v1/runs", "application/json"),
    ] {
        let response = agent.get(site.server.url(path)).call().unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let policy = header("content-security-policy");
        assert!(policy.contains("default-src 'none'"), "{path}: {policy}");
        assert!(policy.contains("script-src 'self';"), "{path}: {policy}");
        assert!(!policy.contains("unsafe-inline"), "{path}: {policy}");
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert!(header("content-type").starts_with(kind), "{path}");
        // The page loads without a token; the API does not.
        let want = if path.starts_with("/v1/") { 401 } else { 200 };
        assert_eq!(response.status().as_u16(), want, "{path}");
    }
    let page = agent
        .get(site.server.url("/"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    // No inline script: every script comes from a file of this origin.
    assert!(page.contains(r#"<script type="module" src="/ui/app.js"></script>"#));
    assert_eq!(page.matches("<script").count(), 1);
    site.no_token_in(&page, "the page");
}

/// What a tenant may submit: its applications, with their parameters and
/// what it may set; and the pod a run made, for its owner only.
#[test]
fn a_tenant_reads_its_applications_and_its_own_runs_pod() {
    let site = Site::start();
    let (status, apps) = site.call(&site.a, "GET", "/v1/applications", None);
    assert_eq!(status, 200, "{apps}");
    assert_eq!(
        apps["applications"][0],
        json!({"name": "hello", "parameters": [{"name": "team", "default": "platform"}],
            "command": true, "namespace": true, "namespaces": ["shared"], "timeout": true,
            "maxTimeoutSeconds": 3600, "image": false,
            "resources": {"maxCpuMillis": 1000, "maxMemoryBytes": 1073741824},
            "podOverride": [["metadata.annotations"]]})
    );
    let id = site.submit(&site.a, "sh -c 'echo hi'");
    let (status, pod) = site.call(&site.a, "GET", &format!("/v1/runs/{id}/pod"), None);
    assert_eq!(status, 200, "{pod}");
    assert_eq!(pod["pod"]["kind"], "Pod");
    assert_eq!(
        pod["request"]["args"],
        json!(["sh", "-c", "echo hi"]),
        "{pod}"
    );
    assert_eq!(pod["request"]["params"]["team"], "platform");
    let (status, _) = site.call(&site.b, "GET", &format!("/v1/runs/{id}/pod"), None);
    assert_eq!(status, 404);
    // The operator's values in the pod are not shown to the caller.
    let id = site.submit_to(&site.b, json!({"application": "secret"}));
    let (status, pod) = site.call(&site.b, "GET", &format!("/v1/runs/{id}/pod"), None);
    assert_eq!(status, 200, "{pod}");
    assert!(!pod.to_string().contains("hunter2"), "{pod}");
    assert_eq!(
        pod["pod"]["spec"]["containers"][0]["env"][0]["name"],
        "DB_PASSWORD"
    );
    // A tenant's namespaces: its own list, or else the application's.
    let (_, apps) = site.call(&site.b, "GET", "/v1/applications", None);
    assert_eq!(apps["applications"][1]["namespaces"], json!(["shared"]));
    let (_, apps) = site.call(&site.a, "GET", "/v1/applications", None);
    assert_eq!(apps["applications"].as_array().unwrap().len(), 1, "{apps}");
}

/// What each hook changed is kept with the run and shown to its owner,
/// with the values a hook put in hidden as the pod's are.
#[test]
fn a_runs_pod_comes_with_what_each_hook_changed_its_values_redacted() {
    let site = Site::start();
    let id = site.submit(&site.a, "sh -c 'echo hi'");
    let (status, pod) = site.call(&site.a, "GET", &format!("/v1/runs/{id}/pod"), None);
    assert_eq!(status, 200, "{pod}");
    let changes = pod["changes"].as_array().expect("changes");
    assert_eq!(changes[0]["kind"], "render", "{pod}");
    assert_eq!(
        changes[0]["changes"],
        json!(["rendered the application's template"])
    );
    // The default mutate hooks each had their say, in order.
    let hooks: Vec<&str> = changes[1..]
        .iter()
        .map(|c| c["hook"].as_str().unwrap())
        .collect();
    assert!(hooks.contains(&"restart-never"), "{hooks:?}");
    assert!(
        changes
            .iter()
            .any(|c| c["changes"].to_string().contains("/spec/restartPolicy")),
        "{pod}"
    );

    let id = site.submit_to(&site.b, json!({"application": "secret"}));
    let (_, pod) = site.call(&site.b, "GET", &format!("/v1/runs/{id}/pod"), None);
    let text = pod["changes"].to_string();
    assert!(text.contains("add /spec/containers/0/env/1"), "{text}");
    assert!(
        text.contains("API_KEY") && text.contains("(redacted)"),
        "{text}"
    );
    assert!(!pod.to_string().contains("sesame"), "{pod}");
    // A value a later hook took out is not shown either.
    assert!(
        text.contains("add /metadata/annotations (not so in the final pod)"),
        "{text}"
    );
    assert!(
        !pod.to_string().contains("token-for-the-next-hook"),
        "{pod}"
    );
}

/// `dryRun=true` answers what a submit would, hooks included, and queues
/// nothing: the page's form checks itself with it.
#[test]
fn a_dry_run_answers_as_a_submit_would_and_queues_nothing() {
    let site = Site::start();
    let count = |site: &Site| {
        let (_, runs) = site.call(&site.a, "GET", "/v1/runs", None);
        runs["runs"].as_array().unwrap().len()
    };
    let dry = |site: &Site, token: &str, body: Value| {
        site.call(token, "POST", "/v1/runs?dryRun=true", Some(body))
    };
    let (status, answer) = dry(
        &site,
        &site.a,
        json!({"application": "hello", "command": "true"}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["pod"]["kind"], "Pod");
    assert!(
        answer["changes"].as_array().is_some_and(|c| c.len() > 1),
        "{answer}"
    );
    assert_eq!(count(&site), 0, "a dry run queued a run");

    // The errors a submit gets, naming the field they are about.
    for (body, status, code, field) in [
        (
            json!({"application": "hello", "params": {"nope": "x"}}),
            400,
            "bad-request",
            "params.nope",
        ),
        (
            json!({"application": "hello", "timeout": 7200}),
            403,
            "not-allowed",
            "timeout",
        ),
        (
            json!({"application": "hello", "image": "busybox:other"}),
            403,
            "not-allowed",
            "image",
        ),
    ] {
        let (got, answer) = dry(&site, &site.a, body.clone());
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
        let (got, submitted) = site.call(&site.a, "POST", "/v1/runs", Some(body));
        assert_eq!((got, &submitted["error"]), (status, &answer["error"]));
    }
    let (status, _) = dry(&site, &site.a, json!({"application": "secret"}));
    assert_eq!(status, 403, "another tenant's application");
    let (status, _) = site.call(
        &site.a,
        "POST",
        "/v1/runs?dryRun=maybe",
        Some(json!({"application": "hello"})),
    );
    assert_eq!(status, 400);
    assert_eq!(count(&site), 0);

    // Dry runs have a budget of their own: using it up leaves the submits.
    // (The budget refills as it goes: one more every 3 s.)
    let mut passed = 0;
    loop {
        let (status, answer) = dry(&site, &site.b, json!({"application": "hello"}));
        if status == 429 {
            assert_eq!(answer["error"]["code"], "rate-limited");
            break;
        }
        assert_eq!(status, 200, "dry run {passed}: {answer}");
        passed += 1;
        assert!(passed < 40, "dry runs are not limited");
    }
    assert!(passed >= 20, "{passed} dry runs before the limit");
    let (status, run) = site.call(
        &site.b,
        "POST",
        "/v1/runs",
        Some(json!({"application": "hello"})),
    );
    assert_eq!(status, 201, "{run}");

    // A dry run takes no idempotency key: the submit after it is new.
    let key = [("Idempotency-Key", "form-1")];
    let body = json!({"application": "hello", "command": "true"}).to_string();
    let (status, _) = site.server.call(
        "POST",
        "/v1/runs?dryRun=true",
        Some(&body),
        &[key[0], ("Authorization", &format!("Bearer {}", site.a))],
    );
    assert_eq!(status, 200);
    let (status, run) = site.server.call(
        "POST",
        "/v1/runs",
        Some(&body),
        &[key[0], ("Authorization", &format!("Bearer {}", site.a))],
    );
    assert_eq!(status, 201, "{run}");
}

/// Where lines of a run's log may be missing is said with the run and in
/// its followed log, in its place among the lines.
#[test]
fn a_gap_in_a_runs_log_is_said_where_it_is() {
    let site = Site::start();
    let id = site.submit(&site.a, "sh -c 'echo one; echo two'");
    let start = Instant::now();
    while site.state(&site.a, &id) != "succeeded" {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "run {id} did not succeed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    site.say_gap(
        &site.a,
        &id,
        1,
        "the log of container hello was interrupted",
    );
    let (_, run) = site.call(&site.a, "GET", &format!("/v1/runs/{id}"), None);
    assert_eq!(run["log"]["gapCount"], 1, "{run}");
    assert_eq!(
        run["log"]["gaps"],
        json!([{"line": 1, "container": "hello", "message": "the log of container hello was interrupted"}])
    );
    // Lists say how many, not where.
    let (_, runs) = site.call(&site.a, "GET", "/v1/runs", None);
    assert_eq!(
        runs["runs"][0]["log"],
        json!({"bytes": 8, "truncated": false, "gapCount": 1})
    );

    let auth = format!("Bearer {}", site.a);
    let follow = |offset: u32| {
        let path = format!("/v1/runs/{id}/logs?follow=true&offset={offset}");
        let (status, text) = site
            .server
            .call("GET", &path, None, &[("Authorization", &auth)]);
        assert_eq!(status, 200);
        text.lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(follow(0), ["line", "gap", "line", "end"]);
    // A follower that resumes after the gap's place does not get it again.
    assert_eq!(follow(2), ["end"]);
}
