use podrun_hook_sdk::serde_json::{Value, json};

use super::*;

fn pod() -> podrun_hook_sdk::Object {
    podrun_hook_sdk::Object::pod(&json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]}
    }))
}

fn mutate(script: &str, ctx: &Context) -> Result<Mutation, Refusal> {
    Rhai::load("t.rhai", script, HookKind::Mutate).unwrap();
    Rhai::mutate(ctx, &pod())
}

#[test]
fn a_syntax_error_names_the_line_and_column() {
    let err = Rhai::load(
        "p.rhai",
        "fn mutate(object, ctx) {\n  let x = ;\n}",
        HookKind::Mutate,
    )
    .unwrap_err();
    assert!(err.starts_with("p.rhai:2:11: "), "{err}");
}

#[test]
fn a_script_without_the_kind_s_function_is_refused() {
    let err = Rhai::load(
        "p.rhai",
        "fn mutate(object, ctx) { () }",
        HookKind::Classify,
    )
    .unwrap_err();
    assert_eq!(
        err,
        "p.rhai: a classify script must define `fn classify(observation, ctx)`"
    );
}

#[test]
fn a_returned_object_replaces_the_old_one() {
    let ctx = Context::for_test("report").with_param("team", "data");
    let m = mutate(
        "fn mutate(object, ctx) { object.metadata.labels = #{team: ctx.params.team}; object }",
        &ctx,
    )
    .unwrap();
    let Mutation::Replace(json) = m else {
        panic!("{m:?}")
    };
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["metadata"]["labels"]["team"], "data");
    assert_eq!(v["spec"]["containers"][0]["image"], "busybox");
}

#[test]
fn patch_unit_deny_and_throw() {
    let ctx = Context::for_test("report").with_settings(json!({"team": "ops"}));
    assert_eq!(
        mutate(
            "fn mutate(o, ctx) { patch(#{metadata: #{labels: #{team: ctx.settings.team}}}) }",
            &ctx
        )
        .unwrap(),
        Mutation::MergePatch(r#"{"metadata":{"labels":{"team":"ops"}}}"#.into())
    );
    assert_eq!(
        mutate("fn mutate(o, ctx) { () }", &ctx).unwrap(),
        Mutation::Unchanged
    );
    assert_eq!(
        mutate("fn mutate(o, ctx) { deny(\"no team\"); o }", &ctx).unwrap_err(),
        Refusal::Denied("no team".into())
    );
    let Refusal::Invalid(m) =
        mutate("fn mutate(o, ctx) {\n  throw \"broken\";\n}", &ctx).unwrap_err()
    else {
        panic!()
    };
    assert!(m.starts_with("t.rhai:2:3: ") && m.contains("broken"), "{m}");
    let Refusal::Invalid(m) = mutate("fn mutate(o, ctx) { 42 }", &ctx).unwrap_err() else {
        panic!()
    };
    assert!(m.contains("mutate returned i64"), "{m}");
}

#[test]
fn top_level_constants_are_seen_by_functions() {
    let script = "const TEAM = \"core\";\nlet loaded = 1;\nfn mutate(o, ctx) { patch(#{team: global::TEAM}) }";
    assert_eq!(
        mutate(script, &Context::for_test("a")).unwrap(),
        Mutation::MergePatch(r#"{"team":"core"}"#.into())
    );
}

fn observation(exit: i64) -> Observation {
    Observation {
        pod: json!({"status": {"containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": exit}}}]}}).to_string(),
        events: "[]".into(),
        elapsed_ms: 5,
    }
}

const RETRY: &str = r#"
fn classify(observation, ctx) {
    for c in observation.pod.status.containerStatuses {
        if c.state.terminated?.exitCode == 75 {
            return #{outcome: "failed", reason: "TempFail", retryable: true, exit_code: 75,
                     evidence: [`${c.name} exited 75`], rule: "retry-75"};
        }
    }
    ()
}
"#;

#[test]
fn a_classifier_gives_a_verdict_or_no_opinion() {
    Rhai::load("c.rhai", RETRY, HookKind::Classify).unwrap();
    let ctx = Context::for_test("a");
    let v = Rhai::classify(&ctx, &observation(75)).unwrap().unwrap();
    assert_eq!(v.outcome, Outcome::Failed);
    assert!(v.retryable);
    assert_eq!(v.exit_code, Some(75));
    assert_eq!(v.evidence, vec!["main exited 75".to_string()]);
    assert_eq!(v.rule.as_deref(), Some("retry-75"));
    assert_eq!(Rhai::classify(&ctx, &observation(1)).unwrap(), None);
}

#[test]
fn a_bad_verdict_names_its_field() {
    let check = |body: &str, expected: &str| {
        let script = format!("fn classify(o, ctx) {{ {body} }}");
        Rhai::load("c.rhai", &script, HookKind::Classify).unwrap();
        let err = Rhai::classify(&Context::for_test("a"), &observation(0)).unwrap_err();
        assert!(err.contains(expected), "{body}: {err}");
    };
    check("#{reason: \"x\"}", "has no `outcome`");
    check(
        "#{outcome: \"done\", reason: \"x\"}",
        "`outcome` is \"done\"",
    );
    check("#{outcome: \"failed\"}", "has no `reason`");
    check(
        "#{outcome: \"failed\", reason: \"x\", exit: 1}",
        "unknown field `exit`",
    );
    check(
        "#{outcome: \"failed\", reason: \"x\", exit_code: \"1\"}",
        "`exit_code` is",
    );
    check("\"failed\"", "is string: return a map or ()");
}

#[test]
fn a_render_script_builds_the_object() {
    let script = r#"fn render(template, ctx) {
        #{apiVersion: "v1", kind: "Pod", metadata: #{name: ctx.name + "-" + ctx.run_id},
          spec: #{containers: [#{name: "main", image: ctx.image, command: ctx.arguments}]}}
    }"#;
    Rhai::load("r.rhai", script, HookKind::Render).unwrap();
    let mut ctx = Context::for_test("report");
    ctx.application.arguments = vec!["echo".into(), "a'b\"c".into()];
    let template = Template {
        source: "t".into(),
        text: String::new(),
    };
    let v: Value = serde_json::from_str(&Rhai::render(&ctx, &template).unwrap()).unwrap();
    assert_eq!(
        v["spec"]["containers"][0]["command"],
        json!(["echo", "a'b\"c"])
    );
    assert_eq!(
        v["metadata"]["name"],
        format!("report-{}", ctx.application.run_id)
    );
}

/// Each limit ends a runaway script as an error naming the line and column
/// where it was reached.
#[test]
fn runaway_scripts_hit_a_limit_with_line_and_column() {
    let ctx = Context::for_test("t");
    let cases = [
        ("let i = 0;\n  loop { i += 1; }", "Too many operations"),
        ("let s = \"x\";\n  loop { s += s; }", "Length of string"),
        ("let a = [];\n  a.pad(60000, 0);", "Size of array"),
        ("deep(0)", "Stack overflow"),
    ];
    for (body, expected) in cases {
        let script = format!("fn deep(n) {{ deep(n + 1) }}\nfn mutate(o, ctx) {{\n  {body}\n}}");
        let Refusal::Invalid(message) = mutate(&script, &ctx).unwrap_err() else {
            panic!("{body}: not a script error")
        };
        assert!(message.contains(expected), "{body}: {message}");
        let at = message.strip_prefix("t.rhai:").unwrap_or_default();
        let (line, rest) = at.split_once(':').unwrap_or_default();
        let column = rest.split_once(':').map(|c| c.0).unwrap_or_default();
        assert!(
            line.parse::<u32>().is_ok() && column.parse::<u32>().is_ok(),
            "{body}: no line and column in {message}"
        );
    }
}
