//! `PUT|DELETE /v1/channels/{id}/messages/{msg}/reactions/{emoji}`: one user's reaction.

use axum::extract::State;
use axum::response::IntoResponse;

use super::{change_reply, ApiResult};
use crate::gateway::extract::ApiPath;
use crate::gateway::{Auth, Shared};
use crate::ids::{ChannelId, Emoji, MessageId};

type Path = ApiPath<(ChannelId, MessageId, Emoji)>;

pub async fn put(State(st): State<Shared>, Auth(p): Auth, ApiPath((id, msg, emoji)): Path) -> ApiResult<impl IntoResponse> {
    let change = st.domain.react(&p, &id, &msg, &emoji).await?;
    let reply = change_reply(&id, &msg, &change.value);
    change.publish().await;
    Ok(reply)
}

pub async fn delete(State(st): State<Shared>, Auth(p): Auth, ApiPath((id, msg, emoji)): Path) -> ApiResult<impl IntoResponse> {
    let change = st.domain.unreact(&p, &id, &msg, &emoji).await?;
    let reply = change_reply(&id, &msg, &change.value);
    change.publish().await;
    Ok(reply)
}
