//! Status conditions (`Ready`, `Progressing`, `Degraded`) in the Kubernetes convention.
//!
//! Owns: merging a freshly computed condition into the stored list so that
//! `lastTransitionTime` only moves when the status flips. A status that is recomputed without a
//! change must serialize to the same bytes, or every reconcile would patch status, trigger a watch
//! event and reconcile again (a hot loop).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// A condition as a reconcile computes it, before it is merged into the stored list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Want {
    pub fn new(type_: &'static str, status: bool, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self { type_, status, reason: reason.into(), message: message.into() }
    }
}

/// The conditions `wants` describe, keeping each stored condition's `lastTransitionTime` when
/// its status did not change. Conditions of other types are kept as they are.
pub fn merge(stored: &[Condition], wants: &[Want], generation: Option<i64>) -> Vec<Condition> {
    let mut out: Vec<Condition> = stored.iter().filter(|c| !wants.iter().any(|w| w.type_ == c.type_)).cloned().collect();
    for w in wants {
        let status = if w.status { "True" } else { "False" }.to_string();
        let old = stored.iter().find(|c| c.type_ == w.type_);
        let last_transition_time = match old {
            Some(c) if c.status == status => c.last_transition_time.clone(),
            _ => Time(now()),
        };
        out.push(Condition {
            type_: w.type_.to_string(),
            status,
            reason: w.reason.clone(),
            message: w.message.clone(),
            observed_generation: generation,
            last_transition_time,
        });
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// Whether the condition `type_` is `True` in `conditions`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
}

/// The reason of condition `type_`, if present.
pub fn reason<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a str> {
    conditions.iter().find(|c| c.type_ == type_).map(|c| c.reason.as_str())
}

/// Whole seconds: the API server stores condition times at second precision, so a finer stored
/// value would differ from what comes back and look like a change.
fn now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).expect("current time is in range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_status_keeps_transition_time_and_compares_equal() {
        let first = merge(&[], &[Want::new(READY, true, "Provisioned", "ok")], Some(1));
        let mut aged = first.clone();
        aged[0].last_transition_time = Time(Timestamp::from_second(1_000).unwrap());
        let again = merge(&aged, &[Want::new(READY, true, "Provisioned", "still ok")], Some(2));
        assert_eq!(again[0].last_transition_time, aged[0].last_transition_time);
        assert_eq!(again[0].message, "still ok");
        assert_eq!(again[0].observed_generation, Some(2));
    }

    #[test]
    fn a_flip_moves_transition_time_and_other_types_stay() {
        let mut stored = merge(&[], &[Want::new(READY, true, "Provisioned", ""), Want::new(DEGRADED, false, "AsExpected", "")], Some(1));
        for c in &mut stored {
            c.last_transition_time = Time(Timestamp::from_second(1_000).unwrap());
        }
        let next = merge(&stored, &[Want::new(READY, false, "PostgresUnavailable", "down")], Some(1));
        let ready = next.iter().find(|c| c.type_ == READY).unwrap();
        assert_ne!(ready.last_transition_time.0.as_second(), 1_000);
        assert_eq!(reason(&next, DEGRADED), Some("AsExpected"));
        assert!(!is_true(&next, READY));
    }
}
