//! HTTP surface of palaverd: the WebSocket endpoint, the REST API, health and metrics.
//!
//! Owns authentication of requests, input validation and limits, and turning store results into
//! protocol frames and JSON. It must not hold ordering state (the fan-out does) nor publish
//! anything before the store has committed it.

mod extract;
pub mod forwarded;
pub mod listener;
pub mod origin;
mod rate;
mod rest;
mod web;
mod ws;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::Router;
use fred::prelude::*;
use rdkafka::producer::{FutureProducer, Producer};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::auth::{Principal, Verifier};
use crate::config::Config;
use crate::cursors::Cursors;
use crate::domain::Domain;
use crate::error::ApiError;
use crate::fanout::Fanout;
use crate::metrics::{self, RouteLabel};
use crate::publish::Publisher;
use crate::store::Store;
use crate::workspaces::Workspaces;

pub use rate::{Limiter, TokenBucket};

pub struct AppState {
    pub cfg: Config,
    /// The feature rules both transports call.
    pub domain: Domain,
    pub store: Store,
    pub redis: Client,
    pub producer: FutureProducer,
    pub publisher: Publisher,
    pub fanout: Fanout,
    pub cursors: Cursors,
    pub presence: crate::presence::Presence,
    pub workspaces: Workspaces,
    pub verifier: Verifier,
    /// Cancelled on SIGTERM: connections close with "going away" and clients resume elsewhere.
    pub shutdown: CancellationToken,
    pub next_conn: AtomicU64,
    pub rest_limits: rate::Limiter,
    /// `GET /v1/search` per user (PALAVER_SEARCH_RATE_PER_MINUTE).
    pub search_limits: rate::Limiter,
    /// `POST /v1/files` per user (PALAVER_FILE_UPLOADS_PER_MINUTE).
    pub upload_limits: rate::Limiter,
    /// Users this pod has already ensured exist: creating a user (and its auto-joins) happens
    /// once, so later requests skip that write.
    pub known_users: std::sync::Mutex<std::collections::HashSet<(palaver_crds::WorkspaceName, String, crate::auth::Profile)>>,
}

/// Users remembered per pod at most; beyond it the set starts over (it is only a shortcut).
const KNOWN_USERS_MAX: usize = 100_000;

pub type Shared = Arc<AppState>;

/// Every route; behind `PALAVER_PATH_PREFIX`, also under that prefix (a proxy forwarding
/// `/chat/v1/ws` unchanged reaches `/v1/ws`).
pub fn router(state: Shared) -> Router {
    let prefix = state.cfg.http.path_prefix.clone().filter(|p| !p.is_empty());
    let routes = routes(state);
    match prefix {
        None => routes,
        Some(prefix) => {
            // `/chat` → `/chat/`: the web app's page links its files relatively, which from
            // `/chat` would leave the prefix the proxy routes.
            let slash = format!("{prefix}/");
            let to_slash = get(move |uri: axum::http::Uri| async move {
                let to = match uri.query() {
                    Some(q) => format!("{slash}?{q}"),
                    None => slash,
                };
                axum::response::Redirect::permanent(&to)
            });
            Router::new()
                .route(&prefix.clone(), to_slash)
                .fallback_service(routes.map_request(move |req: Request| strip_prefix(&prefix, req)))
        }
    }
}

/// `req` with `prefix` taken off its path, when its path is `prefix` or below it.
fn strip_prefix(prefix: &str, mut req: Request) -> Request {
    let uri = req.uri();
    let Some(rest) = uri.path().strip_prefix(prefix).filter(|r| r.is_empty() || r.starts_with('/')) else { return req };
    let path = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

fn routes(state: Shared) -> Router {
    let body_limit = state.cfg.limits.max_frame_bytes;
    let mut router = Router::new();
    if state.cfg.auth.dev_secret().is_some() {
        router = router.route("/v1/dev", get(rest::dev::info)).route("/v1/dev/token", post(rest::dev::token));
    }
    router
        .route("/", get(web::index))
        .route("/index.html", get(web::index))
        .route("/assets/{file}", get(web::asset))
        .route("/v1/ws", get(ws::upgrade))
        .route("/v1/channels", get(rest::channels::list_or_browse).post(rest::channels::create))
        .route("/v1/channels/{id}", get(rest::channels::get).patch(rest::channels::update))
        .route("/v1/channels/{id}/join", post(rest::channels::join))
        .route("/v1/channels/{id}/leave", post(rest::channels::leave))
        .route("/v1/channels/{id}/members", get(rest::channels::members).post(rest::channels::add_member))
        .route("/v1/channels/{id}/members/{user}", delete(rest::channels::remove_member))
        .route("/v1/channels/{id}/events", get(rest::channels::history))
        .route("/v1/channels/{id}/reads", get(rest::channels::reads))
        .route("/v1/channels/{id}/messages", post(rest::messages::post))
        .route("/v1/channels/{id}/messages/{msg}", patch(rest::messages::edit).delete(rest::messages::delete))
        .route("/v1/channels/{id}/messages/{msg}/edits", get(rest::messages::edits))
        .route("/v1/channels/{id}/messages/{msg}/reactions/{emoji}", put(rest::reactions::put).delete(rest::reactions::delete))
        .route("/v1/channels/{id}/threads/{root}", get(rest::threads::page))
        .route("/v1/channels/{id}/threads/{root}/follow", put(rest::threads::follow).delete(rest::threads::unfollow))
        .route("/v1/channels/{id}/threads/{root}/read", post(rest::threads::read))
        .route("/v1/threads", get(rest::threads::followed))
        .route("/v1/presence", get(rest::presence::get))
        .route("/v1/users", get(rest::users::list))
        .route("/v1/users/{id}", get(rest::users::get))
        .route("/v1/dms", post(rest::dms::open))
        .route("/v1/search", get(rest::search::search))
        .route("/v1/files", post(rest::files::create))
        .route("/v1/files/{id}", get(rest::files::download))
        .route("/v1/files/{id}/complete", post(rest::files::complete))
        .route("/v1/files/{id}/thumbnail", get(rest::files::thumbnail))
        .route("/v1/notifications", get(rest::notifications::list))
        .route("/v1/notifications/read", post(rest::notifications::read))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(|| async {
                ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics::global().encode())
            }),
        )
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::bad_request("method not allowed on this route").with_status(StatusCode::METHOD_NOT_ALLOWED)
        })
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(track_http))
        .with_state(state)
}

async fn track_http(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let start = Instant::now();
    let resp = next.run(req).await;
    let m = metrics::global();
    m.http_requests.get_or_create(&RouteLabel { route, status: resp.status().as_u16() }).inc();
    m.http_duration.observe(start.elapsed().as_secs_f64());
    resp
}

/// Ready only while Postgres, Redis and Kafka all answer; a load balancer then sends clients
/// to pods that can serve them.
async fn readyz(State(st): State<Shared>) -> Response {
    let timeout = Duration::from_secs(2);
    let pg =
        tokio::time::timeout(timeout, st.store.ping()).await.map_err(|_| "timeout".to_string()).and_then(|r| r.map_err(|e| e.to_string()));
    let redis = if st.redis.is_connected() {
        tokio::time::timeout(timeout, st.redis.ping::<String>(None))
            .await
            .map_err(|_| "timeout".to_string())
            .and_then(|r| r.map(|_| ()).map_err(|e| e.to_string()))
    } else {
        Err("not connected".into())
    };
    let producer = st.producer.clone();
    let kafka = tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, timeout).map(|_| ()).map_err(|e| e.to_string()))
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    let body = serde_json::json!({
        "postgres": pg.as_ref().err(),
        "redis": redis.as_ref().err(),
        "kafka": kafka.as_ref().err(),
    });
    let status = if pg.is_ok() && redis.is_ok() && kafka.is_ok() && !st.shutdown.is_cancelled() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// An authenticated caller: token verified, workspace active, user known to the workspace.
pub struct Auth(pub Principal);

impl FromRequestParts<Shared> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &Shared) -> Result<Self, Self::Rejection> {
        let header =
            parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let query_token = parts.uri.query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
        let token = header.or(query_token).ok_or_else(|| ApiError::unauthorized(crate::auth::AuthError::Missing.to_string()))?;
        let principal = st.verifier.verify(token).map_err(|e| ApiError::unauthorized(e.to_string()))?;
        if !st.workspaces.is_active(&principal.workspace).await? {
            return Err(ApiError::unauthorized(format!("workspace {} does not exist or is disabled", principal.workspace)));
        }
        // A changed name or picture in the token is a new key: it is stored once.
        let key = (principal.workspace.clone(), principal.user.clone(), principal.profile.clone());
        if !st.known_users.lock().expect("lock").contains(&key) {
            let joined = st.store.ensure_user(&principal.workspace, &principal.user, &principal.profile).await?;
            for a in &joined {
                st.publisher.publish(&principal.workspace, a).await;
            }
            let mut known = st.known_users.lock().expect("lock");
            if known.len() >= KNOWN_USERS_MAX {
                known.clear();
            }
            known.insert(key);
        }
        Ok(Auth(principal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripped(prefix: &str, uri: &str) -> String {
        let req = Request::builder().uri(uri).body(axum::body::Body::empty()).unwrap();
        strip_prefix(prefix, req).uri().to_string()
    }

    #[test]
    fn the_path_prefix_comes_off_only_at_a_segment_boundary() {
        assert_eq!(stripped("/chat", "/chat/v1/ws?token=t"), "/v1/ws?token=t");
        assert_eq!(stripped("/chat", "/chat"), "/");
        assert_eq!(stripped("/chat", "/v1/ws"), "/v1/ws", "unprefixed requests (probes, in-cluster clients) pass");
        assert_eq!(stripped("/chat", "/chatter/v1/ws"), "/chatter/v1/ws");
    }
}
