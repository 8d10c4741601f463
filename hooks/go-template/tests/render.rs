//! The go-template hook on pod-runner's templates and on hostile input.

use podrun_hook_go_template::render;
use podrun_hook_sdk::serde_json::{Value, json};
use podrun_hook_sdk::{Context, Resources, Template};

const POD_RUNNER_TEMPLATE: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: {{ .Name }}-{{ .UniqueId }}
  labels:
    app: {{ .Name }}
    appUnique: {{ .Name }}-{{ .UniqueId }}
spec:
  terminationGracePeriodSeconds: 10
  securityContext:
    runAsUser: {{ .Container.UID }}
    fsGroup: {{ .Container.GID }}
  containers:
  - image: {{ .Container.Image }}
    args: [{{ .Container.Arguments }}]
    imagePullPolicy: IfNotPresent
    resources:
      requests:
        memory: {{ .Container.ResourceRequest.Memory }}
        cpu: {{ .Container.ResourceRequest.Cpu }}
      limits:
        memory: {{ .Container.ResourceLimit.Memory }}
        cpu: {{ .Container.ResourceLimit.CPU }}
    name: {{ .Name }}
"#;

fn ctx(args: &[&str]) -> Context {
    let mut ctx = Context::for_test("report");
    let app = &mut ctx.application;
    app.run_id = "c0ffee".into();
    app.image = "registry.example/report:2.1".into();
    app.uid = Some("1000".into());
    app.gid = Some("2000".into());
    app.requests = Resources {
        cpu: Some("100m".into()),
        memory: Some("64Mi".into()),
    };
    app.limits = Resources {
        cpu: None,
        memory: Some("128Mi".into()),
    };
    app.arguments = args.iter().map(|s| s.to_string()).collect();
    ctx
}

fn tmpl(text: &str) -> Template {
    Template {
        source: "job.tmpl".into(),
        text: text.into(),
    }
}

fn render_pod(args: &[&str]) -> Value {
    render(&ctx(args), &tmpl(POD_RUNNER_TEMPLATE)).unwrap()
}

#[test]
fn renders_the_pod_runner_template() {
    let pod = render_pod(&["main.sh", "--day", "2026-11-23"]);
    assert_eq!(pod["metadata"]["name"], "report-c0ffee");
    assert_eq!(pod["metadata"]["labels"]["appUnique"], "report-c0ffee");
    assert_eq!(
        pod["spec"]["securityContext"],
        json!({"runAsUser": 1000, "fsGroup": 2000})
    );
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["image"], "registry.example/report:2.1");
    assert_eq!(c["args"], json!(["main.sh", "--day", "2026-11-23"]));
    // The empty cpu limit is dropped, as Kubernetes drops a null.
    assert_eq!(
        c["resources"],
        json!({"requests": {"memory": "64Mi", "cpu": "100m"}, "limits": {"memory": "128Mi"}})
    );
}

#[test]
fn no_arguments_render_an_empty_list() {
    assert_eq!(render_pod(&[])["spec"]["containers"][0]["args"], json!([]));
}

#[test]
fn hostile_arguments_stay_argument_strings() {
    let hostile = [
        "a\", \"b",
        "x]\n  hostNetwork: true\n  y: [z",
        "'; privileged: true",
        "key: value",
        "{a: b}",
        "- item",
        "&anchor *alias !!binary",
        "# comment",
        "PODRUN_VALUE_0_",
        "\u{0}\u{7f}\u{feff}",
        "}}{{ .Name }}",
        "   ",
        "",
    ];
    let pod = render_pod(&hostile);
    let expected: Vec<Value> = hostile.iter().map(|s| json!(s)).collect();
    assert_eq!(pod["spec"]["containers"][0]["args"], Value::Array(expected));
    // Nothing else moved.
    let clean = render_pod(&["x"; 13]);
    let mut pod = pod;
    pod["spec"]["containers"][0]["args"] = json!(vec!["x"; 13]);
    assert_eq!(pod, clean);
}

#[test]
fn user_values_inside_strings_and_keys_are_substituted() {
    let mut c = ctx(&["echo", "hi there"]);
    c.application
        .params
        .push(("team".into(), "data\": evil".into()));
    let t = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n  labels: {team: \"{{ .Params.team }}\"}\n  annotations:\n    {{ .Params.team }}: set\nspec:\n  containers:\n  - name: main\n    command: [\"sh\", \"-c\", \"run {{ .Container.Arguments }}\"]\n    args:\n{{- range .Container.ArgumentList }}\n    - {{ . }}\n{{- end }}\n";
    let pod = render(&c, &tmpl(t)).unwrap();
    assert_eq!(pod["metadata"]["labels"]["team"], "data\": evil");
    assert_eq!(pod["metadata"]["annotations"]["data\": evil"], "set");
    assert_eq!(
        pod["spec"]["containers"][0]["command"][2],
        "run echo, hi there"
    );
    assert_eq!(
        pod["spec"]["containers"][0]["args"],
        json!(["echo", "hi there"])
    );
}

#[test]
fn odd_config_values_are_quoted_too() {
    let mut c = ctx(&[]);
    c.application.image = "img\nhostNetwork: true".into();
    let pod = render(&c, &tmpl(POD_RUNNER_TEMPLATE)).unwrap();
    assert_eq!(
        pod["spec"]["containers"][0]["image"],
        "img\nhostNetwork: true"
    );
    assert!(pod["spec"].get("hostNetwork").is_none());
}

#[test]
fn errors_name_the_template() {
    let err = render(&ctx(&[]), &tmpl("kind: Pod\nmetadata: {{ .Nmae }}\n")).unwrap_err();
    assert!(err.contains("job.tmpl") && err.contains("Nmae"), "{err}");
    let err = render(&ctx(&[]), &tmpl("kind: Pod\n{{ if }}")).unwrap_err();
    assert!(err.contains("job.tmpl"), "{err}");
    let err = render(&ctx(&[]), &tmpl("apiVersion: v1\nkind: Pod\nspec: [\n")).unwrap_err();
    assert!(err.contains("valid YAML"), "{err}");
    let err = render(&ctx(&[]), &tmpl("a: PODRUN_VALUE_1_")).unwrap_err();
    assert!(err.contains("reserved"), "{err}");
    let err = render(&ctx(&[]), &tmpl("just: text")).unwrap_err();
    assert!(err.contains("apiVersion"), "{err}");
    // Keys YAML would misplace are refused, with the line they are on.
    let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  !!int x: 1\n  name: p\n";
    let err = render(&ctx(&[]), &tmpl(text)).unwrap_err();
    assert!(err.contains("does not match its tag"), "{err}");
    assert!(err.contains("rendered line:   !!int x: 1"), "{err}");
    let text = "apiVersion: v1\nkind: Pod\nmetadata: &m\n  *m : 1\n";
    let err = render(&ctx(&[]), &tmpl(text)).unwrap_err();
    assert!(
        err.contains("an alias inside the node its anchor names"),
        "{err}"
    );
}
