//! Postgres access for the data plane: the source of truth.
//!
//! Owns every query against the control registry and the tenant schemas (`ws_<name>`). All
//! tenant queries run in a transaction whose `search_path` is set to the caller's workspace
//! schema, taken from the verified token; channel ids are only ever resolved inside it, which is
//! what keeps tenants apart. It must not publish anything (the outbox module does, after commit).

mod channels;
mod cursors;
mod events;
mod files;
mod messages;
mod notifications;
mod outbox;
mod registry;
mod search;
mod threads;
mod users;

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use palaver_crds::WorkspaceName;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

pub use channels::{ChannelDetails, ChannelInfo, ChannelKind, ChannelPatch, MyChannel};
pub use cursors::CursorUpdate;
pub use events::{Appended, HistoryPage, NewEvent};
pub use files::{NewFile, Preview, StoredFile};
pub use messages::{Actor, Change, EditRecord, MAX_DISTINCT_REACTIONS};
pub use notifications::{Notification, PushJob};
pub use outbox::OutboxRow;
pub use search::{IndexBatch, IndexDelete, IndexEdit, SearchDoc, SearchHit, SearchParams};
pub use threads::{FollowedThread, ThreadPage};
pub use users::Person;

/// A pooled connection idle this long is pinged before use (a lost server connection is found
/// before a request's statement fails on it).
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, sqlx::Error> {
        // Every statement here is a key lookup whose plan does not depend on the values:
        // planning once per connection instead of per execution saves Postgres CPU on the hot path.
        let options = PgConnectOptions::from_str(url)?.options([("plan_cache_mode", "force_generic_plan")]);
        // sqlx pings every connection it hands out by default: a round trip before each
        // statement, which doubles the send path's (one statement). Only a connection idle for
        // a while is checked; a busy one that broke fails its statement and is dropped. (sqlx 0.8
        // pings again when a connection goes back to the pool, off the request's path.)
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(3))
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IF_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A transaction scoped to one workspace's schema: `BEGIN; SET LOCAL search_path` in one
    /// round trip. The schema name comes only from a validated [`WorkspaceName`] (`ws_` +
    /// `[a-z0-9_]`), which is what makes it safe to put in the statement (ADR 0002).
    pub async fn tenant_tx(&self, ws: &WorkspaceName) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.tenant_tx_with(ws, "").await
    }

    /// [`Self::tenant_tx`] with more `SET LOCAL` statements in the same round trip. `settings`
    /// must be built by the caller from constants and numbers, never from request input.
    pub(crate) async fn tenant_tx_with(&self, ws: &WorkspaceName, settings: &str) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let schema = ws.schema();
        debug_assert!(schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        let settings = if settings.is_empty() { String::new() } else { format!("; {settings}") };
        self.pool.begin_with(format!("BEGIN; SET LOCAL search_path TO {schema}{settings}")).await
    }

    /// A single statement against one workspace's schema, run in autocommit (one round trip;
    /// atomic and durable at the statement's end). Every single-statement query uses this;
    /// [`Self::tenant_tx`] is for work that needs several statements in one transaction. `{s}` in `template` becomes the schema name,
    /// which comes only from a validated [`WorkspaceName`] (ADR 0002).
    pub fn tenant_sql(ws: &WorkspaceName, template: &str) -> String {
        template.replace("{s}", &ws.schema())
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }
}

/// Server timestamps are truncated to what Postgres stores, so an event delivered live and the
/// same event read back from history are identical.
pub fn now_ts() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Short random ids: `prefix_` + 16 hex digits (64 random bits).
pub fn new_id(prefix: &str) -> String {
    let n = uuid::Uuid::new_v4().as_u64_pair().0;
    format!("{prefix}_{n:016x}")
}
