//! `--record FILE`: the run's timeline, written as the run goes, so that a
//! run that is killed still leaves what it had observed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use podrun::context::RunContext;
use podrun::timeline::Recorder;

/// A quiet run is rewritten at least this often; a change at most every
/// [`SOONEST`]. A run asks its classifiers every half second while it
/// waits, and each write is the whole file.
const QUIET: Duration = Duration::from_secs(30);
const SOONEST: Duration = Duration::from_secs(1);

/// The timeline file of one run.
pub(crate) struct TimelineFile {
    path: PathBuf,
    recorder: Recorder,
    written: Option<Instant>,
    /// Rewritten whole as the run goes: a regular file, or none yet. A
    /// device, a pipe or a symbolic link is written once, at the end.
    streaming: bool,
}

impl TimelineFile {
    /// The timeline of a run of `context`, to be written to `path`.
    pub(crate) fn new(path: &Path, context: &RunContext) -> TimelineFile {
        let streaming = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta.is_file(),
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        };
        TimelineFile {
            path: path.to_path_buf(),
            recorder: Recorder::new(context),
            written: None,
            streaming,
        }
    }

    /// The recorder, to add an observation to; then [`saved`](Self::saved).
    pub(crate) fn recorder(&mut self) -> &mut Recorder {
        &mut self.recorder
    }

    /// Writes the file when the last observation changed something, or
    /// the file has not been written for a while.
    pub(crate) fn saved(&mut self) {
        if !self.streaming {
            return;
        }
        let since = self.written.map(|t| t.elapsed());
        let due = match since {
            None => true,
            Some(since) => since >= QUIET || (since >= SOONEST && self.recorder.last_changed()),
        };
        if due && let Err(e) = self.replace() {
            // Once, and the end still tries.
            eprintln!(
                "podrun: cannot write the timeline to {}: {e}",
                self.path.display()
            );
            self.streaming = false;
        }
    }

    /// Writes the whole timeline, the run having ended. A failure is a
    /// warning: the run's result still counts.
    pub(crate) fn finish(&mut self) {
        let written = if self.streaming {
            self.replace()
        } else {
            self.overwrite()
        };
        if let Err(e) = written {
            eprintln!(
                "podrun: cannot write the timeline to {}: {e}",
                self.path.display()
            );
        }
    }

    fn text(&self) -> String {
        let text = serde_json::to_string_pretty(&self.recorder.timeline()).unwrap_or_default();
        format!("{text}\n")
    }

    /// A new file beside the old one, renamed over it: a reader never sees
    /// half a timeline. Readable by its owner only.
    fn replace(&mut self) -> std::io::Result<()> {
        self.written = Some(Instant::now());
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut file = tempfile::Builder::new()
            .prefix(".podrun-timeline-")
            .tempfile_in(dir)?;
        file.write_all(self.text().as_bytes())?;
        file.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }

    fn overwrite(&self) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&self.path)?
            .write_all(self.text().as_bytes())
    }
}
