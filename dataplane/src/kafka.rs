//! Kafka client settings in one place (broker quirks of the local tansu broker live here too,
//! so moving brokers is one change).

use rdkafka::ClientConfig;

/// Producer: idempotent, acks from all in-sync replicas. Kafka is off the real-time path, so
/// it lingers 50 ms to send fewer, larger batches (per-request cost dominates on tansu). A
/// message that cannot be delivered within `message.timeout.ms` fails; its outbox row stays and
/// the sweeper retries it.
pub fn producer_config(brokers: &str, properties: &[(String, String)]) -> ClientConfig {
    let mut c = with_properties(properties);
    c.set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "50")
        .set("message.timeout.ms", "10000")
        .set("queue.buffering.max.messages", "200000");
    c
}

/// Consumer of the partition-by-channel group. Offsets are stored only after an event is
/// processed and committed in the background from what was stored (so a crash replays, never
/// skips). Fetch waits are long because every fetch costs the local tansu broker SQLite work
/// (two idle consumers at 100 ms kept it at ~14% of a 2-core machine; tansu answers after about
/// half the wait even when data is ready): notifications are not on the real-time path, so
/// ~250 ms more latency there buys the data plane its CPU back.
pub fn consumer_config(brokers: &str, group: &str, properties: &[(String, String)]) -> ClientConfig {
    let mut c = with_properties(properties);
    c.set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
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
