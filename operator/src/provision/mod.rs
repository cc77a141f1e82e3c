//! Provisioning of a workspace's external resources.
//!
//! Owns: the control schema and registry, creating, migrating and dropping `ws_<name>`, creating,
//! growing and deleting the workspace's Kafka topics. Every step is idempotent, so a reconcile may
//! call it again at any time. It must not read Kubernetes objects nor decide when to run: that is
//! the controller's job. It only writes towards Kafka and Postgres from the plan; it never
//! "repairs" the plan from what it finds there.

mod kafka;
mod postgres;

use std::time::Duration;

use palaver_crds::resources::{DeletionPolicy, Workspace};
use palaver_crds::{validate_channel_name, WorkspaceName};
use sqlx::PgPool;

pub use kafka::{TopicAdmin, TopicSpec};
pub use postgres::{ensure_control_schema, latest_tenant_migration, migrate_tenant_schema, CONTROL_SCHEMA};

/// Why provisioning failed. Each variant names the dependency at fault so a controller can put a
/// precise reason on the resource's status.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("postgres migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The broker could not be reached or did not answer.
    #[error("kafka: {0}")]
    Kafka(String),
    /// The broker answered and refused the request (an error code for a topic).
    #[error("kafka refused: {0}")]
    KafkaRefused(String),
    #[error("invalid workspace spec: {0}")]
    Invalid(String),
}

/// What a workspace should look like.
#[derive(Debug, Clone)]
pub struct WorkspacePlan {
    pub name: WorkspaceName,
    pub display_name: String,
    pub partitions: i32,
    /// Public channels every user joins on first sight (Slack's #general).
    pub default_channels: Vec<String>,
    /// Kafka retention of the events topic; `None` keeps the broker default.
    pub retention_hours: Option<i64>,
    /// Attachment limits recorded in the registry row (issue 11).
    pub files: FileLimits,
}

impl WorkspacePlan {
    /// The plan a Workspace resource describes (its name is the workspace name).
    pub fn from_resource(ws: &Workspace) -> Result<Self, ProvisionError> {
        let raw = ws.metadata.name.as_deref().unwrap_or_default();
        let name = WorkspaceName::new(raw).map_err(|e| ProvisionError::Invalid(e.to_string()))?;
        let files = ws.spec.files.clone().unwrap_or_default();
        let plan = Self {
            display_name: ws.spec.display_name.clone().unwrap_or_else(|| name.to_string()),
            name,
            partitions: ws.spec.partitions,
            default_channels: ws.spec.default_channels.clone(),
            retention_hours: ws.spec.retention_hours,
            files: FileLimits { max_bytes: files.max_bytes, max_per_message: files.max_per_message, allowed_types: files.allowed_types },
        };
        plan.validate()?;
        Ok(plan)
    }

    /// Checks what the CRD schema also checks, for the paths that bypass the API server.
    pub fn validate(&self) -> Result<(), ProvisionError> {
        if !(1..=1024).contains(&self.partitions) {
            return Err(ProvisionError::Invalid(format!("partitions must be 1 to 1024, got {}", self.partitions)));
        }
        if let Some(h) = self.retention_hours.filter(|h| *h < 1) {
            return Err(ProvisionError::Invalid(format!("retentionHours must be at least 1, got {h}")));
        }
        for ch in &self.default_channels {
            validate_channel_name(ch).map_err(|e| ProvisionError::Invalid(format!("default channel: {e}")))?;
        }
        self.files.validate()
    }
}

/// A workspace's file attachment limits (issue 11). palaverd reads them from the registry;
/// `None` leaves the pod's default (`PALAVER_FILE_MAX_BYTES` and the others).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileLimits {
    pub max_bytes: Option<i64>,
    pub max_per_message: Option<i32>,
    /// Media types (`image/png`) or patterns (`image/*`, `*/*`).
    pub allowed_types: Option<Vec<String>>,
}

impl FileLimits {
    fn validate(&self) -> Result<(), ProvisionError> {
        let invalid = |m: String| Err(ProvisionError::Invalid(m));
        if let Some(n) = self.max_bytes.filter(|n| *n < 1) {
            return invalid(format!("files.maxBytes must be at least 1, got {n}"));
        }
        if let Some(n) = self.max_per_message.filter(|n| !(1..=100).contains(n)) {
            return invalid(format!("files.maxPerMessage must be 1 to 100, got {n}"));
        }
        if let Some(types) = &self.allowed_types {
            if !(1..=100).contains(&types.len()) {
                return invalid(format!("files.allowedTypes must list 1 to 100 types, got {}", types.len()));
            }
            if let Some(bad) = types.iter().find(|t| !is_media_type_pattern(t)) {
                return invalid(format!("files.allowedTypes: {bad:?} is not a media type like image/png, image/* or */*"));
            }
        }
        Ok(())
    }
}

/// `type/subtype`, `type/*` or `*/*` in lowercase: what the CRD's pattern accepts.
fn is_media_type_pattern(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let token = |t: &str| t.bytes().next().is_some_and(alnum) && t.bytes().all(|b| alnum(b) || b"!#$&^_.+-".contains(&b));
    s.len() <= 255
        && match s.split_once('/') {
            Some(("*", "*")) => true,
            Some((kind, sub)) => token(kind) && (sub == "*" || token(sub)),
            None => false,
        }
}

/// What provisioning found or created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionReport {
    pub schema: String,
    pub migration_version: i64,
    pub topics: Vec<String>,
    /// Partitions the events topic actually has: more than planned when it pre-existed with
    /// more (Kafka cannot shrink a topic).
    pub partitions: i32,
}

pub struct Provisioner {
    pool: PgPool,
    topics: TopicAdmin,
}

impl Provisioner {
    pub fn new(pool: PgPool, topics: TopicAdmin) -> Self {
        Self { pool, topics }
    }

    /// Connects to Postgres and the Kafka brokers.
    pub async fn connect(database_url: &str, brokers: &str) -> Result<Self, ProvisionError> {
        Self::connect_with(database_url, brokers, &[], None, Duration::from_secs(10)).await
    }

    /// Like [`Self::connect`], with librdkafka client properties (credentials), the replication
    /// factor of new topics (`None`: the broker's default) and the longest wait for a Postgres
    /// connection.
    pub async fn connect_with(
        database_url: &str,
        brokers: &str,
        kafka_properties: &[(String, String)],
        replication: Option<i32>,
        timeout: Duration,
    ) -> Result<Self, ProvisionError> {
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).acquire_timeout(timeout).connect(database_url).await?;
        let mut topics = TopicAdmin::new(brokers, kafka_properties)?;
        if let Some(r) = replication {
            topics = topics.with_replication(r);
        }
        Ok(Self::new(pool, topics))
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates or updates everything the plan describes; safe to repeat.
    pub async fn provision(&self, plan: &WorkspacePlan) -> Result<ProvisionReport, ProvisionError> {
        plan.validate()?;
        ensure_control_schema(&self.pool).await?;
        let schema = plan.name.schema();
        let migration_version = migrate_tenant_schema(&self.pool, &plan.name).await?;
        postgres::ensure_default_channels(&self.pool, &plan.name, &plan.default_channels).await?;

        let events = plan.name.events_topic();
        let dlq = plan.name.dlq_topic();
        let retention_ms = plan.retention_hours.map(|h| h * 3_600_000);
        // A topic's retention is set when it is created, and changed only when the Workspace
        // asks for a value other than the one last applied: a reconcile does not rewrite the
        // topic's configs every time, and a broker that refuses the change fails it once.
        let previous = postgres::recorded_retention(&self.pool, &plan.name).await?;
        let retention_changed = matches!(previous, Some(before) if before != plan.retention_hours) && plan.retention_hours.is_some();
        let events_spec = TopicSpec { name: &events, partitions: plan.partitions, retention_ms, retention_changed };
        let partitions = self.topics.ensure_topic(&events_spec).await?;
        self.topics.ensure_topic(&TopicSpec { name: &dlq, partitions: 1, retention_ms: None, retention_changed: false }).await?;

        postgres::register(&self.pool, plan, partitions, migration_version).await?;
        tracing::info!(workspace = %plan.name, %schema, migration_version, partitions, "workspace provisioned");
        Ok(ProvisionReport { schema, migration_version, topics: vec![events, dlq], partitions })
    }

    /// Removes the workspace from the registry (pods stop serving it) and, with
    /// [`DeletionPolicy::Delete`], then deletes its topics and drops its schema. Safe to repeat;
    /// with `Retain` the data stays where it is and a later provision picks it up again.
    pub async fn deprovision(&self, name: &WorkspaceName, policy: DeletionPolicy) -> Result<(), ProvisionError> {
        ensure_control_schema(&self.pool).await?;
        postgres::deregister(&self.pool, name).await?;
        if policy == DeletionPolicy::Delete {
            self.topics.delete_topics(&[&name.events_topic(), &name.dlq_topic()]).await?;
            postgres::drop_tenant_schema(&self.pool, name).await?;
        }
        tracing::info!(workspace = %name, ?policy, "workspace deprovisioned");
        Ok(())
    }

    pub fn topics(&self) -> &TopicAdmin {
        &self.topics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_limits_come_from_the_spec_and_are_checked() {
        let ws: Workspace = serde_yaml::from_str(
            "apiVersion: palaver.dev/v1alpha1\nkind: Workspace\nmetadata: {name: acme}\n\
             spec: {clusterRef: main, files: {maxBytes: 1048576, allowedTypes: [image/*, application/pdf]}}\n",
        )
        .unwrap();
        let files = WorkspacePlan::from_resource(&ws).unwrap().files;
        let types = Some(vec!["image/*".to_string(), "application/pdf".to_string()]);
        assert_eq!(files, FileLimits { max_bytes: Some(1_048_576), max_per_message: None, allowed_types: types });
        let mut unset = ws.clone();
        unset.spec.files = None;
        assert_eq!(WorkspacePlan::from_resource(&unset).unwrap().files, FileLimits::default());

        for good in ["image/png", "image/*", "*/*", "application/vnd.oasis.opendocument.text", "text/x-c++src", "audio/mp4"] {
            assert!(is_media_type_pattern(good), "{good}");
        }
        for bad in ["image", "Image/png", "*/png", "image/", "/png", "image/png/x", "image/ png", "-x/y", "image/*x", ""] {
            assert!(!is_media_type_pattern(bad), "{bad}");
        }
        let refused = |files: FileLimits| FileLimits::validate(&files).unwrap_err().to_string();
        assert!(refused(FileLimits { max_bytes: Some(0), ..Default::default() }).contains("maxBytes"));
        assert!(refused(FileLimits { max_per_message: Some(101), ..Default::default() }).contains("maxPerMessage"));
        assert!(refused(FileLimits { allowed_types: Some(vec![]), ..Default::default() }).contains("1 to 100 types"));
        assert!(refused(FileLimits { allowed_types: Some(vec!["image/*".into(), "png".into()]), ..Default::default() }).contains("\"png\""));
    }
}
