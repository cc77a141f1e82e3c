//! `/v1/files[/{id}[/complete|/thumbnail]]`: attachments (issue 11). Upload URLs, completion
//! and download links; the bytes go between the client and object storage directly.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{body, ApiResult};
use crate::domain::files::{Link, NewUpload};
use crate::gateway::extract::{ApiPath, ApiQuery};
use crate::gateway::{Auth, Shared};
use crate::ids::{ChannelId, FileId};
use crate::metrics::{self, ChangeLabel};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostFile {
    channel: ChannelId,
    name: String,
    size: i64,
    content_type: String,
}

pub async fn create(State(st): State<Shared>, Auth(p): Auth, req: Result<Json<PostFile>, JsonRejection>) -> ApiResult<impl IntoResponse> {
    let req = body(req)?;
    if let Err(e) = st.upload_limits.take(&format!("{}/{}", p.workspace, p.user)) {
        metrics::global().files.get_or_create(&ChangeLabel { kind: "upload", result: "rate_limited" }).inc();
        return Err(e);
    }
    let new = NewUpload { channel: req.channel, name: req.name, size: req.size, content_type: req.content_type };
    Ok((StatusCode::CREATED, Json(st.domain.create_upload(&p, new).await?)))
}

pub async fn complete(State(st): State<Shared>, Auth(p): Auth, ApiPath(id): ApiPath<FileId>) -> ApiResult<impl IntoResponse> {
    Ok(Json(st.domain.complete_upload(&p, &id).await?))
}

/// `?redirect=false`: the link as JSON, for clients that cannot read a redirect's target
/// (a browser's `fetch` follows it, or hides it).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkQuery {
    #[serde(default = "yes")]
    redirect: bool,
}

fn yes() -> bool {
    true
}

/// A download link of the file, or of its thumbnail, as a redirect or as JSON.
async fn link(st: &Shared, p: &crate::auth::Principal, id: &FileId, q: &LinkQuery, thumbnail: bool) -> ApiResult<Response> {
    let link: Link = st.domain.file_link(p, id, thumbnail).await?;
    Ok(if q.redirect {
        // Not cached: the target expires, and another reader must be checked again.
        (StatusCode::FOUND, [(header::LOCATION, link.url.clone()), (header::CACHE_CONTROL, "no-store".into())], Json(link)).into_response()
    } else {
        ([(header::CACHE_CONTROL, "no-store")], Json(link)).into_response()
    })
}

pub async fn download(
    State(st): State<Shared>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<FileId>,
    ApiQuery(q): ApiQuery<LinkQuery>,
) -> ApiResult<Response> {
    link(&st, &p, &id, &q, false).await
}

pub async fn thumbnail(
    State(st): State<Shared>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<FileId>,
    ApiQuery(q): ApiQuery<LinkQuery>,
) -> ApiResult<Response> {
    link(&st, &p, &id, &q, true).await
}
