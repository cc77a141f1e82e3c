//! Prometheus metrics of the operator and its small HTTP server (`/metrics`, `/healthz`,
//! `/readyz`).
//!
//! Every name here is listed in docs/observability.md and queried by the operator dashboard and
//! alerts in charts/palaver/files. Owns no reconcile logic: controllers record into it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    pub kind: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabel {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

pub struct Metrics {
    pub reconciles: Family<KindLabel, Counter>,
    pub errors: Family<ErrorLabel, Counter>,
    pub duration: Family<KindLabel, Histogram>,
    pub ready: Family<ResourceLabel, Gauge>,
    pub leader: Gauge,
    /// Set once this replica has talked to the API server (leading or standing by).
    pub started: AtomicBool,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("palaver_operator");
        let reconciles = Family::<KindLabel, Counter>::default();
        registry.register("reconciles", "Reconciles run, by resource kind", reconciles.clone());
        let errors = Family::<ErrorLabel, Counter>::default();
        registry.register("reconcile_errors", "Reconciles that failed, by kind and condition reason", errors.clone());
        let duration = Family::<KindLabel, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.005, 2.0, 14)));
        registry.register("reconcile_duration_seconds", "Time one reconcile took", duration.clone());
        let ready = Family::<ResourceLabel, Gauge>::default();
        registry.register("resource_ready", "1 when the resource's Ready condition is True, else 0", ready.clone());
        let leader = Gauge::default();
        registry.register("leader", "1 while this replica holds the leader Lease", leader.clone());
        Self { reconciles, errors, duration, ready, leader, started: AtomicBool::new(false), registry }
    }

    pub fn observe(&self, kind: &'static str, took: Duration, error_reason: Option<&'static str>) {
        self.reconciles.get_or_create(&KindLabel { kind }).inc();
        self.duration.get_or_create(&KindLabel { kind }).observe(took.as_secs_f64());
        if let Some(reason) = error_reason {
            self.errors.get_or_create(&ErrorLabel { kind, reason }).inc();
        }
    }

    pub fn set_ready(&self, kind: &'static str, namespace: &str, name: &str, ready: bool) {
        self.ready.get_or_create(&ResourceLabel { kind, namespace: namespace.into(), name: name.into() }).set(i64::from(ready));
    }

    /// Drops the gauge of a deleted resource, so dashboards do not show it forever.
    pub fn forget(&self, kind: &'static str, namespace: &str, name: &str) {
        self.ready.remove(&ResourceLabel { kind, namespace: namespace.into(), name: name.into() });
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("metrics encode");
        out
    }
}

/// `/metrics`, `/healthz` (the process answers) and `/readyz` (it has reached the API server).
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(|State(m): State<Arc<Metrics>>| async move { m.encode() }))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(m): State<Arc<Metrics>>| async move {
                if m.started.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not connected to the API server yet")
                }
            }),
        )
        .with_state(metrics)
}

/// Serves [`router`] on `addr` until `stop` resolves.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    axum::serve(listener, router(metrics)).with_graceful_shutdown(stop).await
}
