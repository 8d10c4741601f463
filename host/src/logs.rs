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

    /// Writes one line of `container`'s output.
    pub fn line(&self, container: &str, line: &[u8]) {
        let main = !self.worker_only || container == "worker";
        let (prefix, to_stderr) = if main {
            (self.prefix && !self.worker_only, self.to_stderr)
        } else {
            (true, true)
        };
        let mut buf = Vec::with_capacity(line.len() + container.len() + 4);
        if prefix {
            buf.extend_from_slice(format!("[{container}] ").as_bytes());
        }
        buf.extend_from_slice(line);
        if prefix && !line.ends_with(b"\n") {
            buf.push(b'\n');
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
