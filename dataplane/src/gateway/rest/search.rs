//! `GET /v1/search`: the search language over the channels the caller may read (issue 11).

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;

use super::ApiResult;
use crate::error::ApiError;
use crate::gateway::extract::ApiQuery;
use crate::gateway::{Auth, Shared};
use crate::metrics::{self, ResultLabel};

/// Results per page unless `limit` says otherwise.
const DEFAULT_LIMIT: i64 = 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    q: String,
    cursor: Option<String>,
    limit: Option<i64>,
}

pub async fn search(State(st): State<Shared>, Auth(p): Auth, ApiQuery(q): ApiQuery<SearchQuery>) -> ApiResult<impl IntoResponse> {
    let max = st.cfg.limits.search_limit_max;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be 1..={max}")));
    }
    if let Err(mut e) = st.search_limits.take(&format!("{}/{}", p.workspace, p.user)) {
        metrics::global().searches.get_or_create(&ResultLabel { result: "rate_limited" }).inc();
        e.message = "search rate limit exceeded".into();
        return Err(e);
    }
    Ok(Json(st.domain.search(&p, &q.q, q.cursor.as_deref(), limit).await?))
}
