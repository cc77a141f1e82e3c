//! `GET /v1/presence?users=a,b`: the status of up to 500 users.

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::ApiResult;
use crate::error::ApiError;
use crate::gateway::extract::ApiQuery;
use crate::gateway::{Auth, Shared};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceQuery {
    users: String,
}

pub async fn get(State(st): State<Shared>, Auth(p): Auth, ApiQuery(q): ApiQuery<PresenceQuery>) -> ApiResult<impl IntoResponse> {
    let users: Vec<String> = q.users.split(',').filter(|u| !u.is_empty()).map(str::to_string).collect();
    if users.is_empty() {
        return Err(ApiError::bad_request("users: one or more user ids, comma-separated"));
    }
    Ok(Json(json!({ "presence": st.domain.presence_of(&p, &users).await? })))
}
