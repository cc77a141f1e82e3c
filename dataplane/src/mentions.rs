//! `@user`, `@here` and `@channel` in message text: one parser for the send path (which limits
//! broadcasts) and the consumers (which notify).
//!
//! Owns what counts as a mention. It must not look up members or presence.

use crate::auth::valid_user_id;

/// `@here`: the channel's members online now. `@channel`: all its members. Users named `here`
/// or `channel` cannot be mentioned one by one.
pub const HERE: &str = "here";
pub const CHANNEL: &str = "channel";

/// The mentions of a text: user-id characters after `@`, trailing punctuation dropped, each
/// once, in order of first appearance (`here` and `channel` included as they are).
pub fn parse(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        let Some(rest) = word.strip_prefix('@') else { continue };
        let name = rest.trim_end_matches(|c: char| ".,:;!?)]}'\"".contains(c));
        if valid_user_id(name) && !out.iter().any(|u| u == name) {
            out.push(name.to_string());
        }
    }
    out
}

/// Whether a text mentions `@here` or `@channel`.
pub fn broadcasts(text: &str) -> bool {
    parse(text).iter().any(|m| m == HERE || m == CHANNEL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions() {
        assert_eq!(parse("hey @bob, and @carol! (@bob again) @"), ["bob", "carol"]);
        assert_eq!(parse("mail me: x@y.z and @d.e?"), ["d.e"]);
        assert!(parse("no mentions here").is_empty());
        assert!(broadcasts("@here standup") && broadcasts("ping @channel!") && !broadcasts("here and channel"));
    }
}
