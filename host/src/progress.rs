//! The one-line summary of a pod still on its way: what a console shows
//! while it waits.

/// The progress line: while the pod is pending, its phase and what it waits
/// for; while a sequenced pod runs, its running step. `None` otherwise.
pub fn line(pod: &k8s_openapi::api::core::v1::Pod, elapsed: std::time::Duration) -> Option<String> {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let step = crate::steps::progress(pod);
    if phase != "Pending" && step.is_none() {
        return None;
    }
    let waiting = crate::runtime::container_statuses(pod)
        .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
    let scheduled = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| {
            c.iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        })
        .and_then(|c| c.reason.clone());
    let reason = match step {
        Some(step) => step,
        None => waiting.or(scheduled).unwrap_or_default(),
    };
    let line = format!("{phase} {reason} {}s", elapsed.as_secs());
    Some(line.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pod(v: serde_json::Value) -> k8s_openapi::api::core::v1::Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_progress_line_shows_what_a_pending_pod_waits_for() {
        let p = pod(
            serde_json::json!({"status": {"phase": "Pending", "containerStatuses": [
            {"name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"waiting": {"reason": "ContainerCreating"}}}]}}),
        );
        assert_eq!(
            line(&p, Duration::from_secs(3)).as_deref(),
            Some("Pending ContainerCreating 3s")
        );
        let running = pod(serde_json::json!({"status": {"phase": "Running"}}));
        assert_eq!(line(&running, Duration::from_secs(3)), None);
    }

    #[test]
    fn the_progress_line_shows_the_running_step() {
        let p = pod(serde_json::json!({
            "metadata": {"annotations": {"podrun.dev/steps": "fetch,build"}},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "fetch", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0}}},
                {"name": "build", "image": "x", "imageID": "", "ready": true, "restartCount": 0,
                 "state": {"running": {}}}]}}));
        assert_eq!(
            line(&p, Duration::from_secs(12)).as_deref(),
            Some("Running step 2/2 build 12s")
        );
    }
}
