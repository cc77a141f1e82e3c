//! REST routes under `/v1` (docs/openapi.yaml), one file per resource. Each handler extracts
//! and validates its input, calls one domain function, replies, then publishes what the domain
//! committed. It must not hold rules of its own: those are in `crate::domain`.

pub mod channels;
pub mod dev;
pub mod dms;
pub mod files;
pub mod messages;
pub mod notifications;
pub mod presence;
pub mod reactions;
pub mod search;
pub mod threads;
pub mod users;

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::store::Change;

pub(super) type ApiResult<T> = Result<T, ApiError>;

/// `?cursor=&limit=`: the paging of every list added after history (issue 9).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PageQuery {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

/// A JSON body, or the documented error for a bad one.
pub(super) fn body<T>(r: Result<Json<T>, JsonRejection>) -> ApiResult<T> {
    r.map(|Json(v)| v).map_err(|e| match e {
        // The body was cut off at the limit, unread: the connection cannot be reused.
        JsonRejection::BytesRejection(_) => ApiError::too_large(e.body_text()).closing(),
        _ => ApiError::bad_request(e.body_text()),
    })
}

/// A page size: 50 by default, 1 to `max` when given.
pub(super) fn page_limit(limit: Option<i64>, max: i64) -> ApiResult<i64> {
    page_limit_or(limit, 50, max)
}

/// [`page_limit`] with another default than 50.
pub(super) fn page_limit_or(limit: Option<i64>, default: i64, max: i64) -> ApiResult<i64> {
    let limit = limit.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_request(format!("limit must be 1..={max}")))
    }
}

/// The answer to a change of a message (edit, delete, reaction): like the WebSocket `ack`,
/// with the change event's seq, or `noop` when nothing changed.
pub(super) fn change_reply(channel: &str, message: &str, change: &Change) -> Response {
    let body = match change {
        Change::Applied(a) => json!({"channel": channel, "id": message, "seq": a.event.seq, "ts": a.event.ts}),
        Change::Noop => json!({"channel": channel, "id": message, "noop": true}),
    };
    (StatusCode::OK, Json(body)).into_response()
}
