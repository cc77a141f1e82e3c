//! Identifiers that arrive from clients (`ChannelId`, `MessageId`, `FileId`, `Emoji`), validated at the
//! edge.
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

/// Whether `s` has the shape of a server id (any kind).
pub fn valid_id(s: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check(what: &str, s: &str) -> Result<(), String> {
    if valid_id(s) {
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
id_type!(FileId, "file");

/// Longest short code between the colons (issue 9).
pub const MAX_SHORT_CODE: usize = 64;

/// A reaction: one Unicode emoji as the Unicode emoji data lists it (skin tones, ZWJ sequences
/// and the VS16 forms included), or a `:short_code:` of 1 to 64 of `a-z 0-9 _ + -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Emoji(String);

impl Emoji {
    pub fn new(s: impl Into<String>) -> Result<Self, String> {
        let s = s.into();
        let code = s.strip_prefix(':').and_then(|r| r.strip_suffix(':'));
        let ok = match code {
            Some(c) => {
                (1..=MAX_SHORT_CODE).contains(&c.len())
                    && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_+-".contains(&b))
            }
            None => emojis::get(&s).is_some(),
        };
        if ok {
            Ok(Self(s))
        } else {
            Err(format!("invalid emoji: one Unicode emoji, or :short_code: of 1 to {MAX_SHORT_CODE} of a-z, 0-9, '_', '+', '-'"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Emoji {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Emoji {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

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
    fn emoji_are_unicode_emoji_or_short_codes() {
        for ok in ["👍", "👍🏽", "❤️", "❤", "👨‍👩‍👧", "🏳️‍🌈", ":thumbsup:", ":+1:", ":party-parrot_2:"] {
            assert!(Emoji::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "👍👍", "\u{0}", "::", ":Thumbs:", ":a b:", "thumbsup", &format!(":{}:", "a".repeat(65))] {
            assert!(Emoji::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refuses_what_postgres_or_a_log_line_should_never_see() {
        for bad in ["", "c\0", "\0", "c 1", "c/1", "é", "c;drop", &"c".repeat(MAX_ID_LEN + 1)] {
            assert!(ChannelId::new(bad).is_err(), "{bad:?}");
            assert!(serde_json::from_value::<MessageId>(serde_json::Value::from(bad)).is_err(), "{bad:?}");
        }
    }
}
