//! `/v1/notifications`, `/v1/notifications/read`: the inbox.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{body, page_limit, ApiResult};
use crate::domain::notifications::MarkRead;
use crate::gateway::extract::ApiQuery;
use crate::gateway::{Auth, Shared};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsQuery {
    #[serde(default)]
    unread: bool,
    limit: Option<i64>,
}

/// The user's inbox (mentions and DMs that arrived while offline), newest first.
pub async fn list(State(st): State<Shared>, Auth(p): Auth, ApiQuery(q): ApiQuery<NotificationsQuery>) -> ApiResult<impl IntoResponse> {
    let limit = page_limit(q.limit, st.cfg.limits.history_max)?;
    Ok(Json(json!({ "notifications": st.domain.notifications(&p, q.unread, limit).await? })))
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
pub async fn read(
    State(st): State<Shared>,
    Auth(p): Auth,
    req: Result<Json<ReadNotifications>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let req = body(req)?;
    let n = st.domain.mark_notifications_read(&p, MarkRead::from_request(req.ids, req.all)?).await?;
    Ok(Json(json!({ "marked": n })))
}
