//! The error codes shared by the WebSocket protocol and the REST API (docs/protocol.md).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    RateLimited,
    TooLarge,
    Conflict,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 9] = [
        Self::BadRequest,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::RateLimited,
        Self::TooLarge,
        Self::Conflict,
        Self::Unavailable,
        Self::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::RateLimited => "rate_limited",
            Self::TooLarge => "too_large",
            Self::Conflict => "conflict",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Conflict => StatusCode::CONFLICT,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error a client sees: `{"code":…,"message":…,"retry_after_ms":…}` in REST, the same fields
/// in an `error` frame over WebSocket.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// A syntax error's 0-based character offset into the request's query (`GET /v1/search`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    /// REST only: an HTTP status other than the code's own (405, 426), for the errors HTTP
    /// itself defines; the body keeps the protocol code.
    #[serde(skip)]
    status: Option<StatusCode>,
    /// REST only: the request body was not read to its end, so the connection cannot carry
    /// another request; the response says `Connection: close` (issue 7).
    #[serde(skip)]
    close: bool,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry_after_ms: None, position: None, status: None, close: false }
    }
    /// The same error answered with another HTTP status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }
    /// The same error, pointing at character `position` of the query.
    pub fn at(mut self, position: usize) -> Self {
        self.position = Some(position);
        self
    }
    /// The same error, and the connection closes after it.
    pub fn closing(mut self) -> Self {
        self.close = true;
        self
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, m)
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, m)
    }
    pub fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, m)
    }
    pub fn unavailable(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, m)
    }
    pub fn too_large(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::TooLarge, m)
    }
    /// `what` (`send`, `search`) is over its rate limit.
    pub fn rate_limited(what: &str, retry_after_ms: u64) -> Self {
        Self { retry_after_ms: Some(retry_after_ms), ..Self::new(ErrorCode::RateLimited, format!("{what} rate limit exceeded")) }
    }
}

/// SQLSTATE class 22, "data exception": a value Postgres cannot take (a NUL byte in text, a
/// number out of range). Edge validation refuses these first; this is the net behind it, so a
/// client's input can never count as a server error and page on-call (issue 7).
const SQLSTATE_DATA_EXCEPTION: &str = "22";

/// Storage failures are the server's problem: the client sees `unavailable` (retry) and the
/// detail goes to the log, never to the client. Values the database refuses came from the
/// client: `bad_request`.
impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(d) = &e {
            if d.code().is_some_and(|c| c.starts_with(SQLSTATE_DATA_EXCEPTION)) {
                tracing::info!(error = %e, "postgres refused a client value");
                return Self::bad_request("a value in the request cannot be stored");
            }
        }
        tracing::warn!(error = %e, "postgres error");
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => Self::unavailable("database unavailable, retry"),
            _ => Self::new(ErrorCode::Internal, "internal error"),
        }
    }
}

impl ApiError {
    /// The REST response, not counted in `palaver_errors_total` (for answers that have their
    /// own metric, such as connections refused at the cap).
    pub fn response(&self) -> Response {
        let mut resp = (self.status.unwrap_or(self.code.status()), axum::Json(&self)).into_response();
        if let Some(ms) = self.retry_after_ms {
            let secs = ms.div_ceil(1000).max(1);
            resp.headers_mut().insert("retry-after", secs.into());
        }
        if self.close {
            resp.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        }
        resp
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        crate::metrics::global().errors.get_or_create(&crate::metrics::CodeLabel { code: self.code.as_str() }).inc();
        self.response()
    }
}
