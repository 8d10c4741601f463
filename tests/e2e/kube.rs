//! The Kubernetes runtime against a real cluster.
//!
//! These tests need a cluster whose only image may be `busybox:local`:
//! `PODRUN_E2E_KUBECONFIG` names its kubeconfig, and the fault-injection
//! tests also need `PODRUN_E2E_PLAIN_API`, a plain-HTTP URL of its API
//! (`kubectl proxy`). Run them with `cargo test -p podrun-cli --test e2e --
//! --ignored kube::` (`.ci/run` starts a local cluster and does).

use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

use crate::proxy::{Faults, Proxy};
use crate::support::{self, Run, container, write_manifest};

fn kubeconfig() -> PathBuf {
    std::env::var_os("PODRUN_E2E_KUBECONFIG")
        .map(PathBuf::from)
        .expect("PODRUN_E2E_KUBECONFIG must name the test cluster's kubeconfig")
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", podrun::run_id::new())
}

fn podrun(kubeconfig: &Path) -> StdCommand {
    let mut cmd = StdCommand::cargo_bin("podrun").unwrap();
    cmd.env("PODRUN_CACHE_DIR", support::shared_cache())
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::null());
    cmd
}

/// A pod named `name` with `body` (YAML lines at `spec:` level).
fn manifest(name: &str, body: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 1\n{body}"
    )
}

fn run_on(kubeconfig: &Path, yaml: &str, extra: &[&str]) -> Run {
    let (dir, path) = write_manifest(yaml);
    let result = dir.path().join("result.json");
    let out = podrun(kubeconfig)
        .args(["pod", "run", "-f"])
        .arg(&path)
        .arg("--result-file")
        .arg(&result)
        .args(extra)
        .output()
        .unwrap();
    Run::collect(out, &result)
}

fn run(yaml: &str, extra: &[&str]) -> Run {
    run_on(&kubeconfig(), yaml, extra)
}

/// `kubectl get pod NAME -o json`, or `None` when it does not exist (or is
/// being deleted).
fn live_pod(name: &str) -> Option<Value> {
    let out = StdCommand::new("kubectl")
        .env("KUBECONFIG", kubeconfig())
        .args(["get", "pod", name, "-o", "json", "--ignore-not-found"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v["metadata"]["deletionTimestamp"].is_null().then_some(v)
}

fn kubectl_delete(name: &str) {
    let _ = StdCommand::new("kubectl")
        .env("KUBECONFIG", kubeconfig())
        .args(["delete", "pod", name, "--wait=false", "--ignore-not-found"])
        .output();
}

fn numbered(n: usize) -> String {
    (1..=n).map(|i| format!("{i}\n")).collect()
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn success_with_logs_in_order_and_the_pod_deleted() {
    let name = unique("ok");
    let r = run(
        &manifest(
            &name,
            &format!(
                "  containers:\n{}",
                container("main", "for i in $(seq 1 50); do echo $i; done")
            ),
        ),
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, numbered(50));
    assert_eq!(r.result["runtime"], "kube");
    assert!(live_pod(&name).is_none(), "the pod was not deleted");
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn a_failing_container_gives_its_exit_code() {
    let r = run(
        &manifest(
            &unique("exit"),
            &format!(
                "  containers:\n{}",
                container("main", "echo failing; exit 3")
            ),
        ),
        &[],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(r.stdout, "failing\n");
    assert_eq!(r.result["reason"], "Error");
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn init_containers_then_main_all_logs_in_order() {
    let body = format!(
        "  initContainers:\n{}{}  containers:\n{}",
        container("first", "echo one; echo two"),
        container("second", "echo three"),
        container("main", "echo four"),
    );
    let r = run(&manifest(&unique("init"), &body), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "[first] one\n[first] two\n[second] three\n[main] four\n"
    );
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn a_missing_image_fails_fast() {
    let body =
        "  containers:\n  - name: main\n    image: registry.invalid/nope:1\n    command: [sh]\n";
    let start = Instant::now();
    let r = run(&manifest(&unique("image"), body), &[]);
    assert_eq!(r.code, 126, "{}", r.stderr);
    let reason = r.result["reason"].as_str().unwrap_or_default();
    assert!(
        ["ErrImagePull", "ImagePullBackOff"].contains(&reason),
        "{}",
        r.result
    );
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn oom_killed() {
    let yaml = std::fs::read_to_string(support::root().join("tests/fixtures/scenarios/oom.yaml"))
        .unwrap()
        .replace("scenario-oom", &unique("oom"));
    let r = run(&yaml, &[]);
    assert_eq!(
        (r.code, r.result["reason"].as_str()),
        (137, Some("OOMKilled")),
        "{}",
        r.stderr
    );
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn deadline_exceeded() {
    let body = format!(
        "  activeDeadlineSeconds: 2\n  containers:\n{}",
        container("main", "echo waiting; sleep 60")
    );
    let r = run(&manifest(&unique("deadline"), &body), &[]);
    assert_eq!(
        (r.code, r.result["reason"].as_str()),
        (124, Some("DeadlineExceeded")),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "waiting\n");
    // The pod fails before its log is read: a finished pod keeps saying
    // its container runs, and the line must be read all the same.
    let proxy = proxied(Faults {
        delay_logs: Some(Duration::from_secs(3)),
        ..Faults::default()
    })
    .unwrap();
    let r = run_on(
        &proxy.kubeconfig,
        &manifest(&unique("deadline-late-log"), &body),
        &[],
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (124, "waiting\n"),
        "{}",
        r.stderr
    );
    // A line and half of one, and a container that ignores SIGTERM (sh as
    // PID 1): read at once, not after the kill's grace period, and no gap
    // said. The half line is in the log only once the container has
    // ended (containerd holds it until then): it may come or not.
    let half = format!(
        "  activeDeadlineSeconds: 2\n  containers:\n{}",
        container("main", "printf 'first\\nhalf'; sleep 60")
    );
    let yaml = manifest(&unique("deadline-half"), &half).replace(
        "terminationGracePeriodSeconds: 1\n",
        "terminationGracePeriodSeconds: 20\n",
    );
    let started = std::time::Instant::now();
    let r = run(&yaml, &[]);
    assert_eq!(r.code, 124, "{}", r.stderr);
    assert!(
        ["first\n", "first\nhalf"].contains(&r.stdout.as_str()),
        "{:?} {}",
        r.stdout,
        r.stderr
    );
    assert!(
        !r.stderr.contains("may be missing") && !r.stderr.contains("did not arrive"),
        "{}",
        r.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn pending_timeout_for_an_unschedulable_pod() {
    let body = format!(
        "  nodeSelector: {{podrun-test: nowhere}}\n  containers:\n{}",
        container("main", "true")
    );
    let name = unique("pending");
    let r = run(&manifest(&name, &body), &["--pending-timeout", "3s"]);
    assert_eq!(
        (r.code, r.result["reason"].as_str()),
        (124, Some("PendingTimeout")),
        "{}",
        r.stderr
    );
    assert!(
        r.result["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Unschedulable"),
        "{}",
        r.result
    );
    assert!(live_pod(&name).is_none(), "the pod was not deleted");
}

fn spawn_run(yaml: &str, extra: &[&str]) -> (tempfile::TempDir, Child) {
    let (dir, path) = write_manifest(yaml);
    let child = podrun(&kubeconfig())
        .args(["pod", "run", "-f"])
        .arg(&path)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (dir, child)
}

/// Waits until the pod runs.
fn wait_running(name: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if live_pod(name).is_some_and(|p| p["status"]["phase"] == "Running") {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("pod {name} never ran");
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn sigterm_deletes_the_pod_and_exits_143() {
    let name = unique("sigterm");
    let (_dir, child) = spawn_run(
        &manifest(
            &name,
            &format!("  containers:\n{}", container("main", "echo up; sleep 60")),
        ),
        &[],
    );
    wait_running(&name);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(live_pod(&name).is_none(), "the pod was not deleted");
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn run_id_reattaches_after_podrun_is_killed() {
    let name = unique("reattach");
    let run_id = unique("r");
    let yaml = manifest(
        &name,
        &format!(
            "  containers:\n{}",
            container("main", "echo begin; sleep 4; echo end; exit 5")
        ),
    );
    let (_dir, mut first) = spawn_run(&yaml, &["--run-id", &run_id]);
    wait_running(&name);
    first.kill().unwrap(); // SIGKILL: no clean-up
    first.wait().unwrap();
    let r = run(&yaml, &["--run-id", &run_id, "--keep", "always"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("re-attaching"), "{}", r.stderr);
    assert_eq!(r.stdout, "begin\nend\n");
    // A different run may not take the kept pod over.
    let other = run(&yaml, &["--run-id", &unique("other")]);
    assert_eq!(other.code, 125, "{}", other.stderr);
    kubectl_delete(&name);
}

/// The names of the live pods labelled with run id `run_id`.
fn pods_of_run(run_id: &str) -> Vec<String> {
    let out = StdCommand::new("kubectl")
        .env("KUBECONFIG", kubeconfig())
        .args(["get", "pods", "-o", "json", "-l"])
        .arg(format!("podrun.dev/run-id={run_id}"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["metadata"]["name"].as_str().map(String::from))
        .collect()
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn a_generated_name_runs_and_is_found_again_by_its_run_id() {
    let run_id = unique("g");
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{generateName: gen-}}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 1\n  containers:\n{}",
        container("main", "echo begin; sleep 4; echo end; exit 5")
    );
    let (_dir, mut first) = spawn_run(&yaml, &["--run-id", &run_id]);
    let start = Instant::now();
    let name = loop {
        if let [name] = pods_of_run(&run_id).as_slice()
            && live_pod(name).is_some_and(|p| p["status"]["phase"] == "Running")
        {
            break name.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no pod of the run ran"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(name.starts_with("gen-"), "{name}");
    first.kill().unwrap(); // SIGKILL: no clean-up
    first.wait().unwrap();
    let r = run(&yaml, &["--run-id", &run_id]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("re-attaching to pod default/{name}")),
        "{}",
        r.stderr
    );
    assert_eq!(r.result["pod"], name.as_str());
    assert_eq!(r.stdout, "begin\nend\n");
    assert!(pods_of_run(&run_id).is_empty(), "the pod was not deleted");
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn stdin_goes_to_the_worker() {
    let body = format!("  containers:\n{}", container("worker", "tr a-z A-Z"));
    let (dir, path) = write_manifest(&manifest(&unique("stdin"), &body));
    let out = support::pod_run_with_stdin(podrun(&kubeconfig()), &path, b"shout this\n");
    drop(dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "SHOUT THIS\n");
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn keep_on_failure_keeps_only_failed_pods() {
    let failed = unique("keep-fail");
    let r = run(
        &manifest(
            &failed,
            &format!("  containers:\n{}", container("main", "exit 2")),
        ),
        &["--keep", "on-failure"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(live_pod(&failed).is_some(), "a failed pod must be kept");
    kubectl_delete(&failed);
    let ok = unique("keep-ok");
    let r = run(
        &manifest(
            &ok,
            &format!("  containers:\n{}", container("main", "true")),
        ),
        &["--keep", "on-failure"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(live_pod(&ok).is_none(), "a successful pod must be deleted");
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn a_failing_classifier_stops_and_deletes_the_pod() {
    for action in ["panic", "print", "sleep", "alloc"] {
        let scratch = crate::sandbox::misclassifying(action);
        let result = scratch.path().join("result.json");
        let start = Instant::now();
        let out = podrun(&kubeconfig())
            .current_dir(scratch.path())
            .args(["run", "-a", "hello", "-n", "default", "--result-file"])
            .arg(&result)
            .args(["-c", "sleep 60"])
            .output()
            .unwrap();
        let run = Run::collect(out, &result);
        assert_eq!(run.code, 122, "{action}: {}", run.stderr);
        assert!(
            start.elapsed() < Duration::from_secs(45),
            "{action}: waited for the pod"
        );
        assert_eq!(run.result["reason"], "HookFailed", "{action}");
        assert_eq!(run.result["runtime"], "kube", "{action}");
        let pod = run.result["pod"].as_str().unwrap().to_string();
        assert!(
            live_pod(&pod).is_none(),
            "{action}: pod {pod} was left behind"
        );
    }
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn a_namespace_that_does_not_exist_is_the_callers_mistake_in_one_line() {
    let (_dir, manifest) = write_manifest(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: nowhere}\nspec:\n  containers: [{name: c, image: busybox:local}]\n",
    );
    let runs = [
        podrun(&kubeconfig())
            .current_dir(support::root().join("examples/hello"))
            .args([
                "run",
                "-a",
                "hello",
                "-n",
                "podrun-no-such-ns",
                "-c",
                "true",
            ])
            .output()
            .unwrap(),
        podrun(&kubeconfig())
            .args(["pod", "run", "-n", "podrun-no-such-ns", "-f"])
            .arg(&manifest)
            .output()
            .unwrap(),
    ];
    for out in runs {
        assert_eq!(out.status.code(), Some(125));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "podrun: error: namespace \"podrun-no-such-ns\" not found\n"
        );
    }
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn the_original_invocation_works() {
    let out = podrun(&kubeconfig())
        .current_dir(support::root().join("examples/hello"))
        .env_remove("KUBECONFIG")
        .args([
            "--application",
            "hello",
            "--namespace",
            "default",
            "--command",
            "sh, -c, echo from the original form; exit 3",
        ])
        .arg("--kube-config")
        .arg(kubeconfig())
        .output()
        .unwrap();
    support::exited(&out, 3, "from the original form\n");
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn gc_removes_old_podrun_pods() {
    let name = unique("gc");
    let run_id = unique("gc-run");
    let body = format!("  containers:\n{}", container("main", "exit 1"));
    let r = run(
        &manifest(&name, &body),
        &["--keep", "always", "--run-id", &run_id],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    std::thread::sleep(Duration::from_secs(1));
    // Other tests' pods run beside this one: only this run's pod is chosen.
    let selector = format!("podrun.dev/run-id={run_id}");
    let out = podrun(&kubeconfig())
        .args(["gc", "--older-than", "1s", "-n", "default", "-l", &selector])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("deleted pod default/{name}\n")
    );
    assert!(live_pod(&name).is_none());
}

// Through a fault-injecting proxy in front of the API's plain-HTTP port.

fn proxied(faults: Faults) -> Option<Proxy> {
    match std::env::var("PODRUN_E2E_PLAIN_API") {
        Ok(upstream) => Some(Proxy::start(&upstream, faults)),
        Err(_) => {
            panic!("PODRUN_E2E_PLAIN_API must name the cluster's plain-HTTP API (kubectl proxy)")
        }
    }
}

/// Numbered lines over a few seconds, so that streams can be cut mid-run.
fn slow_counter(name: &str, lines: usize) -> String {
    manifest(
        name,
        &format!(
            "  containers:\n{}",
            container(
                "main",
                &format!("for i in $(seq 1 {lines}); do echo $i; sleep 0.02; done")
            )
        ),
    )
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn cut_watches_lose_nothing() {
    let proxy = proxied(Faults {
        cut_watches_after: Some(Duration::from_millis(700)),
        ..Faults::default()
    })
    .unwrap();
    let r = run_on(
        &proxy.kubeconfig,
        &slow_counter(&unique("watchcut"), 150),
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, numbered(150));
    assert!(proxy.watches_cut() > 0, "no watch was cut");
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn a_watch_answered_with_410_gone_resumes() {
    let proxy = proxied(Faults {
        gone_watches: 2,
        ..Faults::default()
    })
    .unwrap();
    let r = run_on(&proxy.kubeconfig, &slow_counter(&unique("gone"), 40), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, numbered(40));
    assert_eq!(proxy.gone_sent(), 2);
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn cut_log_streams_lose_and_repeat_no_line() {
    let proxy = proxied(Faults {
        cut_logs_after_bytes: Some(300),
        ..Faults::default()
    })
    .unwrap();
    let r = run_on(
        &proxy.kubeconfig,
        &slow_counter(&unique("logcut"), 200),
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, numbered(200));
    assert!(proxy.logs_cut() > 2, "log streams were not cut");
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn errors_on_create_are_retried_into_exactly_one_pod() {
    let proxy = proxied(Faults {
        create_errors: vec![429, 500, 503],
        ..Faults::default()
    })
    .unwrap();
    let name = unique("create");
    let r = run_on(
        &proxy.kubeconfig,
        &manifest(
            &name,
            &format!("  containers:\n{}", container("main", "echo once")),
        ),
        &["--keep", "always"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "once\n");
    assert_eq!(proxy.creates_failed(), 3);
    // The create that follows a lost answer must not make a second pod.
    let lost = proxied(Faults {
        lose_create_answers: 1,
        ..Faults::default()
    })
    .unwrap();
    let name2 = unique("lost");
    let r = run_on(
        &lost.kubeconfig,
        &manifest(
            &name2,
            &format!("  containers:\n{}", container("main", "echo once")),
        ),
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "once\n");
    kubectl_delete(&name);
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn a_converted_pod_runs_its_steps_in_order() {
    let name = unique("steps");
    let pod = manifest(
        &name,
        &format!(
            "  containers:\n{}{}{}",
            container("one", "echo one $(cut -d\" \" -f1 /proc/uptime)"),
            container("two", "echo two $(cut -d\" \" -f1 /proc/uptime)"),
            container("three", "echo three $(cut -d\" \" -f1 /proc/uptime)"),
        ),
    );
    let r = run(&converted(&pod, "sequence"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Each step prints the node's uptime (a shared clock, in 1/100 s).
    let lines: Vec<(&str, f64)> = r
        .stdout
        .lines()
        .map(|l| {
            let mut words = l.split_whitespace().skip(1);
            (
                words.next().unwrap(),
                words.next().unwrap().parse().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = lines.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["one", "two", "three"], "{}", r.stdout);
    assert!(
        lines.windows(2).all(|w| w[0].1 < w[1].1),
        "the steps overlapped: {}",
        r.stdout
    );
}

/// `podrun convert` of `yaml`, with `hook` settings.
fn converted(yaml: &str, hook: &str) -> String {
    let out = podrun(&kubeconfig())
        .args(["convert", "-f", "-", "--hook", hook])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(yaml.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn status_names_the_running_step() {
    for strategy in ["init-containers", "entrypoint"] {
        let name = unique("status");
        let pod = manifest(
            &name,
            &format!(
                "  containers:\n{}{}{}",
                container("one", "echo one"),
                container("two", "echo two; sleep 4"),
                container("three", "echo three"),
            ),
        );
        let pod = converted(&pod, &format!("sequence={{\"strategy\":\"{strategy}\"}}"));
        let (_dir, child) = spawn_run(&pod, &[]);
        let start = Instant::now();
        let mut seen = String::new();
        while start.elapsed() < Duration::from_secs(60) {
            let out = podrun(&kubeconfig())
                .args(["status", &name, "-o", "json"])
                .output()
                .unwrap();
            seen = String::from_utf8_lossy(&out.stdout).into_owned();
            let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            if v["running"]["step"] == 2 {
                assert_eq!(v["running"]["name"], "two");
                assert_eq!(v["steps"][0]["state"], "done", "{seen}");
                assert_eq!(v["steps"][2]["state"], "waiting", "{seen}");
                let text = podrun(&kubeconfig())
                    .args(["status", &name])
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&text.stdout).into_owned();
                assert!(text.contains("step 2/3: two is running"), "{text}");
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            seen.contains("\"step\": 2"),
            "{strategy}: never saw step 2 run: {seen}"
        );
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{strategy}");
    }
    let missing = podrun(&kubeconfig())
        .args(["status", &unique("nothing")])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(125));
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn script_hooks_decide_a_cluster_run() {
    let scratch = support::Scratch::new(&support::app(
        "hello",
        "    resource-limits: {memory: 64Mi}\n  parameters: [team]\n  hooks:\n    mutate: [restart-never, deadline, labels, {script: team-policy.rhai}, api-token]\n    classify: [{script: retry-classifier.rhai}, default-classifier]\n",
    ));
    for script in ["team-policy.rhai", "retry-classifier.rhai"] {
        std::fs::copy(
            support::root().join("examples/scripts").join(script),
            scratch.path().join(script),
        )
        .unwrap();
    }
    let run_id = unique("s");
    let result = scratch.path().join("result.json");
    let out = podrun(&kubeconfig())
        .current_dir(scratch.path())
        .args([
            "run",
            "-a",
            "hello",
            "--param",
            "team=data",
            "--keep",
            "always",
        ])
        .args(["--run-id", &run_id, "--result-file"])
        .arg(&result)
        .args(["-c", "sh -c 'echo trying; exit 75'"])
        .output()
        .unwrap();
    let r = Run::collect(out, &result);
    assert_eq!(r.code, 75, "{}", r.stderr);
    assert_eq!(r.result["reason"], "TemporaryFailure", "{}", r.result);
    assert_eq!(r.result["retryable"], true);
    assert_eq!(r.stdout, "trying\n");
    let pod = r.result["pod"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let live = live_pod(&pod).expect("--keep always keeps the pod");
    assert_eq!(live["metadata"]["labels"]["team"], "data");
    kubectl_delete(&pod);
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn a_line_longer_than_a_log_record_comes_whole() {
    // containerd writes this line as three records; the kubelet's
    // timestamps between them are not part of it.
    let script = "awk 'BEGIN { s = \"\"; for (i = 0; i < 40000; i++) s = s \"y\"; print \"start\" s \"end\"; print \"short\" }'";
    let r = run(
        &manifest(
            &unique("long"),
            &format!("  containers:\n{}", container("main", script)),
        ),
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, format!("start{}end\nshort\n", "y".repeat(40_000)));
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn a_run_gets_an_api_token_only_when_its_template_asks() {
    let scratch = support::Scratch::new(&support::app("hello", ""));
    let token_test = |expect: i32| {
        let out = podrun(&kubeconfig())
            .current_dir(scratch.path())
            .args(["run", "-a", "hello", "-c"])
            .arg("test -s /var/run/secrets/kubernetes.io/serviceaccount/token")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(expect), "{stderr}");
    };
    token_test(1);
    let template = scratch.path().join("templates/pod.tmpl");
    let text = std::fs::read_to_string(&template).unwrap();
    let asking = text.replacen(
        "spec:\n",
        "spec:\n  automountServiceAccountToken: true\n",
        1,
    );
    std::fs::write(&template, asking).unwrap();
    token_test(0);
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn a_classifier_sees_the_events_of_a_pod_stuck_without_status_changes() {
    // A missing ConfigMap leaves the pod in ContainerCreating for good: its
    // status stops changing and only its events (FailedMount) say why.
    let scratch = support::Scratch::new(&support::app(
        "stuck",
        "  pending-timeout: 60s\n  hooks:\n    classify: [{script: mount.rhai}, default-classifier]\n",
    ));
    std::fs::write(
        scratch.path().join("templates/pod.tmpl"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Name }}-{{ .UniqueId }}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {{ .Container.Image }}\n    imagePullPolicy: IfNotPresent\n    args: [{{ .Container.Arguments }}]\n    volumeMounts: [{name: conf, mountPath: /conf}]\n  volumes:\n  - name: conf\n    configMap: {name: podrun-test-missing}\n",
    )
    .unwrap();
    std::fs::write(
        scratch.path().join("mount.rhai"),
        "fn classify(observation, ctx) {\n    for e in observation.events {\n        if e.reason == \"FailedMount\" {\n            return #{outcome: \"failed\", reason: \"VolumeMissing\", message: e.message, exit_code: 126};\n        }\n    }\n    ()\n}\n",
    )
    .unwrap();
    let result = scratch.path().join("result.json");
    let out = podrun(&kubeconfig())
        .current_dir(scratch.path())
        .args(["run", "-a", "stuck", "-c", "true", "--result-file"])
        .arg(&result)
        .output()
        .unwrap();
    let r = Run::collect(out, &result);
    assert_eq!(r.code, 126, "{}", r.stderr);
    // Without the events the pending timeout would decide (exit 124).
    assert_eq!(r.result["reason"], "VolumeMissing", "{}", r.result);
}

/// A server on the cluster with a `worker` run of `sh -c SCRIPT`, killed
/// with -9 once the run has printed: its pod runs on without anyone
/// watching it. The scratch directory, the store and the run's id.
fn killed_mid_run(script: &str) -> (support::Scratch, String, String) {
    use crate::server::{Server, scratch};
    let (scratch, store) = scratch();
    let mut server = Server::start_on(&scratch, &store, Some(&kubeconfig()), &["--lease", "2"]);
    let id = server.submit(serde_json::json!({
        "application": "worker",
        "args": ["sh", "-c", script],
    }));
    server.wait(&id, |r| r["state"] == "running" && r["log"]["bytes"] != 0);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    (scratch, store, id)
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn a_server_killed_mid_run_follows_the_pod_again_and_finishes_it_once() {
    use crate::server::Server;
    let (scratch, store, id) = killed_mid_run("echo begin; sleep 6; echo end; exit 4");
    let kubeconfig = kubeconfig();
    assert_eq!(pods_of_run(&id).len(), 1, "the pod outlives the server");

    let server = Server::start_on(&scratch, &store, Some(&kubeconfig), &["--lease", "2"]);
    let r = server.ended(&id);
    assert_eq!(r["state"], "failed", "{r}");
    assert_eq!(r["result"]["exitCode"], 4, "{r}");
    assert_eq!(r["result"]["runtime"], "kube");
    let (_, log) = server.call("GET", &format!("/v1/runs/{id}/logs"), None, &[]);
    assert_eq!(
        log, "begin\nend\n",
        "no line lost or repeated across the restart"
    );
    // The log read again as stored: nothing to say.
    assert_eq!(r["log"]["gapCount"], 0, "{r}");
    let start = Instant::now();
    while !pods_of_run(&id).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the pod is left behind"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn a_log_rotated_while_no_server_watched_is_stored_on_after_a_gap_said_in_its_place() {
    use crate::server::Server;
    // 12 MB of output passes the kubelet's 10 MiB log size, and it rotates
    // the log within its 10 s check: the pod's log then starts after it.
    let (scratch, store, id) = killed_mid_run(
        "echo begin; sleep 5; head -c 12000000 /dev/zero | tr '\\0' x | fold -w 1000; sleep 25; echo end",
    );
    let kubeconfig = kubeconfig();
    std::thread::sleep(Duration::from_secs(22));

    let server = Server::start_on(&scratch, &store, Some(&kubeconfig), &["--lease", "2"]);
    let r = server.ended(&id);
    assert_eq!(r["state"], "succeeded", "{r}");
    // What the rotated log still held (its last x lines, if the kubelet
    // rotated it mid-write, and the end), after a gap.
    let (_, log) = server.call("GET", &format!("/v1/runs/{id}/logs"), None, &[]);
    let head = &log[..log.len().min(200)];
    assert!(
        log.starts_with("begin\n") && log.ends_with("\nend\n"),
        "{head}"
    );
    assert!(log.len() < 12_000_000, "the rotated-away lines came back");
    let gaps = &r["log"]["gaps"];
    assert_eq!(gaps[0]["line"], 1, "{r}");
    assert_eq!(gaps[0]["container"], "worker", "{r}");
    assert!(
        gaps[0]["message"].as_str().unwrap().contains("rotated"),
        "{r}"
    );
    let (_, events) = server.call("GET", &format!("/v1/runs/{id}/logs?follow=true"), None, &[]);
    let kinds: Vec<&str> = events
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        kinds[..2],
        ["line", "gap"],
        "{:?}",
        &kinds[..kinds.len().min(10)]
    );
    assert_eq!(kinds[kinds.len() - 2..], ["line", "end"]);
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn a_run_whose_pod_went_while_no_server_watched_ends_lost_and_never_runs_twice() {
    use crate::server::Server;
    let (scratch, store, id) = killed_mid_run("echo begin; sleep 60");
    let kubeconfig = kubeconfig();
    let [name] = pods_of_run(&id).try_into().expect("one pod");
    let _ = StdCommand::new("kubectl")
        .env("KUBECONFIG", &kubeconfig)
        .args(["delete", "pod", &name, "--grace-period=1", "--wait=true"])
        .output();

    let server = Server::start_on(&scratch, &store, Some(&kubeconfig), &["--lease", "2"]);
    let r = server.ended(&id);
    assert_eq!(r["state"], "lost", "{r}");
    assert_eq!(r["result"]["reason"], "PodGone", "{r}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(pods_of_run(&id).is_empty(), "a second pod was created");
    let (_, log) = server.call("GET", &format!("/v1/runs/{id}/logs"), None, &[]);
    assert_eq!(log, "begin\n");
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG, and Postgres: PODRUN_TEST_POSTGRES"]
fn two_servers_on_one_postgres_and_one_killed_mid_run_the_other_finishes_its_run_once() {
    use crate::server::{Server, postgres_store, scratch};
    let (scratch, _) = scratch();
    let store = postgres_store().expect("the cluster suite needs PODRUN_TEST_POSTGRES");
    let kubeconfig = kubeconfig();
    let lease = ["--lease", "2"];
    let mut a = Server::start_on(&scratch, &store, Some(&kubeconfig), &lease);
    let b = Server::start_on(&scratch, &store, Some(&kubeconfig), &lease);
    // Submitted to either, run by whichever takes it first; `a` is
    // killed only once it holds a run.
    let mut ids = Vec::new();
    let pid = format!("{}-", a.child.id());
    let held = loop {
        let id = a.submit(serde_json::json!({
            "application": "worker",
            "args": ["sh", "-c", "echo begin; sleep 8; echo end; exit 4"],
        }));
        ids.push(id.clone());
        let r = a.wait(&id, |r| r["state"] == "running" && r["log"]["bytes"] != 0);
        if r["server"].as_str().is_some_and(|s| s.starts_with(&pid)) {
            break id;
        }
        assert!(ids.len() < 6, "server a never took a run");
    };
    let first = a.json("GET", &format!("/v1/runs/{held}"), None).1["server"].clone();
    assert_eq!(pods_of_run(&held).len(), 1);
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    drop(a);

    for id in &ids {
        let r = b.ended(id);
        assert_eq!(r["state"], "failed", "{r}");
        assert_eq!(r["result"]["exitCode"], 4, "{r}");
        let (_, log) = b.call("GET", &format!("/v1/runs/{id}/logs"), None, &[]);
        assert_eq!(log, "begin\nend\n", "no line lost or repeated");
    }
    let r = b.ended(&held);
    assert_ne!(r["server"], first, "taken over by the other server: {r}");
    let start = Instant::now();
    while ids.iter().any(|id| !pods_of_run(id).is_empty()) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "a pod is left behind"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `kubectl ARGS` as `kubeconfig`'s user: whether it succeeded, and what
/// it printed (stdout, then stderr).
fn kubectl_as(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let mut child = StdCommand::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A namespace, deleted (without waiting) when dropped.
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = kubectl_as(
            &kubeconfig(),
            &["delete", "namespace", &self.0, "--wait=false"],
            None,
        );
    }
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn the_deploy_role_is_enough_for_the_server_and_nothing_more() {
    use crate::server::{Server, scratch};
    let admin = kubeconfig();
    let namespace = Namespace(unique("rbac"));
    let ns = namespace.0.as_str();
    let rbac = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/rbac.yaml");
    for args in [
        vec!["create", "namespace", ns],
        vec!["apply", "-n", ns, "-f", rbac.to_str().unwrap()],
    ] {
        let (ok, out) = kubectl_as(&admin, &args, None);
        assert!(ok, "{out}");
    }
    // A token of the service account, and a kubeconfig holding only it.
    let (ok, out) = kubectl_as(
        &admin,
        &["apply", "-n", ns, "-f", "-"],
        Some(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: podrun-token\n  annotations:\n    \
             kubernetes.io/service-account.name: podrun\ntype: kubernetes.io/service-account-token\n",
        ),
    );
    assert!(ok, "{out}");
    let start = Instant::now();
    let token = loop {
        let (_, out) = kubectl_as(
            &admin,
            &[
                "get",
                "secret",
                "podrun-token",
                "-n",
                ns,
                "-o",
                "go-template={{if .data}}{{.data.token | base64decode}}{{end}}",
            ],
            None,
        );
        if !out.trim().is_empty() && !out.contains("rror") {
            break out.trim().to_string();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no token: {out}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let (_, server) = kubectl_as(
        &admin,
        &[
            "config",
            "view",
            "--raw",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ],
        None,
    );
    let (_, ca) = kubectl_as(
        &admin,
        &[
            "config",
            "view",
            "--raw",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        ],
        None,
    );
    let (scratch, store) = scratch();
    let limited = scratch.path().join("sa-kubeconfig");
    std::fs::write(
        &limited,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: {server}\n    \
             certificate-authority-data: {ca}\nusers:\n- name: podrun\n  user:\n    token: {token}\n\
             contexts:\n- name: podrun\n  context: {{cluster: lab, user: podrun, namespace: {ns}}}\n\
             current-context: podrun\n"
        ),
    )
    .unwrap();

    // The server does its whole job with the Role: create, follow, log,
    // stdin (attach), cancel (delete).
    let podrun = Server::start_on(&scratch, &store, Some(&limited), &[]);
    let failed = podrun.submit(serde_json::json!({
        "application": "worker", "args": ["sh", "-c", "echo hi; exit 3"],
    }));
    let fed = podrun.submit(serde_json::json!({
        "application": "worker", "args": ["sh", "-c", "read line; echo got $line"], "stdin": "it\n",
    }));
    let long = podrun.submit(serde_json::json!({
        "application": "worker", "args": ["sh", "-c", "echo long; sleep 60"],
    }));
    let r = podrun.ended(&failed);
    assert_eq!(
        (r["state"].as_str(), r["result"]["exitCode"].as_i64()),
        (Some("failed"), Some(3)),
        "{r}"
    );
    let (_, log) = podrun.call("GET", &format!("/v1/runs/{failed}/logs"), None, &[]);
    assert_eq!(log, "hi\n");
    let r = podrun.ended(&fed);
    assert_eq!(r["state"], "succeeded", "{r}");
    let (_, result) = podrun.call("GET", &format!("/v1/runs/{fed}/result"), None, &[]);
    assert_eq!(result, "got it\n");
    podrun.wait(&long, |r| r["state"] == "running" && r["log"]["bytes"] != 0);
    let (status, _) = podrun.json("POST", &format!("/v1/runs/{long}/cancel"), None);
    assert_eq!(status, 202);
    assert_eq!(podrun.ended(&long)["state"], "cancelled");

    // And no more: everything else is refused by the cluster.
    let (ok, out) = kubectl_as(&limited, &["get", "pods", "-n", "default"], None);
    assert!(!ok && out.contains("forbidden"), "{out}");
    for (verb, what) in [
        ("list", "nodes"),
        ("list", "namespaces"),
        ("get", "secrets"),
        ("create", "deployments"),
        ("patch", "pods"),
        ("create", "events"),
        ("create", "rolebindings"),
    ] {
        let (ok, out) = kubectl_as(&limited, &["auth", "can-i", verb, what], None);
        assert!(
            !ok && out.lines().any(|l| l.trim() == "no"),
            "{verb} {what}: {out}"
        );
    }
    let (ok, out) = kubectl_as(
        &limited,
        &["auth", "can-i", "create", "pods", "-n", "kube-system"],
        None,
    );
    assert!(!ok, "another namespace: {out}");
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG and PODRUN_E2E_PLAIN_API"]
fn a_server_follows_all_its_runs_through_one_pod_watch_where_cli_runs_take_one_each() {
    use crate::server::{Server, scratch};
    let proxy = proxied(Faults::default()).unwrap();
    let (scratch, store) = scratch();
    let server = Server::start_on(&scratch, &store, Some(&proxy.kubeconfig), &[]);
    let ids: Vec<String> = (0..8)
        .map(|i| {
            server.submit(serde_json::json!({
                "application": "worker", "args": ["sh", "-c", format!("echo {i}; sleep 3; exit {i}")],
            }))
        })
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let r = server.ended(id);
        assert_eq!(r["result"]["exitCode"], i, "{r}");
        let (_, log) = server.call("GET", &format!("/v1/runs/{id}/logs"), None, &[]);
        assert_eq!(log, format!("{i}\n"));
    }
    let watches = proxy.pod_watches();
    assert!(
        !watches.is_empty()
            && watches
                .iter()
                .all(|w| w.contains("labelSelector=podrun.dev%2Frun-id")
                    && !w.contains("fieldSelector")),
        "one shared watch, by label: {watches:#?}"
    );
    // A watch is asked again when it ends or fails, never per run.
    assert!(watches.len() <= 2, "{watches:#?}");
    drop(server);

    // Each CLI run watches its own pod.
    let proxy = proxied(Faults::default()).unwrap();
    let kubeconfig = proxy.kubeconfig.clone();
    let runs: Vec<_> = (0..3)
        .map(|i| {
            let yaml = manifest(
                &unique("own-watch"),
                &format!(
                    "  containers:\n{}",
                    container("main", &format!("echo {i}; sleep 2"))
                ),
            );
            let kubeconfig = kubeconfig.clone();
            std::thread::spawn(move || run_on(&kubeconfig, &yaml, &[]))
        })
        .collect();
    for run in runs {
        let r = run.join().unwrap();
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let watches = proxy.pod_watches();
    let by_name = watches
        .iter()
        .filter(|w| w.contains("fieldSelector=metadata.name"))
        .count();
    assert_eq!(by_name, 3, "{watches:#?}");
}

#[test]
#[ignore = "needs a cluster: PODRUN_E2E_KUBECONFIG"]
fn a_tenants_pods_run_in_its_namespace_labelled_and_under_the_policy() {
    use crate::server::Server;
    let (namespace_a, namespace_b) = (Namespace(unique("ta")), Namespace(unique("tb")));
    let (a_ns, b_ns) = (namespace_a.0.as_str(), namespace_b.0.as_str());
    for ns in [a_ns, b_ns] {
        let (ok, out) = kubectl_as(&kubeconfig(), &["create", "namespace", ns], None);
        assert!(ok, "{out}");
    }
    let (a, b) = (crate::tenants::token(), crate::tenants::token());
    let scratch = crate::support::Scratch::new(&format!(
        "applications:\n- name: worker\n  template: templates/pod.tmpl\n  container:\n    image: busybox:local\n\
         policy:\n  mutate: [api-token]\n  validate:\n  - {{hook: pod-security, with: {{require: [deadline, no-token]}}}}\n\
         tenants:\n- name: team-a\n  tokens: [\"{}\"]\n  applications: [worker]\n  namespaces: [{a_ns}]\n\
         - name: team-b\n  tokens: [\"{}\"]\n  applications: [worker]\n  namespaces: [{b_ns}]\n",
        a.1, b.1
    ));
    let store = format!("sqlite:{}", scratch.path().join("runs.db").display());
    let server = Server::start_on(&scratch, &store, Some(&kubeconfig()), &[]);
    let call = |token: &str, method: &str, path: &str, body: Option<Value>| {
        let auth = format!("Bearer {token}");
        let body = body.map(|b| b.to_string());
        let (status, text) =
            server.call(method, path, body.as_deref(), &[("authorization", &auth)]);
        (
            status,
            serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)),
        )
    };
    let (status, run) = call(
        &a.0,
        "POST",
        "/v1/runs",
        Some(
            serde_json::json!({"application": "worker", "args": ["sh", "-c", "echo hi; sleep 4"]}),
        ),
    );
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    // The pod, as the cluster has it.
    let start = Instant::now();
    let pod = loop {
        let out = StdCommand::new("kubectl")
            .env("KUBECONFIG", kubeconfig())
            .args(["get", "pods", "-n", a_ns, "-o", "json", "-l"])
            .arg(format!("podrun.dev/run-id={id}"))
            .output()
            .unwrap();
        let list: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(pod) = list["items"].get(0) {
            break pod.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no pod in {a_ns}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(pod["metadata"]["labels"]["podrun.dev/tenant"], "team-a");
    assert_eq!(pod["spec"]["automountServiceAccountToken"], false);
    assert!(pod["spec"]["activeDeadlineSeconds"].as_u64().is_some());
    assert!(
        !pod["metadata"]["name"].as_str().unwrap().contains("team"),
        "the pod's name carries no tenant"
    );
    // Team B cannot see it, nor run in A's namespace.
    assert_eq!(call(&b.0, "GET", &format!("/v1/runs/{id}"), None).0, 404);
    let (status, body) = call(
        &b.0,
        "POST",
        "/v1/runs",
        Some(serde_json::json!({"application": "worker", "namespace": a_ns})),
    );
    assert_eq!(status, 403, "{body}");
    // A's run ends as a run does.
    let start = Instant::now();
    loop {
        let (_, run) = call(&a.0, "GET", &format!("/v1/runs/{id}"), None);
        if run["state"] == "succeeded" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60) && run["state"] != "failed",
            "{run}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, log) = call(&a.0, "GET", &format!("/v1/runs/{id}/logs"), None);
    assert_eq!(log, "hi\n");
}
