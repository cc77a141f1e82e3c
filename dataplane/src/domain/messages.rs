//! Messages: send, edit, delete, their history and edit history.
//!
//! Owns the text rules (length, NUL, cmid) shared by every transport, the send metrics, and
//! rendering history as current state. It must not rate-limit (the transports' buckets are per
//! connection or per pod) nor decide delivery.

use palaver_crds::WorkspaceName;

use super::{authz, Committed, Domain};
use crate::auth::Principal;
use crate::config::Limits;
use crate::error::ApiError;
use crate::ids::{ChannelId, FileId, MessageId};
use crate::metrics::{self, ResultLabel};
use crate::store::{Actor, Appended, Change, EditRecord, HistoryPage, NewEvent};

const MAX_CMID_LEN: usize = 64;

/// A message to send.
pub struct Send {
    pub cmid: String,
    pub text: String,
    /// A reply: the root (or any reply) of a thread in the same channel.
    pub thread: Option<MessageId>,
    /// A reply also shown in the channel; only with `thread`.
    pub also_channel: bool,
    /// Completed uploads of the sender's to attach, in this order.
    pub files: Vec<FileId>,
}

fn validate_cmid(cmid: &str) -> Result<(), ApiError> {
    if cmid.is_empty() || cmid.len() > MAX_CMID_LEN || cmid.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!("cmid must be 1 to {MAX_CMID_LEN} bytes without control characters")));
    }
    Ok(())
}

/// The text rules of send and edit.
pub fn validate_text(limits: &Limits, text: &str) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::bad_request("text must not be empty"));
    }
    validate_text_content(limits, text)
}

/// The text rules other than "not empty" (a message with files may have no text).
fn validate_text_content(limits: &Limits, text: &str) -> Result<(), ApiError> {
    // Postgres text cannot hold U+0000; no client needs it in a chat message.
    if text.contains('\0') {
        return Err(ApiError::bad_request("text must not contain U+0000 (NUL)"));
    }
    let chars = text.chars().count();
    if chars > limits.max_text_chars {
        return Err(ApiError::too_large(format!("text has {chars} characters; the limit is {}", limits.max_text_chars)));
    }
    Ok(())
}

/// Validates a send before the transport spends a rate-limit token on it.
pub fn validate_send(limits: &Limits, req: &Send) -> Result<(), ApiError> {
    validate_cmid(&req.cmid)?;
    if req.also_channel && req.thread.is_none() {
        return Err(ApiError::bad_request("also_channel needs a thread"));
    }
    super::files::validate_attachments(&req.files)?;
    if req.files.is_empty() {
        validate_text(limits, &req.text)
    } else {
        validate_text_content(limits, &req.text)
    }
}

/// Counts a send by outcome (ok, duplicate, or the error code).
pub fn count_send<T>(r: &Result<T, ApiError>, duplicate: bool) {
    let result = match r {
        Ok(_) if duplicate => "duplicate",
        Ok(_) => "ok",
        Err(e) => e.code.as_str(),
    };
    metrics::global().sends.get_or_create(&ResultLabel { result }).inc();
}

/// A send queued for the group commit; [`PendingSend::committed`] waits for its result.
#[must_use = "a send's result is its ack"]
pub struct PendingSend {
    rx: tokio::sync::oneshot::Receiver<super::sender::SendResult>,
    domain: Domain,
    ws: WorkspaceName,
}

impl PendingSend {
    pub async fn committed(self) -> Result<Committed<Appended>, ApiError> {
        // The stage always answers; no answer means its task ended with the send in flight.
        let r = self.rx.await.unwrap_or_else(|_| Err(ApiError::unavailable("the send may not have been stored; retry with the same cmid")));
        count_send(&r, r.as_ref().is_ok_and(|a| a.outbox_id.is_none()));
        let appended = r?;
        Ok(Committed::new(&self.domain, &self.ws, appended.clone(), vec![appended]))
    }
}

/// The outcome of a change request: the event appended, or nothing because it was already so.
pub type ChangeResult = Result<Committed<Change>, ApiError>;

impl Domain {
    /// Sends a message (already validated with [`validate_send`]) and waits for its commit. A
    /// repeated cmid returns the original (its `outbox_id` is None).
    pub async fn send(&self, p: &Principal, channel: &ChannelId, req: Send) -> Result<Committed<Appended>, ApiError> {
        self.submit_send(p, channel, req).await?.committed().await
    }

    /// Checks a send (already validated with [`validate_send`]) and queues it for the group
    /// commit without waiting for it: sends to a channel are committed in the order of these
    /// calls, which is what lets a connection pipeline them (issue 12).
    pub async fn submit_send(&self, p: &Principal, channel: &ChannelId, req: Send) -> Result<PendingSend, ApiError> {
        let checked = async {
            self.check_broadcast(p, channel, &req.text).await?;
            if !req.files.is_empty() {
                self.check_attachments(p, req.files.len()).await?;
            }
            Ok::<_, ApiError>(())
        };
        if let Err(e) = checked.await {
            count_send::<()>(&Err(e.clone()), false);
            return Err(e);
        }
        let reply = req.thread.is_some();
        let ev = NewEvent {
            kind: "message",
            user: p.user.clone(),
            cmid: Some(req.cmid),
            text: Some(req.text),
            thread: req.thread.map(MessageId::into_string),
            also_channel: reply && req.also_channel,
            attach: req.files.into_iter().map(FileId::into_string).collect(),
            ..Default::default()
        };
        let rx = self.sender.submit(&p.workspace, channel.to_string(), ev).await;
        Ok(PendingSend { rx, domain: self.clone(), ws: p.workspace.clone() })
    }

    pub async fn edit(&self, p: &Principal, channel: &ChannelId, message: &MessageId, text: &str) -> ChangeResult {
        let r = async {
            validate_text(&self.limits, text)?;
            self.check_broadcast(p, channel, text).await?;
            let actor = Actor { user: &p.user, moderator: false };
            self.store.edit_message(&p.workspace, channel, message, actor, text).await
        };
        self.committed(&p.workspace, "edit", r.await)
    }

    pub async fn delete(&self, p: &Principal, channel: &ChannelId, message: &MessageId) -> ChangeResult {
        let r = async {
            let moderator = authz::role(&self.store, &p.workspace, &p.user).await?.moderates();
            let actor = Actor { user: &p.user, moderator };
            self.store.delete_message(&p.workspace, channel, message, actor).await
        };
        self.committed(&p.workspace, "delete", r.await)
    }

    /// A message's earlier texts (whoever may read the channel).
    pub async fn edits(&self, p: &Principal, channel: &ChannelId, message: &MessageId) -> Result<Vec<EditRecord>, ApiError> {
        self.store.can_read(&p.workspace, channel, &p.user).await?;
        self.store.message_edits(&p.workspace, channel, message).await
    }

    /// A history page with every message rendered as it is now, for this viewer.
    pub async fn history(
        &self,
        p: &Principal,
        channel: &ChannelId,
        after: Option<i64>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<HistoryPage, ApiError> {
        self.store.can_read(&p.workspace, channel, &p.user).await?;
        Ok(self.store.history(&p.workspace, channel, &p.user, after, before, limit).await?)
    }

    /// Attachments need object storage and stay within the workspace's count limit.
    async fn check_attachments(&self, p: &Principal, n: usize) -> Result<(), ApiError> {
        self.objects()?;
        let max = self.file_limits(&p.workspace).await?.max_per_message;
        if n > max.max(0) as usize {
            return Err(ApiError::too_large(format!("a message has at most {max} files here; this one has {n}")));
        }
        Ok(())
    }

    /// `@here` and `@channel` in large channels are for owners and admins only.
    async fn check_broadcast(&self, p: &Principal, channel: &ChannelId, text: &str) -> Result<(), ApiError> {
        if !crate::mentions::broadcasts(text) {
            return Ok(());
        }
        let max = self.limits.broadcast_mention_max_members;
        if self.store.member_count(&p.workspace, channel).await? <= max
            || authz::role(&self.store, &p.workspace, &p.user).await?.moderates()
        {
            return Ok(());
        }
        Err(ApiError::forbidden(format!("@here and @channel are for channels of at most {max} members (owners and admins excepted)")))
    }

    /// Counts a change request by kind and outcome, and hands an applied one on for publishing.
    pub(super) fn committed(&self, ws: &WorkspaceName, kind: &'static str, r: Result<Change, ApiError>) -> ChangeResult {
        let result = match &r {
            Ok(Change::Applied(_)) => "ok",
            Ok(Change::Noop) => "noop",
            Err(e) => e.code.as_str(),
        };
        metrics::global().changes.get_or_create(&metrics::ChangeLabel { kind, result }).inc();
        let change = r?;
        let events = match &change {
            Change::Applied(a) => vec![(**a).clone()],
            Change::Noop => Vec::new(),
        };
        Ok(Committed::new(self, ws, change, events))
    }
}
