//! `POST /v1/dms`: open (or find) a DM (`{"user": …}`) or a group DM (`{"users": […]}`, 2 to 8
//! others; the caller is added).

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;

use super::{body, ApiResult};
use crate::error::ApiError;
use crate::gateway::{Auth, Shared};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenDm {
    user: Option<String>,
    users: Option<Vec<String>>,
}

pub async fn open(State(st): State<Shared>, Auth(p): Auth, req: Result<Json<OpenDm>, JsonRejection>) -> ApiResult<impl IntoResponse> {
    let others = match body(req)? {
        OpenDm { user: Some(u), users: None } => vec![u],
        OpenDm { user: None, users: Some(us) } => us,
        _ => return Err(ApiError::bad_request("send either {\"user\": …} or {\"users\": […]}")),
    };
    let info = st.domain.open_dm(&p, others).await?;
    let reply = Json(&info.value).into_response();
    info.publish().await;
    Ok(reply)
}
