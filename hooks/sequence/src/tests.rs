use podrun_hook_sdk::serde_json::{Value, json};

use super::*;

fn run(object: &Value, kind: &str, settings: Value) -> Result<Value, Refusal> {
    let obj = Object {
        api_version: "v1".into(),
        kind: kind.into(),
        json: object.to_string(),
    };
    match Sequence::mutate(&Context::for_test("a").with_settings(settings), &obj)? {
        Mutation::Replace(json) => Ok(podrun_hook_sdk::serde_json::from_str(&json).unwrap()),
        Mutation::Unchanged => Ok(object.clone()),
        other => panic!("{other:?}"),
    }
}

fn c(name: &str) -> Value {
    json!({"name": name, "image": "busybox", "command": ["sh", "-c", format!("echo {name}")],
           "readinessProbe": {"exec": {"command": ["true"]}}})
}

#[test]
fn init_containers_strategy_keeps_existing_inits_first() {
    let pod = json!({"kind": "Pod", "spec": {"initContainers": [c("setup")], "containers": [c("a"), c("b"), c("c")]}});
    let out = run(&pod, "Pod", json!({})).unwrap();
    let names = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&out["spec"]["initContainers"]), ["setup", "a", "b"]);
    assert_eq!(names(&out["spec"]["containers"]), ["c"]);
    assert!(
        out["spec"]["initContainers"][1]
            .get("readinessProbe")
            .is_none(),
        "init containers take no probes"
    );
    assert!(out["spec"]["containers"][0].get("readinessProbe").is_some());
}

#[test]
fn cron_jobs_and_jobs_are_sequenced_in_their_template() {
    let job = json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [c("a"), c("b")]}}}}}});
    let out = run(&job, "CronJob", json!({})).unwrap();
    let spec = &out["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(spec["initContainers"][0]["name"], "a");
    assert_eq!(spec["containers"][0]["name"], "b");
}

#[test]
fn one_container_is_left_alone() {
    let pod = json!({"kind": "Pod", "spec": {"containers": [c("a")]}});
    assert_eq!(run(&pod, "Pod", json!({})).unwrap(), pod);
}

#[test]
fn entrypoint_strategy_wraps_each_command() {
    let pod = json!({"kind": "Pod", "spec": {"containers": [c("a"), c("b")]}});
    let out = run(&pod, "Pod", json!({"strategy": "entrypoint"})).unwrap();
    let b = &out["spec"]["containers"][1];
    assert_eq!(b["command"], json!(["/bin/sh", "-c"]));
    let args = b["args"].as_array().unwrap();
    assert!(
        args[0]
            .as_str()
            .unwrap()
            .contains("/podrun-sequence/0.done"),
        "{}",
        args[0]
    );
    assert_eq!(&args[2..], &[json!("sh"), json!("-c"), json!("echo b")]);
    assert_eq!(
        b["volumeMounts"],
        json!([{"name": "podrun-sequence", "mountPath": "/podrun-sequence"}])
    );
    assert_eq!(
        out["spec"]["volumes"],
        json!([{"name": "podrun-sequence", "emptyDir": {}}])
    );
    assert!(b.get("readinessProbe").is_some(), "probes keep working");
}

#[test]
fn entrypoint_strategy_needs_commands() {
    let pod = json!({"kind": "Pod", "spec": {"containers": [c("a"), {"name": "b", "image": "x"}]}});
    let err = run(&pod, "Pod", json!({"strategy": "entrypoint"})).unwrap_err();
    assert!(
        matches!(&err, Refusal::Invalid(m) if m.contains("container b has no command")),
        "{err:?}"
    );
}

#[test]
fn other_objects_pass() {
    let cm = json!({"kind": "ConfigMap", "data": {}});
    assert_eq!(run(&cm, "ConfigMap", json!({})).unwrap(), cm);
}

#[test]
fn the_steps_are_annotated_where_the_pods_get_them() {
    let spec = json!({"containers": [c("a"), c("b")]});
    let pod = run(&json!({"kind": "Pod", "spec": spec}), "Pod", json!({})).unwrap();
    assert_eq!(pod["metadata"]["annotations"][STEPS_ANNOTATION], "a,b");
    let job = json!({"kind": "Job", "metadata": {"name": "j"},
        "spec": {"template": {"metadata": {"annotations": {"keep": "me"}}, "spec": spec}}});
    let job = run(&job, "Job", json!({"strategy": "entrypoint"})).unwrap();
    let template = &job["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(
        (
            template[STEPS_ANNOTATION].as_str(),
            template["keep"].as_str()
        ),
        (Some("a,b"), Some("me"))
    );
    assert!(job["metadata"].get("annotations").is_none());
    let cron =
        json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}});
    let cron = run(&cron, "CronJob", json!({})).unwrap();
    assert_eq!(
        cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["annotations"]
            [STEPS_ANNOTATION],
        "a,b"
    );
    // One container is no sequence: nothing changes.
    let single = json!({"kind": "Pod", "spec": {"containers": [c("a")]}});
    assert_eq!(run(&single, "Pod", json!({})).unwrap(), single);
}
