//! The local runtime: real processes, run through `podrun pod run` and
//! `podrun run` as a user would.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

use crate::support::{self, Run, container, write_manifest};

fn podrun() -> StdCommand {
    let mut cmd = StdCommand::cargo_bin("podrun").unwrap();
    // No cluster configured: the local runtime is the default.
    let home = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("empty-home");
    std::fs::create_dir_all(&home).unwrap();
    cmd.env("PODRUN_CACHE_DIR", support::shared_cache())
        .env("HOME", home)
        // The shared cache's files are signed with the real user's key.
        .env("XDG_DATA_HOME", dirs::data_local_dir().unwrap())
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("PODRUN_LOG")
        .stdin(Stdio::null());
    cmd
}

/// Runs a Pod manifest with `podrun pod run`.
fn run_pod(yaml: &str, extra: &[&str]) -> Run {
    let (dir, path) = write_manifest(yaml);
    let result_file = dir.path().join("result.json");
    let out = podrun()
        .args(["pod", "run", "-f"])
        .arg(&path)
        .arg("--result-file")
        .arg(&result_file)
        .args(extra)
        .output()
        .unwrap();
    Run::collect(out, &result_file)
}

fn pod(restart: &str, extra_spec: &str, containers: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: t}}\nspec:\n  restartPolicy: {restart}\n  terminationGracePeriodSeconds: 2\n{extra_spec}{containers}"
    )
}

#[test]
fn exit_codes_propagate() {
    let run = run_pod(
        &pod(
            "Never",
            "",
            &format!("  containers:\n{}", container("main", "echo hello; exit 3")),
        ),
        &[],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(run.stdout, "hello\n");
    assert_eq!(run.result["reason"], "Error");
    assert_eq!(run.result["containers"][0]["exitCode"], 3);
    let run = run_pod(
        &pod(
            "Never",
            "",
            &format!("  containers:\n{}", container("main", "exit 0")),
        ),
        &[],
    );
    assert_eq!(
        (run.code, run.result["outcome"].as_str()),
        (0, Some("succeeded")),
        "{}",
        run.stderr
    );
}

#[test]
fn init_containers_run_in_order_and_a_failure_stops_the_pod() {
    let containers = format!(
        "  initContainers:\n{}{}{}  containers:\n{}",
        container("one", "echo one; sleep 0.2"),
        container("two", "echo two; exit 4"),
        container("three", "echo three"),
        container("main", "echo main"),
    );
    let run = run_pod(&pod("Never", "", &containers), &[]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(run.stdout, "[one] one\n[two] two\n");
    let states: Vec<(&str, &str)> = run.result["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("one", "terminated"),
            ("two", "terminated"),
            ("three", "waiting"),
            ("main", "waiting")
        ]
    );

    let containers = format!(
        "  initContainers:\n{}{}  containers:\n{}",
        container("one", "echo one"),
        container("two", "echo two"),
        container("main", "echo main"),
    );
    let run = run_pod(&pod("Never", "", &containers), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "[one] one\n[two] two\n[main] main\n");
}

#[test]
fn a_native_sidecar_runs_beside_the_containers_and_is_stopped_after_them() {
    // The sidecar never exits by itself; the init container after it and
    // the main container must not wait for it, and the run ends with main.
    let sidecar = container(
        "proxy",
        "echo proxy up; trap 'echo proxy down; exit 0' TERM; while true; do sleep 0.1; done",
    ) + "    restartPolicy: Always\n";
    let containers = format!(
        "  initContainers:\n{sidecar}{}  containers:\n{}",
        container("setup", "sleep 0.3; echo setup"),
        container("main", "sleep 0.3; echo main; exit 0"),
    );
    let started = std::time::Instant::now();
    let run = run_pod(&pod("Never", "", &containers), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    for line in [
        "[proxy] proxy up",
        "[setup] setup",
        "[main] main",
        "[proxy] proxy down",
    ] {
        assert!(run.stdout.contains(line), "{line:?} in {}", run.stdout);
    }
    assert!(run.stdout.find("[main] main") < run.stdout.find("[proxy] proxy down"));
    assert_eq!(run.result["outcome"], "succeeded");
}

#[test]
fn a_failed_init_container_stops_the_sidecar_before_it() {
    let sidecar =
        container("proxy", "while true; do sleep 0.1; done") + "    restartPolicy: Always\n";
    let containers = format!(
        "  initContainers:\n{sidecar}{}  containers:\n{}",
        container("setup", "echo setup; exit 6"),
        container("main", "echo never"),
    );
    let started = std::time::Instant::now();
    let run = run_pod(&pod("Never", "", &containers), &[]);
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(!run.stdout.contains("never"), "{}", run.stdout);
}

#[test]
fn the_deadline_stops_the_pod() {
    let start = Instant::now();
    let run = run_pod(
        &pod(
            "Never",
            "  activeDeadlineSeconds: 1\n",
            &format!(
                "  containers:\n{}",
                container("main", "echo start; sleep 30")
            ),
        ),
        &[],
    );
    assert_eq!(run.code, 124, "{}", run.stderr);
    assert_eq!(run.result["reason"], "DeadlineExceeded");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn the_grace_period_lets_a_process_finish_then_kills_it() {
    // Traps SIGTERM, says so, and finishes its work within the grace period.
    let polite = "trap 'echo got TERM; sleep 0.3; echo cleaned up; exit 0' TERM; echo ready; while true; do sleep 0.1; done";
    let start = Instant::now();
    let run = run_pod(
        &pod(
            "Never",
            "  activeDeadlineSeconds: 1\n",
            &format!("  containers:\n{}", container("main", polite)),
        ),
        &[],
    );
    // One SIGTERM, to the whole process group (the shell reports its
    // killed `sleep` as "Terminated").
    assert!(run.stdout.starts_with("ready\n"), "{}", run.stdout);
    assert_eq!(run.stdout.matches("got TERM").count(), 1, "{}", run.stdout);
    assert!(
        run.stdout.ends_with("cleaned up\n"),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(run.code, 124);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    // Ignores SIGTERM: killed when the 2 s grace period is over.
    let stubborn = "trap 'echo ignoring TERM' TERM; echo ready; while true; do sleep 0.1; done";
    let start = Instant::now();
    let run = run_pod(
        &pod(
            "Never",
            "  activeDeadlineSeconds: 1\n",
            &format!("  containers:\n{}", container("main", stubborn)),
        ),
        &[],
    );
    let took = start.elapsed();
    assert!(run.stdout.starts_with("ready\n"), "{}", run.stdout);
    assert_eq!(
        run.stdout.matches("ignoring TERM").count(),
        1,
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(8),
        "took {took:?}"
    );
}

fn liveness(restart: &str) -> String {
    let probe = "    livenessProbe:\n      exec: {command: [\"false\"]}\n      periodSeconds: 1\n      failureThreshold: 2\n";
    pod(
        restart,
        "  activeDeadlineSeconds: 6\n",
        &format!(
            "  containers:\n{}{probe}",
            container("main", "echo started; sleep 30")
        ),
    )
}

#[test]
fn a_failing_liveness_probe_restarts_or_fails_the_container() {
    let run = run_pod(&liveness("OnFailure"), &[]);
    assert!(
        run.stdout.matches("started").count() >= 2,
        "not restarted: {}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        run.result["containers"][0]["restarts"].as_i64().unwrap() >= 1,
        "{}",
        run.result
    );
    assert_eq!(run.code, 124, "ends at the deadline: {}", run.stderr);

    let start = Instant::now();
    let run = run_pod(&liveness("Never"), &[]);
    assert_eq!(run.stdout, "started\n");
    assert_eq!(run.result["outcome"], "failed", "{}", run.result);
    assert_ne!(run.code, 0);
    assert_ne!(run.code, 124, "failed before the deadline: {}", run.result);
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "took {:?}",
        start.elapsed()
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<(u16, Value)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split("\r\n\r\n").nth(1)?;
    Some((code, serde_json::from_str(body).ok()?))
}

/// Starts `podrun pod run` on `yaml`. Its output goes to files in the
/// returned directory (`stdout`, `stderr`): a pipe nobody reads would stop
/// it once full.
fn start_pod(yaml: &str, extra: &[&str]) -> (tempfile::TempDir, Child) {
    let (dir, path) = write_manifest(yaml);
    let file = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
    let child = podrun()
        .args(["pod", "run", "-f"])
        .arg(&path)
        .args(extra)
        .stdout(file("stdout"))
        .stderr(file("stderr"))
        .spawn()
        .unwrap();
    (dir, child)
}

/// Polls `/healthy` until it answers `want`, for at most `limit` (long
/// enough for a first run that compiles its hooks on a busy machine).
fn wait_healthy(port: u16, want: bool, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some((code, body)) = get(port, "/healthy")
            && body["healthy"] == want
        {
            assert_eq!(code, if want { 200 } else { 503 });
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn readiness_drives_healthy_and_status() {
    let flag = tempfile::NamedTempFile::new().unwrap();
    let flag_path = flag.path().display().to_string();
    let probe = format!(
        "    readinessProbe:\n      exec: {{command: [test, -e, {flag_path}]}}\n      periodSeconds: 1\n      failureThreshold: 1\n"
    );
    let yaml = pod(
        "Never",
        "",
        &format!("  containers:\n{}{probe}", container("main", "sleep 30")),
    );
    let port = free_port();
    let (_dir, mut child) = start_pod(&yaml, &["--status-addr", &format!("127.0.0.1:{port}")]);
    assert!(
        wait_healthy(port, true, Duration::from_secs(60)),
        "never healthy"
    );
    let (_, status) = get(port, "/status").unwrap();
    assert_eq!(status["phase"], "Running");
    assert_eq!(status["containers"][0]["ready"], true);
    drop(flag); // the probe starts failing
    assert!(
        wait_healthy(port, false, Duration::from_secs(10)),
        "never unhealthy"
    );
    let (_, status) = get(port, "/status").unwrap();
    assert_eq!(status["containers"][0]["ready"], false);
    // SIGTERM stops the run: exit 143.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
}

#[test]
fn http_and_tcp_probes_reach_a_serving_process() {
    let port = free_port();
    let status_port = free_port();
    let server = format!("exec python3 -m http.server {port} --bind 127.0.0.1");
    let probes = format!(
        "    readinessProbe:\n      httpGet: {{path: /, port: {port}}}\n      periodSeconds: 1\n    livenessProbe:\n      tcpSocket: {{port: web}}\n      periodSeconds: 1\n    ports: [{{name: web, containerPort: {port}}}]\n"
    );
    let yaml = pod(
        "Never",
        "",
        &format!("  containers:\n{}{probes}", container("web", &server)),
    );
    let (dir, mut child) = start_pod(
        &yaml,
        &["--status-addr", &format!("127.0.0.1:{status_port}")],
    );
    let healthy = wait_healthy(status_port, true, Duration::from_secs(60));
    let (_, status) = get(status_port, "/status").unwrap_or_default();
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let code = child.wait().unwrap().code();
    assert!(
        healthy,
        "the http probe never passed: {status}\nexit {code:?}, stderr:\n{}",
        std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default()
    );
    assert_eq!(
        status["containers"][0]["restartCount"], 0,
        "the tcp probe failed: {status}"
    );
    assert_eq!(code, Some(130));
}

#[test]
fn empty_dir_is_shared_between_containers() {
    let spec = "  volumes: [{name: shared, emptyDir: {}}]\n";
    let mount = "    volumeMounts: [{name: shared, mountPath: /podrun-test-shared}]\n";
    let containers = format!(
        "  initContainers:\n{}{mount}  containers:\n{}{mount}{}{mount}",
        container("writer", "echo from-writer > /podrun-test-shared/file"),
        container(
            "reader",
            "cat /podrun-test-shared/file; echo two > /podrun-test-shared/two"
        ),
        container("other", "sleep 0.5; cat /podrun-test-shared/two"),
    );
    let run = run_pod(&pod("Never", spec, &containers), &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("[reader] from-writer\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("[other] two\n"), "{}", run.stdout);
    assert!(
        !Path::new("/podrun-test-shared").exists(),
        "the mount point is left behind"
    );
}

#[test]
fn variables_expand_like_kubernetes() {
    let c = "  - name: main\n    image: busybox\n    env:\n    - {name: WHO, value: world}\n    - {name: GREETING, value: hello $(WHO)}\n    command: [printf, '%s|%s|%s|%s\\n']\n    args: ['$(WHO)', '$(GREETING)', '$$(WHO)', '$(MISSING)']\n";
    let run = run_pod(&pod("Never", "", &format!("  containers:\n{c}")), &[]);
    assert_eq!(
        run.stdout, "world|hello world|$(WHO)|$(MISSING)\n",
        "{}",
        run.stderr
    );
}

#[test]
fn stdin_goes_to_the_worker() {
    let containers = format!(
        "  containers:\n{}{}",
        container("worker", "tr a-z A-Z"),
        container("helper", "echo helping"),
    );
    let (dir, path) = write_manifest(&pod("Never", "", &containers));
    let out = support::pod_run_with_stdin(podrun(), &path, b"shout this\n");
    drop(dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        stdout, "SHOUT THIS\n",
        "the worker's output is the run's output"
    );
    assert!(stderr.contains("[helper] helping"), "{stderr}");
}

#[test]
fn unsupported_fields_fail_clearly() {
    let c = "  - name: main\n    image: busybox\n    command: [env]\n    env:\n    - name: SECRET\n      valueFrom: {secretKeyRef: {name: s, key: k}}\n";
    let run = run_pod(&pod("Never", "", &format!("  containers:\n{c}")), &[]);
    assert_eq!(run.code, 126, "{}", run.stderr);
    assert_eq!(run.result["reason"], "CreateContainerConfigError");
    assert!(
        run.result["message"]
            .as_str()
            .unwrap()
            .contains("valueFrom is not supported"),
        "{}",
        run.result
    );
    let run = run_pod(
        &pod(
            "Never",
            "",
            &format!(
                "  containers:\n{}",
                container("main", "true")
                    .replace("command: [sh, -c, \"true\"]", "command: [/no/such/program]")
            ),
        ),
        &[],
    );
    assert_eq!(run.code, 127, "{}", run.stderr);
    assert_eq!(run.result["reason"], "StartError");
}

/// Each scenario under tests/fixtures/scenarios gets the same verdict from
/// the default classifier locally as from the pod status a real cluster
/// reported for it (kube-*.json, recorded from a v1.20 cluster).
#[tokio::test]
async fn the_classifier_gives_the_same_verdict_as_on_a_cluster() {
    use podrun::hooks::{Kind, Limits, Source, Spec, classify};
    let hook = support::hooks()
        .load(&Spec {
            source: Source::Builtin("default-classifier"),
            kind: Kind::Classify,
            settings: serde_json::json!({}),
            limits: Limits::default(),
        })
        .await
        .unwrap();
    let app = podrun::context::RunContext::bare("scenario", "r");
    let dir = support::root().join("tests/fixtures/scenarios");
    for name in ["success", "exit-3", "init-fails", "deadline", "oom"] {
        if name == "oom" && !cgroups_available() {
            eprintln!("skipping the oom scenario: memory cgroups need root");
            continue;
        }
        let observed = std::fs::read_to_string(dir.join(format!("kube-{name}.json"))).unwrap();
        let observation = classify::Observation {
            pod: observed,
            events: "[]".into(),
            elapsed_ms: 60_000,
        };
        let kube = hook
            .classify(&app, &observation)
            .await
            .unwrap()
            .value
            .unwrap();
        let yaml = std::fs::read_to_string(dir.join(format!("{name}.yaml"))).unwrap();
        let local = run_pod(&yaml, &[]);
        let kube_outcome = podrun::result::outcome(kube.outcome);
        assert_eq!(
            (
                local.result["outcome"].as_str(),
                local.result["reason"].as_str(),
                local.code
            ),
            (
                Some(kube_outcome),
                Some(kube.reason.as_str()),
                kube.exit_code.unwrap()
            ),
            "scenario {name}: local {} vs cluster {kube:?}\n{}",
            local.result,
            local.stderr
        );
    }
}

/// A timeline recorded on the cluster (tests/fixtures/timelines/NAME) and
/// the manifest it was recorded from: run locally, the manifest comes to
/// the verdict NAME.expect.yaml holds for the cluster's run, and the local
/// run's own timeline, replayed, comes to it too. Unschedulable pods,
/// missing ConfigMaps, image pulls and deletion by someone else have no
/// local counterpart and are not compared.
fn same_verdict_as_recorded(name: &str, manifest: &str) {
    let root = support::root();
    let timelines = root.join("tests/fixtures/timelines");
    let expect_file = timelines.join(format!("{name}.expect.yaml"));
    let expect: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&expect_file).unwrap()).unwrap();
    let yaml = std::fs::read_to_string(root.join("tests/fixtures").join(manifest)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let recorded = dir.path().join("local.timeline.json");
    let run = run_pod(&yaml, &["--record", recorded.to_str().unwrap()]);
    for (field, want) in expect.as_object().unwrap() {
        assert_eq!(
            &run.result[field], want,
            "{name}: {field} locally vs on the cluster\n{}\n{}",
            run.result, run.stderr
        );
    }
    assert_eq!(Some(i64::from(run.code)), expect["exitCode"].as_i64());
    let out = podrun()
        .args(["hook", "replay", "default-classifier", "--timeline"])
        .arg(&recorded)
        .arg("--expect")
        .arg(&expect_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name}: the local timeline replayed\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

mod as_recorded {
    use super::same_verdict_as_recorded as same;

    #[test]
    fn success() {
        same("success", "scenarios/success.yaml");
    }

    #[test]
    fn exit_code() {
        same("exit-code", "scenarios/exit-3.yaml");
    }

    #[test]
    fn temporary_failure() {
        same("temporary-failure", "timelines/temporary-failure.pod.yaml");
    }

    #[test]
    fn init_fails() {
        same("init-fails", "scenarios/init-fails.yaml");
    }

    #[test]
    fn deadline() {
        same("deadline", "scenarios/deadline.yaml");
    }

    #[test]
    fn sidecar() {
        same("sidecar", "timelines/sidecar.pod.yaml");
    }

    #[test]
    fn crashloop() {
        same("crashloop", "timelines/crashloop.pod.yaml");
    }

    #[test]
    fn oom_killed() {
        if !super::cgroups_available() || !super::is_root() {
            eprintln!("skipping: memory cgroups need root");
            return;
        }
        same("oom-killed", "scenarios/oom.yaml");
    }
}

fn cgroups_available() -> bool {
    Path::new("/sys/fs/cgroup/memory").is_dir()
        || Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

#[test]
fn a_memory_limit_ends_in_oom_killed() {
    if !cgroups_available() || !is_root() {
        eprintln!("skipping: memory cgroups need root");
        return;
    }
    let yaml =
        std::fs::read_to_string(support::root().join("tests/fixtures/scenarios/oom.yaml")).unwrap();
    let run = run_pod(&yaml, &[]);
    assert_eq!(run.code, 137, "{}", run.stderr);
    assert_eq!(run.result["reason"], "OOMKilled");
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

#[test]
fn podrun_run_uses_the_application_config() {
    let out = podrun()
        .current_dir(support::root().join("examples/hello"))
        .args([
            "run",
            "-a",
            "hello",
            "-c",
            "sh -c 'echo hello from $HOSTNAME; exit 5'",
            "--run-id",
            "local-1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from hello-local-1\n"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no cluster configured"), "{stderr}");
    assert!(stderr.contains("running the pod locally"), "{stderr}");
    assert!(stderr.contains("run local-1 failed (Error)"), "{stderr}");
}

#[test]
fn pod_runners_invocation_needs_a_cluster_and_reads_its_command_syntax() {
    let original = |extra: &[&str]| {
        podrun()
            .current_dir(support::root().join("examples/hello"))
            .args([
                "--application",
                "hello",
                "--namespace",
                "default",
                "--command",
                "sh, -c, echo hi from $HOSTNAME; exit 3",
                "--run-id",
                "local-2",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    // With no cluster it does not quietly run on this machine.
    let out = original(&[]);
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("none is configured"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // Asked for, the local runtime runs it, with pod-runner's arguments.
    support::exited(
        &original(&["--runtime", "local"]),
        3,
        "hi from hello-local-2\n",
    );
    // Its items cannot be more than a list.
    let out = podrun()
        .current_dir(support::root().join("examples/hello"))
        .args(["--application", "hello", "--runtime", "local", "--command"])
        .arg("sh]\nhostNetwork: true\nx: [y")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a list of arguments"), "{stderr}");
}

/// Converts `yaml` with `podrun convert` and the given hook.
fn converted(yaml: &str, hook: &str) -> String {
    let mut cmd = podrun();
    let mut child = cmd
        .args(["convert", "-f", "-", "--hook", hook])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_entrypoint_sequence_runs_steps_in_order_and_stops_at_a_failure() {
    let steps = format!(
        "  containers:\n{}{}{}",
        container("one", "sleep 0.3; echo one"),
        container("two", "echo two"),
        container("three", "echo three"),
    );
    let yaml = converted(
        &pod("Never", "", &steps),
        r#"sequence={"strategy":"entrypoint"}"#,
    );
    let run = run_pod(&yaml, &[]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let order: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| !l.contains("podrun sequence"))
        .collect();
    assert_eq!(order, ["[one] one", "[two] two", "[three] three"]);

    let failing = format!(
        "  containers:\n{}{}{}",
        container("one", "echo one"),
        container("two", "echo two; exit 6"),
        container("three", "echo three"),
    );
    let yaml = converted(
        &pod("Never", "", &failing),
        r#"sequence={"strategy":"entrypoint"}"#,
    );
    let run = run_pod(&yaml, &[]);
    assert_eq!(
        run.code, 6,
        "the failed step decides: {}\n{}",
        run.stdout, run.stderr
    );
    assert!(
        !run.stdout.contains("[three] three"),
        "a step ran after the failure: {}",
        run.stdout
    );
    // Step three either saw the failure and skipped, or was stopped with
    // the pod when the failed step decided the run: it never ran.
}

#[test]
fn classifier_rules_from_the_config_decide() {
    let rules = "  hooks:\n    classify:\n    - hook: default-classifier\n      with:\n        rules:\n        - {name: nothing-to-do, action: ignore, on-exit-codes: {operator: In, values: [3]}}\n";
    let scratch = support::Scratch::new(&support::app("hello", rules));
    let out = podrun()
        .current_dir(scratch.path())
        .args([
            "run",
            "--runtime",
            "local",
            "-a",
            "hello",
            "-o",
            "json",
            "-c",
            "sh -c 'exit 3'",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["rule"], "nothing-to-do");
}

#[test]
fn status_names_the_running_step_of_a_sequenced_pod() {
    let yaml = pod(
        "Never",
        "  initContainers:\n",
        &format!(
            "{}{}  containers:\n{}",
            container("one", "echo one"),
            container("two", "sleep 30"),
            container("three", "echo three"),
        ),
    )
    .replace(
        "metadata: {name: t}",
        "metadata: {name: t, annotations: {podrun.dev/steps: 'one,two,three'}}",
    );
    let port = free_port();
    let (dir, mut child) = start_pod(&yaml, &["--status-addr", &format!("127.0.0.1:{port}")]);
    let start = Instant::now();
    let mut steps = Value::Null;
    while start.elapsed() < Duration::from_secs(10) {
        if let Some((_, status)) = get(port, "/status") {
            steps = status["steps"].clone();
            if steps[1]["state"] == "running" {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        steps,
        serde_json::json!([{"name": "one", "state": "done"}, {"name": "two", "state": "running"},
                           {"name": "three", "state": "waiting"}])
    );
    // The same pod, as `podrun status -f` reads it from a file.
    let (_, status) = get(port, "/status").unwrap();
    assert_eq!(status["containers"][1]["name"], "two");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(143));
    drop(dir);
}

#[test]
fn podrun_status_reads_a_pod_from_a_file() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: batch, annotations: {podrun.dev/steps: 'a,b'}}\nstatus:\n  phase: Running\n  containerStatuses:\n  - {name: a, image: x, imageID: '', ready: false, restartCount: 0, state: {terminated: {exitCode: 3}}}\n  - {name: b, image: x, imageID: '', ready: true, restartCount: 0, state: {running: {}}}\n";
    let (dir, path) = write_manifest(pod);
    let out = podrun().args(["status", "-f"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "pod batch/p: Running\nno step is running\n   1. a  failed (exit code 3)\n   2. b  skipped\n"
    );
    std::fs::write(&path, "kind: [").unwrap();
    let out = podrun().args(["status", "-f"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    drop(dir);
}
