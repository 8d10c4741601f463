//! Stopping a run from outside: the CLI turns SIGINT and SIGTERM into a
//! cancel, a server a request. The run stops its pod and reports why.

use std::sync::Arc;

use tokio::sync::watch;

use crate::exit::Code;

/// Why a run was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// SIGINT (exit 130).
    Interrupt,
    /// SIGTERM (exit 143).
    Terminate,
    /// A caller asked (exit 130).
    Request,
}

impl Reason {
    /// The exit code of a run cancelled for this reason.
    pub fn exit_code(self) -> Code {
        match self {
            Reason::Interrupt | Reason::Request => Code::Interrupted,
            Reason::Terminate => Code::Terminated,
        }
    }

    /// The result's `reason` field.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Interrupt => "SIGINT",
            Reason::Terminate => "SIGTERM",
            Reason::Request => "Cancelled",
        }
    }
}

/// Where a cancel stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct State {
    /// Set by the first cancel: the pod is stopped with its grace period.
    pub reason: Option<Reason>,
    /// Set by [`Cancel::kill`]: the pod is killed without waiting.
    pub kill: bool,
}

/// A handle that cancels one run (or several sharing it). Clones share the
/// state; the first reason given is kept.
#[derive(Debug, Clone)]
pub struct Cancel {
    state: Arc<watch::Sender<State>>,
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel::new()
    }
}

impl Cancel {
    /// A handle not yet cancelled.
    pub fn new() -> Self {
        Cancel {
            state: Arc::new(watch::Sender::new(State::default())),
        }
    }

    /// Stops the run gracefully, for `reason`.
    pub fn cancel(&self, reason: Reason) {
        self.state.send_if_modified(|s| {
            let first = s.reason.is_none();
            s.reason.get_or_insert(reason);
            first
        });
    }

    /// Stops the run now: its pod is killed, not given its grace period.
    pub fn kill(&self, reason: Reason) {
        self.state.send_if_modified(|s| {
            let changed = !s.kill;
            s.reason.get_or_insert(reason);
            s.kill = true;
            changed
        });
    }

    /// Where the cancel stands now.
    pub fn state(&self) -> State {
        *self.state.borrow()
    }

    /// Resolves once the run is cancelled, with the reason.
    pub async fn cancelled(&self) -> Reason {
        let mut rx = self.subscribe();
        loop {
            if let Some(reason) = rx.borrow_and_update().reason {
                return reason;
            }
            // The sender lives in `self`: it cannot close while we wait.
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// A receiver woken at each change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<State> {
        self.state.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_stays_and_a_kill_follows_it() {
        let c = Cancel::new();
        assert_eq!(c.state(), State::default());
        c.clone().cancel(Reason::Terminate);
        c.cancel(Reason::Interrupt);
        assert_eq!(c.state().reason, Some(Reason::Terminate));
        assert!(!c.state().kill);
        c.kill(Reason::Interrupt);
        assert_eq!(
            c.state(),
            State {
                reason: Some(Reason::Terminate),
                kill: true
            }
        );
    }
}
