//! Postgres side of provisioning: control schema, tenant schemas, registry rows.

use palaver_crds::WorkspaceName;
use sqlx::{Connection, PgConnection, PgPool};

use super::WorkspacePlan;

/// Schema holding the workspace registry.
pub const CONTROL_SCHEMA: &str = "palaver_control";

static CONTROL: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/control");
static TENANT: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/tenant");

/// Version of the newest tenant migration this build carries.
pub fn latest_tenant_migration() -> i64 {
    TENANT.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Creates the control schema and applies its migrations.
pub async fn ensure_control_schema(pool: &PgPool) -> Result<(), super::ProvisionError> {
    migrate_into(pool, CONTROL_SCHEMA, &CONTROL).await?;
    Ok(())
}

/// Creates `ws_<name>` and applies the tenant migrations; returns the latest applied version.
pub async fn migrate_tenant_schema(pool: &PgPool, name: &WorkspaceName) -> Result<i64, super::ProvisionError> {
    migrate_into(pool, &name.schema(), &TENANT).await
}

/// Runs `migrator` with `schema` first on the search path, so both the tables and sqlx's
/// bookkeeping table land in that schema.
async fn migrate_into(pool: &PgPool, schema: &str, migrator: &sqlx::migrate::Migrator) -> Result<i64, super::ProvisionError> {
    let mut lock = SchemaLock::acquire(pool, schema).await?;
    let conn = &mut lock.conn;
    let result = async {
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")).execute(&mut *conn).await?;
        sqlx::query("SELECT set_config('search_path', $1, false)").bind(schema).execute(&mut *conn).await?;
        migrator.run_direct(&mut *conn).await?;
        Ok(migrator.iter().map(|m| m.version).max().unwrap_or(0))
    }
    .await;
    lock.release().await;
    result
}

/// Drops `ws_<name>` and everything in it (the workspace's history).
pub(super) async fn drop_tenant_schema(pool: &PgPool, name: &WorkspaceName) -> Result<(), super::ProvisionError> {
    let schema = name.schema();
    let mut lock = SchemaLock::acquire(pool, &schema).await?;
    let result = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&mut lock.conn).await;
    lock.release().await;
    result?;
    Ok(())
}

/// A connection of its own holding an advisory lock on a schema: concurrent provisioners (two
/// operator replicas, make dev twice) race on CREATE/DROP SCHEMA otherwise. The schema comes
/// from a validated name or a constant and contains only `[a-z0-9_]`: that is what makes the
/// identifier safe to interpolate (DDL cannot take bind parameters).
struct SchemaLock {
    conn: PgConnection,
}

impl SchemaLock {
    async fn acquire(pool: &PgPool, schema: &str) -> Result<Self, sqlx::Error> {
        debug_assert!(schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        let mut conn = pool.acquire().await?.detach();
        sqlx::query("SELECT pg_advisory_lock(hashtext($1))").bind(schema).execute(&mut conn).await?;
        Ok(Self { conn })
    }

    /// The connection was detached from the pool, so a search_path set on it cannot leak;
    /// closing it also releases the advisory lock.
    async fn release(self) {
        let _ = self.conn.close().await;
    }
}

pub(super) async fn ensure_default_channels(pool: &PgPool, name: &WorkspaceName, channels: &[String]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('search_path', $1, true)").bind(name.schema()).execute(&mut *tx).await?;
    for ch in channels {
        sqlx::query(
            "INSERT INTO channels (id, name, kind, auto_join, created_by) VALUES ($1, $2, 'public', true, 'palaver') \
             ON CONFLICT (name) WHERE kind <> 'dm' DO UPDATE SET auto_join = true",
        )
        .bind(format!("c_{ch}"))
        .bind(ch)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

pub(super) async fn register(pool: &PgPool, plan: &WorkspacePlan, partitions: i32, migration_version: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO palaver_control.workspaces \
           (name, display_name, schema_name, events_topic, dlq_topic, partitions, migration_version, retention_hours, \
            file_max_bytes, file_max_per_message, file_allowed_types) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (name) DO UPDATE SET display_name = EXCLUDED.display_name, partitions = EXCLUDED.partitions, \
           migration_version = EXCLUDED.migration_version, retention_hours = EXCLUDED.retention_hours, \
           file_max_bytes = EXCLUDED.file_max_bytes, file_max_per_message = EXCLUDED.file_max_per_message, \
           file_allowed_types = EXCLUDED.file_allowed_types, state = 'active', updated_at = now()",
    )
    .bind(plan.name.as_str())
    .bind(&plan.display_name)
    .bind(plan.name.schema())
    .bind(plan.name.events_topic())
    .bind(plan.name.dlq_topic())
    .bind(partitions)
    .bind(migration_version)
    .bind(plan.retention_hours)
    .bind(plan.files.max_bytes)
    .bind(plan.files.max_per_message)
    .bind(&plan.files.allowed_types)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn deregister(pool: &PgPool, name: &WorkspaceName) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM palaver_control.workspaces WHERE name = $1").bind(name.as_str()).execute(pool).await?;
    Ok(())
}

/// The retention recorded for a registered workspace: `None` when it is not registered,
/// `Some(None)` when it uses the broker default.
pub(super) async fn recorded_retention(pool: &PgPool, name: &WorkspaceName) -> Result<Option<Option<i64>>, sqlx::Error> {
    sqlx::query_scalar("SELECT retention_hours FROM palaver_control.workspaces WHERE name = $1")
        .bind(name.as_str())
        .fetch_optional(pool)
        .await
}
