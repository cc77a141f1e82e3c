//! Request extractors whose rejections are the documented JSON error body, never axum's plain
//! text (issue 7): path ids and query strings.
//!
//! Owns turning a malformed request part into `bad_request`. It must not look anything up:
//! whether an id exists is the store's answer.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A path parameter (e.g. a [`crate::ids::ChannelId`]), validated by its type.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state).await.map(|Path(v)| Self(v)).map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// A query string, without its `token` parameter: that is the `?token=` form of
/// authentication, which [`super::Auth`] reads, so query types that refuse unknown
/// parameters still accept it.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let rest: Vec<&str> = query.split('&').filter(|kv| kv.split('=').next() != Some("token")).collect();
        serde_urlencoded::from_str(&rest.join("&")).map(Self).map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
    }
}
