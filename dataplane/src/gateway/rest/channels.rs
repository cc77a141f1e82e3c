//! `/v1/channels`, `/v1/channels/{id}/join|leave|members|events`: channels, membership, history.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{body, page_limit, ApiResult};
use crate::domain::channels::user_ref;
use crate::error::ApiError;
use crate::gateway::extract::{ApiPath, ApiQuery};
use crate::gateway::{Auth, Shared};
use crate::ids::ChannelId;
use crate::store::{ChannelKind, HistoryPage};

pub async fn list(State(st): State<Shared>, Auth(p): Auth) -> ApiResult<impl IntoResponse> {
    Ok(Json(json!({ "channels": st.domain.my_channels(&p).await? })))
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
    pub(super) user: String,
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
