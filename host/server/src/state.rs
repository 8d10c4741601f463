//! Where a run stands. States only move forward: a late or repeated
//! observation can never move a finished run back.

use std::fmt;
use std::str::FromStr;

/// Where a run stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum State {
    /// Waiting for a worker.
    Queued,
    /// Taken by a worker: its pod is being created.
    Starting,
    /// Its pod runs.
    Running,
    /// Ended: the pod succeeded.
    Succeeded,
    /// Ended: the pod (or starting it) failed.
    Failed,
    /// Ended: cancelled.
    Cancelled,
    /// Ended: its pod vanished while no one watched it.
    Lost,
}

impl State {
    /// Every state, in the order a run moves through them.
    pub const ALL: [State; 7] = [
        State::Queued,
        State::Starting,
        State::Running,
        State::Succeeded,
        State::Failed,
        State::Cancelled,
        State::Lost,
    ];

    /// The states a run ends in.
    pub const FINAL: [State; 4] = [
        State::Succeeded,
        State::Failed,
        State::Cancelled,
        State::Lost,
    ];

    /// Its name in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Starting => "starting",
            State::Running => "running",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
            State::Lost => "lost",
        }
    }

    /// Whether the run has ended.
    pub fn is_final(self) -> bool {
        State::FINAL.contains(&self)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one.
#[derive(Debug, thiserror::Error)]
#[error("unknown state {0:?}")]
pub struct Unknown(pub String);

impl FromStr for State {
    type Err = Unknown;

    fn from_str(s: &str) -> Result<State, Unknown> {
        [
            State::Queued,
            State::Starting,
            State::Running,
            State::Succeeded,
            State::Failed,
            State::Cancelled,
            State::Lost,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
        .ok_or_else(|| Unknown(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_named_as_the_api_names_them() {
        for state in State::FINAL {
            assert_eq!(state.as_str().parse::<State>().unwrap(), state);
            assert!(state.is_final());
        }
        assert!(!State::Running.is_final());
        assert_eq!(
            serde_json::to_string(&State::Cancelled).unwrap(),
            "\"cancelled\""
        );
        assert!("done".parse::<State>().is_err());
    }
}
