//! `GET /v1/search`: the search language over the channels the caller may read (issue 11).

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;

use super::{page_limit_or, ApiResult};
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
    let limit = page_limit_or(q.limit, DEFAULT_LIMIT, st.cfg.limits.search_limit_max)?;
    if let Err(e) = st.search_limits.take(&format!("{}/{}", p.workspace, p.user)) {
        metrics::global().searches.get_or_create(&ResultLabel { result: "rate_limited" }).inc();
        return Err(e);
    }
    Ok(Json(st.domain.search(&p, &q.q, q.cursor.as_deref(), limit).await?))
}
