//! Wire protocol v1: the JSON frames of `GET /v1/ws` (docs/protocol.md).
//!
//! Owns parsing of client frames and the shapes of server frames. It must not touch storage or
//! sockets: the gateway decides what a frame does.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;
use crate::ids::{ChannelId, Emoji, FileId, MessageId};

/// WebSocket close codes Palaver uses (besides the standard ones).
pub mod close {
    /// A frame exceeded the frame size limit (standard "message too big").
    pub const TOO_BIG: u16 = 1009;
    /// A text frame was not valid UTF-8 (standard "invalid frame payload data", RFC 6455 7.4.1).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// The pod is shutting down: reconnect (to any pod) and resume with `sync`.
    pub const GOING_AWAY: u16 = 1001;
    /// The client did not read fast enough and its outbound queue filled: reconnect and resume.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// The server could not set up the session (a dependency is down): reconnect with backoff.
    pub const TRY_AGAIN: u16 = 1013;
}

/// A frame from the client, after `t` dispatch.
#[derive(Debug, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    Sync {
        #[serde(rename = "ref")]
        reference: Option<Value>,
        #[serde(default)]
        since: HashMap<ChannelId, i64>,
    },
    Send {
        #[serde(rename = "ref")]
        reference: Option<Value>,
        channel: ChannelId,
        cmid: String,
        text: String,
        #[serde(default)]
        thread: Option<MessageId>,
        #[serde(default)]
        also_channel: bool,
        /// Completed uploads of the sender's to attach (`POST /v1/files`), in this order.
        #[serde(default)]
        files: Vec<FileId>,
    },
    Recv {
        #[serde(rename = "ref")]
        reference: Option<Value>,
        channel: ChannelId,
        seq: i64,
    },
    Read {
        #[serde(rename = "ref")]
        reference: Option<Value>,
        channel: ChannelId,
        seq: i64,
        /// A thread's root: moves that thread's read cursor instead of the channel's.
        #[serde(default)]
        thread: Option<MessageId>,
    },
    Ping {
        #[serde(rename = "ref")]
        reference: Option<Value>,
    },
    Edit {
        #[serde(rename = "ref")]
        reference: Option<Value>,
        channel: ChannelId,
        id: MessageId,
        text: String,
    },
    Delete {
        #[serde(rename = "ref")]
        reference: Option<Value>,
        channel: ChannelId,
        id: MessageId,
    },
    React {
        #[serde(rename = "ref")]
        reference: Option<Value>,
        channel: ChannelId,
        id: MessageId,
        emoji: Emoji,
    },
    Unreact {
        #[serde(rename = "ref")]
        reference: Option<Value>,
        channel: ChannelId,
        id: MessageId,
        emoji: Emoji,
    },
    Typing {
        #[serde(rename = "ref")]
        reference: Option<Value>,
        channel: ChannelId,
        #[serde(default)]
        thread: Option<MessageId>,
    },
    /// The client says the user is away (or back).
    Presence {
        #[serde(rename = "ref")]
        reference: Option<Value>,
        status: ClientStatus,
    },
    /// Replaces the set of users whose presence this connection follows.
    PresenceSub {
        #[serde(rename = "ref")]
        reference: Option<Value>,
        users: Vec<String>,
    },
}

/// What a client may say of its user's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientStatus {
    Online,
    Away,
}

impl ClientFrame {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sync { .. } => "sync",
            Self::Send { .. } => "send",
            Self::Recv { .. } => "recv",
            Self::Read { .. } => "read",
            Self::Ping { .. } => "ping",
            Self::Edit { .. } => "edit",
            Self::Delete { .. } => "delete",
            Self::React { .. } => "react",
            Self::Unreact { .. } => "unreact",
            Self::Typing { .. } => "typing",
            Self::Presence { .. } => "presence",
            Self::PresenceSub { .. } => "presence_sub",
        }
    }
}

/// Parses a text frame. On failure returns the `ref` (if one could be read) with the error, so
/// the reply can still be correlated.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, (Option<Value>, ApiError)> {
    let value: Value = serde_json::from_str(text).map_err(|e| (None, ApiError::bad_request(format!("malformed JSON: {e}"))))?;
    let reference = value.get("ref").cloned();
    match value.get("t") {
        Some(Value::String(_)) => {}
        Some(_) => return Err((reference, ApiError::bad_request("field `t` must be a string"))),
        None => return Err((reference, ApiError::bad_request("missing field `t`"))),
    }
    serde_json::from_value(value).map_err(|e| (reference, ApiError::bad_request(e.to_string())))
}

/// A persisted channel event, exactly as it goes on the wire inside an `event` frame and in
/// REST history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Event {
    pub channel: String,
    pub seq: i64,
    pub kind: String,
    pub id: String,
    pub user: String,
    pub cmid: Option<String>,
    pub text: Option<String>,
    pub ts: DateTime<Utc>,
    pub thread: Option<String>,
    /// A reply also shown in the channel.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub also_channel: bool,
    /// Change events (`edit`, `delete`, `reaction_add`, `reaction_remove`): the message changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `reaction_add` / `reaction_remove`: the emoji.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
    /// `channel_update`: the fields that changed, with their new values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<sqlx::types::Json<Value>>,
    /// A `message`'s attachments (absent: none; emptied when the message is deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<sqlx::types::Json<Vec<FileRef>>>,
    /// `edit`: when; a `message`: when its text last changed (absent: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<DateTime<Utc>>,
    /// A `message`'s current state, in history and replay (absent on live events, which are
    /// their own state).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    #[sqlx(skip)]
    pub state: Option<MessageState>,
}

/// What changed a message since it was sent, as history and replay render it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageState {
    /// A tombstone: text, edit history and reactions are gone.
    pub deleted: bool,
    /// The seq of the last event that changed this message (its own seq if none did). A client
    /// applies a change event to this message only if the change's seq is higher: the state
    /// already includes the others.
    pub state_seq: i64,
    pub reactions: Vec<ReactionSummary>,
    /// Thread roots: replies, the last one's time, the first ten repliers and how many.
    pub reply_count: i32,
    pub last_reply_ts: Option<DateTime<Utc>>,
    pub reply_users: Vec<String>,
    pub reply_users_count: i32,
}

/// A file attached to a message, as events and history carry it (issue 11). The bytes are
/// fetched with `GET /v1/files/{id}` (and `/thumbnail`), which check the reader's access. Its
/// `url` is derived from the id when it is written out, never read back: a stored or relayed
/// copy cannot carry a stale one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FileRef {
    pub id: String,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    /// Images: their dimensions in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<i32>,
    /// Whether `GET /v1/files/{id}/thumbnail` has a preview.
    #[serde(default)]
    pub thumbnail: bool,
}

impl FileRef {
    /// `/v1/files/{id}`: where the bytes are (a redirect to the store, for readers; issue 11's
    /// wire contract, relative to the API's base).
    pub fn url(&self) -> String {
        format!("/v1/files/{}", self.id)
    }
}

impl Serialize for FileRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            id: &'a str,
            name: &'a str,
            content_type: &'a str,
            size: i64,
            #[serde(skip_serializing_if = "Option::is_none")]
            width: Option<i32>,
            #[serde(skip_serializing_if = "Option::is_none")]
            height: Option<i32>,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            thumbnail: bool,
            url: String,
        }
        let f = self;
        Wire {
            id: &f.id,
            name: &f.name,
            content_type: &f.content_type,
            size: f.size,
            width: f.width,
            height: f.height,
            thumbnail: f.thumbnail,
            url: f.url(),
        }
        .serialize(s)
    }
}

/// One emoji's reactions on a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReactionSummary {
    pub emoji: String,
    pub count: i64,
    /// Whether the viewer is among them.
    pub me: bool,
    /// The first five who reacted, in order.
    pub users: Vec<String>,
}

#[derive(Serialize)]
struct EventFrame<'a> {
    t: &'static str,
    #[serde(flatten)]
    event: &'a Event,
}

impl Event {
    /// The `event` frame text; built once per event and shared by every socket it goes to.
    pub fn frame_json(&self) -> String {
        serde_json::to_string(&EventFrame { t: "event", event: self }).expect("event serializes")
    }
}

/// The fields of an `event` frame the fan-out needs without decoding the whole event.
#[derive(Debug, Deserialize)]
pub struct EventHead {
    pub channel: String,
    pub seq: i64,
    pub ts: DateTime<Utc>,
}

/// A `notification` frame: an inbox entry (mention or DM received while offline).
pub fn notification_frame(n: &crate::store::Notification) -> Value {
    serde_json::json!({"t": "notification", "id": n.id, "kind": n.kind, "channel": n.channel, "seq": n.seq, "ts": n.created_at})
}

#[derive(Debug, Serialize)]
pub struct HelloChannel {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub last_seq: i64,
    pub read_seq: i64,
    pub unread: i64,
    pub mentions: i64,
}

/// Frames the server sends (events go as pre-serialized text, see [`Event::frame_json`]).
#[derive(Debug, Serialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Hello {
        session: &'a str,
        user: &'a str,
        workspace: &'a str,
        heartbeat_ms: u64,
        channels: &'a [HelloChannel],
    },
    Ack {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
        channel: &'a str,
        seq: i64,
        id: &'a str,
        ts: DateTime<Utc>,
    },
    /// The answer to `edit`, `delete`, `react`, `unreact`: also an `ack`, with the seq of the
    /// change event, or `noop` and no seq when nothing changed. `id` is the message's.
    #[serde(rename = "ack")]
    ChangeAck {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
        channel: &'a str,
        id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ts: Option<DateTime<Utc>>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        noop: bool,
    },
    Pong {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
    },
    Gap {
        channel: &'a str,
        from: i64,
        to: i64,
    },
    /// The connection's user was added to (or joined) a channel mid-session: its hello entry.
    Joined {
        channel: &'a HelloChannel,
    },
    /// A member has read the channel up to `seq` (small channels only). Never persisted.
    Receipt {
        channel: &'a str,
        user: &'a str,
        seq: i64,
    },
    /// Someone is typing; show it for `ttl_ms` unless renewed. Never persisted.
    Typing {
        channel: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        thread: Option<&'a str>,
        user: &'a str,
        ttl_ms: u64,
    },
    Error {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
        #[serde(flatten)]
        error: &'a ApiError,
    },
}

impl ServerFrame<'_> {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "hello",
            Self::Ack { .. } | Self::ChangeAck { .. } => "ack",
            Self::Pong { .. } => "pong",
            Self::Gap { .. } => "gap",
            Self::Typing { .. } => "typing",
            Self::Receipt { .. } => "receipt",
            Self::Joined { .. } => "joined",
            Self::Error { .. } => "error",
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server frame serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn parses_send_and_keeps_ref_on_errors() {
        let f = parse_client_frame(r#"{"t":"send","ref":"7","channel":"c1","cmid":"x","text":"hi"}"#).unwrap();
        assert!(matches!(f, ClientFrame::Send { ref channel, .. } if channel.as_str() == "c1"));
        let (r, e) = parse_client_frame(r#"{"t":"send","ref":"7","channel":"c1"}"#).unwrap_err();
        assert_eq!(r, Some(Value::String("7".into())));
        assert_eq!(e.code, ErrorCode::BadRequest);
        let (_, e) = parse_client_frame(r#"{"t":"nope","ref":1}"#).unwrap_err();
        assert!(e.message.contains("unknown variant"), "{}", e.message);
        assert!(parse_client_frame("{not json").is_err());
        assert!(parse_client_frame(r#"{"ref":1}"#).unwrap_err().1.message.contains("`t`"));
    }

    #[test]
    fn event_frame_has_t_and_round_trips() {
        let e = Event {
            channel: "c1".into(),
            seq: 5,
            kind: "message".into(),
            id: "m_1".into(),
            user: "u1".into(),
            cmid: Some("k".into()),
            text: Some("hi".into()),
            ts: Utc::now(),
            ..Default::default()
        };
        let json = e.frame_json();
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["t"], "event");
        assert_eq!(v["seq"], 5);
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
        let head: EventHead = serde_json::from_str(&json).unwrap();
        assert_eq!((head.channel.as_str(), head.seq), ("c1", 5));
    }

    #[test]
    fn a_file_names_its_download_path_from_its_id_only() {
        let stored =
            r#"{"id":"f_1","name":"a.png","content_type":"image/png","size":3,"width":2,"height":1,"thumbnail":true,"url":"/old/f_1"}"#;
        let f: FileRef = serde_json::from_str(stored).unwrap();
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["url"], "/v1/files/f_1", "a stale stored url is not read back");
        assert_eq!((v["width"].as_i64(), v["thumbnail"].as_bool()), (Some(2), Some(true)));
        let plain = FileRef {
            id: "f_2".into(),
            name: "n".into(),
            content_type: "text/plain".into(),
            size: 0,
            width: None,
            height: None,
            thumbnail: false,
        };
        let v = serde_json::to_value(&plain).unwrap();
        assert!(v.get("width").is_none() && v.get("thumbnail").is_none(), "{v}");
        assert_eq!(serde_json::from_value::<FileRef>(v).unwrap(), plain);
    }

    #[test]
    fn error_frame_shape() {
        let err = ApiError::rate_limited("send", 500);
        let s = ServerFrame::Error { reference: Some(Value::from("7")), error: &err }.to_json();
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["t"], "error");
        assert_eq!(v["ref"], "7");
        assert_eq!(v["code"], "rate_limited");
        assert_eq!(v["retry_after_ms"], 500);
    }
}
