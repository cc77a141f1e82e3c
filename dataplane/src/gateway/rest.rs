//! REST handlers under `/v1` (docs/openapi.yaml).

use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::extract::{ApiPath, ApiQuery};
use super::{Auth, Shared};
use crate::error::ApiError;
use crate::ids::{ChannelId, MessageId};
use crate::metrics::{self, ResultLabel};
use crate::store::{Appended, ChannelKind, HistoryPage, NewEvent};

type ApiResult<T> = Result<T, ApiError>;

fn body<T>(r: Result<Json<T>, JsonRejection>) -> ApiResult<T> {
    r.map(|Json(v)| v).map_err(|e| match e {
        // The body was cut off at the limit, unread: the connection cannot be reused.
        JsonRejection::BytesRejection(_) => ApiError::too_large(e.body_text()).closing(),
        _ => ApiError::bad_request(e.body_text()),
    })
}

/// A page size: 50 by default, 1 to `max` when given.
fn page_limit(limit: Option<i64>, max: i64) -> ApiResult<i64> {
    let limit = limit.unwrap_or(50);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_request(format!("limit must be 1..={max}")))
    }
}

pub async fn list_channels(State(st): State<Shared>, Auth(p): Auth) -> ApiResult<impl IntoResponse> {
    let fresh = st.cursors.fresh(&p.workspace, &p.user).await;
    let rows = st.store.my_channels(&p.workspace, &p.user, &fresh.read).await?;
    let channels: Vec<_> = rows
        .into_iter()
        .map(|c| json!({"id": c.id, "name": c.name, "kind": c.kind, "last_seq": c.last_seq, "read_seq": c.read_seq, "unread": c.unread, "mentions": c.mentions}))
        .collect();
    Ok(Json(json!({ "channels": channels })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    name: String,
    #[serde(default = "public")]
    kind: ChannelKind,
}

fn public() -> ChannelKind {
    ChannelKind::Public
}

pub async fn create_channel(
    State(st): State<Shared>,
    Auth(p): Auth,
    req: Result<Json<CreateChannel>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let req = body(req)?;
    if req.kind == ChannelKind::Dm {
        return Err(ApiError::bad_request("open DMs with POST /v1/dms"));
    }
    palaver_crds::validate_channel_name(&req.name).map_err(ApiError::bad_request)?;
    let (info, joined) = st.store.create_channel(&p.workspace, &p.user, &req.name, req.kind).await?;
    publish_all(&st, &p.workspace, &joined).await;
    Ok((StatusCode::CREATED, Json(info)))
}

pub async fn join(State(st): State<Shared>, Auth(p): Auth, ApiPath(id): ApiPath<ChannelId>) -> ApiResult<impl IntoResponse> {
    let joined = st.store.add_member(&p.workspace, &id, &p.user, &p.user).await?;
    publish_all(&st, &p.workspace, joined.as_slice()).await;
    Ok(Json(json!({ "channel": id, "joined": joined.is_some() })))
}

pub async fn leave(State(st): State<Shared>, Auth(p): Auth, ApiPath(id): ApiPath<ChannelId>) -> ApiResult<impl IntoResponse> {
    let left = st.store.leave(&p.workspace, &id, &p.user).await?;
    publish_all(&st, &p.workspace, left.as_slice()).await;
    Ok(Json(json!({ "channel": id, "left": left.is_some() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRef {
    user: String,
}

/// The user id of a `{"user": …}` body, validated.
fn user_ref(req: Result<Json<UserRef>, JsonRejection>) -> ApiResult<String> {
    let user = body(req)?.user;
    if crate::auth::valid_user_id(&user) {
        Ok(user)
    } else {
        Err(ApiError::bad_request("invalid user id"))
    }
}

pub async fn add_member(
    State(st): State<Shared>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<ChannelId>,
    req: Result<Json<UserRef>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let user = user_ref(req)?;
    let joined = st.store.add_member(&p.workspace, &id, &p.user, &user).await?;
    publish_all(&st, &p.workspace, joined.as_slice()).await;
    Ok(Json(json!({ "channel": id, "user": user, "added": joined.is_some() })))
}

pub async fn open_dm(State(st): State<Shared>, Auth(p): Auth, req: Result<Json<UserRef>, JsonRejection>) -> ApiResult<impl IntoResponse> {
    let user = user_ref(req)?;
    let (info, joined) = st.store.open_dm(&p.workspace, &p.user, &user).await?;
    publish_all(&st, &p.workspace, &joined).await;
    Ok(Json(info))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    after: Option<i64>,
    before: Option<i64>,
    limit: Option<i64>,
}

pub async fn history(
    State(st): State<Shared>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<ChannelId>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<HistoryPage>> {
    let limit = page_limit(q.limit, st.cfg.limits.history_max)?;
    if q.after.is_some_and(|a| a < 0) || q.before.is_some_and(|b| b < 1) {
        return Err(ApiError::bad_request("after must be >= 0 and before >= 1"));
    }
    st.store.can_read(&p.workspace, &id, &p.user).await?;
    Ok(Json(st.store.history(&p.workspace, &id, q.after, q.before, limit).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    cmid: String,
    text: String,
    #[serde(default)]
    thread: Option<MessageId>,
}

pub async fn post_message(
    State(st): State<Shared>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<ChannelId>,
    req: Result<Json<PostMessage>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let req = body(req)?;
    let started = Instant::now();
    super::ws::validate_send(&st.cfg.limits, &req.cmid, &req.text)?;
    st.rest_limits.take(&format!("{}/{}", p.workspace, p.user))?;
    let ev = NewEvent {
        kind: "message",
        user: p.user.clone(),
        cmid: Some(req.cmid),
        text: Some(req.text),
        thread: req.thread.map(MessageId::into_string),
    };
    let appended = record_send(st.store.send_message(&p.workspace, &id, ev).await)?;
    metrics::global().ack_latency.observe(started.elapsed().as_secs_f64());
    st.publisher.publish(&p.workspace, &appended).await;
    let status = if appended.outbox_id.is_some() { StatusCode::CREATED } else { StatusCode::OK };
    let e = &appended.event;
    Ok((status, Json(json!({"channel": e.channel, "seq": e.seq, "id": e.id, "ts": e.ts}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsQuery {
    #[serde(default)]
    unread: bool,
    limit: Option<i64>,
}

/// The user's inbox (mentions and DMs that arrived while offline), newest first.
pub async fn list_notifications(
    State(st): State<Shared>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<NotificationsQuery>,
) -> ApiResult<impl IntoResponse> {
    let limit = page_limit(q.limit, st.cfg.limits.history_max)?;
    let items = st.store.notifications(&p.workspace, &p.user, q.unread, limit).await?;
    Ok(Json(json!({ "notifications": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadNotifications {
    #[serde(default)]
    ids: Option<Vec<i64>>,
    #[serde(default)]
    all: bool,
}

/// Marks notifications read: `{"ids":[…]}` or `{"all":true}`.
pub async fn read_notifications(
    State(st): State<Shared>,
    Auth(p): Auth,
    req: Result<Json<ReadNotifications>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let req = body(req)?;
    let ids = match (req.ids, req.all) {
        (Some(ids), false) if !ids.is_empty() && ids.len() <= 1000 => Some(ids),
        (None, true) => None,
        _ => return Err(ApiError::bad_request("send either {\"ids\":[…]} (1 to 1000) or {\"all\":true}")),
    };
    let n = st.store.mark_notifications_read(&p.workspace, &p.user, ids.as_deref()).await?;
    Ok(Json(json!({ "marked": n })))
}

/// Counts a send by outcome (ok, duplicate, or the error code).
pub(super) fn record_send(r: Result<Appended, ApiError>) -> Result<Appended, ApiError> {
    let result = match &r {
        Ok(a) if a.outbox_id.is_some() => "ok",
        Ok(_) => "duplicate",
        Err(e) => e.code.as_str(),
    };
    metrics::global().sends.get_or_create(&ResultLabel { result }).inc();
    r
}

async fn publish_all(st: &Shared, ws: &palaver_crds::WorkspaceName, appended: &[Appended]) {
    for a in appended {
        st.publisher.publish(ws, a).await;
    }
}
