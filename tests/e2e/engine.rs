//! The hook engine with real components: each built-in hook through the
//! pipeline, and every way a hook can misbehave.

use std::time::{Duration, Instant};

use podrun::hooks::{HookError, Kind, Limits, Source, Spec, log, mutate};
use podrun::pipeline::{PipelineError, Request, prepare};

use crate::support::{self, Scratch, app, context, pod};

async fn misbehave(action: &str, limits: Limits) -> Result<mutate::Mutation, HookError> {
    support::mutate_once(
        Source::File(support::guest("misbehave")),
        serde_json::json!({ "do": action }),
        limits,
    )
    .await
    .map(|c| c.value)
}

async fn failed_message(action: &str) -> String {
    match misbehave(action, Limits::default()).await {
        Err(HookError::Failed { message, .. }) => message,
        other => panic!("{action}: expected the hook's own report, got {other:?}"),
    }
}

#[tokio::test]
async fn a_well_behaved_hook_returns_its_mutation() {
    assert!(matches!(
        misbehave("nothing", Limits::default()).await,
        Ok(mutate::Mutation::Unchanged)
    ));
    let Ok(mutate::Mutation::Replace(json)) =
        misbehave("typed-round-trip", Limits::default()).await
    else {
        panic!("expected a replacement")
    };
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["spec"]["containers"][0]["image"], "busybox");
}

#[tokio::test]
async fn a_trap_is_reported_as_a_crash() {
    let err = misbehave("trap", Limits::default()).await.unwrap_err();
    assert!(
        matches!(&err, HookError::Trap { trap, .. } if trap.contains("unreachable")),
        "{err}"
    );
    assert_eq!(err.exit_code().number(), 122);
}

#[tokio::test]
async fn a_panic_shows_its_message() {
    let err = misbehave("panic", Limits::default()).await.unwrap_err();
    let HookError::Trap { output, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(output.contains("the hook gave up"), "{err}");
}

#[tokio::test]
async fn an_endless_loop_stops_at_the_deadline() {
    let limits = Limits {
        deadline: Some(Duration::from_millis(50)),
        ..Limits::default()
    };
    let start = Instant::now();
    let err = misbehave("loop", limits).await.unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, HookError::Deadline { .. }), "{err:?}");
    assert!(
        took >= Duration::from_millis(50),
        "stopped after {took:?}, before its deadline"
    );
    assert!(
        took < Duration::from_millis(1500),
        "stopped only after {took:?}"
    );
    assert!(err.to_string().contains("50 ms"), "{err}");
}

#[tokio::test]
async fn an_endless_loop_in_an_idle_engine_stops_at_its_deadline_too() {
    // The epoch thread sleeps once no hook has run for a while; a call
    // must wake it, or nothing would stop the loop for a second or more.
    let hooks = support::hooks();
    let hook = hooks
        .load(&Spec {
            source: Source::File(support::guest("misbehave")),
            kind: Kind::Mutate,
            settings: serde_json::json!({ "do": "loop" }),
            limits: Limits {
                deadline: Some(Duration::from_millis(50)),
                ..Limits::default()
            },
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let start = Instant::now();
    let err = hook.mutate(&context(), &pod()).await.unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, HookError::Deadline { .. }), "{err:?}");
    assert!(
        took < Duration::from_millis(500),
        "stopped only after {took:?}"
    );
}

#[tokio::test]
async fn a_huge_allocation_hits_the_memory_cap() {
    let err = misbehave("alloc", Limits::default()).await.unwrap_err();
    assert!(
        matches!(err, HookError::Memory { limit, .. } if limit == 64 << 20),
        "{err:?}"
    );
    let err = misbehave(
        "alloc-slowly",
        Limits {
            memory: Some(8 << 20),
            ..Limits::default()
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, HookError::Memory { limit, .. } if limit == 8 << 20),
        "{err:?}"
    );
    assert!(err.to_string().contains("8 MiB"), "{err}");
}

#[tokio::test]
async fn a_hook_sees_no_files_environment_clock_or_network() {
    let read = failed_message("read-file").await;
    assert!(read.starts_with("read /etc/hostname: Err("), "{read}");
    let list = failed_message("list-dir").await;
    assert!(list.starts_with("list /: Err("), "{list}");
    assert_eq!(failed_message("env").await, "env: []");
    assert_eq!(failed_message("args").await, "args: []");
    assert_eq!(failed_message("clock").await, "clock: Ok(0ns)");
    // Hash seeds come from the fixed insecure source: the same in every
    // call (secure random numbers are real: see the sandbox tests).
    let random = failed_message("random").await;
    assert_eq!(random, failed_message("random").await);
    let net = failed_message("net").await;
    assert!(net.starts_with("net: Err("), "{net}");
}

#[tokio::test]
async fn hook_logs_come_back_with_the_call() {
    let called = support::mutate_once(
        Source::File(support::guest("misbehave")),
        serde_json::json!({ "do": "log" }),
        Limits::default(),
    )
    .await
    .unwrap();
    let lines: Vec<(bool, &str)> = called
        .logs
        .iter()
        .map(|l| (matches!(l.level, log::Level::Warn), l.message.as_str()))
        .collect();
    assert_eq!(lines, [(true, "careful"), (false, "hello from the hook")]);
}

#[tokio::test]
async fn a_component_of_the_wrong_kind_is_refused_at_load() {
    let spec = Spec {
        source: Source::File(support::guest("misbehave")),
        kind: Kind::Render,
        settings: serde_json::json!({}),
        limits: Limits::default(),
    };
    let Err(err) = support::hooks().load(&spec).await else {
        panic!("loaded")
    };
    assert!(
        matches!(
            err,
            HookError::WrongKind {
                kind: Kind::Render,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("podrun:hook/render@0.1.0"),
        "{err}"
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_component_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.wasm");
    std::fs::write(&path, b"\0asm but not really").unwrap();
    let spec = Spec {
        source: Source::File(path),
        kind: Kind::Mutate,
        settings: serde_json::json!({}),
        limits: Limits::default(),
    };
    let Err(err) = support::hooks().load(&spec).await else {
        panic!("loaded")
    };
    assert!(matches!(err, HookError::Load { .. }), "{err:?}");
    assert_eq!(err.exit_code().number(), 125);
}

#[tokio::test]
async fn compiled_components_are_cached_on_disk_and_survive_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec {
        source: Source::Builtin("restart-never"),
        kind: Kind::Mutate,
        settings: serde_json::json!({}),
        limits: Limits::default(),
    };
    support::hooks_cached_in(dir.path())
        .load(&spec)
        .await
        .unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].extension().is_some_and(|e| e == "cwasm"));
    // A damaged artifact is compiled again, not trusted.
    std::fs::write(&files[0], b"garbage").unwrap();
    let hook = support::hooks_cached_in(dir.path())
        .load(&spec)
        .await
        .unwrap();
    assert!(hook.mutate(&context(), &pod()).await.is_ok());
    assert!(std::fs::metadata(&files[0]).unwrap().len() > 1000);
}

async fn prepare_with(
    extra: &str,
    request: Request,
) -> Result<podrun::pipeline::Prepared, PipelineError> {
    let scratch = Scratch::new(&app("hello", extra));
    prepare(&support::hooks(), &scratch.config(), &request).await
}

fn request(args: &[&str]) -> Request {
    Request {
        application: "hello".into(),
        arguments: args.iter().map(|s| s.to_string()).collect(),
        ..Request::default()
    }
}

#[tokio::test]
async fn the_default_pipeline_renders_and_mutates() {
    let mut req = request(&["echo", "hi"]);
    req.run_id = Some("run-7".into());
    let prepared = prepare_with("", req).await.unwrap();
    let pod = prepared.pod;
    let spec = pod.spec.unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(spec.active_deadline_seconds, Some(86_400));
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(
        spec.containers[0].args,
        Some(vec!["echo".to_string(), "hi".to_string()])
    );
    let labels = pod.metadata.labels.unwrap();
    assert_eq!(labels["podrun.dev/run-id"], "run-7");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "podrun");
    assert_eq!(pod.metadata.name.as_deref(), Some("hello-run-7"));
    let hooks: Vec<&str> = prepared.steps.iter().map(|s| s.hook.as_str()).collect();
    assert_eq!(
        hooks,
        [
            "go-template",
            "restart-never",
            "deadline",
            "labels",
            "api-token"
        ]
    );
}

#[tokio::test]
async fn application_settings_reach_the_hooks() {
    let mut req = request(&[]);
    req.timeout = Some(120);
    let extra = "  restart-policy: OnFailure\n  timeout: 1h\n";
    let spec = prepare_with(extra, req).await.unwrap().pod.spec.unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("OnFailure"));
    assert_eq!(
        spec.active_deadline_seconds,
        Some(120),
        "--timeout overrides the config"
    );
    let spec = prepare_with(extra, request(&[]))
        .await
        .unwrap()
        .pod
        .spec
        .unwrap();
    assert_eq!(spec.active_deadline_seconds, Some(3600));
}

#[tokio::test]
async fn hook_settings_and_order_come_from_the_config() {
    let extra =
        "  hooks:\n    mutate:\n    - labels\n    - hook: deadline\n      with: {seconds: 60}\n";
    let prepared = prepare_with(extra, request(&[])).await.unwrap();
    let spec = prepared.pod.spec.unwrap();
    assert_eq!(spec.active_deadline_seconds, Some(60));
    assert_eq!(spec.restart_policy, None, "restart-never was left out");
    let hooks: Vec<&str> = prepared.steps.iter().map(|s| s.hook.as_str()).collect();
    assert_eq!(hooks, ["go-template", "labels", "deadline"]);
}

#[tokio::test]
async fn a_denial_stops_the_pipeline() {
    let extra = "  hooks:\n    mutate:\n    - hook: misbehave.wasm\n      with: {do: deny}\n";
    let err = prepare_with(extra, request(&[])).await.unwrap_err();
    assert!(
        matches!(&err, PipelineError::Hook(HookError::Denied { message, .. }) if message.contains("cost centre")),
        "{err}"
    );
    assert_eq!(err.exit_code().number(), 121);
}

#[tokio::test]
async fn malformed_hook_output_fails_the_run() {
    for action in ["garbage", "garbage-object"] {
        let extra = format!(
            "  hooks:\n    mutate:\n    - hook: misbehave.wasm\n      with: {{do: {action}}}\n"
        );
        let err = prepare_with(&extra, request(&[])).await.unwrap_err();
        assert!(
            matches!(&err, PipelineError::Hook(HookError::Output { .. })),
            "{action}: {err}"
        );
        assert_eq!(err.exit_code().number(), 122);
    }
}

#[tokio::test]
async fn a_hook_with_bad_settings_fails_the_run() {
    let extra = "  hooks:\n    mutate:\n    - hook: deadline\n      with: {secs: 60}\n";
    let err = prepare_with(extra, request(&[])).await.unwrap_err();
    assert!(err.to_string().contains("unknown field `secs`"), "{err}");
    assert_eq!(err.exit_code().number(), 122);
}

#[tokio::test]
async fn parameters_are_checked_and_inserted_safely() {
    let extra = "  parameters:\n  - team\n  - name: tier\n    default: gold\n";
    let err = prepare_with(extra, request(&[])).await.unwrap_err();
    assert!(
        err.to_string().contains("needs the parameter \"team\""),
        "{err}"
    );
    let mut req = request(&[]);
    req.params = vec![("colour".into(), "red".into())];
    let err = prepare_with(extra, req).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("does not accept the parameter \"colour\""),
        "{err}"
    );
    let mut req = request(&[]);
    req.params = vec![("team".into(), "data\nhostNetwork: true".into())];
    assert!(prepare_with(extra, req).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_runs_loading_one_hook_at_once_compile_it_once() {
    // A fresh engine with no cache directory: nothing is compiled yet.
    let hooks = podrun::hooks::Hooks::new(podrun::hooks::EngineOptions::default()).unwrap();
    let spec = podrun::config::builtin_spec(
        &podrun::config::HookRef::named("restart-never"),
        Kind::Mutate,
    )
    .unwrap();
    let loads = (0..16).map(|_| {
        let (hooks, spec) = (hooks.clone(), spec.clone());
        tokio::spawn(async move { hooks.load(&spec).await.map(|_| ()) })
    });
    for load in futures::future::join_all(loads).await {
        load.unwrap().unwrap();
    }
    assert_eq!(hooks.components_compiled(), 1);
}

/// The built-ins linked with a small stack (host/build.rs) still take the
/// deepest object the JSON readers accept, and a classify call's largest
/// observation, without running out of it.
#[tokio::test]
async fn the_small_stack_built_ins_take_the_deepest_pod() {
    let mut deep = String::from("{}");
    for _ in 0..120 {
        deep = format!(r#"{{"x":{deep},"y":[1,2,3]}}"#);
    }
    let object = podrun::hooks::types::Object {
        api_version: "v1".into(),
        kind: "Pod".into(),
        json: format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"p","labels":{{"a":"b"}}}},"spec":{{"containers":[{{"name":"c","image":"busybox","securityContext":{{}}}}],"deep":{deep}}}}}"#
        ),
    };
    for (name, settings) in [
        ("api-token", serde_json::json!({})),
        ("deadline", serde_json::json!({})),
        ("labels", serde_json::json!({})),
        ("pod-security", serde_json::json!({})),
        ("restart-never", serde_json::json!({})),
        ("sequence", serde_json::json!({})),
    ] {
        let spec = Spec {
            source: Source::Builtin(name),
            kind: Kind::Mutate,
            settings,
            limits: Limits::default(),
        };
        let hook = support::hooks().load(&spec).await.unwrap();
        match hook.mutate(&context(), &object).await {
            Ok(_) | Err(HookError::Denied { .. }) => {}
            Err(e) => panic!("{name}: {e:?}"),
        }
    }
}

/// go-template (linked with a small stack, host/build.rs) renders
/// templates nested as deep as its template language allows, and what is
/// deeper, or recursive, or renders YAML nested past reason, is the hook's
/// clean error, never a crash of podrun.
#[tokio::test]
async fn go_template_takes_the_deepest_templates_and_refuses_deeper_ones() {
    let spec = Spec {
        source: Source::Builtin("go-template"),
        kind: Kind::Render,
        settings: serde_json::json!({}),
        // Time enough to reach the end of the stack on a loaded machine.
        limits: Limits {
            deadline: Some(Duration::from_secs(10)),
            ..Limits::default()
        },
    };
    let hook = support::hooks().load(&spec).await.unwrap();
    let render = |text: String| {
        let hook = &hook;
        async move {
            let template = podrun::hooks::render::Template {
                source: "deep.tmpl".into(),
                text,
            };
            hook.render(&context(), &template).await.map(|c| c.value)
        }
    };
    let pod = |label: &str, extra: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: deep\n  labels:\n    note: {label}\nspec:\n  containers:\n  - name: c\n    image: busybox\n{extra}"
        )
    };
    let nested = |depth: usize, open: &str, inner: &str, close: &str| {
        format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
    };

    // The template language's own limit: blocks and parentheses 99 deep.
    let deepest = [
        nested(99, "{{if true}}", &pod("v", ""), "{{end}}"),
        nested(99, "{{with .}}", &pod("v", ""), "{{end}}"),
        nested(49, "{{if true}}{{with .}}", &pod("v", ""), "{{end}}{{end}}"),
        pod(
            &format!("\"{{{{{}}}}}\"", nested(98, "(print ", "\"v\"", ")")),
            "",
        ),
    ];
    for text in deepest {
        let rendered = render(text).await.unwrap_or_else(|e| panic!("{e}"));
        let pod: serde_json::Value = serde_json::from_str(&rendered).unwrap();
        assert_eq!(pod["metadata"]["labels"]["note"], "v", "{rendered}");
    }
    // Deeper than that, and endless recursion: the language's errors.
    for (text, says) in [
        (
            nested(101, "{{if true}}", &pod("v", ""), "{{end}}"),
            "depth",
        ),
        (
            format!(
                "{{{{define \"r\"}}}}{{{{template \"r\" .}}}}{{{{end}}}}{{{{template \"r\" .}}}}{}",
                pod("v", "")
            ),
            "recursion",
        ),
        (
            format!(
                "{{{{define \"r\"}}}}{{{{with .}}}}{{{{if true}}}}{{{{template \"r\" .}}}}{{{{end}}}}{{{{end}}}}{{{{end}}}}{{{{template \"r\" .}}}}{}",
                pod("v", "")
            ),
            "recursion",
        ),
    ] {
        match render(text).await {
            Err(HookError::Failed { message, .. }) => assert!(message.contains(says), "{message}"),
            other => panic!("expected the template's error, got {other:?}"),
        }
    }
    // `else if` chains are not counted as nesting: far longer ones than
    // anyone writes render, and an endless one is the hook's error.
    // (Only the branches taken count towards the run's depth limit, so
    // the first is taken here: the whole chain is parsed, none of it run.)
    let chain = |links: usize| {
        format!(
            "{{{{if true}}}}{}{}{{{{end}}}}",
            pod("v", ""),
            "{{else if false}}".repeat(links)
        )
    };
    let rendered = render(chain(300)).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(rendered.contains(r#""note":"v""#), "{rendered}");
    let endless = render(chain(20_000)).await.unwrap_err();
    assert!(
        matches!(endless, HookError::Trap { .. } | HookError::Failed { .. }),
        "{endless:?}"
    );
    // YAML nested as deep as its flow collections go (255 levels).
    let flow = pod("v", &format!("  x: {}\n", nested(255, "[", "1", "]")));
    let rendered = render(flow).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(rendered.contains("[[[[1]]]]"), "{rendered}");
    // Block mappings far deeper than any Kubernetes object.
    let mut block = String::new();
    for i in 0..100 {
        block.push_str(&" ".repeat(i + 4));
        block.push_str(if i < 99 { "k:\n" } else { "k: 1\n" });
    }
    let rendered = render(pod("v", &format!("  x:\n{block}"))).await;
    assert!(rendered.is_ok_and(|r| r.contains(r#"{"k":{"k":1}}"#)));
    // Block nesting has no limit of its own: 2,000 levels render or end as
    // an error of the hook (out of stack), never as a crash of podrun.
    let mut block = String::new();
    for i in 0..2_000 {
        block.push_str(&" ".repeat(i + 2));
        block.push_str("k:\n");
    }
    if let Err(e) = render(pod("v", &format!("  x:\n{block}"))).await {
        assert!(
            matches!(e, HookError::Trap { .. } | HookError::Failed { .. }),
            "{e:?}"
        );
    }
    // Aliases that double at each level: a few levels are copied as YAML
    // says, forty reach the hook's memory cap.
    let laughs = |levels: usize| {
        let mut yaml = String::from("  x:\n    a0: &a0 [v, v]\n");
        for i in 1..levels {
            yaml.push_str(&format!("    a{i}: &a{i} [*a{0}, *a{0}]\n", i - 1));
        }
        pod("v", &yaml)
    };
    let rendered = render(laughs(3)).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        rendered.contains(r#""a2":[[["v","v"],["v","v"]],[["v","v"],["v","v"]]]"#),
        "{rendered}"
    );
    let bomb = render(laughs(40)).await.unwrap_err();
    assert!(matches!(bomb, HookError::Memory { .. }), "{bomb:?}");
}
