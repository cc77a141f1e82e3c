//! `POST /v1/dms`: open (or find) a direct message channel.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;

use super::channels::UserRef;
use super::{body, ApiResult};
use crate::domain::channels::user_ref;
use crate::gateway::{Auth, Shared};

pub async fn open(State(st): State<Shared>, Auth(p): Auth, req: Result<Json<UserRef>, JsonRejection>) -> ApiResult<impl IntoResponse> {
    let user = user_ref(body(req)?.user)?;
    let info = st.domain.open_dm(&p, &user).await?;
    let reply = Json(&info.value).into_response();
    info.publish().await;
    Ok(reply)
}
