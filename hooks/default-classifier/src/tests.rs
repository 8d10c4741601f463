use podrun_hook_sdk::serde_json::{Value, json};

use super::*;

fn pod(restart: &str, status: Value) -> Pod {
    podrun_hook_sdk::serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"restartPolicy": restart, "containers": [{"name": "main", "image": "busybox"}, {"name": "proxy", "image": "envoy"}]},
        "status": status,
    }))
    .unwrap()
}

fn run(pod: &Pod, elapsed_ms: u64, settings: Value, pending_timeout: Option<u64>) -> Verdict {
    let mut ctx = Context::for_test("a").with_settings(settings);
    ctx.application.pending_timeout_seconds = pending_timeout;
    let obs = Observation {
        pod: podrun_hook_sdk::serde_json::to_string(pod).unwrap(),
        events: "[]".into(),
        elapsed_ms,
    };
    DefaultClassifier::classify(&ctx, &obs).unwrap().unwrap()
}

fn terminated(name: &str, code: i32, reason: &str) -> Value {
    json!({"name": name, "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
           "state": {"terminated": {"exitCode": code, "reason": reason}}})
}

fn waiting(name: &str, reason: &str) -> Value {
    json!({"name": name, "image": "nope:1", "imageID": "", "ready": false, "restartCount": 0,
           "state": {"waiting": {"reason": reason, "message": "pull failed"}}})
}

#[test]
fn success() {
    let p = pod(
        "Never",
        json!({"phase": "Succeeded", "containerStatuses": [terminated("main", 0, "Completed")]}),
    );
    let v = run(&p, 10, json!({}), None);
    assert_eq!((v.outcome, v.exit_code), (Outcome::Succeeded, Some(0)));
}

#[test]
fn a_failed_container_gives_its_exit_code() {
    let p = pod(
        "Never",
        json!({"phase": "Failed", "containerStatuses": [terminated("main", 3, "Error")]}),
    );
    let v = run(&p, 10, json!({}), None);
    assert_eq!(
        (v.outcome, v.exit_code, v.reason.as_str()),
        (Outcome::Failed, Some(3), "Error")
    );
    assert!(
        v.evidence.iter().any(|e| e.contains("exitCode=3")),
        "{:?}",
        v.evidence
    );
    // Failing while the pod is still Running (the other container goes on).
    let p = pod(
        "Never",
        json!({"phase": "Running", "containerStatuses": [terminated("main", 3, "Error")]}),
    );
    assert_eq!(run(&p, 10, json!({}), None).exit_code, Some(3));
    // With OnFailure the container is restarted: not over yet.
    let p = pod(
        "OnFailure",
        json!({"phase": "Running", "containerStatuses": [terminated("main", 3, "Error")]}),
    );
    assert_eq!(run(&p, 10, json!({}), None).outcome, Outcome::Running);
}

#[test]
fn an_init_container_failure_decides() {
    let p = pod(
        "Never",
        json!({"phase": "Failed", "initContainerStatuses": [terminated("setup", 7, "Error")]}),
    );
    let v = run(&p, 10, json!({}), None);
    assert_eq!(v.exit_code, Some(7));
    assert!(v.message.contains("setup"));
}

#[test]
fn oom_killed() {
    let p = pod(
        "Never",
        json!({"phase": "Failed", "containerStatuses": [terminated("main", 137, "OOMKilled")]}),
    );
    let v = run(&p, 10, json!({}), None);
    assert_eq!((v.reason.as_str(), v.exit_code), ("OOMKilled", Some(137)));
    assert!(v.message.contains("memory limit"));
}

#[test]
fn deadline_exceeded() {
    let p = pod(
        "Never",
        json!({"phase": "Failed", "reason": "DeadlineExceeded", "message": "Pod was active on the node longer than the specified deadline"}),
    );
    let v = run(&p, 10, json!({}), None);
    assert_eq!(
        (v.reason.as_str(), v.exit_code),
        ("DeadlineExceeded", Some(TIMED_OUT))
    );
}

#[test]
fn eviction_is_retryable() {
    let p = pod(
        "Never",
        json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"}),
    );
    let v = run(&p, 10, json!({}), None);
    assert!(v.retryable);
    assert_eq!(v.exit_code, Some(INFRASTRUCTURE));
    let p = pod(
        "Never",
        json!({"phase": "Failed", "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}]}),
    );
    let v = run(&p, 10, json!({}), None);
    assert!(v.retryable);
    assert_eq!(v.reason, "PreemptionByScheduler");
}

#[test]
fn image_errors_fail_after_the_grace_window() {
    let p = pod(
        "Never",
        json!({"phase": "Pending", "containerStatuses": [waiting("main", "ImagePullBackOff")]}),
    );
    // By default a hiccup gets a few seconds.
    assert_eq!(run(&p, 100, json!({}), None).outcome, Outcome::Running);
    let v = run(&p, IMAGE_GRACE_SECONDS * 1000, json!({}), None);
    assert_eq!(
        (v.outcome, v.exit_code, v.reason.as_str()),
        (Outcome::Failed, Some(COULD_NOT_START), "ImagePullBackOff")
    );
    assert_eq!(
        run(&p, 0, json!({"image-grace-seconds": 0}), None).outcome,
        Outcome::Failed
    );
    assert!(v.message.contains("nope:1"), "{}", v.message);
    assert_eq!(
        run(&p, 4_000, json!({"image-grace-seconds": 5}), None).outcome,
        Outcome::Running
    );
    assert_eq!(
        run(&p, 5_000, json!({"image-grace-seconds": 5}), None).outcome,
        Outcome::Failed
    );
    let p = pod(
        "Never",
        json!({"phase": "Pending", "containerStatuses": [waiting("main", "CreateContainerConfigError")]}),
    );
    assert_eq!(
        run(&p, 5_000, json!({}), None).exit_code,
        Some(COULD_NOT_START)
    );
}

#[test]
fn pending_timeout() {
    let p = pod(
        "Never",
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes are available"}]}),
    );
    assert_eq!(
        run(&p, 9_000, json!({}), Some(10)).outcome,
        Outcome::Running
    );
    let v = run(&p, 10_000, json!({}), Some(10));
    assert_eq!(
        (v.reason.as_str(), v.exit_code),
        ("PendingTimeout", Some(TIMED_OUT))
    );
    assert!(v.message.contains("Unschedulable"), "{}", v.message);
    assert_eq!(
        run(&p, 1_000_000, json!({}), None).outcome,
        Outcome::Running
    );
}

#[test]
fn sidecars_do_not_keep_a_run_alive() {
    let running = json!({"name": "proxy", "image": "envoy", "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {}}});
    let p = pod(
        "Never",
        json!({"phase": "Running", "containerStatuses": [terminated("main", 0, "Completed"), running]}),
    );
    assert_eq!(run(&p, 10, json!({}), None).outcome, Outcome::Running);
    let v = run(&p, 10, json!({"sidecars": ["proxy"]}), None);
    assert_eq!((v.outcome, v.exit_code), (Outcome::Succeeded, Some(0)));
}

#[test]
fn running_is_running() {
    let p = pod("Never", json!({"phase": "Running"}));
    assert_eq!(run(&p, 10, json!({}), None).outcome, Outcome::Running);
    assert_eq!(
        run(&pod("Never", json!({})), 10, json!({}), None).outcome,
        Outcome::Running
    );
}

/// The error a classifier with `settings` gives.
fn settings_error(settings: Value) -> String {
    let ctx = Context::for_test("a").with_settings(settings);
    let obs = Observation {
        pod: "{}".into(),
        events: "[]".into(),
        elapsed_ms: 0,
    };
    DefaultClassifier::classify(&ctx, &obs).unwrap_err()
}

#[test]
fn bad_settings_are_an_error() {
    assert!(settings_error(json!({"grace": 1})).contains("grace"));
}

mod rules {
    use super::*;

    fn with_rules(p: &Pod, rules: Value) -> Verdict {
        run(p, 10, json!({"rules": rules}), None)
    }

    #[test]
    fn ignore_turns_an_exit_code_into_success() {
        let p = pod(
            "Never",
            json!({"phase": "Failed", "containerStatuses": [terminated("main", 3, "Error")]}),
        );
        let rules = json!([{"name": "nothing-to-do", "action": "ignore", "on-exit-codes": {"container": "main", "operator": "In", "values": [3]}}]);
        let v = with_rules(&p, rules);
        assert_eq!(
            (v.outcome, v.exit_code, v.rule.as_deref()),
            (Outcome::Succeeded, Some(0), Some("nothing-to-do"))
        );
        // Another container's code does not match.
        let rules = json!([{"name": "x", "action": "ignore", "on-exit-codes": {"container": "proxy", "operator": "In", "values": [3]}}]);
        assert_eq!(with_rules(&p, rules).outcome, Outcome::Failed);
    }

    #[test]
    fn fail_retryable_and_first_match_wins() {
        let p = pod(
            "Never",
            json!({"phase": "Failed", "containerStatuses": [terminated("main", 75, "Error")]}),
        );
        let rules = json!([
            {"name": "retry", "action": "fail-retryable", "on-exit-codes": {"operator": "In", "values": [75]}},
            {"name": "never", "action": "fail", "on-exit-codes": {"operator": "NotIn", "values": [1]}},
        ]);
        let v = with_rules(&p, rules);
        assert_eq!(
            (v.retryable, v.exit_code, v.rule.as_deref()),
            (true, Some(75), Some("retry"))
        );
        assert!(
            v.evidence.iter().any(|e| e.contains("rule retry")),
            "{:?}",
            v.evidence
        );
        let rules = json!([{"name": "not-one", "action": "fail", "on-exit-codes": {"operator": "NotIn", "values": [1]}}]);
        assert_eq!(with_rules(&p, rules).rule.as_deref(), Some("not-one"));
    }

    #[test]
    fn conditions_and_reasons() {
        let p = pod(
            "Never",
            json!({"phase": "Failed", "conditions": [{"type": "DisruptionTarget", "status": "True"}]}),
        );
        let rules = json!([{"name": "disrupted", "action": "fail", "on-pod-conditions": [{"type": "DisruptionTarget"}]}]);
        let v = with_rules(&p, rules);
        assert!(!v.retryable, "the rule overrides the default (retryable)");
        assert_eq!(v.rule.as_deref(), Some("disrupted"));
        let p = pod(
            "Never",
            json!({"phase": "Pending", "containerStatuses": [waiting("main", "ImagePullBackOff")]}),
        );
        let rules =
            json!([{"name": "patient", "action": "ignore", "on-reasons": ["ImagePullBackOff"]}]);
        assert_eq!(with_rules(&p, rules).outcome, Outcome::Running);
        let rules =
            json!([{"name": "count", "action": "count", "on-reasons": ["ImagePullBackOff"]}]);
        let v = run(
            &p,
            10,
            json!({"rules": rules, "image-grace-seconds": 0}),
            None,
        );
        assert_eq!(
            (v.outcome, v.exit_code, v.rule.as_deref()),
            (Outcome::Failed, Some(COULD_NOT_START), Some("count"))
        );
    }

    #[test]
    fn a_bad_rule_is_an_error() {
        let err = settings_error(json!({"rules": [{"name": "x", "action": "explode"}]}));
        assert!(err.contains("explode"), "{err}");
    }
}

#[test]
fn a_pod_the_node_refuses_is_the_clusters_doing() {
    let refused = |reason: &str| {
        pod(
            "Never",
            json!({"phase": "Failed", "reason": reason,
                   "message": "Pod Node didn't have enough resource: cpu, requested: 8000, used: 0, capacity: 2000"}),
        )
    };
    for reason in ["OutOfcpu", "OutOfmemory", "NodeAffinity"] {
        let v = run(&refused(reason), 10, json!({}), None);
        assert_eq!(
            (v.outcome, v.exit_code, v.retryable, v.reason.as_str()),
            (Outcome::Failed, Some(INFRASTRUCTURE), true, reason)
        );
        assert!(v.message.contains("enough resource"), "{}", v.message);
        assert!(v.evidence.iter().any(|e| e == "no container ran"));
    }
    // Failed before any container ran, for a reason of its own.
    let v = run(&refused("SomethingElse"), 10, json!({}), None);
    assert_eq!((v.exit_code, v.retryable), (Some(COULD_NOT_START), false));
    // A container that ran and the pod failed: not a refusal.
    let p = pod(
        "Never",
        json!({"phase": "Failed", "reason": "OutOfcpu",
               "containerStatuses": [terminated("main", 0, "Completed"),
                                     {"name": "proxy", "image": "envoy", "imageID": "", "ready": false, "restartCount": 0,
                                      "state": {"running": {}}}]}),
    );
    assert_ne!(run(&p, 10, json!({}), None).exit_code, Some(INFRASTRUCTURE));
}

#[test]
fn native_sidecars_never_fail_or_hold_a_run() {
    let p: Pod = podrun_hook_sdk::serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"restartPolicy": "Never",
                 "initContainers": [{"name": "mesh", "image": "envoy", "restartPolicy": "Always"}],
                 "containers": [{"name": "main", "image": "busybox"}]},
        "status": {"phase": "Running",
                   "initContainerStatuses": [{"name": "mesh", "image": "envoy", "imageID": "", "ready": true,
                                              "restartCount": 0, "state": {"running": {}}}],
                   "containerStatuses": [terminated("main", 0, "Completed")]},
    }))
    .unwrap();
    let v = run(&p, 10, json!({}), None);
    assert_eq!((v.outcome, v.exit_code), (Outcome::Succeeded, Some(0)));
    // Stopped at the end, the sidecar exits 137 or 143: still a success.
    let mut stopped = p.clone();
    let status = stopped.status.as_mut().unwrap();
    status.phase = Some("Succeeded".into());
    status.init_container_statuses = Some(vec![
        podrun_hook_sdk::serde_json::from_value(terminated("mesh", 143, "Error")).unwrap(),
    ]);
    let v = run(&stopped, 10, json!({}), None);
    assert_eq!((v.outcome, v.exit_code), (Outcome::Succeeded, Some(0)));
    // An ordinary init container that fails still decides.
    let mut plain = stopped.clone();
    plain
        .spec
        .as_mut()
        .unwrap()
        .init_containers
        .as_mut()
        .unwrap()[0]
        .restart_policy = None;
    plain.status.as_mut().unwrap().phase = Some("Failed".into());
    assert_eq!(run(&plain, 10, json!({}), None).exit_code, Some(143));
}
