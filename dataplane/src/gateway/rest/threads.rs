//! `/v1/channels/{id}/threads/{root}[/follow|/read]` and `/v1/threads`: thread pages, following,
//! thread read cursors and the followed-threads list.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{body, page_limit, ApiResult, PageQuery};
use crate::gateway::extract::{ApiPath, ApiQuery};
use crate::gateway::{Auth, Shared};
use crate::ids::{ChannelId, MessageId};
use crate::store::ThreadPage;

type ThreadPath = ApiPath<(ChannelId, MessageId)>;

pub async fn page(
    State(st): State<Shared>,
    Auth(p): Auth,
    ApiPath((id, root)): ThreadPath,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<ThreadPage>> {
    let limit = page_limit(q.limit, st.cfg.limits.history_max)?;
    Ok(Json(st.domain.thread(&p, &id, &root, q.cursor.as_deref(), limit).await?))
}

pub async fn follow(State(st): State<Shared>, Auth(p): Auth, ApiPath((id, root)): ThreadPath) -> ApiResult<impl IntoResponse> {
    st.domain.follow(&p, &id, &root, true).await?;
    Ok(Json(json!({"channel": id, "root": root, "following": true})))
}

pub async fn unfollow(State(st): State<Shared>, Auth(p): Auth, ApiPath((id, root)): ThreadPath) -> ApiResult<impl IntoResponse> {
    st.domain.follow(&p, &id, &root, false).await?;
    Ok(Json(json!({"channel": id, "root": root, "following": false})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadThread {
    seq: i64,
}

/// The REST form of the `read` frame with `thread`.
pub async fn read(
    State(st): State<Shared>,
    Auth(p): Auth,
    ApiPath((id, root)): ThreadPath,
    req: Result<Json<ReadThread>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let seq = body(req)?.seq;
    st.domain.read_thread(&p, &id, &root, seq).await?;
    Ok(Json(json!({"channel": id, "root": root})))
}

/// The threads the caller follows, with unread reply counts.
pub async fn followed(State(st): State<Shared>, Auth(p): Auth, ApiQuery(q): ApiQuery<PageQuery>) -> ApiResult<impl IntoResponse> {
    let limit = page_limit(q.limit, st.cfg.limits.history_max)?;
    let (threads, next_cursor) = st.domain.followed_threads(&p, q.cursor.as_deref(), limit).await?;
    Ok(Json(json!({"threads": threads, "next_cursor": next_cursor})))
}
