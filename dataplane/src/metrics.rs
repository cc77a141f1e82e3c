//! Prometheus metrics of palaverd, served at `/metrics`.
//!
//! One process-wide registry; every metric name here is listed in docs/observability.md and is
//! what the Grafana dashboards and alerts query.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChangeLabel {
    pub kind: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectOpLabel {
    pub op: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: &'static str,
}

pub struct Metrics {
    pub connections: Gauge,
    pub frames_in: Family<TypeLabel, Counter>,
    pub frames_out: Family<TypeLabel, Counter>,
    pub sends: Family<ResultLabel, Counter>,
    pub changes: Family<ChangeLabel, Counter>,
    pub typing: Family<ResultLabel, Counter>,
    pub receipts: Family<ResultLabel, Counter>,
    pub presence_transitions: Family<ResultLabel, Counter>,
    pub ephemeral_dropped: Counter,
    pub ack_latency: Histogram,
    pub send_batch_size: Histogram,
    pub send_queue_wait: Histogram,
    pub send_queued: Gauge,
    pub send_batch_fallbacks: Counter,
    pub delivery_latency: Histogram,
    pub deliveries: Counter,
    pub outbox_backlog: Gauge,
    pub outbox_republished: Counter,
    pub publish_failures: Family<TypeLabel, Counter>,
    pub slow_consumer_closes: Counter,
    pub errors: Family<CodeLabel, Counter>,
    pub fanout_fills: Family<ReasonLabel, Counter>,
    pub fanout_duplicates: Counter,
    pub fanout_channels: Gauge,
    pub consumed: Family<ResultLabel, Counter>,
    pub consumer_lag: Gauge,
    pub consume_delay: Histogram,
    pub search_indexed: Family<ResultLabel, Counter>,
    pub search_consumer_lag: Gauge,
    pub search_index_lag: Histogram,
    pub searches: Family<ResultLabel, Counter>,
    pub search_duration: Histogram,
    pub notifications: Family<TypeLabel, Counter>,
    pub push_attempts: Family<ResultLabel, Counter>,
    pub push_dead: Counter,
    pub files: Family<ChangeLabel, Counter>,
    pub file_bytes: Counter,
    pub files_swept: Family<ReasonLabel, Counter>,
    pub object_storage_requests: Family<ObjectOpLabel, Counter>,
    pub object_storage_seconds: Family<OpLabel, Histogram, fn() -> Histogram>,
    pub http_requests: Family<RouteLabel, Counter>,
    pub http_duration: Histogram,
    pub http_connections: Gauge,
    pub http_connections_refused: Counter,
    pub http_header_timeouts: Counter,
    registry: Registry,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("palaver");
        let m = Self {
            connections: Gauge::default(),
            frames_in: Family::default(),
            frames_out: Family::default(),
            sends: Family::default(),
            changes: Family::default(),
            typing: Family::default(),
            receipts: Family::default(),
            presence_transitions: Family::default(),
            ephemeral_dropped: Counter::default(),
            ack_latency: latency_histogram(),
            // 1 … 256 sends
            send_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 9)),
            send_queue_wait: latency_histogram(),
            send_queued: Gauge::default(),
            send_batch_fallbacks: Counter::default(),
            delivery_latency: latency_histogram(),
            deliveries: Counter::default(),
            outbox_backlog: Gauge::default(),
            outbox_republished: Counter::default(),
            publish_failures: Family::default(),
            slow_consumer_closes: Counter::default(),
            errors: Family::default(),
            fanout_fills: Family::default(),
            fanout_duplicates: Counter::default(),
            fanout_channels: Gauge::default(),
            consumed: Family::default(),
            consumer_lag: Gauge::default(),
            consume_delay: latency_histogram(),
            search_indexed: Family::default(),
            search_consumer_lag: Gauge::default(),
            // 5 ms … ~11 min: a lagging index is measured in minutes, beyond latency_histogram's 16 s.
            search_index_lag: Histogram::new(exponential_buckets(0.005, 2.0, 18)),
            searches: Family::default(),
            search_duration: latency_histogram(),
            notifications: Family::default(),
            push_attempts: Family::default(),
            push_dead: Counter::default(),
            files: Family::default(),
            file_bytes: Counter::default(),
            files_swept: Family::default(),
            object_storage_requests: Family::default(),
            object_storage_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            http_requests: Family::default(),
            http_duration: latency_histogram(),
            http_connections: Gauge::default(),
            http_connections_refused: Counter::default(),
            http_header_timeouts: Counter::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register("connections", "Open WebSocket connections", m.connections.clone());
        r.register("frames_in", "WebSocket frames received, by type", m.frames_in.clone());
        r.register("frames_out", "WebSocket frames sent, by type", m.frames_out.clone());
        r.register("sends", "Send requests (WS and REST), by result", m.sends.clone());
        r.register(
            "changes",
            "Edit, delete, reaction and channel-settings requests (WS and REST), by kind and result (ok, noop, or an error code)",
            m.changes.clone(),
        );
        r.register("typing", "Typing frames, by result (forwarded, throttled, too_many_members, unavailable)", m.typing.clone());
        r.register("receipts", "Read receipts, by result (forwarded, throttled, too_many_members, unavailable)", m.receipts.clone());
        r.register(
            "presence_transitions",
            "Presence transitions published, by the new status (result: online, away, offline)",
            m.presence_transitions.clone(),
        );
        r.register("ephemeral_dropped", "Typing frames not written to a connection whose queue was full", m.ephemeral_dropped.clone());
        r.register("ack_latency_seconds", "Time from receiving a send to acknowledging it (after commit)", m.ack_latency.clone());
        r.register("send_batch_size", "Sends committed together by the group commit, per batch", m.send_batch_size.clone());
        r.register(
            "send_queue_wait_seconds",
            "Time a send waited in the group commit's queue for its batch to start",
            m.send_queue_wait.clone(),
        );
        r.register("send_queued", "Sends waiting in the group commit's queue for a batch", m.send_queued.clone());
        r.register(
            "send_batch_fallbacks",
            "Batches whose statement failed (a same-cmid race with another pod, a deadlock) and whose sends were retried one by one",
            m.send_batch_fallbacks.clone(),
        );
        r.register("delivery_latency_seconds", "Time from commit to writing the event to a socket", m.delivery_latency.clone());
        r.register("deliveries", "Events written to sockets", m.deliveries.clone());
        r.register("outbox_backlog", "Outbox rows older than the sweep age at the last sweep", m.outbox_backlog.clone());
        r.register("outbox_republished", "Outbox rows republished by the sweeper", m.outbox_republished.clone());
        r.register("publish_failures", "Failed publishes after commit, by target (redis, kafka)", m.publish_failures.clone());
        r.register("slow_consumer_closes", "Connections closed because their outbound queue filled", m.slow_consumer_closes.clone());
        r.register("errors", "Errors returned to clients, by code", m.errors.clone());
        r.register("fanout_fills", "Events read from Postgres by the fan-out, by reason (hole, position)", m.fanout_fills.clone());
        r.register("fanout_duplicates", "Events the fan-out dropped as already delivered", m.fanout_duplicates.clone());
        r.register("fanout_channels", "Channels this pod is subscribed to", m.fanout_channels.clone());
        r.register("consumed", "Events processed by the partition-by-channel consumer, by result", m.consumed.clone());
        r.register("consumer_lag", "Events in assigned partitions not yet processed by this pod", m.consumer_lag.clone());
        r.register(
            "consume_delay_seconds",
            "Time from an event's publish to Kafka (its message timestamp) to this pod's consumer receiving it",
            m.consume_delay.clone(),
        );
        r.register(
            "search_indexed",
            "Events the search indexer processed, by result (indexed, unchanged, skipped, invalid, error)",
            m.search_indexed.clone(),
        );
        r.register(
            "search_consumer_lag",
            "Events in the search indexer's assigned partitions not yet indexed by this pod",
            m.search_consumer_lag.clone(),
        );
        r.register(
            "search_index_lag_seconds",
            "Time from an event being sent to the search indexer applying it (send to searchable)",
            m.search_index_lag.clone(),
        );
        r.register("searches", "Searches, by result (ok, bad_request, rate_limited, timeout, error)", m.searches.clone());
        r.register("search_duration_seconds", "Time to answer a search", m.search_duration.clone());
        r.register("notifications", "Inbox entries created, by kind (mention, dm)", m.notifications.clone());
        r.register("push_attempts", "Push deliveries attempted, by result", m.push_attempts.clone());
        r.register("push_dead", "Pushes that ran out of attempts and went to the DLQ", m.push_dead.clone());
        r.register(
            "files",
            "Attachment requests, by kind (upload, complete, download, thumbnail) and result (ok, or an error code)",
            m.files.clone(),
        );
        r.register("file_bytes", "Bytes of attachments completed (verified in object storage)", m.file_bytes.clone());
        r.register(
            "files_swept",
            "Attachments removed from object storage and Postgres by the sweeper, by reason (deleted, abandoned)",
            m.files_swept.clone(),
        );
        r.register(
            "object_storage_requests",
            "Calls to S3-compatible object storage, by operation (sign, head, get, put, delete) and result (ok, not_found, error)",
            m.object_storage_requests.clone(),
        );
        r.register("object_storage_seconds", "Duration of object storage calls, by operation", m.object_storage_seconds.clone());
        r.register("http_requests", "REST requests, by route and status", m.http_requests.clone());
        r.register("http_request_duration_seconds", "REST request duration", m.http_duration.clone());
        r.register("http_connections", "Open TCP connections (HTTP and WebSocket)", m.http_connections.clone());
        r.register(
            "http_connections_refused",
            "Connections refused with 503 because the pod was at PALAVER_MAX_CONNECTIONS",
            m.http_connections_refused.clone(),
        );
        r.register(
            "http_header_timeouts",
            "Connections closed because no complete request head came within PALAVER_HTTP_HEADER_TIMEOUT_MS",
            m.http_header_timeouts.clone(),
        );
        m.zero_known_series();
        Self { registry, ..m }
    }

    /// Creates every series whose label values are known up front, at 0: a rate over a series
    /// that does not exist yet is "no data", and an alert on it could never fire.
    fn zero_known_series(&self) {
        for t in ["redis", "kafka"] {
            self.publish_failures.get_or_create(&TypeLabel { r#type: t }).inc_by(0);
        }
        for reason in ["hole", "position"] {
            self.fanout_fills.get_or_create(&ReasonLabel { reason }).inc_by(0);
        }
        for result in ["ok", "skipped", "invalid", "error"] {
            self.consumed.get_or_create(&ResultLabel { result }).inc_by(0);
        }
        for result in ["indexed", "unchanged", "skipped", "invalid", "error"] {
            self.search_indexed.get_or_create(&ResultLabel { result }).inc_by(0);
        }
        for result in ["ok", "bad_request", "rate_limited", "timeout", "error"] {
            self.searches.get_or_create(&ResultLabel { result }).inc_by(0);
        }
        for t in ["mention", "dm", "thread"] {
            self.notifications.get_or_create(&TypeLabel { r#type: t }).inc_by(0);
        }
        for result in ["ok", "error"] {
            self.push_attempts.get_or_create(&ResultLabel { result }).inc_by(0);
        }
        self.sends.get_or_create(&ResultLabel { result: "ok" }).inc_by(0);
        for kind in ["upload", "complete", "download", "thumbnail"] {
            self.files.get_or_create(&ChangeLabel { kind, result: "ok" }).inc_by(0);
        }
        for reason in ["deleted", "abandoned"] {
            self.files_swept.get_or_create(&ReasonLabel { reason }).inc_by(0);
        }
        for op in ["sign", "head", "get", "put", "delete"] {
            let _ = self.object_storage_seconds.get_or_create(&OpLabel { op });
            for result in ["ok", "not_found", "error"] {
                self.object_storage_requests.get_or_create(&ObjectOpLabel { op, result }).inc_by(0);
            }
        }
        for result in ["online", "away", "offline"] {
            self.presence_transitions.get_or_create(&ResultLabel { result }).inc_by(0);
        }
        for result in ["forwarded", "throttled", "too_many_members", "unavailable"] {
            self.typing.get_or_create(&ResultLabel { result }).inc_by(0);
            self.receipts.get_or_create(&ResultLabel { result }).inc_by(0);
        }
        for kind in ["edit", "delete", "reaction_add", "reaction_remove", "channel_update"] {
            for result in ["ok", "noop"] {
                self.changes.get_or_create(&ChangeLabel { kind, result }).inc_by(0);
            }
        }
        for code in crate::error::ErrorCode::ALL {
            self.errors.get_or_create(&CodeLabel { code: code.as_str() }).inc_by(0);
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("metrics encode");
        out
    }
}

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}
