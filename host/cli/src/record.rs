//! `--record FILE`: the run's timeline, written as the run goes, so that a
//! run that is killed still leaves what it had observed.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use podrun::context::RunContext;
use podrun::lifecycle::Notice;
use podrun::timeline::Recorder;

/// A change (the pod's status, its events, a verdict) is written at once;
/// observations that only add a time, every half second while a pod
/// waits, at most this often: each write is the whole file.
const QUIET: Duration = Duration::from_secs(30);

/// How the file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A new file beside it, renamed over it: a reader never sees half a
    /// timeline. For a regular file, or none yet.
    Replace,
    /// Rewritten in place, never through a symbolic link: for a regular
    /// file in a directory podrun may not create files in, or one that
    /// cannot be renamed over (a bind mount).
    InPlace,
    /// Written once, at the end, as given: a device, a pipe, or a
    /// symbolic link the caller named.
    AtEnd,
}

/// The timeline file of one run.
pub(crate) struct TimelineFile {
    path: PathBuf,
    recorder: Recorder,
    mode: Mode,
    written: Option<Instant>,
    /// A write during the run failed: the file keeps its last good
    /// timeline until the end tries again.
    paused: bool,
}

impl TimelineFile {
    /// The timeline of a run of `context`, to be written to `path`.
    pub(crate) fn new(path: &Path, context: &RunContext) -> TimelineFile {
        let mode = match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_file() => Mode::Replace,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Mode::Replace,
            _ => Mode::AtEnd,
        };
        TimelineFile {
            path: path.to_path_buf(),
            recorder: Recorder::new(context),
            mode,
            written: None,
            paused: false,
        }
    }

    /// Records an observation, and writes the file when it is due.
    pub(crate) fn observed(&mut self, notice: &Notice<'_>) {
        let Notice::Observed {
            pod,
            events,
            elapsed,
            decided,
        } = notice
        else {
            return;
        };
        let changed = self.recorder.record(pod, events, *elapsed, *decided);
        if self.mode == Mode::AtEnd || self.paused {
            return;
        }
        let due = changed || self.written.is_none_or(|at| at.elapsed() >= QUIET);
        if due && let Err(e) = self.write() {
            eprintln!(
                "podrun: cannot write the timeline to {} as the run goes ({e}); it is written when the run ends",
                self.path.display()
            );
            self.paused = true;
        }
    }

    /// Writes the whole timeline, the run having ended. A failure is a
    /// warning: the run's result still counts.
    pub(crate) fn finish(&mut self) {
        if let Err(e) = self.write() {
            eprintln!(
                "podrun: cannot write the timeline to {}: {e}",
                self.path.display()
            );
        }
    }

    fn write(&mut self) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(&self.recorder.timeline()).unwrap_or_default();
        let text = format!("{text}\n");
        self.written = Some(Instant::now());
        match self.mode {
            Mode::Replace => match self.replace(&text) {
                // Not a failure to write, a place podrun may not rename in.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EACCES | libc::EPERM | libc::EBUSY)
                    ) =>
                {
                    self.mode = Mode::InPlace;
                    self.in_place(&text, libc::O_NOFOLLOW)
                }
                done => done,
            },
            Mode::InPlace => self.in_place(&text, libc::O_NOFOLLOW),
            Mode::AtEnd => self.in_place(&text, 0),
        }
    }

    fn replace(&self, text: &str) -> std::io::Result<()> {
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        // Created with O_EXCL and mode 0600 under a random name.
        let mut file = tempfile::Builder::new()
            .prefix(".podrun-timeline-")
            .tempfile_in(dir)?;
        file.write_all(text.as_bytes())?;
        file.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }

    fn in_place(&self, text: &str, flags: i32) -> std::io::Result<()> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(flags)
            .open(&self.path)?
            .write_all(text.as_bytes())
    }
}
