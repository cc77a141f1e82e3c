//! Kafka client settings in one place, so tuning the clients (or moving brokers) is one change.

use rdkafka::ClientConfig;

/// Producer: idempotent, acks from all in-sync replicas. A 5 ms linger (librdkafka's default)
/// batches a burst of sends into one request without holding a lone event back noticeably:
/// consumers (notifications, push) see an event a few milliseconds after it is committed. A
/// message that cannot be delivered within `message.timeout.ms` fails; its outbox row stays and
/// the sweeper retries it.
pub fn producer_config(brokers: &str, properties: &[(String, String)]) -> ClientConfig {
    let mut c = with_properties(properties);
    c.set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "10000")
        .set("queue.buffering.max.messages", "200000");
    c
}

/// Consumer of the partition-by-channel group. Offsets are stored only after an event is
/// processed and committed in the background from what was stored (so a crash replays, never
/// skips). A fetch is a long poll: Kafka answers as soon as `fetch.min.bytes` (one byte) is
/// there, so `fetch.wait.max.ms` adds no latency to a new event; it only bounds how often an
/// idle consumer asks again (librdkafka's default of 500 ms).
pub fn consumer_config(brokers: &str, group: &str, properties: &[(String, String)]) -> ClientConfig {
    let mut c = with_properties(properties);
    c.set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.min.bytes", "1")
        .set("fetch.wait.max.ms", "500")
        .set("session.timeout.ms", "10000");
    c
}

/// A config holding the deployment's client properties (credentials, TLS) first; the settings
/// above win where both name the same property.
fn with_properties(properties: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in properties {
        c.set(k, v);
    }
    c
}

/// Reads `PALAVER_KAFKA_PROPERTIES_FILE` (`name=value` lines), if set.
pub fn load_properties(path: Option<&std::path::Path>) -> anyhow::Result<Vec<(String, String)>> {
    let Some(path) = path else { return Ok(Vec::new()) };
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    palaver_crds::parse_kafka_properties(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
