//! Development sign-in (issue 10): `GET /v1/dev` lists the workspaces and `POST /v1/dev/token`
//! mints a token for any user of one, so the web app can be tried with a user name and nothing
//! else. The routes exist only when palaverd has a development secret
//! (`PALAVER_DEV_JWT_SECRET`); without one they are unknown routes (404) like any other.
//!
//! It must not be reachable in production: that is the same rule as the secret itself (whoever
//! holds it can sign in as anyone), which is why the routes hang on it and nothing else.

use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use palaver_crds::WorkspaceName;
use serde::Deserialize;
use serde_json::json;

use super::{body, ApiResult};
use crate::auth::{mint_dev_token_named, valid_user_id, MAX_NAME_CHARS};
use crate::error::ApiError;
use crate::gateway::Shared;

/// How long a dev sign-in lasts: a working day, after which the web app asks again.
pub const DEV_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

pub async fn info(State(st): State<Shared>) -> ApiResult<impl IntoResponse> {
    st.workspaces.refresh().await?;
    let workspaces: Vec<String> = st.workspaces.list().iter().map(ToString::to_string).collect();
    Ok(Json(json!({ "workspaces": workspaces })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    workspace: String,
    user: String,
    name: Option<String>,
}

pub async fn token(State(st): State<Shared>, req: Result<Json<TokenRequest>, JsonRejection>) -> ApiResult<impl IntoResponse> {
    let req = body(req)?;
    let workspace = WorkspaceName::new(req.workspace).map_err(|e| ApiError::bad_request(format!("workspace: {e}")))?;
    if !valid_user_id(&req.user) {
        return Err(ApiError::bad_request("user: 1 to 64 of letters, digits, - _ . @"));
    }
    let name = req.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
    if name.is_some_and(|n| n.chars().count() > MAX_NAME_CHARS || n.chars().any(char::is_control)) {
        return Err(ApiError::bad_request(format!("name: at most {MAX_NAME_CHARS} characters, no control characters")));
    }
    if !st.workspaces.is_active(&workspace).await? {
        return Err(ApiError::not_found(format!("workspace {workspace} does not exist or is disabled")));
    }
    let token =
        mint_dev_token_named(&st.cfg.auth, &workspace, &req.user, name, DEV_TOKEN_TTL).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let expires_at = chrono::Utc::now() + DEV_TOKEN_TTL;
    Ok(Json(json!({
        "token": token,
        "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "workspace": workspace.to_string(),
        "user": req.user,
    })))
}
