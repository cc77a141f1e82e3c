//! Provisioning of a workspace's external resources.
//!
//! Owns: the control schema and registry, creating and migrating `ws_<name>`, creating the
//! workspace's Kafka topics. Every step is idempotent, so a reconcile may call it again at any
//! time. It must not read Kubernetes objects nor decide when to run: that is the controller's job.

mod kafka;
mod postgres;

use std::time::Duration;

use palaver_crds::{validate_channel_name, WorkspaceName};
use sqlx::PgPool;

pub use kafka::TopicAdmin;
pub use postgres::{ensure_control_schema, migrate_tenant_schema, CONTROL_SCHEMA};

/// Why provisioning failed. Each variant names the dependency at fault so a controller can put a
/// precise reason on the resource's status.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("postgres migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("kafka: {0}")]
    Kafka(String),
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
}

/// What provisioning found or created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionReport {
    pub schema: String,
    pub migration_version: i64,
    pub topics: Vec<String>,
    /// Partitions the events topic actually has (may differ from the plan if it pre-existed).
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
        let pool =
            sqlx::postgres::PgPoolOptions::new().max_connections(4).acquire_timeout(Duration::from_secs(10)).connect(database_url).await?;
        Ok(Self::new(pool, TopicAdmin::new(brokers)?))
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates or updates everything the plan describes; safe to repeat.
    pub async fn provision(&self, plan: &WorkspacePlan) -> Result<ProvisionReport, ProvisionError> {
        if plan.partitions < 1 {
            return Err(ProvisionError::Invalid("partitions must be at least 1".into()));
        }
        for ch in &plan.default_channels {
            validate_channel_name(ch).map_err(ProvisionError::Invalid)?;
        }
        ensure_control_schema(&self.pool).await?;
        let schema = plan.name.schema();
        let migration_version = migrate_tenant_schema(&self.pool, &plan.name).await?;
        postgres::ensure_default_channels(&self.pool, &plan.name, &plan.default_channels).await?;

        let events = plan.name.events_topic();
        let dlq = plan.name.dlq_topic();
        let partitions = self.topics.ensure_topic(&events, plan.partitions).await?;
        self.topics.ensure_topic(&dlq, 1).await?;

        postgres::register(&self.pool, plan, partitions, migration_version).await?;
        tracing::info!(workspace = %plan.name, %schema, migration_version, partitions, "workspace provisioned");
        Ok(ProvisionReport { schema, migration_version, topics: vec![events, dlq], partitions })
    }
}
