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
- name: secret
  template: templates/secret.tmpl
  container:
    image: busybox:local
  namespace: shared
tenants:
- name: team-a
  tokens: ["{a}"]
  applications: [hello]
  local-runtime: true
- name: team-b
  tokens: ["{b}"]
  applications: [hello, secret]
  local-runtime: true
"#
    )
}

/// A server with two tenants, and their tokens.
struct Site {
    _scratch: Scratch,
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
        let store = format!("sqlite:{}", scratch.path().join("runs.db").display());
        let server = Server::start(&scratch, &store, &[]);
        Site {
            _scratch: scratch,
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

    async fn close(self) {
        let _ = self.client.clone().close().await;
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
    let failed = site.submit(&site.a, "sh -c 'echo failing; exit 3'");
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

    // Signed in: the tenant's runs only.
    browser.fill("#token", &site.a).await;
    browser.click("#signin-form button[type=submit]").await;
    let table = browser
        .until("#runs-table tbody", |t| t.contains(&failed))
        .await;
    assert!(!table.contains(&theirs), "another tenant's run: {table}");

    // A failed run's verdict and its evidence.
    browser
        .client
        .goto(&format!("{base}/#/runs/{failed}"))
        .await
        .unwrap();
    browser
        .until("#verdict-fields", |t| t.contains("Error"))
        .await;
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
    browser.screenshot("failed-run").await;

    // Submitted from the form; its log arrives while it runs.
    browser
        .client
        .goto(&format!("{base}/#/submit"))
        .await
        .unwrap();
    browser.until("#submit-app", |t| t.contains("hello")).await;
    browser
        .fill(
            "#submit-command",
            "sh -c 'echo first; sleep 3; echo second'",
        )
        .await;
    browser.click("#submit-form button[type=submit]").await;
    browser.until("#log", |t| t.contains("first")).await;
    // Live: the first line shows while the run still has seconds to go.
    assert!(!browser.text("#log").await.contains("second"));
    assert_ne!(browser.text("#run-state").await, "succeeded");
    browser.until("#log", |t| t.contains("second")).await;
    browser.until("#run-state", |t| t == "succeeded").await;

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
            "maxTimeoutSeconds": 3600, "image": false})
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
