//! `/v1/channels/{id}/messages[/{msg}[/edits]]`: send, edit, delete, edit history.

use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{body, change_reply, ApiResult};
use crate::domain::messages::{validate_send, Send};
use crate::gateway::extract::ApiPath;
use crate::gateway::{Auth, Shared};
use crate::ids::{ChannelId, FileId, MessageId};
use crate::metrics;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    cmid: String,
    text: String,
    #[serde(default)]
    thread: Option<MessageId>,
    #[serde(default)]
    also_channel: bool,
    #[serde(default)]
    files: Vec<FileId>,
}

pub async fn post(
    State(st): State<Shared>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<ChannelId>,
    req: Result<Json<PostMessage>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let req = body(req)?;
    let started = Instant::now();
    let send = Send { cmid: req.cmid, text: req.text, thread: req.thread, also_channel: req.also_channel, files: req.files };
    validate_send(&st.cfg.limits, &send)?;
    st.rest_limits.take(&format!("{}/{}", p.workspace, p.user))?;
    let sent = st.domain.send(&p, &id, send).await?;
    metrics::global().ack_latency.observe(started.elapsed().as_secs_f64());
    let e = &sent.value.event;
    let status = if sent.value.outbox_id.is_some() { StatusCode::CREATED } else { StatusCode::OK };
    let reply = (status, Json(json!({"channel": e.channel, "seq": e.seq, "id": e.id, "ts": e.ts}))).into_response();
    sent.publish().await;
    Ok(reply)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditMessage {
    text: String,
}

pub async fn edit(
    State(st): State<Shared>,
    Auth(p): Auth,
    ApiPath((id, msg)): ApiPath<(ChannelId, MessageId)>,
    req: Result<Json<EditMessage>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let text = body(req)?.text;
    let change = st.domain.edit(&p, &id, &msg, &text).await?;
    let reply = change_reply(&id, &msg, &change.value);
    change.publish().await;
    Ok(reply)
}

pub async fn delete(
    State(st): State<Shared>,
    Auth(p): Auth,
    ApiPath((id, msg)): ApiPath<(ChannelId, MessageId)>,
) -> ApiResult<impl IntoResponse> {
    let change = st.domain.delete(&p, &id, &msg).await?;
    let reply = change_reply(&id, &msg, &change.value);
    change.publish().await;
    Ok(reply)
}

pub async fn edits(
    State(st): State<Shared>,
    Auth(p): Auth,
    ApiPath((id, msg)): ApiPath<(ChannelId, MessageId)>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(json!({ "edits": st.domain.edits(&p, &id, &msg).await? })))
}
