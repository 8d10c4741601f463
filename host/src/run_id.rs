//! Run ids: short, unique, sortable by time, and valid in pod names and
//! label values (lowercase letters and digits), like pod-runner's xid.

use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// A new run id: 4 bytes of seconds since the epoch and 6 random bytes,
/// base32hex, 16 characters.
pub fn new() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0);
    let mut bytes = [0u8; 10];
    bytes[..4].copy_from_slice(&secs.to_be_bytes());
    // Without randomness the id still differs by process and time.
    if getrandom::fill(&mut bytes[4..]).is_err() {
        let pid = std::process::id().to_be_bytes();
        bytes[4..8].copy_from_slice(&pid);
    }
    let mut bits: u128 = 0;
    for b in bytes {
        bits = (bits << 8) | u128::from(b);
    }
    (0..16)
        .rev()
        .map(|i| ALPHABET[((bits >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// Whether `id` can serve as a run id: 1 to 40 lowercase letters, digits and
/// dashes, starting and ending with a letter or digit.
pub fn is_valid(id: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (1..=40).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && edge(id.chars().next())
        && edge(id.chars().last())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_valid_and_distinct() {
        let a = super::new();
        let b = super::new();
        assert_eq!(a.len(), 16);
        assert!(super::is_valid(&a), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn validation() {
        assert!(super::is_valid("run-1"));
        assert!(!super::is_valid("Run"));
        assert!(!super::is_valid("-a"));
        assert!(!super::is_valid(""));
    }
}
