//! The two controllers (`ChatCluster`, `Workspace`) and what they share: the context handed to
//! every reconcile, the error type whose variants become condition reasons, the backoff policy
//! and Secret lookup.
//!
//! Controllers here own Kubernetes-facing decisions only; what is created in Postgres and Kafka
//! is the provisioning library's business, and object shapes are built in `objects`.

pub mod chatcluster;
pub mod objects;
pub mod workspace;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::NamespaceResourceScope;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource};
use palaver_crds::resources::SecretKeyRef;
use serde::de::DeserializeOwned;

use crate::metrics::Metrics;
use crate::provision::{ProvisionError, Provisioner};

/// Field manager of every server-side apply, and the events' reporting controller.
pub const MANAGER: &str = "palaver-operator";

/// Why a reconcile failed. [`Error::reason`] is the `Degraded` condition's reason, the Event's
/// reason and the `reason` label of `palaver_operator_reconcile_errors_total`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Secret {namespace}/{name} not found")]
    SecretMissing { namespace: String, name: String },
    #[error("Secret {namespace}/{name} has no key {key:?}")]
    SecretKeyMissing { namespace: String, name: String, key: String },
    #[error("Secret {namespace}/{name} key {key:?} is not UTF-8")]
    SecretNotText { namespace: String, name: String, key: String },
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    #[error("Postgres: {0}")]
    Postgres(String),
    #[error("Kafka: {0}")]
    Kafka(String),
    #[error("Kafka refused the request: {0}")]
    KafkaRefused(String),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

impl Error {
    pub fn reason(&self) -> &'static str {
        match self {
            Error::SecretMissing { .. } => "SecretNotFound",
            Error::SecretKeyMissing { .. } => "SecretKeyMissing",
            Error::SecretNotText { .. } => "SecretInvalid",
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::Postgres(_) => "PostgresUnavailable",
            Error::Kafka(_) => "KafkaUnavailable",
            Error::KafkaRefused(_) => "KafkaRequestRefused",
            Error::Kube(_) => "KubernetesApiError",
        }
    }
}

impl From<ProvisionError> for Error {
    fn from(e: ProvisionError) -> Self {
        match e {
            ProvisionError::Postgres(e) => Error::Postgres(e.to_string()),
            ProvisionError::Migrate(e) => Error::Postgres(format!("migration: {e}")),
            ProvisionError::Kafka(e) => Error::Kafka(e),
            ProvisionError::KafkaRefused(e) => Error::KafkaRefused(e),
            ProvisionError::Invalid(e) => Error::InvalidSpec(e),
        }
    }
}

/// Requeue delays after failures: `base * 2^(failures-1)`, capped.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// Tunables of the controllers; tests shorten them.
#[derive(Debug, Clone)]
pub struct Settings {
    pub backoff: Backoff,
    /// Requeue of a healthy ChatCluster: drift of owned objects is repaired on their watch
    /// events, this is the safety net.
    pub resync: Duration,
    /// Recheck of a Workspace waiting for its ChatCluster (its watch also wakes it).
    pub wait_for_cluster: Duration,
    /// Longest wait for a Postgres connection while provisioning.
    pub connect_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            backoff: Backoff { base: Duration::from_secs(5), max: Duration::from_secs(300) },
            resync: Duration::from_secs(600),
            wait_for_cluster: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Everything a reconcile needs; one per operator process.
pub struct Context {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
    /// One provisioner per ChatCluster, for its current connection settings.
    provisioners: tokio::sync::Mutex<HashMap<String, (ProvisionerKey, Arc<Provisioner>)>>,
}

/// A ChatCluster (`namespace/name`) and the connection settings its provisioner was built for:
/// a changed Secret or spec gets a new provisioner, which replaces the old one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionerKey {
    pub cluster: String,
    pub database_url: String,
    pub brokers: String,
    pub kafka_properties: Vec<(String, String)>,
    pub replication: Option<i32>,
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>, settings: Settings, instance: Option<String>) -> Arc<Self> {
        let recorder = Recorder::new(client.clone(), Reporter { controller: MANAGER.into(), instance });
        Arc::new(Self { client, metrics, settings, recorder, failures: Mutex::default(), provisioners: tokio::sync::Mutex::default() })
    }

    /// Records a failure of `key` and returns how long to wait before the next try.
    fn failed(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().expect("lock");
        let n = failures.entry(key.to_string()).or_default();
        *n = n.saturating_add(1);
        self.settings.backoff.delay(*n)
    }

    /// Bookkeeping after a reconcile of `obj`: the duration and error metrics, and the end of
    /// its failure streak when it succeeded.
    pub fn finished<K: Resource<DynamicType = ()>>(&self, kind: &'static str, obj: &K, started: Instant, result: &Result<Action, Error>) {
        self.metrics.observe(kind, started.elapsed(), result.as_ref().err().map(Error::reason));
        if result.is_ok() {
            self.failures.lock().expect("lock").remove(&failure_key(obj));
        }
    }

    /// Publishes an Event about `obj`; failures are logged, never fatal (events are advisory).
    pub async fn event<K: Resource<DynamicType = ()>>(&self, obj: &K, warning: bool, reason: &str, action: &str, note: String) {
        let ev = Event {
            type_: if warning { EventType::Warning } else { EventType::Normal },
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
    }

    /// The provisioner of `key.cluster` for these connection settings, reused across
    /// reconciles; one built for the cluster's previous settings is dropped (its Postgres pool
    /// and Kafka client with it).
    pub async fn provisioner(&self, key: ProvisionerKey) -> Result<Arc<Provisioner>, Error> {
        let mut cache = self.provisioners.lock().await;
        if let Some((_, p)) = cache.get(&key.cluster).filter(|(k, _)| *k == key) {
            return Ok(p.clone());
        }
        let p = Arc::new(
            Provisioner::connect_with(
                &key.database_url,
                &key.brokers,
                &key.kafka_properties,
                key.replication,
                self.settings.connect_timeout,
            )
            .await?,
        );
        cache.insert(key.cluster.clone(), (key, p.clone()));
        Ok(p)
    }

    /// The text value of one Secret key in `namespace`.
    pub async fn secret_value(&self, namespace: &str, r: &SecretKeyRef) -> Result<String, Error> {
        let secret = Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get_opt(&r.name)
            .await?
            .ok_or_else(|| Error::SecretMissing { namespace: namespace.into(), name: r.name.clone() })?;
        let missing = || Error::SecretKeyMissing { namespace: namespace.into(), name: r.name.clone(), key: r.key.clone() };
        let bytes = match secret.data.as_ref().and_then(|d| d.get(&r.key)) {
            Some(b) => b.0.clone(),
            None => secret.string_data.as_ref().and_then(|d| d.get(&r.key)).ok_or_else(missing)?.clone().into_bytes(),
        };
        String::from_utf8(bytes).map(|s| s.trim().to_string()).map_err(|_| Error::SecretNotText {
            namespace: namespace.into(),
            name: r.name.clone(),
            key: r.key.clone(),
        })
    }
}

/// `Kind/namespace/name`: whose failure streak the backoff counts.
fn failure_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    let meta = obj.meta();
    format!("{}/{}/{}", K::kind(&()), meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default())
}

/// The error policy of both controllers: requeue after the backoff this resource's failure
/// streak has reached.
pub fn error_policy<K: Resource<DynamicType = ()>>(obj: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action {
    let key = failure_key(obj.as_ref());
    let delay = ctx.failed(&key);
    tracing::warn!(resource = %key, reason = err.reason(), error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// An Api over `namespace`, or over every namespace.
pub fn scoped_api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs a controller's result stream to its end. Failures were logged by [`error_policy`].
async fn drain<T, E: std::fmt::Display>(kind: &'static str, results: impl Stream<Item = Result<T, E>>) {
    results
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, kind, "reconcile did not complete");
            }
        })
        .await;
}

/// librdkafka client properties from a Secret value (see [`palaver_crds::parse_kafka_properties`]).
pub fn parse_kafka_properties(text: &str) -> Result<Vec<(String, String)>, Error> {
    palaver_crds::parse_kafka_properties(text).map_err(Error::InvalidSpec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff { base: Duration::from_secs(5), max: Duration::from_secs(300) };
        assert_eq!(b.delay(1), Duration::from_secs(5));
        assert_eq!(b.delay(2), Duration::from_secs(10));
        assert_eq!(b.delay(4), Duration::from_secs(40));
        assert_eq!(b.delay(50), Duration::from_secs(300));
    }
}
