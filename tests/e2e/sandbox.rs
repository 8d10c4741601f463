//! The sandbox against hostile hooks: each test is an attack (hang the
//! host, crash it, exhaust its memory, plant code in its cache, forge its
//! output) and checks that it fails cleanly, with a documented exit code
//! and nothing left running. Components that Rust cannot express are
//! written in WAT and assembled here.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use podrun::hooks::{HookError, Kind, Limits, Source, Spec, mutate};

use crate::support::{self, Scratch, app, context, pod};

async fn call(
    source: Source,
    with: serde_json::Value,
    limits: Limits,
) -> Result<mutate::Mutation, HookError> {
    let spec = Spec {
        source,
        kind: Kind::Mutate,
        settings: with,
        limits,
    };
    let hook = support::hooks().load(&spec).await?;
    hook.mutate(&context(), &pod()).await.map(|c| c.value)
}

async fn misbehave(with: serde_json::Value, limits: Limits) -> Result<mutate::Mutation, HookError> {
    call(Source::File(support::guest("misbehave")), with, limits).await
}

fn deadline_ms(ms: u64) -> Limits {
    Limits {
        deadline: Some(Duration::from_millis(ms)),
        ..Limits::default()
    }
}

/// A component assembled from WAT, in a fresh directory.
fn wat_component(wat: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.wasm");
    std::fs::write(&path, wat::parse_str(wat).unwrap()).unwrap();
    (dir, path)
}

/// A component exporting podrun's mutate interface, whose core modules
/// are `modules` (WAT text) instantiated as `instances` says.
fn mutate_component(modules: &str, instances: &str) -> String {
    format!(
        r#"(component
  {modules}
  {instances}
  (core module $f (func (export "f")))
  (core instance $fi (instantiate $f))
  (func $mutate (canon lift (core func $fi "f")))
  (instance $i (export "mutate" (func $mutate)))
  (export "podrun:hook/mutate@0.1.0" (instance $i))
)"#
    )
}

/// Runs `cmd` to its end; its exit code, stderr and peak resident memory
/// in KiB. The peak is the kernel's high-water mark of the process's own
/// memory (VmHWM), read every millisecond while it runs: it only grows, so
/// a peak is missed only if reached in the last millisecond before exit.
/// (The rusage of a child counts the memory of the test process it was
/// forked from, so it cannot be used.)
fn run_measured(mut cmd: std::process::Command) -> (i32, String, u64) {
    let err = tempfile::NamedTempFile::new().unwrap();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err.reopen().unwrap());
    let mut child = cmd.spawn().unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let stderr = std::fs::read_to_string(err.path()).unwrap();
    (status.code().unwrap_or(-1), stderr, peak)
}

fn podrun_std(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_podrun"));
    cmd.env("PODRUN_CACHE_DIR", support::shared_cache())
        .env_remove("KUBECONFIG")
        .env_remove("PODRUN_LOG")
        .current_dir(dir);
    cmd
}

fn fixture_pod() -> PathBuf {
    support::root().join("examples/scripts/pod.yaml")
}

#[tokio::test]
async fn a_sleep_ends_at_the_deadline_not_after_it() {
    for action in ["sleep-hour", "sleep-forever"] {
        let spec = Spec {
            source: Source::File(support::guest("misbehave")),
            kind: Kind::Mutate,
            settings: serde_json::json!({"do": action}),
            limits: deadline_ms(50),
        };
        let hook = support::hooks().load(&spec).await.unwrap();
        let start = Instant::now();
        let err = hook.mutate(&context(), &pod()).await.unwrap_err();
        let took = start.elapsed();
        assert!(
            matches!(err, HookError::Deadline { .. }),
            "{action}: {err:?}"
        );
        assert_eq!(err.exit_code().number(), 122);
        assert!(took < Duration::from_millis(500), "{action} took {took:?}");
    }
}

#[test]
fn a_sleeping_hook_under_podrun_render_exits_122_at_once() {
    let hooks = "  hooks:\n    mutate:\n    - {hook: misbehave.wasm, with: {do: sleep-forever}, deadline-ms: 50}\n";
    let scratch = Scratch::new(&app("hello", hooks));
    let start = Instant::now();
    support::fails_with(
        support::podrun_in(scratch.path()).args(["render", "-a", "hello"]),
        122,
        "ran past its deadline of 50 ms",
    );
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn output_logs_and_recursion_are_bounded() {
    let err = misbehave(serde_json::json!({"do": "print"}), Limits::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HookError::Limit { what, .. } if what.contains("stdout")),
        "{err:?}"
    );
    let err = misbehave(
        serde_json::json!({"do": "log-million"}),
        deadline_ms(10_000),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, HookError::Limit { what, .. } if what.contains("log calls")),
        "{err:?}"
    );
    let err = misbehave(serde_json::json!({"do": "recurse"}), Limits::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HookError::Trap { trap, .. } if trap.contains("call stack exhausted")),
        "{err:?}"
    );
    // A huge log line is cut before the host keeps it.
    let called = support::mutate_once(
        Source::File(support::guest("misbehave")),
        serde_json::json!({"do": "log-huge"}),
        Limits::default(),
    )
    .await
    .unwrap();
    assert_eq!(called.logs.len(), 1);
    assert!(called.logs[0].message.len() < 4096);
}

#[tokio::test]
async fn a_result_past_the_output_cap_is_refused() {
    let big = Limits {
        memory: Some(512 << 20),
        deadline: Some(Duration::from_secs(20)),
        ..Limits::default()
    };
    // Past the cap: refused after the copy, before it is parsed.
    let err = misbehave(serde_json::json!({"do": "big-result", "mib": 10}), big)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HookError::Limit { what, .. } if what.contains("returned more than 4096 KiB")),
        "{err:?}"
    );
    // Far past it: wasmtime does not even copy it.
    let err = misbehave(serde_json::json!({"do": "big-result", "mib": 200}), big)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HookError::Limit { what, .. } if what.contains("handed the host more than 20 MiB")),
        "{err:?}"
    );
    // Under the cap it is accepted; the cap is the hook's to raise.
    let raised = Limits {
        output: Some(8 << 20),
        ..big
    };
    assert!(matches!(
        misbehave(serde_json::json!({"do": "big-result", "mib": 6}), raised).await,
        Ok(mutate::Mutation::Replace(s)) if s.len() == 6 << 20
    ));
}

#[test]
fn a_200_mib_result_leaves_the_host_bounded() {
    let hooks = "  hooks:\n    mutate:\n    - {hook: misbehave.wasm, with: {do: big-result, mib: 200}, memory-mib: 512, deadline-ms: 20000}\n";
    let scratch = Scratch::new(&app("hello", hooks));
    let mut cmd = podrun_std(scratch.path());
    cmd.args(["render", "-a", "hello"]);
    let (code, stderr, rss_kib) = run_measured(cmd);
    assert_eq!(code, 122, "{stderr}");
    assert!(
        stderr.contains("handed the host more than 20 MiB"),
        "{stderr}"
    );
    // The guest's own memory (the string and its growth), and no copy.
    assert!(rss_kib < 600 << 10, "peak RSS {} MiB", rss_kib >> 10);
}

#[tokio::test]
async fn many_memories_are_capped_together() {
    // Six instances of a module whose start fills a 60 MiB memory: 360 MiB
    // if each memory were capped on its own, refused at the second.
    let module = r#"(core module $m
    (memory 960)
    (func $fill (memory.fill (i32.const 0) (i32.const 1) (i32.const 62914560)))
    (start $fill))"#;
    let instances: String = (0..6)
        .map(|i| format!("(core instance $m{i} (instantiate $m))\n"))
        .collect();
    let (dir, path) = wat_component(&mutate_component(module, &instances));
    let err = call(
        Source::File(path.clone()),
        serde_json::json!({}),
        Limits::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, HookError::Memory { .. }), "{err:?}");
    assert_eq!(err.exit_code().number(), 122);

    let hook_test = || {
        let mut cmd = podrun_std(dir.path());
        cmd.args(["hook", "test", "hostile.wasm", "--kind", "mutate", "-i"])
            .arg(fixture_pod());
        cmd
    };
    // Once to fill the compile cache: what is measured is the run, not
    // the compiler.
    run_measured(hook_test());
    let (code, stderr, rss_kib) = run_measured(hook_test());
    assert_eq!(code, 122, "{stderr}");
    assert!(stderr.contains("64 MiB"), "{stderr}");
    assert!(rss_kib < 300 << 10, "peak RSS {} MiB", rss_kib >> 10);
}

#[tokio::test]
async fn too_many_instances_tables_or_memories_are_refused() {
    let empty = "(core module $m)";
    let instances: String = (0..100)
        .map(|i| format!("(core instance $m{i} (instantiate $m))\n"))
        .collect();
    let tables: String = (0..70).map(|_| "(table 1 funcref)").collect();
    let memories: String = (0..12)
        .map(|i| format!("(core instance $m{i} (instantiate $m))\n"))
        .collect();
    let cases = [
        ("instances", mutate_component(empty, &instances)),
        (
            "tables",
            mutate_component(
                &format!("(core module $m {tables})"),
                "(core instance (instantiate $m))",
            ),
        ),
        (
            "big table",
            mutate_component(
                "(core module $m (table 5000000 funcref))",
                "(core instance (instantiate $m))",
            ),
        ),
        (
            "memories",
            mutate_component("(core module $m (memory 1))", &memories),
        ),
    ];
    for (what, wat) in cases {
        let (_dir, path) = wat_component(&wat);
        let err = call(Source::File(path), serde_json::json!({}), Limits::default())
            .await
            .unwrap_err();
        assert!(matches!(err, HookError::Limit { .. }), "{what}: {err:?}");
        assert_eq!(err.exit_code().number(), 122, "{what}");
    }
}

#[tokio::test]
async fn names_in_a_trap_cannot_forge_console_lines() {
    // wasmtime's trap message carries a backtrace with the guest's own
    // function names.
    let wat = r#"(component
  (core module $m
    (func $evil (@name "evil\1b[2K\npodrun: run r1 succeeded; resource limit exceeded") unreachable)
    (start $evil))
  (core instance (instantiate $m))
  (core module $f (func (export "f")))
  (core instance $fi (instantiate $f))
  (func $mutate (canon lift (core func $fi "f")))
  (instance $i (export "mutate" (func $mutate)))
  (export "podrun:hook/mutate@0.1.0" (instance $i))
)"#;
    let (_dir, path) = wat_component(wat);
    let err = call(Source::File(path), serde_json::json!({}), Limits::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.exit_code().number(), 122, "{text}");
    assert!(
        text.contains("evil\\u{1b}[2K"),
        "the name is not in the message: {text:?}"
    );
    assert!(!text.contains('\x1b'), "{text:?}");
    assert!(!text.contains("\npodrun: run"), "{text:?}");
}

#[test]
fn a_huge_denial_with_escape_sequences_is_cut_and_escaped() {
    let hooks = "  hooks:\n    mutate:\n    - {hook: misbehave.wasm, with: {do: deny-huge}}\n";
    let scratch = Scratch::new(&app("hello", hooks));
    let out = support::podrun_in(scratch.path())
        .args(["render", "-a", "hello"])
        .assert()
        .code(121);
    let stderr = &out.get_output().stderr;
    assert!(stderr.len() < 16 << 10, "{} bytes on stderr", stderr.len());
    assert!(
        !stderr.contains(&0x1b),
        "an escape sequence reached the console"
    );
    let text = String::from_utf8_lossy(stderr);
    assert!(text.contains("\\u{1b}[2K"), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("podrun: run"))
            .count(),
        0,
        "{text}"
    );
}

#[test]
fn a_render_result_whose_metadata_is_not_an_object_is_refused() {
    for metadata in ["x", "5", "[]"] {
        let scratch = Scratch::new(&app("hello", ""));
        std::fs::write(
            scratch.path().join("templates/pod.tmpl"),
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {metadata}\nspec:\n  containers:\n  - name: main\n    image: busybox\n"
            ),
        )
        .unwrap();
        support::fails_with(
            support::podrun_in(scratch.path()).args(["render", "-a", "hello"]),
            122,
            "metadata is not an object",
        );
    }
}

#[test]
fn runaway_scripts_end_with_line_and_column() {
    let cases = [
        ("let s = \"x\";\n  loop { s += s; }", "Length of string"),
        ("let a = [];\n  a.pad(60000, 0);", "Size of array"),
        // Maps of two entries: their entries pass the map limit while the
        // array is still half its own.
        (
            "let a = [];\n  a.pad(25001, #{ a: 1, b: 2 });",
            "Size of object map",
        ),
        ("let i = 0;\n  loop { i += 1; }", "Too many operations"),
    ];
    for (body, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("policy.rhai"),
            format!("fn mutate(object, ctx) {{\n  {body}\n}}\n"),
        )
        .unwrap();
        let out = support::podrun_in(dir.path())
            .args(["hook", "test", "policy.rhai", "-i"])
            .arg(fixture_pod())
            .assert()
            .code(122);
        let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        assert!(err.contains(expected), "{body}: {err}");
        assert!(
            err.contains("policy.rhai:3:"),
            "{body}: no line and column in {err}"
        );
    }
}

#[tokio::test]
async fn secure_random_is_real_entropy_and_the_clock_stays_frozen() {
    let draw = || async {
        match misbehave(
            serde_json::json!({"do": "secure-random"}),
            Limits::default(),
        )
        .await
        {
            Err(HookError::Failed { message, .. }) => message,
            other => panic!("{other:?}"),
        }
    };
    let (a, b) = (draw().await, draw().await);
    assert!(a.starts_with("secure random: "), "{a}");
    assert_ne!(a, b, "two calls drew the same secure random number");
    match misbehave(serde_json::json!({"do": "clock"}), Limits::default()).await {
        Err(HookError::Failed { message, .. }) => assert_eq!(message, "clock: Ok(0ns)"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_component_past_the_size_cap_is_not_compiled() {
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(dir.path().join("huge.wasm")).unwrap();
    file.set_len(129 << 20).unwrap();
    support::fails_with(
        support::podrun_in(dir.path())
            .args(["hook", "test", "huge.wasm", "--kind", "mutate", "-i"])
            .arg(fixture_pod()),
        122,
        "the largest hook podrun compiles is 128 MiB",
    );
}

/// A config and a cache directory of its own, for the cache attacks.
struct CacheCase {
    scratch: Scratch,
    cache: tempfile::TempDir,
    data: tempfile::TempDir,
}

impl CacheCase {
    fn new() -> CacheCase {
        CacheCase {
            scratch: Scratch::new(&app("hello", "")),
            cache: tempfile::tempdir().unwrap(),
            data: tempfile::tempdir().unwrap(),
        }
    }

    fn podrun(&self) -> std::process::Command {
        let mut cmd = podrun_std(self.scratch.path());
        cmd.env("PODRUN_CACHE_DIR", self.cache.path())
            .env("XDG_DATA_HOME", self.data.path());
        cmd
    }

    fn hooks_dir(&self) -> PathBuf {
        self.cache.path().join("hooks")
    }

    /// `podrun render`: its pod and its stderr.
    fn render(&self) -> (serde_json::Value, String) {
        let out = self
            .podrun()
            .args(["render", "-a", "hello", "-o", "json"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        (serde_json::from_slice(&out.stdout).unwrap(), stderr)
    }

    /// The cache file of the built-in `name`.
    fn file_of(&self, name: &str) -> PathBuf {
        let wasm = Path::new(env!("PODRUN_TEST_GUESTS"))
            .join(format!("podrun_hook_{}.wasm", name.replace('-', "_")));
        let prefix = blake3::hash(&std::fs::read(wasm).unwrap())
            .to_hex()
            .to_string();
        std::fs::read_dir(self.hooks_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&prefix)
            })
            .unwrap_or_else(|| panic!("no cache file for {name}"))
    }
}

fn restart_policy(pod: &serde_json::Value) -> &str {
    pod["spec"]["restartPolicy"].as_str().unwrap_or("")
}

#[test]
fn the_cache_runs_only_what_podrun_wrote() {
    let case = CacheCase::new();
    let (pod, _) = case.render();
    assert_eq!(restart_policy(&pod), "Never");
    let dir_mode = std::fs::metadata(case.hooks_dir()).unwrap().permissions();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(dir_mode.mode() & 0o777, 0o700);
    // The key lives outside the cache tree, in the user's data directory.
    let key = case.data.path().join("podrun/cache.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let target = case.file_of("restart-never");
    let other = case.file_of("deadline");

    // Planted: another hook's valid artifact, copied under this key.
    std::fs::copy(&other, &target).unwrap();
    let (pod, stderr) = case.render();
    assert_eq!(restart_policy(&pod), "Never", "the planted hook ran");
    assert!(stderr.contains("fails its integrity check"), "{stderr}");

    // Cut short: the tag is gone, and what ends the file now is code.
    let whole = std::fs::read(&target).unwrap();
    std::fs::write(&target, &whole[..whole.len() / 2]).unwrap();
    let (pod, stderr) = case.render();
    assert_eq!(restart_policy(&pod), "Never");
    assert!(stderr.contains("fails its integrity check"), "{stderr}");

    // One byte of code changed.
    let mut changed = whole.clone();
    changed[whole.len() / 2] ^= 1;
    std::fs::write(&target, &changed).unwrap();
    let (pod, stderr) = case.render();
    assert_eq!(restart_policy(&pod), "Never");
    assert!(stderr.contains("fails its integrity check"), "{stderr}");

    // World-writable.
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (pod, stderr) = case.render();
    assert_eq!(restart_policy(&pod), "Never");
    assert!(stderr.contains("writable by other users"), "{stderr}");

    // A FIFO: opening it must not wait for a writer.
    std::fs::remove_file(&target).unwrap();
    let fifo = std::ffi::CString::new(target.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string; mkfifo has no other precondition.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let (pod, stderr) = case.render();
    assert_eq!(restart_policy(&pod), "Never");
    assert!(stderr.contains("is not a regular file"), "{stderr}");

    // A symlink to another artifact.
    std::fs::remove_file(&target).unwrap();
    std::os::unix::fs::symlink(&other, &target).unwrap();
    let (pod, stderr) = case.render();
    assert_eq!(restart_policy(&pod), "Never");
    assert!(stderr.contains("ignoring a cached hook"), "{stderr}");
    assert!(
        std::fs::symlink_metadata(&target).unwrap().is_file(),
        "not replaced"
    );

    // A huge sparse file.
    std::fs::remove_file(&target).unwrap();
    let huge = std::fs::File::create(&target).unwrap();
    huge.set_len(2 << 30).unwrap();
    let (pod, stderr) = case.render();
    assert_eq!(restart_policy(&pod), "Never");
    assert!(
        stderr.contains("is larger than any compiled hook"),
        "{stderr}"
    );

    // Owned by someone else (needs root to make).
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&target, Some(65534), Some(65534)).unwrap();
        let (pod, stderr) = case.render();
        assert_eq!(restart_policy(&pod), "Never");
        assert!(stderr.contains("is owned by uid 65534"), "{stderr}");
    } else {
        eprintln!("not root: the foreign-owned cache file is not tried");
    }

    // Written by podrun again, the file is used without a word, and
    // loaded, not compiled again: the file stays the one written.
    let (_, stderr) = case.render();
    assert!(!stderr.contains("cached hook"), "{stderr}");
    use std::os::unix::fs::MetadataExt;
    let before = std::fs::metadata(&target).unwrap();
    let (_, stderr) = case.render();
    assert!(!stderr.contains("cached hook"), "{stderr}");
    let after = std::fs::metadata(&target).unwrap();
    assert_eq!(
        (before.ino(), before.mtime_nsec()),
        (after.ino(), after.mtime_nsec()),
        "the cache file was written again: it was not used"
    );
}

#[test]
fn two_processes_compiling_the_same_hooks_at_once_both_succeed() {
    let case = CacheCase::new();
    let spawn = || {
        case.podrun()
            .args(["render", "-a", "hello"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (pod, stderr) = case.render();
    assert_eq!(restart_policy(&pod), "Never");
    assert!(!stderr.contains("cached hook"), "{stderr}");
    let leftovers: Vec<_> = std::fs::read_dir(case.hooks_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A config whose classifier misbehaves as `action`, for `podrun run`.
pub fn misclassifying(action: &str) -> Scratch {
    let hooks = format!(
        "  hooks:\n    classify:\n    - {{hook: misclassify.wasm, with: {{do: {action}}}, deadline-ms: 300}}\n"
    );
    let scratch = Scratch::new(&app("hello", &hooks));
    std::fs::copy(
        support::guest("misclassify"),
        scratch.path().join("misclassify.wasm"),
    )
    .unwrap();
    scratch
}

#[test]
fn a_failing_classifier_stops_a_local_run_cleanly() {
    for action in ["panic", "print", "sleep", "alloc"] {
        let scratch = misclassifying(action);
        let marker = format!("podrun-sandbox-{action}-{}", std::process::id());
        let result = scratch.path().join("result.json");
        let start = Instant::now();
        let out = support::podrun_in(scratch.path())
            .args(["run", "--runtime", "local", "-a", "hello", "--result-file"])
            .arg(&result)
            .args(["-c", &format!("sh -c 'sleep 30; : {marker}'")])
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap();
        let run = support::Run::collect(out, &result);
        assert_eq!(run.code, 122, "{action}: {}", run.stderr);
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{action}: the run waited for the pod"
        );
        assert_eq!(run.result["outcome"], "failed", "{action}");
        assert_eq!(run.result["reason"], "HookFailed", "{action}");
        assert_eq!(run.result["exitCode"], 122, "{action}");
        let left = std::process::Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .unwrap();
        assert!(
            left.stdout.is_empty(),
            "{action}: processes left running: {}",
            String::from_utf8_lossy(&left.stdout)
        );
    }
}

#[test]
fn a_lying_verdict_is_cut_and_escaped() {
    let scratch = misclassifying("lie");
    let result = scratch.path().join("result.json");
    let out = support::podrun_in(scratch.path())
        .args(["run", "--runtime", "local", "-a", "hello", "--result-file"])
        .arg(&result)
        .args(["-c", "true"])
        .output()
        .unwrap();
    let run = support::Run::collect(out, &result);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        !run.stderr.contains('\x1b'),
        "an escape sequence reached the console: {:?}",
        run.stderr
    );
    assert_eq!(
        run.stderr
            .lines()
            .filter(|l| l.starts_with("podrun: run"))
            .count(),
        1,
        "{}",
        run.stderr
    );
    let message = run.result["message"].as_str().unwrap();
    assert!(message.len() <= 4096 + 3, "{} bytes", message.len());
    assert_eq!(run.result["reason"], "Fake\\u{1b}[31m");
}

#[tokio::test]
async fn a_hook_built_for_another_contract_is_refused_naming_both_versions() {
    for version in ["0.2.0", "1.0.0", "0.0.9"] {
        let wat = mutate_component("", "").replace(
            "podrun:hook/mutate@0.1.0",
            &format!("podrun:hook/mutate@{version}"),
        );
        let (_dir, path) = wat_component(&wat);
        let err = call(Source::File(path), serde_json::json!({}), Limits::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, HookError::Contract { .. }),
            "{version}: {err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&format!("built for podrun:hook@{version}"))
                && message.contains("speaks podrun:hook@0.1.0"),
            "{message}"
        );
        assert_eq!(err.exit_code().number(), 125);
    }
    // An import of another version is named too, before linking fails.
    let wat = r#"(component
  (import "podrun:hook/log@0.3.0" (instance $log))
  (core module $f (func (export "f")))
  (core instance $fi (instantiate $f))
  (func $mutate (canon lift (core func $fi "f")))
  (instance $i (export "mutate" (func $mutate)))
  (export "podrun:hook/mutate@0.1.0" (instance $i))
)"#;
    let (_dir, path) = wat_component(wat);
    let err = call(Source::File(path), serde_json::json!({}), Limits::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("podrun:hook@0.3.0"), "{err}");
}
