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
