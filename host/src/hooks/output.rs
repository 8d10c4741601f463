//! Checking what a hook returns before podrun uses it.
//!
//! wasmtime copies a result out of the guest's memory only up to the
//! store's hostcall fuel (the output cap plus [`MESSAGE_SLACK`]); the
//! output cap is then enforced on all of a result's strings together
//! before anything is parsed. Text meant for people is cut and escaped
//! first and counts as it is kept, so a long denial is shown cut, not
//! refused.

use super::bindings::{classify, mutate};
use super::text::{MESSAGE_LIMIT, shown};

/// How much more than the output cap wasmtime may copy out of a call, for
/// messages that are cut once copied.
pub(crate) const MESSAGE_SLACK: usize = 16 << 20;

/// The most evidence lines a verdict keeps.
const MAX_EVIDENCE: usize = 64;

/// One call's result is larger than its output cap.
#[derive(Debug)]
pub(crate) struct TooLarge {
    pub(crate) limit: usize,
}

/// Counts the bytes of one call's result against its output cap.
pub(crate) struct Budget {
    left: usize,
    limit: usize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Self {
        Budget { left: limit, limit }
    }

    /// A string of the result, whole.
    pub(crate) fn string(&mut self, s: String) -> Result<String, TooLarge> {
        if s.len() > self.left {
            return Err(TooLarge { limit: self.limit });
        }
        self.left -= s.len();
        Ok(s)
    }

    /// A message for people: cut and escaped, then counted as it is kept.
    pub(crate) fn message(&mut self, s: String) -> Result<String, TooLarge> {
        self.string(shown(&s, MESSAGE_LIMIT))
    }

    pub(crate) fn mutation(&mut self, m: mutate::Mutation) -> Result<mutate::Mutation, TooLarge> {
        Ok(match m {
            mutate::Mutation::Unchanged => mutate::Mutation::Unchanged,
            mutate::Mutation::MergePatch(s) => mutate::Mutation::MergePatch(self.string(s)?),
            mutate::Mutation::Replace(s) => mutate::Mutation::Replace(self.string(s)?),
        })
    }

    pub(crate) fn refusal(&mut self, r: mutate::Refusal) -> Result<mutate::Refusal, TooLarge> {
        Ok(match r {
            mutate::Refusal::Denied(s) => mutate::Refusal::Denied(self.message(s)?),
            mutate::Refusal::Invalid(s) => mutate::Refusal::Invalid(self.message(s)?),
        })
    }

    pub(crate) fn verdict(&mut self, v: classify::Verdict) -> Result<classify::Verdict, TooLarge> {
        let mut evidence = Vec::new();
        for item in v.evidence {
            let item = self.message(item)?;
            if evidence.len() < MAX_EVIDENCE {
                evidence.push(item);
            }
        }
        Ok(classify::Verdict {
            outcome: v.outcome,
            retryable: v.retryable,
            reason: self.message(v.reason)?,
            message: self.message(v.message)?,
            exit_code: v.exit_code,
            evidence,
            rule: v.rule.map(|r| self.message(r)).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_every_string_of_a_result() {
        let mut budget = Budget::new(10);
        assert!(budget.string("12345".into()).is_ok());
        assert!(budget.string("123456".into()).is_err());
        let v = classify::Verdict {
            outcome: classify::Outcome::Failed,
            retryable: false,
            reason: "r".into(),
            message: "m".into(),
            exit_code: None,
            evidence: vec!["x".repeat(6); 2],
            rule: None,
        };
        assert!(Budget::new(11).verdict(v.clone()).is_err());
        let ok = Budget::new(14).verdict(v).unwrap();
        assert_eq!(ok.evidence.len(), 2);
    }

    #[test]
    fn messages_are_escaped() {
        let m = Budget::new(100)
            .refusal(mutate::Refusal::Denied("no\x1b[31m".into()))
            .unwrap();
        assert!(matches!(m, mutate::Refusal::Denied(s) if s == "no\\u{1b}[31m"));
    }
}
