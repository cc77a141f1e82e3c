//! Validated workspace names and the identifiers derived from them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a workspace name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid workspace name {name:?}: {reason}")]
pub struct InvalidName {
    pub name: String,
    pub reason: &'static str,
}

/// A workspace name: `^[a-z][a-z0-9-]{1,40}$`, not ending in `-`, no `--`.
///
/// It is embedded in a Postgres schema name (`ws_<name>` with `-` → `_`), Kafka topic names and
/// Redis keys, so the alphabet is deliberately small: no quoting is ever needed, and two different
/// names can never map to the same schema (underscores are not allowed in names).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkspaceName(String);

impl WorkspaceName {
    pub const MAX_LEN: usize = 41;

    pub fn new(name: impl Into<String>) -> Result<Self, InvalidName> {
        let name = name.into();
        let fail = |reason| Err(InvalidName { name: name.clone(), reason });
        let bytes = name.as_bytes();
        if bytes.len() < 2 || bytes.len() > Self::MAX_LEN {
            return fail("must be 2 to 41 characters long");
        }
        if !bytes[0].is_ascii_lowercase() {
            return fail("must start with a lowercase letter");
        }
        if !bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-') {
            return fail("may contain only lowercase letters, digits and '-'");
        }
        if name.ends_with('-') || name.contains("--") {
            return fail("must not end with '-' or contain '--'");
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Postgres schema holding this workspace's tables.
    pub fn schema(&self) -> String {
        format!("ws_{}", self.0.replace('-', "_"))
    }

    /// Kafka topic carrying every event of the workspace, keyed by channel id.
    pub fn events_topic(&self) -> String {
        format!("palaver.{}.events", self.0)
    }

    /// Kafka topic for work that failed permanently (e.g. push deliveries out of retries).
    pub fn dlq_topic(&self) -> String {
        format!("palaver.{}.dlq", self.0)
    }

    /// Inverse of [`Self::events_topic`], for consumers that see topic names.
    pub fn from_events_topic(topic: &str) -> Option<Self> {
        let name = topic.strip_prefix("palaver.")?.strip_suffix(".events")?;
        Self::new(name).ok()
    }
}

impl fmt::Display for WorkspaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for WorkspaceName {
    type Error = InvalidName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<WorkspaceName> for String {
    fn from(n: WorkspaceName) -> String {
        n.0
    }
}

impl std::str::FromStr for WorkspaceName {
    type Err = InvalidName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// Channel names: 1 to 80 of lowercase letters, digits, `-` and `_` (Slack's rule).
pub fn validate_channel_name(name: &str) -> Result<(), String> {
    let ok_len = (1..=80).contains(&name.len());
    let ok_chars = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(format!("invalid channel name {name:?}: 1 to 80 of a-z, 0-9, '-', '_'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names_and_derives_identifiers() {
        let n = WorkspaceName::new("acme-corp2").unwrap();
        assert_eq!(n.schema(), "ws_acme_corp2");
        assert_eq!(n.events_topic(), "palaver.acme-corp2.events");
        assert_eq!(n.dlq_topic(), "palaver.acme-corp2.dlq");
        assert_eq!(WorkspaceName::from_events_topic("palaver.acme-corp2.events"), Some(n));
        assert_eq!(WorkspaceName::from_events_topic("palaver.acme-corp2.dlq"), None);
    }

    #[test]
    fn rejects_names_that_could_escape_or_collide() {
        for bad in ["", "a", "1abc", "Acme", "a_b", "a b", "a;drop", "ab-", "a--b", "ws\"x", &"a".repeat(42)] {
            assert!(WorkspaceName::new(bad).is_err(), "{bad:?} must be rejected");
        }
        assert!(WorkspaceName::new("a".repeat(41)).is_ok());
    }

    #[test]
    fn channel_names() {
        assert!(validate_channel_name("general").is_ok());
        assert!(validate_channel_name("dev_ops-2").is_ok());
        for bad in ["", "General", "a b", "x;y", &"a".repeat(81)] {
            assert!(validate_channel_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deserialization_validates() {
        assert!(serde_json::from_str::<WorkspaceName>("\"ok-name\"").is_ok());
        assert!(serde_json::from_str::<WorkspaceName>("\"Bad\"").is_err());
    }
}
