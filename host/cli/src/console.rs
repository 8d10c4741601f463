//! What a run shows on the console: container output (prefixed with the
//! container's name when the pod has several), a progress line on a
//! terminal while the pod waits, podrun's notices, and the status server's
//! view of the pod. Also the signals that cancel a run.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use podrun::cancel::{Cancel, Reason};
use podrun::context::RunContext;
use podrun::lifecycle::{Notice, Sink};
use podrun::status_server;

use crate::args::{ExecArgs, RunFormat};
use crate::record::TimelineFile;

/// The console side of one run.
pub(crate) struct Console {
    prefix: bool,
    /// With stdin attached, the `worker` container's output is the run's
    /// output and the rest goes to stderr.
    worker_only: bool,
    /// Everything to stderr (stdout carries the JSON result).
    to_stderr: bool,
    progress: Progress,
    status: Option<status_server::Shared>,
    /// The run's timeline, with `--record FILE`.
    timeline: Option<TimelineFile>,
    record: Option<std::path::PathBuf>,
}

impl Console {
    /// A console for a run with `exec`'s options.
    pub(crate) fn new(exec: &ExecArgs, status: Option<status_server::Shared>) -> Self {
        Console {
            prefix: false,
            worker_only: exec.stdin,
            to_stderr: exec.output == RunFormat::Json,
            progress: Progress::new(),
            status,
            timeline: None,
            record: exec.record.clone(),
        }
    }

    /// Starts the timeline of a run of `context`, with `--record`.
    pub(crate) fn start_timeline(&mut self, context: &RunContext) {
        if let Some(path) = &self.record {
            self.timeline = Some(TimelineFile::new(path, context));
        }
    }

    /// Writes the whole timeline, with `--record`, the run having ended.
    pub(crate) fn finish_timeline(&mut self) {
        if let Some(timeline) = &mut self.timeline {
            timeline.finish();
        }
    }

    /// The run's pod: output is prefixed when it has several containers.
    pub(crate) fn pod(&mut self, pod: &Pod) {
        let spec = pod.spec.as_ref();
        let containers = spec.map_or(0, |s| {
            s.init_containers.as_ref().map_or(0, Vec::len) + s.containers.len()
        });
        self.prefix = containers > 1;
    }

    /// Removes the progress line, at the end.
    pub(crate) fn done(&mut self) {
        self.progress.clear();
    }
}

impl Sink for Console {
    fn log(&mut self, container: &str, text: &[u8]) {
        self.progress.clear();
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

    fn notice(&mut self, notice: Notice<'_>) {
        match notice {
            Notice::Prepared(prepared) => {
                crate::render::show_hook_logs(prepared);
                self.pod(&prepared.pod);
                self.start_timeline(&prepared.context);
            }
            Notice::Observed { .. } => {
                if let Some(timeline) = &mut self.timeline {
                    timeline.observed(&notice);
                }
            }
            Notice::Started {
                run_id,
                namespace: Some(ns),
                name,
                reattached,
            } => {
                if reattached {
                    eprintln!("podrun: re-attaching to pod {ns}/{name} of run {run_id}");
                } else {
                    eprintln!("podrun: created pod {ns}/{name}");
                }
            }
            Notice::Started { .. } => {}
            Notice::Status {
                pod,
                elapsed,
                undecided,
            } => {
                if let Some(shared) = &self.status
                    && let Ok(mut s) = shared.write()
                {
                    *s = Some(pod.clone());
                }
                if undecided {
                    self.progress.show(pod, elapsed);
                } else {
                    self.progress.clear();
                }
            }
            Notice::Warning(w) | Notice::LogGap { message: w, .. } => {
                self.progress.clear();
                eprintln!("podrun: {w}");
            }
        }
    }
}

/// A one-line progress display on a terminal while the pod is pending.
struct Progress {
    tty: bool,
    shown: bool,
}

impl Progress {
    /// Shows progress only when stderr is a terminal.
    fn new() -> Self {
        Progress {
            tty: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    /// Shows the pod's phase, what it waits for or which step runs, and the
    /// time elapsed.
    fn show(&mut self, pod: &Pod, elapsed: Duration) {
        match podrun::progress::line(pod, elapsed).filter(|_| self.tty) {
            Some(line) => {
                let _ = write!(std::io::stderr(), "\r\x1b[2K{line}");
                self.shown = true;
            }
            None => self.clear(),
        }
    }

    /// Removes the line.
    fn clear(&mut self) {
        if std::mem::take(&mut self.shown) {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

/// Turns SIGINT and SIGTERM into a cancel of the run: the first stops the
/// pod gracefully, a second kills it; the run then ends with the signal's
/// code. Caught from before the pod is created, so a signal during
/// creation still cleans up once the pod exists. A run that does not end
/// within a few seconds of the second signal (a cluster that does not
/// answer) is left: podrun exits.
pub(crate) fn cancel_on_signals() -> Cancel {
    use tokio::signal::unix::{SignalKind, signal};
    let cancel = Cancel::new();
    let mut sigint = signal(SignalKind::interrupt()).ok();
    let mut sigterm = signal(SignalKind::terminate()).ok();
    let handle = cancel.clone();
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let reason = tokio::select! {
                Some(()) = recv(&mut sigint) => Reason::Interrupt,
                Some(()) = recv(&mut sigterm) => Reason::Terminate,
                else => return,
            };
            if first {
                first = false;
                eprintln!("podrun: stopping the pod (a second signal kills it)");
                handle.cancel(reason);
                continue;
            }
            handle.kill(reason);
            // A third signal does not wait.
            tokio::select! {
                _ = tokio::time::sleep(KILL_WAIT) => {
                    eprintln!("podrun: the pod did not stop in time; exiting");
                }
                Some(()) = recv(&mut sigint) => {}
                Some(()) = recv(&mut sigterm) => {}
            }
            eprintln!(
                "podrun: exiting without the result; on a cluster, `podrun gc` removes a pod left behind"
            );
            std::process::exit(reason.exit_code().number().into());
        }
    });
    cancel
}

/// How long a killed run may take to end before podrun exits anyway.
const KILL_WAIT: Duration = Duration::from_secs(5);

async fn recv(s: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match s {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}
