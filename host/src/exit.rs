//! podrun's exit codes, modelled on `docker run` and `timeout(1)`.
//!
//! When the container ran and failed, its own exit code is podrun's. podrun's
//! own failures use codes from 120 up, which a well-behaved command rarely
//! uses; the JSON result tells the two apart when it matters.

use std::fmt;

/// An exit code with a meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The run succeeded.
    Success,
    /// The container failed with this exit code.
    Container(u8),
    /// A policy hook refused the run.
    Denied,
    /// A hook failed: trap, deadline, memory cap, malformed output, or an
    /// error it returned.
    HookFailed,
    /// The cluster or its API failed.
    Cluster,
    /// The run timed out (its deadline or the pending timeout).
    TimedOut,
    /// podrun was used wrongly: bad flags or a bad config.
    Usage,
    /// The pod could not start (image, config, scheduling).
    CouldNotStart,
    /// Interrupted by SIGINT.
    Interrupted,
    /// Stopped by SIGTERM.
    Terminated,
}

impl Code {
    /// The number the process exits with.
    pub fn number(self) -> u8 {
        match self {
            Code::Success => 0,
            Code::Container(n) => n,
            Code::Denied => 121,
            Code::HookFailed => 122,
            Code::Cluster => 123,
            Code::TimedOut => 124,
            Code::Usage => 125,
            Code::CouldNotStart => 126,
            Code::Interrupted => 130,
            Code::Terminated => 143,
        }
    }
}

/// The exit code of a run with a verdict: the verdict's own code when it
/// gives one that fits, but never 0 for a run that did not succeed.
pub fn of_verdict(succeeded: bool, code: Option<i32>) -> u8 {
    match (succeeded, code) {
        (true, Some(c)) => u8::try_from(c).unwrap_or(0),
        (true, None) => 0,
        (false, Some(c)) => u8::try_from(c).ok().filter(|&c| c != 0).unwrap_or(1),
        (false, None) => 1,
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

impl From<Code> for std::process::ExitCode {
    fn from(code: Code) -> Self {
        std::process::ExitCode::from(code.number())
    }
}

#[cfg(test)]
mod tests {
    use super::of_verdict;

    #[test]
    fn a_failed_run_never_exits_0() {
        for code in [
            Some(0),
            Some(-1),
            Some(-255),
            Some(256),
            Some(i32::MIN),
            None,
        ] {
            assert_eq!(of_verdict(false, code), 1, "{code:?}");
        }
        assert_eq!(of_verdict(false, Some(3)), 3);
        assert_eq!(of_verdict(false, Some(255)), 255);
    }

    #[test]
    fn a_succeeded_run_keeps_a_code_that_fits() {
        assert_eq!(of_verdict(true, None), 0);
        assert_eq!(of_verdict(true, Some(0)), 0);
        assert_eq!(of_verdict(true, Some(-1)), 0);
        assert_eq!(of_verdict(true, Some(7)), 7);
    }
}
