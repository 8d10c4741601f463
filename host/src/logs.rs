//! Container output on the console: prefixed with the container's name
//! when the pod has more than one, written as it arrives.

use std::io::Write;

/// Writes log lines to the console.
pub struct Console {
    prefix: bool,
    /// With stdin attached, the `worker` container's output is the run's
    /// output and the rest goes to stderr.
    worker_only: bool,
    /// Everything to stderr (stdout carries the JSON result).
    to_stderr: bool,
}

impl Console {
    /// A console for a pod with `containers` (init containers included).
    pub fn new(containers: usize, worker_only: bool, to_stderr: bool) -> Self {
        Console {
            prefix: containers > 1,
            worker_only,
            to_stderr,
        }
    }

    /// Writes output of `container`: one line or several.
    pub fn line(&self, container: &str, text: &[u8]) {
        let main = !self.worker_only || container == "worker";
        let (prefix, to_stderr) = if main {
            (self.prefix && !self.worker_only, self.to_stderr)
        } else {
            (true, true)
        };
        let mut buf = Vec::with_capacity(text.len() + container.len() + 4);
        if prefix {
            let tag = format!("[{container}] ");
            for line in text.split_inclusive(|b| *b == b'\n') {
                buf.extend_from_slice(tag.as_bytes());
                buf.extend_from_slice(line);
            }
            if !text.ends_with(b"\n") {
                buf.push(b'\n');
            }
        } else {
            buf.extend_from_slice(text);
        }
        // A closed stdout (`| head`) must not stop the run.
        let _ = if to_stderr {
            std::io::stderr().lock().write_all(&buf)
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(&buf).and_then(|()| out.flush())
        };
    }
}

/// A one-line progress display on a terminal while the pod is pending.
pub struct Progress {
    tty: bool,
    shown: bool,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    /// Shows progress only when stderr is a terminal.
    pub fn new() -> Self {
        use std::io::IsTerminal;
        Progress {
            tty: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    /// Shows the pod's phase, what it waits for or which step runs, and the
    /// time elapsed.
    pub fn show(&mut self, pod: &k8s_openapi::api::core::v1::Pod, elapsed: std::time::Duration) {
        match line(pod, elapsed).filter(|_| self.tty) {
            Some(line) => {
                let _ = write!(std::io::stderr(), "\r\x1b[2K{line}");
                self.shown = true;
            }
            None => self.clear(),
        }
    }

    /// Removes the line.
    pub fn clear(&mut self) {
        if std::mem::take(&mut self.shown) {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

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
