//! Identifiers that arrive from clients (`ChannelId`, `MessageId`), validated at the edge.
//!
//! Owns what a well-formed id looks like, so that a malformed one (a NUL byte, a 20 KB string,
//! bytes Postgres cannot store) is refused as `bad_request` before any query runs (issue 7). It
//! must not decide whether an id names something that exists or that the caller may see: the
//! store answers that, with `not_found` for what the caller may not know about.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest id accepted: server ids are `c_`/`d_`/`m_` + 16 hex digits, default channels
/// `c_` + a channel name of at most 80 characters (palaver_crds::validate_channel_name).
pub const MAX_ID_LEN: usize = 100;

fn check(what: &str, s: &str) -> Result<(), String> {
    let ok_chars = s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if (1..=MAX_ID_LEN).contains(&s.len()) && ok_chars {
        Ok(())
    } else {
        Err(format!("invalid {what} id: 1 to {MAX_ID_LEN} of A-Z, a-z, 0-9, '_', '-'"))
    }
}

macro_rules! id_type {
    ($name:ident, $what:literal) => {
        #[doc = concat!("A syntactically valid ", $what, " id (see [`MAX_ID_LEN`]).")]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Result<Self, String> {
                let s = s.into();
                check($what, &s)?;
                Ok(Self(s))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }

        /// Store calls take `&str`: a validated id passes as one.
        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Self::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(ChannelId, "channel");
id_type!(MessageId, "message");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_server_and_default_ids() {
        for ok in ["c_general", "d_0123456789abcdef", "m_0123456789abcdef", &format!("c_{}", "a".repeat(80))] {
            assert!(ChannelId::new(ok).is_ok(), "{ok}");
        }
        assert!(MessageId::new("m_00ff").is_ok());
    }

    #[test]
    fn refuses_what_postgres_or_a_log_line_should_never_see() {
        for bad in ["", "c\0", "\0", "c 1", "c/1", "é", "c;drop", &"c".repeat(MAX_ID_LEN + 1)] {
            assert!(ChannelId::new(bad).is_err(), "{bad:?}");
            assert!(serde_json::from_value::<MessageId>(serde_json::Value::from(bad)).is_err(), "{bad:?}");
        }
    }
}
