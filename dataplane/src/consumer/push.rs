//! The push-provider hand-off: due notifications are pushed with retries and exponential
//! backoff; after the configured attempts they go to the workspace's DLQ topic.

use std::sync::Arc;
use std::time::Duration;

use palaver_crds::WorkspaceName;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::metrics::{self, ResultLabel};
use crate::store::{PushJob, Store};
use crate::workspaces::Workspaces;

/// Where pushes go. One real implementation today ([`WebhookPush`]); APNs/FCM would be others.
pub trait PushProvider: Send + Sync {
    fn push<'a>(&'a self, ws: &'a WorkspaceName, job: &'a PushJob) -> futures::future::BoxFuture<'a, Result<(), String>>;
}

/// POSTs a JSON body to a configured URL; any 2xx is success.
pub struct WebhookPush {
    http: reqwest::Client,
    url: String,
}

impl WebhookPush {
    /// Checks the URL up front: a bad one would otherwise fail every push into the DLQ.
    /// This build speaks plain HTTP only (point it at a push gateway inside the cluster).
    pub fn new(url: String) -> Result<Self, String> {
        let parsed = reqwest::Url::parse(&url).map_err(|e| format!("PALAVER_PUSH_WEBHOOK_URL {url:?} is not a URL: {e}"))?;
        match parsed.scheme() {
            "http" => {}
            "https" => {
                return Err(format!(
                    "PALAVER_PUSH_WEBHOOK_URL {url:?}: https is not supported by this build; use an http endpoint inside the cluster"
                ))
            }
            other => return Err(format!("PALAVER_PUSH_WEBHOOK_URL {url:?}: unsupported scheme {other}")),
        }
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().map_err(|e| e.to_string())?;
        Ok(Self { http, url })
    }
}

#[cfg(test)]
mod tests {
    use super::WebhookPush;

    #[test]
    fn push_url_is_checked_at_startup() {
        assert!(WebhookPush::new("http://push-gateway.palaver.svc:8080/push".into()).is_ok());
        for bad in ["https://example.com/push", "ftp://x/y", "not a url", ""] {
            assert!(WebhookPush::new(bad.into()).is_err(), "{bad:?} must be refused");
        }
    }
}

impl PushProvider for WebhookPush {
    fn push<'a>(&'a self, ws: &'a WorkspaceName, job: &'a PushJob) -> futures::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let body = json!({"workspace": ws.as_str(), "user": job.user_id, "channel": job.channel, "seq": job.seq, "kind": job.kind, "notification": job.id});
            match self.http.post(&self.url).json(&body).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("push endpoint answered {}", r.status())),
                Err(e) => Err(format!("push endpoint unreachable: {e}")),
            }
        })
    }
}

#[derive(Clone)]
pub struct PushSettings {
    pub interval: Duration,
    pub max_attempts: i32,
    pub backoff_ms: i64,
}

const BATCH: i64 = 100;

/// Every pod runs this; `FOR UPDATE SKIP LOCKED` keeps two pods off the same job.
pub async fn run_worker(
    store: Store,
    provider: Arc<dyn PushProvider>,
    producer: FutureProducer,
    workspaces: Workspaces,
    s: PushSettings,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(s.interval) => {}
        }
        for ws in workspaces.list() {
            let p = provider.clone();
            let w = ws.clone();
            let attempt = |jobs: Vec<PushJob>| async move {
                let outcomes = futures::future::join_all(jobs.iter().map(|j| p.push(&w, j))).await;
                for o in &outcomes {
                    let result = if o.is_ok() { "ok" } else { "error" };
                    metrics::global().push_attempts.get_or_create(&ResultLabel { result }).inc();
                }
                outcomes
            };
            match store.run_pushes(&ws, BATCH, s.max_attempts, s.backoff_ms, attempt).await {
                Ok(dead) => {
                    for (job, error) in dead {
                        dead_letter(&producer, &ws, &job, &error).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, workspace = %ws, "push round failed"),
            }
        }
    }
}

/// The notification row already says `dead`; the DLQ record is what operators and tooling read.
async fn dead_letter(producer: &FutureProducer, ws: &WorkspaceName, job: &PushJob, error: &str) {
    let body = json!({"type": "push", "workspace": ws.as_str(), "user": job.user_id, "channel": job.channel, "seq": job.seq,
                      "kind": job.kind, "notification": job.id, "attempts": job.push_attempts, "error": error})
    .to_string();
    let topic = ws.dlq_topic();
    let record = FutureRecord::to(&topic).key(job.channel.as_bytes()).payload(&body);
    metrics::global().push_dead.inc();
    if let Err((e, _)) = producer.send(record, Duration::from_secs(10)).await {
        tracing::error!(error = %e, workspace = %ws, notification = job.id, "DLQ produce failed; the row stays marked dead");
    } else {
        tracing::warn!(workspace = %ws, notification = job.id, attempts = job.push_attempts, error, "push gave up; sent to DLQ");
    }
}
