use podrun_hook_sdk::serde_json::{Value, json};

use super::*;

fn pod(spec: Value) -> Object {
    Object::pod(
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}),
    )
}

fn check(settings: Value, object: &Object) -> Result<Mutation, Refusal> {
    PodSecurity::mutate(&Context::for_test("a").with_settings(settings), object)
}

fn denial(settings: Value, object: &Object) -> String {
    match check(settings, object) {
        Err(Refusal::Denied(m)) => m,
        other => panic!("not denied: {other:?}"),
    }
}

/// A pod that passes `restricted`.
fn hardened() -> Value {
    json!({
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "worker", "image": "busybox",
            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}
        }],
        "volumes": [{"name": "scratch", "emptyDir": {}}]
    })
}

#[test]
fn a_plain_pod_passes_baseline_and_a_hardened_one_restricted() {
    let plain = pod(json!({"containers": [{"name": "worker", "image": "busybox"}]}));
    assert_eq!(check(json!({}), &plain).unwrap(), Mutation::Unchanged);
    assert_eq!(
        check(json!({"level": "restricted"}), &pod(hardened())).unwrap(),
        Mutation::Unchanged
    );
    let m = denial(json!({"level": "restricted"}), &plain);
    for field in [
        "spec.containers[0].securityContext.allowPrivilegeEscalation",
        "spec.containers[0].securityContext.capabilities.drop",
        "spec.containers[0].securityContext.runAsNonRoot",
        "spec.containers[0].securityContext.seccompProfile.type",
    ] {
        assert!(m.contains(field), "{field} missing from {m}");
    }
}

#[test]
fn baseline_names_each_field_that_breaks_it() {
    let cases = [
        (json!({"hostNetwork": true}), "spec.hostNetwork"),
        (json!({"hostPID": true}), "spec.hostPID"),
        (json!({"hostIPC": true}), "spec.hostIPC"),
        (
            json!({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}),
            "spec.volumes[0].hostPath",
        ),
        (
            json!({"containers": [{"name": "c", "securityContext": {"privileged": true}}]}),
            "spec.containers[0].securityContext.privileged",
        ),
        (
            json!({"initContainers": [{"name": "c", "securityContext": {"capabilities": {"add": ["CHOWN", "SYS_ADMIN"]}}}]}),
            "spec.initContainers[0].securityContext.capabilities.add[1]",
        ),
        (
            json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80}]}]}),
            "spec.containers[0].ports[0].hostPort",
        ),
        (
            json!({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}}),
            "spec.securityContext.sysctls[0].name",
        ),
        (
            json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}),
            "spec.securityContext.seccompProfile.type",
        ),
        (
            json!({"containers": [{"name": "c", "securityContext": {"procMount": "Unmasked"}}]}),
            "spec.containers[0].securityContext.procMount",
        ),
        (
            json!({"containers": [{"name": "c", "securityContext": {"seLinuxOptions": {"type": "spc_t"}}}]}),
            "spec.containers[0].securityContext.seLinuxOptions.type",
        ),
        (
            json!({"containers": [{"name": "c", "livenessProbe": {"httpGet": {"host": "169.254.169.254", "port": 80}}}]}),
            "spec.containers[0].livenessProbe.httpGet.host",
        ),
        (
            json!({"containers": [{"name": "c", "lifecycle": {"preStop": {"tcpSocket": {"host": "10.0.0.1", "port": 22}}}}]}),
            "spec.containers[0].lifecycle.preStop.tcpSocket.host",
        ),
        (
            json!({"ephemeralContainers": [{"name": "c", "securityContext": {"windowsOptions": {"hostProcess": true}}}]}),
            "spec.ephemeralContainers[0].securityContext.windowsOptions.hostProcess",
        ),
    ];
    for (spec, field) in cases {
        let m = denial(json!({}), &pod(spec.clone()));
        assert!(m.starts_with("pod-security (baseline): "), "{m}");
        assert!(m.contains(field), "{spec}: {m}");
    }
    let apparmor = Object::pod(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "unconfined"}},
        "spec": {}
    }));
    assert!(denial(json!({}), &apparmor).contains("metadata.annotations"));
}

#[test]
fn restricted_refuses_root_and_other_volume_types() {
    let mut spec = hardened();
    spec["securityContext"]["runAsUser"] = json!(0);
    spec["volumes"] = json!([{"name": "n", "nfs": {"server": "s", "path": "/"}}]);
    spec["containers"][0]["securityContext"]["capabilities"]["add"] = json!(["NET_RAW"]);
    let m = denial(json!({"level": "restricted"}), &pod(spec));
    for field in [
        "spec.securityContext.runAsUser",
        "spec.volumes[0].nfs",
        "spec.containers[0].securityContext.capabilities.add[0]",
    ] {
        assert!(m.contains(field), "{field} missing from {m}");
    }
    // A container may not turn off what the pod turns on.
    let mut spec = hardened();
    spec["containers"][0]["securityContext"]["runAsNonRoot"] = json!(false);
    assert!(denial(json!({"level": "restricted"}), &pod(spec)).contains("runAsNonRoot"));
}

#[test]
fn requirements_an_application_cannot_skip() {
    let require = json!({"require": ["deadline", "no-token", "no-finalizers"]});
    let plain = pod(json!({"containers": []}));
    let m = denial(require.clone(), &plain);
    assert!(m.contains("spec.activeDeadlineSeconds"), "{m}");
    assert!(m.contains("spec.automountServiceAccountToken"), "{m}");
    let kept = Object::pod(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"finalizers": ["example.com/keep"]},
        "spec": {"activeDeadlineSeconds": 60, "automountServiceAccountToken": false}
    }));
    assert_eq!(
        denial(require.clone(), &kept),
        "pod-security (baseline): metadata.finalizers: must be empty"
    );
    let projected = pod(json!({
        "activeDeadlineSeconds": 60, "automountServiceAccountToken": false,
        "volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]
    }));
    assert!(
        denial(require.clone(), &projected)
            .contains("spec.volumes[0].projected.sources[0].serviceAccountToken")
    );
    let good = pod(json!({"activeDeadlineSeconds": 60, "automountServiceAccountToken": false}));
    assert_eq!(check(require, &good).unwrap(), Mutation::Unchanged);
}

#[test]
fn a_job_is_checked_in_its_pod_template() {
    let job = Object {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        json: json!({"spec": {"template": {"spec": {"hostPID": true}}}}).to_string(),
    };
    assert!(denial(json!({}), &job).contains("spec.template.spec.hostPID"));
}

#[test]
fn bad_settings_are_invalid_not_allowed() {
    for settings in [
        json!({"level": "lenient"}),
        json!({"require": ["luck"]}),
        json!({"x": 1}),
    ] {
        assert!(
            matches!(
                check(settings.clone(), &pod(json!({}))),
                Err(Refusal::Invalid(_))
            ),
            "{settings}"
        );
    }
}
