//! palaverd configuration: every setting is a flag and an environment variable
//! (docs/configuration.md lists them with their defaults).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use crate::gateway::forwarded::TrustedProxies;
use crate::gateway::origin::AllowedOrigins;

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address the HTTP/WebSocket server listens on.
    #[arg(long, env = "PALAVER_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Name of this pod in logs, metrics and presence (defaults to a random id).
    #[arg(long, env = "PALAVER_POD_ID")]
    pub pod_id: Option<String>,
    #[arg(long, env = "PALAVER_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/palaver")]
    pub database_url: String,
    #[arg(long, env = "PALAVER_DB_POOL", default_value_t = 16)]
    pub db_pool: u32,
    /// Fan-out actors the pod's feeds are split over; 0: one per core.
    #[arg(long, env = "PALAVER_FANOUT_SHARDS", default_value_t = 0)]
    pub fanout_shards: usize,
    #[arg(long, env = "PALAVER_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    #[arg(long, env = "PALAVER_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,
    /// Extra Kafka client properties (credentials, TLS): a file of `name=value` lines.
    #[arg(long, env = "PALAVER_KAFKA_PROPERTIES_FILE")]
    pub kafka_properties_file: Option<std::path::PathBuf>,

    /// Run the partition-by-channel consumer (notifications) in this pod.
    #[arg(long, env = "PALAVER_CONSUMERS", default_value_t = true, action = clap::ArgAction::Set)]
    pub consumers: bool,
    /// Kafka consumer group shared by all pods of a cluster.
    #[arg(long, env = "PALAVER_CONSUMER_GROUP", default_value = "palaver-consumers")]
    pub consumer_group: String,
    #[command(flatten)]
    pub push: PushConfig,
    #[command(flatten)]
    pub auth: AuthConfig,
    #[command(flatten)]
    pub http: HttpConfig,
    #[command(flatten)]
    pub limits: Limits,
    #[command(flatten)]
    pub timing: Timing,
    #[command(flatten)]
    pub batching: SendBatching,
    #[command(flatten)]
    pub s3: S3Config,
    #[command(flatten)]
    pub files: FilesConfig,
}

/// S3-compatible object storage for attachments (issue 11). Without an endpoint, file routes
/// answer `unavailable` ("file storage is not configured") and sends with files are refused.
#[derive(Debug, Clone, Args)]
pub struct S3Config {
    /// Endpoint palaverd calls, e.g. `http://127.0.0.1:7070` or `https://s3.eu-west-1.amazonaws.com`.
    #[arg(long = "s3-endpoint", env = "PALAVER_S3_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Endpoint clients reach, which presigned URLs name (default: PALAVER_S3_ENDPOINT).
    #[arg(long = "s3-public-endpoint", env = "PALAVER_S3_PUBLIC_ENDPOINT")]
    pub public_endpoint: Option<String>,
    /// The bucket (it must exist).
    #[arg(long = "s3-bucket", env = "PALAVER_S3_BUCKET", default_value = "palaver")]
    pub bucket: String,
    #[arg(long = "s3-region", env = "PALAVER_S3_REGION", default_value = "us-east-1")]
    pub region: String,
    #[arg(long = "s3-access-key-id", env = "PALAVER_S3_ACCESS_KEY_ID", default_value = "", hide_env_values = true)]
    pub access_key_id: String,
    #[arg(long = "s3-secret-access-key", env = "PALAVER_S3_SECRET_ACCESS_KEY", default_value = "", hide_env_values = true)]
    pub secret_access_key: String,
    /// PEM bundle of the CAs that sign the store's TLS certificate, besides the system's.
    #[arg(long = "s3-ca-file", env = "PALAVER_S3_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// `bucket.host` requests instead of `host/bucket` (path style, the default).
    #[arg(long = "s3-virtual-hosted", env = "PALAVER_S3_VIRTUAL_HOSTED", default_value_t = false, action = clap::ArgAction::Set)]
    pub virtual_hosted: bool,
}

/// Attachment limits and lifetimes. The three limits are defaults a Workspace's `spec.files`
/// overrides (docs/operator.md).
#[derive(Debug, Clone, Args)]
pub struct FilesConfig {
    /// Largest file, in bytes; larger → `too_large`.
    #[arg(long, env = "PALAVER_FILE_MAX_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub file_max_bytes: i64,
    /// Most files attached to one message.
    #[arg(long, env = "PALAVER_FILE_MAX_PER_MESSAGE", default_value_t = 10)]
    pub file_max_per_message: i32,
    /// Content types that may be uploaded: comma-separated `type/subtype`, `type/*` or `*/*`.
    #[arg(long, env = "PALAVER_FILE_ALLOWED_TYPES", default_value = "*/*", value_delimiter = ',')]
    pub file_allowed_types: Vec<String>,
    /// How long an upload URL is valid, in seconds.
    #[arg(long, env = "PALAVER_FILE_UPLOAD_URL_SECS", default_value_t = 900)]
    pub file_upload_url_secs: u64,
    /// How long a download URL is valid, in seconds.
    #[arg(long, env = "PALAVER_FILE_DOWNLOAD_URL_SECS", default_value_t = 300)]
    pub file_download_url_secs: u64,
    /// An upload not completed, or completed but not attached to a message, this long after it
    /// began is removed (objects and row), in seconds.
    #[arg(long, env = "PALAVER_FILE_ABANDON_SECS", default_value_t = 86_400)]
    pub file_abandon_secs: u64,
    /// Period of the file sweeper (abandoned uploads, files of deleted messages).
    #[arg(long, env = "PALAVER_FILE_SWEEP_INTERVAL_MS", default_value_t = 60_000)]
    pub file_sweep_interval_ms: u64,
    /// Uploads begun per minute per user per pod (a burst of as many); more → 429.
    #[arg(long, env = "PALAVER_FILE_UPLOADS_PER_MINUTE", default_value_t = 60.0)]
    pub file_uploads_per_minute: f64,
    /// Images up to this many bytes get a thumbnail (larger ones are attached without one).
    #[arg(long, env = "PALAVER_THUMBNAIL_MAX_BYTES", default_value_t = 20 * 1024 * 1024)]
    pub thumbnail_max_bytes: u64,
    /// Images of more pixels than this get no thumbnail (decoding them would take too much memory).
    #[arg(long, env = "PALAVER_THUMBNAIL_MAX_PIXELS", default_value_t = 50_000_000)]
    pub thumbnail_max_pixels: u64,
    /// Thumbnails fit in a square of this many pixels.
    #[arg(long, env = "PALAVER_THUMBNAIL_SIZE", default_value_t = 360)]
    pub thumbnail_size: u32,
}

#[derive(Debug, Clone, Args)]
pub struct AuthConfig {
    /// HS256 secret for local development. Also enables `palaverd token` and the dev sign-in
    /// (`/v1/dev`). Never set in production. Empty counts as not set: an empty HMAC key would
    /// let anyone sign tokens. Read it through [`AuthConfig::dev_secret`].
    #[arg(long, env = "PALAVER_DEV_JWT_SECRET", hide_env_values = true)]
    pub dev_jwt_secret: Option<String>,
    /// PEM public key for RS256/ES256 tokens (production).
    #[arg(long, env = "PALAVER_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<std::path::PathBuf>,
    /// Algorithm of the public key: RS256 or ES256.
    #[arg(long, env = "PALAVER_JWT_ALG", default_value = "RS256")]
    pub jwt_alg: String,
    #[arg(long, env = "PALAVER_JWT_ISSUER", default_value = "palaver")]
    pub jwt_issuer: String,
    #[arg(long, env = "PALAVER_JWT_AUDIENCE", default_value = "palaver")]
    pub jwt_audience: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[arg(long, env = "PALAVER_JWT_LEEWAY_SECS", default_value_t = 30)]
    pub jwt_leeway_secs: u64,
}

impl AuthConfig {
    /// The development secret, if one is set and not empty.
    pub fn dev_secret(&self) -> Option<&str> {
        self.dev_jwt_secret.as_deref().filter(|s| !s.is_empty())
    }
}

/// palaverd behind an ingress or load balancer (issue 13; docs/operator.md, "Exposing the
/// gateway").
#[derive(Debug, Clone, Args)]
pub struct HttpConfig {
    /// Proxies whose `Forwarded` / `X-Forwarded-For` (and `X-Forwarded-Host`) are believed:
    /// comma-separated CIDRs or addresses. Unset: none, the socket's peer is the client.
    #[arg(long, env = "PALAVER_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: TrustedProxies,
    /// Origins whose pages may open WebSockets, besides the same origin: comma-separated
    /// `scheme://host[:port]`, or `*` for any. Requests without `Origin` (not browsers) pass.
    #[arg(long, env = "PALAVER_ALLOWED_ORIGINS", default_value = "")]
    pub allowed_origins: AllowedOrigins,
    /// A path prefix the proxy leaves in front of palaverd's routes (`/chat` serves
    /// `/chat/v1/ws` as `/v1/ws`); requests without it are served as they are.
    #[arg(long, env = "PALAVER_PATH_PREFIX", value_parser = parse_path_prefix)]
    pub path_prefix: Option<String>,
}

/// `/chat` or `/chat/` → `/chat`; the root (`/`) or an empty setting means no prefix.
fn parse_path_prefix(s: &str) -> Result<String, String> {
    let trimmed = s.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let valid = s.starts_with('/') && !trimmed.contains("//") && trimmed.chars().all(|c| c.is_ascii_alphanumeric() || "/-._~".contains(c));
    if !valid {
        return Err(format!("{s:?} is not a path prefix: expected /segment[/segment…] of letters, digits and -._~"));
    }
    Ok(trimmed.to_string())
}

#[derive(Debug, Clone, Args)]
pub struct PushConfig {
    /// URL that receives a JSON POST per push (unset: notifications are inbox-only).
    #[arg(long, env = "PALAVER_PUSH_WEBHOOK_URL")]
    pub push_webhook_url: Option<String>,
    /// Attempts before a push goes to the workspace's DLQ topic.
    #[arg(long, env = "PALAVER_PUSH_MAX_ATTEMPTS", default_value_t = 5)]
    pub push_max_attempts: i32,
    /// First retry delay; doubles with every failed attempt (capped at an hour).
    #[arg(long, env = "PALAVER_PUSH_BACKOFF_MS", default_value_t = 1000)]
    pub push_backoff_ms: i64,
    /// How often each pod looks for due pushes.
    #[arg(long, env = "PALAVER_PUSH_INTERVAL_MS", default_value_t = 500)]
    pub push_interval_ms: u64,
}

#[derive(Debug, Clone, Args)]
pub struct Limits {
    /// Largest WebSocket frame accepted; a larger one closes the connection with 1009.
    #[arg(long, env = "PALAVER_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,
    /// Longest message text, in characters; longer → `too_large`.
    #[arg(long, env = "PALAVER_MAX_TEXT_CHARS", default_value_t = 40_000)]
    pub max_text_chars: usize,
    /// Sustained sends per second per connection (token bucket refill).
    #[arg(long, env = "PALAVER_SEND_RATE", default_value_t = 10.0)]
    pub send_rate: f64,
    /// Burst size of the per-connection send bucket.
    #[arg(long, env = "PALAVER_SEND_BURST", default_value_t = 30.0)]
    pub send_burst: f64,
    /// Sends one WebSocket connection may have in flight (not yet acked); while that many are,
    /// the connection reads no further frames. At most half of `PALAVER_OUTBOUND_QUEUE`.
    #[arg(long, env = "PALAVER_SEND_WINDOW", default_value_t = 32)]
    pub send_window: usize,
    /// Frames queued for one connection before it is closed as a slow consumer (4008).
    #[arg(long, env = "PALAVER_OUTBOUND_QUEUE", default_value_t = 1024)]
    pub outbound_queue: usize,
    /// Most events replayed per channel on `sync`; a larger gap gets a `gap` frame.
    #[arg(long, env = "PALAVER_REPLAY_LIMIT", default_value_t = 1000)]
    pub replay_limit: i64,
    /// Largest `limit` of a history page.
    #[arg(long, env = "PALAVER_HISTORY_MAX", default_value_t = 200)]
    pub history_max: i64,
    /// `@here` and `@channel` are refused in channels with more members than this, unless the
    /// sender is a workspace owner or admin (issue 9).
    #[arg(long, env = "PALAVER_BROADCAST_MENTION_MAX_MEMBERS", default_value_t = 1000)]
    pub broadcast_mention_max_members: i64,
    /// Read receipts are kept for channels (DMs included) of at most this many members.
    #[arg(long, env = "PALAVER_RECEIPTS_MAX_MEMBERS", default_value_t = 50)]
    pub receipts_max_members: i64,
    /// Channels with more members than this get no typing indicators (issue 9).
    #[arg(long, env = "PALAVER_TYPING_MAX_MEMBERS", default_value_t = 1000)]
    pub typing_max_members: i64,
    /// Longest search query, in characters (issue 11).
    #[arg(long, env = "PALAVER_SEARCH_MAX_CHARS", default_value_t = crate::domain::search_query::DEFAULT_MAX_CHARS)]
    pub search_max_chars: usize,
    /// Most words, phrases, exclusions and filters in one search query.
    #[arg(long, env = "PALAVER_SEARCH_MAX_TERMS", default_value_t = crate::domain::search_query::DEFAULT_MAX_TERMS)]
    pub search_max_terms: usize,
    /// Largest `limit` of a search page.
    #[arg(long, env = "PALAVER_SEARCH_LIMIT_MAX", default_value_t = 100)]
    pub search_limit_max: i64,
    /// Longest a search query may run in Postgres, in milliseconds; then `bad_request`.
    #[arg(long, env = "PALAVER_SEARCH_TIMEOUT_MS", default_value_t = 2000)]
    pub search_timeout_ms: u64,
    /// Searches per minute per user per pod (a burst of as many); more → 429 `rate_limited`.
    #[arg(long, env = "PALAVER_SEARCH_RATE_PER_MINUTE", default_value_t = 20.0)]
    pub search_rate_per_minute: f64,
    /// Open sockets per pod (HTTP and WebSocket); one more is answered 503 `unavailable`.
    #[arg(long, env = "PALAVER_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,
}

/// Group commit of sends (issue 12, `domain::sender`).
#[derive(Debug, Clone, Args)]
pub struct SendBatching {
    /// Most plain messages committed in one statement.
    #[arg(long, env = "PALAVER_SEND_BATCH_MAX", default_value_t = 64)]
    pub send_batch_max: usize,
    /// Batches of one workspace committing at once per pod; sends that arrive meanwhile wait
    /// and go together in the next.
    #[arg(long, env = "PALAVER_SEND_BATCHES_IN_FLIGHT", default_value_t = 4)]
    pub send_batches_in_flight: usize,
}

#[derive(Debug, Clone, Args)]
pub struct Timing {
    /// How long after `hello` the server waits for `sync` before resuming from stored cursors.
    #[arg(long, env = "PALAVER_SYNC_WAIT_MS", default_value_t = 1000)]
    pub sync_wait_ms: u64,
    /// How long an early event waits for the missing ones before they are read from Postgres.
    #[arg(long, env = "PALAVER_REORDER_WAIT_MS", default_value_t = 50)]
    pub reorder_wait_ms: u64,
    /// Period of the position check (last_seq of served channels vs delivered).
    #[arg(long, env = "PALAVER_POSITION_CHECK_MS", default_value_t = 1000)]
    pub position_check_ms: u64,
    /// Period of the outbox sweeper.
    #[arg(long, env = "PALAVER_SWEEP_INTERVAL_MS", default_value_t = 1000)]
    pub sweep_interval_ms: u64,
    /// Age after which an outbox row counts as stranded and is republished.
    #[arg(long, env = "PALAVER_SWEEP_AGE_MS", default_value_t = 3000)]
    pub sweep_age_ms: u64,
    /// Period of the cursor flush from memory to Postgres.
    #[arg(long, env = "PALAVER_CURSOR_FLUSH_MS", default_value_t = 1000)]
    pub cursor_flush_ms: u64,
    /// Heartbeat interval announced in `hello`; a connection silent for 2× this is closed.
    #[arg(long, env = "PALAVER_HEARTBEAT_MS", default_value_t = 30_000)]
    pub heartbeat_ms: u64,
    /// Longest wait for a complete HTTP request head, on a new connection and between the
    /// requests of a keep-alive one; then the connection is closed.
    #[arg(long, env = "PALAVER_HTTP_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub http_header_timeout_ms: u64,
    /// A connection without client activity (frames other than `ping`) this long is `away`.
    #[arg(long, env = "PALAVER_AWAY_AFTER_MS", default_value_t = 600_000)]
    pub away_after_ms: u64,
    /// A user whose last connection closed goes `offline` only after this (a reconnect within
    /// it does not flap).
    #[arg(long, env = "PALAVER_OFFLINE_GRACE_MS", default_value_t = 30_000)]
    pub offline_grace_ms: u64,
    /// Longest a graceful shutdown may take before the process exits anyway.
    #[arg(long, env = "PALAVER_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,
}

impl Timing {
    pub fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_prefixes_are_normalized_and_validated() {
        assert_eq!(parse_path_prefix("/chat/").as_deref(), Ok("/chat"));
        assert_eq!(parse_path_prefix("/a/b").as_deref(), Ok("/a/b"));
        assert_eq!(parse_path_prefix("/").as_deref(), Ok(""), "the root is no prefix");
        assert_eq!(parse_path_prefix("").as_deref(), Ok(""));
        for bad in ["chat", "/a//b", "/a b", "/a?x=1"] {
            assert!(parse_path_prefix(bad).is_err(), "{bad} should be refused");
        }
    }
}
