//! End-to-end harness: real palaverd processes against the real Postgres, Redis and
//! Apache Kafka, driven over the wire protocol like any client.
//!
//! Owns spawning and killing processes (pods, private Redis and broker instances for fault
//! tests), provisioning throwaway workspaces, and a small WebSocket/REST client. It deliberately
//! does not link palaverd's library: the tests see only what a client sees. For the operator's
//! controllers it starts a private real kube-apiserver per test (`kube_server`), and has
//! fixtures (`operator`) and a TCP proxy to cut a dependency away (`proxy`).

pub mod bench;
pub mod client;
pub mod fold;
pub mod kube_server;
pub mod openapi;
pub mod operator;
pub mod procs;
pub mod proxy;
pub mod webhook;

use std::time::Duration;

use palaver_crds::WorkspaceName;
use palaver_operator::provision::{Provisioner, WorkspacePlan};

pub use client::{Client, Rest, Upgrade};
pub use procs::{free_port, NginxConfig, Pod, PodOptions, PrivateBroker, PrivateNginx, PrivateRedis, PrivateS3};
pub use webhook::Webhook;

/// The HS256 secret test pods are started with.
pub const TEST_SECRET: &str = "palaver-test-secret";

/// Where the shared services are (the Makefile exports these).
#[derive(Debug, Clone)]
pub struct Services {
    pub database_url: String,
    pub redis_url: String,
    pub kafka_brokers: String,
    /// S3-compatible object storage of attachments (`make up` runs versitygw there); the
    /// defaults are the dev stack's, dev-only credentials included.
    pub s3_endpoint: String,
    pub s3_bucket: String,
    pub s3_region: String,
    pub s3_access_key_id: String,
    pub s3_secret_access_key: String,
}

impl Services {
    pub fn from_env() -> Self {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
        Self {
            database_url: var("PALAVER_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/palaver_test"),
            redis_url: var("PALAVER_REDIS_URL", "redis://127.0.0.1:6379"),
            kafka_brokers: var("PALAVER_KAFKA_BROKERS", "127.0.0.1:9092"),
            s3_endpoint: var("PALAVER_S3_ENDPOINT", "http://127.0.0.1:7070"),
            s3_bucket: var("PALAVER_S3_BUCKET", "palaver"),
            s3_region: var("PALAVER_S3_REGION", "us-east-1"),
            s3_access_key_id: var("PALAVER_S3_ACCESS_KEY_ID", "palaver-dev"),
            s3_secret_access_key: var("PALAVER_S3_SECRET_ACCESS_KEY", "palaver-dev-secret-key"),
        }
    }
}

impl Services {
    /// The same services with a database of the test's own (`<test db>_<random>`), so that its
    /// registry holds only the workspaces the test creates (consumers subscribe to every
    /// registered workspace). Drop it with [`Services::drop_database`].
    pub async fn private_database(&self) -> anyhow::Result<Self> {
        let (base, _) = self.database_url.rsplit_once('/').ok_or_else(|| anyhow::anyhow!("database URL without a database name"))?;
        let name = format!("palaver_t_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let admin = format!("{base}/postgres");
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await?;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
        Ok(Self { database_url: format!("{base}/{name}"), ..self.clone() })
    }

    /// Drops a database made by [`Services::private_database`] (pods must be stopped first).
    pub async fn drop_database(&self) -> anyhow::Result<()> {
        let (base, name) = self.database_url.rsplit_once('/').ok_or_else(|| anyhow::anyhow!("database URL without a database name"))?;
        anyhow::ensure!(name.starts_with("palaver_t_"), "refusing to drop {name}: not a private test database");
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&format!("{base}/postgres")).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await?;
        Ok(())
    }
}

/// A workspace name no other test uses: `<prefix>-<random>`.
pub fn unique_workspace(prefix: &str) -> WorkspaceName {
    WorkspaceName::new(format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])).expect("a valid prefix")
}

/// Provisions a fresh workspace named `<prefix>-<random>` with channels general and random.
pub async fn new_workspace(svc: &Services, prefix: &str) -> anyhow::Result<WorkspaceName> {
    let name = unique_workspace(prefix);
    let p = Provisioner::connect(&svc.database_url, &svc.kafka_brokers).await?;
    let plan = WorkspacePlan {
        name: name.clone(),
        display_name: name.to_string(),
        partitions: 2,
        default_channels: vec!["general".into(), "random".into()],
        retention_hours: None,
        files: Default::default(),
    };
    tokio::time::timeout(Duration::from_secs(60), p.provision(&plan)).await??;
    Ok(name)
}

/// Client WebSocket settings: a small read buffer (tungstenite zero-fills the whole buffer
/// before each read; the 128 KiB default makes the load generator measure itself).
pub fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096)
}

/// An HS256 token as `palaverd token` makes it.
pub fn token(ws: &WorkspaceName, user: &str) -> String {
    token_with(ws.as_str(), user, TEST_SECRET, 3600)
}

/// A token that also carries OIDC's `name` and `picture` claims.
pub fn token_with_profile(ws: &WorkspaceName, user: &str, name: &str, picture: &str) -> String {
    let exp = chrono::Utc::now().timestamp() + 3600;
    let claims = serde_json::json!({"sub": user, "workspace": ws.as_str(), "exp": exp, "iss": "palaver", "aud": "palaver", "name": name, "picture": picture});
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()))
        .expect("token encodes")
}

pub fn token_with(ws: &str, user: &str, secret: &str, ttl_secs: i64) -> String {
    let exp = chrono::Utc::now().timestamp() + ttl_secs;
    let claims = serde_json::json!({"sub": user, "workspace": ws, "exp": exp, "iss": "palaver", "aud": "palaver"});
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()))
        .expect("token encodes")
}

/// A consumer assigned to `partitions` of `topic` from the beginning (no group membership,
/// so no rebalance wait), for checking what reached the log.
pub fn topic_reader(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<rdkafka::consumer::BaseConsumer> {
    use rdkafka::consumer::Consumer;
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("check-{}", uuid::Uuid::new_v4().simple()))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    Ok(consumer)
}

/// `s` percent-encoded for a URL's query (everything but RFC 3986's unreserved characters).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Polls `check` until it returns Some or the deadline passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
