//! A resumed run's log: the pod shows its log again from the start of the
//! kubelet's current file, and what was stored must be told from what was
//! not, in bounded memory, without storing a line twice or losing one
//! unsaid.
//!
//! - A log that starts with the first stored line is taken to be the one
//!   stored: as many lines as were stored are read again, and their hash
//!   must be the stored lines' hash, or a gap is said there.
//! - One that starts elsewhere was rotated while no server followed it:
//!   nothing about it can be proven, so a gap is always said. Lines are
//!   kept until the stored log's last lines appear in order, and those
//!   after them are stored; without them (within as many lines as were
//!   stored, and [`BUFFER`] bytes), what was kept is stored after the gap.
//! - A log that ends before as many lines as were stored were read again
//!   says a gap too (a sidecar's, read only until the verdict, may).

use std::collections::HashMap;

use crate::store::{Store, StoreError};

/// The most a rotated log's container keeps while it looks for where the
/// stored log ended, counting each line's bookkeeping.
pub(crate) const BUFFER: usize = 256 * 1024;

/// The stored lines a rotated log must show in order to go on after them.
const TAIL: usize = 3;

/// Lines read from the store at a time.
const PAGE: i64 = 1000;

/// What a container's stored log was, and how far its pod's log has been
/// matched against it.
pub(crate) struct Resume {
    /// Stored lines not yet read again.
    left: i64,
    /// The first stored line.
    first: Vec<u8>,
    /// The last stored lines, oldest first.
    tail: Vec<Vec<u8>>,
    /// The stored lines' hash.
    hash: blake3::Hash,
    /// The hash of the pod's lines read again.
    read: blake3::Hasher,
    /// Whether the pod's log starts as the stored one does, once a line of
    /// it has been read.
    same_start: Option<bool>,
    /// A rotated log's lines kept while its overlap is not known.
    kept: Vec<Vec<u8>>,
    kept_bytes: usize,
}

/// What a resumed container's first lines turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Overlap {
    /// Lines not stored yet.
    pub(crate) new: Vec<Vec<u8>>,
    /// Why lines may be missing or repeated here, if they may.
    pub(crate) gap: Option<&'static str>,
}

/// Said when a rotated log is resumed.
const ROTATED: &str =
    "was rotated while no server followed it; lines may be missing or repeated here";
/// Said when the same log does not read the same again.
const CHANGED: &str = "did not read again as stored; lines may be missing here";
/// Said when a log ends before the stored lines were all read again.
const SHORT: &str = "ended before the stored lines were all read again; lines may be missing";

fn hash_line(hasher: &mut blake3::Hasher, line: &[u8]) {
    hasher.update(&(line.len() as u64).to_le_bytes());
    hasher.update(line);
}

/// A container's stored log as it is read from the store.
#[derive(Default)]
struct Stored {
    count: i64,
    first: Option<Vec<u8>>,
    tail: Vec<Vec<u8>>,
    hasher: blake3::Hasher,
}

impl Stored {
    fn add(&mut self, line: &[u8]) {
        hash_line(&mut self.hasher, line);
        self.count += 1;
        self.first.get_or_insert_with(|| line.to_vec());
        if self.tail.len() == TAIL {
            self.tail.remove(0);
        }
        self.tail.push(line.to_vec());
    }

    fn resume(self) -> Resume {
        Resume {
            left: self.count,
            first: self.first.unwrap_or_default(),
            tail: self.tail,
            hash: self.hasher.finalize(),
            read: blake3::Hasher::new(),
            same_start: None,
            kept: Vec::new(),
            kept_bytes: 0,
        }
    }
}

impl Resume {
    /// Whether the pod's log has not been matched against it yet.
    pub(crate) fn open(&self) -> bool {
        self.left > 0
    }

    /// Takes the pod's next line; the overlap once it is known.
    pub(crate) fn next(&mut self, line: &[u8]) -> Option<Overlap> {
        self.left -= 1;
        let same = *self.same_start.get_or_insert_with(|| line == self.first);
        if same {
            hash_line(&mut self.read, line);
            if self.left > 0 {
                return None;
            }
            let gap = (self.read.finalize() != self.hash).then_some(CHANGED);
            return Some(Overlap {
                new: Vec::new(),
                gap,
            });
        }
        self.kept_bytes += line.len() + std::mem::size_of::<Vec<u8>>();
        self.kept.push(line.to_vec());
        if self.kept.ends_with(&self.tail) {
            self.left = 0;
            self.kept.clear();
            return Some(Overlap {
                new: Vec::new(),
                gap: Some(ROTATED),
            });
        }
        (self.left <= 0 || self.kept_bytes > BUFFER).then(|| self.settle())
    }

    /// The overlap of a log not matched yet: a rotated log's kept lines,
    /// after a gap; or a gap alone.
    pub(crate) fn settle(&mut self) -> Overlap {
        self.left = 0;
        self.kept_bytes = 0;
        let gap = match self.same_start {
            Some(false) => ROTATED,
            _ => SHORT,
        };
        Overlap {
            new: std::mem::take(&mut self.kept),
            gap: Some(gap),
        }
    }
}

/// What run `id` stored of each container's log, read from the store a
/// page at a time: only each container's hash, first and last lines are
/// kept.
pub(crate) async fn stored(store: &Store, id: &str) -> Result<HashMap<String, Resume>, StoreError> {
    let mut stored: HashMap<String, Stored> = HashMap::new();
    let mut offset = 0;
    loop {
        let page = store.logs(id, offset, PAGE).await?;
        for l in &page {
            stored.entry(l.container.clone()).or_default().add(&l.line);
            offset = l.seq + 1;
        }
        if (page.len() as i64) < PAGE {
            return Ok(stored.into_iter().map(|(c, s)| (c, s.resume())).collect());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<Vec<u8>> {
        text.split(' ').map(|l| l.as_bytes().to_vec()).collect()
    }

    fn stored(text: &str) -> Resume {
        let mut s = Stored::default();
        for line in lines(text) {
            s.add(&line);
        }
        s.resume()
    }

    /// Reads `text`'s lines; the overlap and the line it came at (from 1).
    fn read(resume: &mut Resume, text: &str) -> Option<(Overlap, usize)> {
        for (n, line) in lines(text).iter().enumerate() {
            if let Some(overlap) = resume.next(line) {
                return Some((overlap, n + 1));
            }
        }
        None
    }

    fn overlap(new: &str, gap: Option<&'static str>) -> Overlap {
        Overlap {
            new: if new.is_empty() { vec![] } else { lines(new) },
            gap,
        }
    }

    #[test]
    fn a_resumed_log_that_reads_again_as_stored_goes_on_without_a_gap() {
        let mut resume = stored("a b c");
        assert_eq!(read(&mut resume, "a b c d"), Some((overlap("", None), 3)));
        assert!(!resume.open());
    }

    #[test]
    fn the_same_start_with_other_lines_after_it_says_a_gap() {
        // Repeated lines do not fool the check: the whole stored log is.
        let overlap_at = read(&mut stored("x x c"), "x y c d");
        assert_eq!(overlap_at, Some((overlap("", Some(CHANGED)), 3)));
        let one_line = read(&mut stored("x"), "x");
        assert_eq!(one_line, Some((overlap("", None), 1)));
    }

    #[test]
    fn a_rotated_log_goes_on_after_the_stored_tail_and_always_says_a_gap() {
        // The kubelet kept the log from b on; the stored tail b c d shows.
        let mut resume = stored("a b c d");
        let found = read(&mut resume, "b c d e");
        assert_eq!(found, Some((overlap("", Some(ROTATED)), 3)));
        // One stored line repeated later is not taken for the tail.
        let mut resume = stored("a x y");
        assert_eq!(read(&mut resume, "y z"), None);
        // Kept only from e on: the tail is not there, so all of it, after
        // a gap, once as many lines as were stored have been read.
        let all = read(&mut stored("a b c"), "e f g h");
        assert_eq!(all, Some((overlap("e f g", Some(ROTATED)), 3)));
    }

    #[test]
    fn a_rotated_log_keeps_a_bounded_amount_empty_lines_included() {
        let mut resume = stored("a b c");
        resume.left = i64::MAX;
        let mut n = 0;
        let overlap = loop {
            n += 1;
            if let Some(o) = resume.next(b"") {
                break o;
            }
        };
        let per_line = std::mem::size_of::<Vec<u8>>();
        assert_eq!(n, BUFFER / per_line + 1, "kept past the buffer");
        assert_eq!(overlap.gap, Some(ROTATED));
    }

    #[test]
    fn a_log_that_ends_early_says_a_gap_and_keeps_what_it_read() {
        let mut resume = stored("a b c");
        assert_eq!(read(&mut resume, "x"), None);
        assert_eq!(resume.settle(), overlap("x", Some(ROTATED)));
        let mut resume = stored("a b c");
        assert_eq!(read(&mut resume, "a"), None);
        assert_eq!(resume.settle(), overlap("", Some(SHORT)));
        let mut untouched = stored("a b c");
        assert_eq!(untouched.settle(), overlap("", Some(SHORT)));
    }
}
