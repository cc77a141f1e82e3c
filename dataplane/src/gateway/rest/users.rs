//! `GET /v1/users` (paged, prefix search) and `GET /v1/users/{id}`.

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{page_limit, ApiResult};
use crate::gateway::extract::{ApiPath, ApiQuery};
use crate::gateway::{Auth, Shared};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeopleQuery {
    q: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

pub async fn list(State(st): State<Shared>, Auth(p): Auth, ApiQuery(q): ApiQuery<PeopleQuery>) -> ApiResult<impl IntoResponse> {
    let limit = page_limit(q.limit, st.cfg.limits.history_max)?;
    let (users, next_cursor) = st.domain.people(&p, q.q.as_deref(), q.cursor.as_deref(), limit).await?;
    Ok(Json(json!({ "users": users, "next_cursor": next_cursor })))
}

pub async fn get(State(st): State<Shared>, Auth(p): Auth, ApiPath(id): ApiPath<String>) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.domain.person(&p, &id).await?))
}
