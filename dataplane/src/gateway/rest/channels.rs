//! `/v1/channels`, `/v1/channels/{id}/join|leave|members|events`: channels, membership, history.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{body, page_limit, ApiResult, PageQuery};
use crate::domain::channels::user_ref;
use crate::error::ApiError;
use crate::gateway::extract::{ApiPath, ApiQuery};
use crate::gateway::{Auth, Shared};
use crate::ids::ChannelId;
use crate::store::{Change, ChannelKind, ChannelPatch, HistoryPage};

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

pub async fn create(
    State(st): State<Shared>,
    Auth(p): Auth,
    req: Result<Json<CreateChannel>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let req = body(req)?;
    let info = st.domain.create_channel(&p, &req.name, req.kind).await?;
    let reply = (StatusCode::CREATED, Json(&info.value)).into_response();
    info.publish().await;
    Ok(reply)
}

pub async fn join(State(st): State<Shared>, Auth(p): Auth, ApiPath(id): ApiPath<ChannelId>) -> ApiResult<impl IntoResponse> {
    let joined = st.domain.add_member(&p, &id, &p.user).await?;
    let reply = Json(json!({ "channel": id, "joined": joined.value }));
    joined.publish().await;
    Ok(reply)
}

pub async fn leave(State(st): State<Shared>, Auth(p): Auth, ApiPath(id): ApiPath<ChannelId>) -> ApiResult<impl IntoResponse> {
    let left = st.domain.leave(&p, &id).await?;
    let reply = Json(json!({ "channel": id, "left": left.value }));
    left.publish().await;
    Ok(reply)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRef {
    user: String,
}

pub async fn add_member(
    State(st): State<Shared>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<ChannelId>,
    req: Result<Json<UserRef>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let user = user_ref(body(req)?.user)?;
    let added = st.domain.add_member(&p, &id, &user).await?;
    let reply = Json(json!({ "channel": id, "user": user, "added": added.value }));
    added.publish().await;
    Ok(reply)
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
    Ok(Json(st.domain.history(&p, &id, q.after, q.before, limit).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `public`: the channel browser; absent: the caller's channels.
    scope: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/channels`: the caller's channels, or with `scope=public` every public channel.
pub async fn list_or_browse(State(st): State<Shared>, Auth(p): Auth, ApiQuery(q): ApiQuery<ListQuery>) -> ApiResult<impl IntoResponse> {
    match q.scope.as_deref() {
        None => {
            if q.cursor.is_some() || q.limit.is_some() {
                return Err(ApiError::bad_request("cursor and limit page scope=public; the caller's channels come in one list"));
            }
            Ok(Json(json!({ "channels": st.domain.my_channels(&p).await? })))
        }
        Some("public") => {
            let limit = page_limit(q.limit, st.cfg.limits.history_max)?;
            let (channels, next_cursor) = st.domain.browse_channels(&p, q.cursor.as_deref(), limit).await?;
            Ok(Json(json!({ "channels": channels, "next_cursor": next_cursor })))
        }
        Some(other) => Err(ApiError::bad_request(format!("scope must be public (or absent), not {other:?}"))),
    }
}

/// Who has read the channel up to which seq (channels of at most PALAVER_RECEIPTS_MAX_MEMBERS).
pub async fn reads(State(st): State<Shared>, Auth(p): Auth, ApiPath(id): ApiPath<ChannelId>) -> ApiResult<impl IntoResponse> {
    Ok(Json(json!({ "channel": id, "reads": st.domain.reads(&p, &id).await? })))
}

pub async fn get(State(st): State<Shared>, Auth(p): Auth, ApiPath(id): ApiPath<ChannelId>) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.domain.channel(&p, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateChannel {
    name: Option<String>,
    topic: Option<String>,
    purpose: Option<String>,
    archived: Option<bool>,
}

pub async fn update(
    State(st): State<Shared>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<ChannelId>,
    req: Result<Json<UpdateChannel>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let r = body(req)?;
    let patch = ChannelPatch { name: r.name, topic: r.topic, purpose: r.purpose, archived: r.archived };
    let change = st.domain.update_channel(&p, &id, patch).await?;
    let reply = match &change.value {
        Change::Applied(a) => json!({"channel": id, "seq": a.event.seq, "ts": a.event.ts, "changes": a.event.changes}),
        Change::Noop => json!({"channel": id, "noop": true}),
    };
    change.publish().await;
    Ok(Json(reply))
}

pub async fn members(
    State(st): State<Shared>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<ChannelId>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<impl IntoResponse> {
    let limit = page_limit(q.limit, st.cfg.limits.history_max)?;
    let (members, next_cursor) = st.domain.members(&p, &id, q.cursor.as_deref(), limit).await?;
    Ok(Json(json!({ "channel": id, "members": members, "next_cursor": next_cursor })))
}

pub async fn remove_member(
    State(st): State<Shared>,
    Auth(p): Auth,
    ApiPath((id, user)): ApiPath<(ChannelId, String)>,
) -> ApiResult<impl IntoResponse> {
    let user = user_ref(user)?;
    let removed = st.domain.remove_member(&p, &id, &user).await?;
    let reply = Json(json!({ "channel": id, "user": user, "removed": removed.value }));
    removed.publish().await;
    Ok(reply)
}
