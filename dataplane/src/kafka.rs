//! Kafka client settings in one place, so tuning the clients (or moving brokers) is one change.

use rdkafka::ClientConfig;

/// Producer: idempotent, acks from all in-sync replicas. A message that cannot be delivered
/// within `message.timeout.ms` fails; its outbox row stays and the sweeper retries it.
///
/// `linger.ms` is 50, not librdkafka's 5: measured on one 2-core machine with the broker beside
/// the pods (docs/benchmarks.md, 2026-12-02), 50 ms batches cut the broker's CPU by half and
/// kept 1,000 sends/s at ack p99 211 ms where 5 ms reached 2.0 s; consumers see an event about
/// 25 ms later (a mean Kafka hop of 35 ms instead of 11 ms), which notifications and pushes do
/// not notice. A deployment whose brokers run elsewhere may set it lower in its properties.
pub fn producer_config(brokers: &str, properties: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("linger.ms", "50").set("message.timeout.ms", "10000").set("queue.buffering.max.messages", "200000");
    with_properties(&mut c, properties);
    c.set("bootstrap.servers", brokers).set("enable.idempotence", "true").set("acks", "all");
    c
}

/// Consumer of the partition-by-channel group. Offsets are stored only after an event is
/// processed and committed in the background from what was stored (so a crash replays, never
/// skips). A fetch is a long poll: Kafka answers as soon as `fetch.min.bytes` (one byte) is
/// there, so `fetch.wait.max.ms` adds no latency to a new event; it only bounds how often an
/// idle consumer asks again. 500 ms (librdkafka's default); 100 ms raised the idle broker's CPU
/// by half (docs/benchmarks.md).
pub fn consumer_config(brokers: &str, group: &str, properties: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("fetch.min.bytes", "1").set("fetch.wait.max.ms", "500").set("session.timeout.ms", "10000");
    with_properties(&mut c, properties);
    c.set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    c
}

/// Adds the deployment's client properties (credentials, TLS, tuning) to `c`: they override the
/// tuning set before this call, and the settings the delivery guarantees rest on are set after
/// it, so those always win.
fn with_properties(c: &mut ClientConfig, properties: &[(String, String)]) {
    for (k, v) in properties {
        c.set(k, v);
    }
}

/// Reads `PALAVER_KAFKA_PROPERTIES_FILE` (`name=value` lines), if set.
pub fn load_properties(path: Option<&std::path::Path>) -> anyhow::Result<Vec<(String, String)>> {
    let Some(path) = path else { return Ok(Vec::new()) };
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    palaver_crds::parse_kafka_properties(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_properties_tune_but_never_weaken_delivery() {
        let props = [
            ("linger.ms", "2"),
            ("acks", "1"),
            ("enable.idempotence", "false"),
            ("fetch.wait.max.ms", "100"),
            ("enable.auto.offset.store", "true"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let p = producer_config("127.0.0.1:9092", &props);
        assert_eq!(p.get("linger.ms"), Some("2"));
        assert_eq!(p.get("acks"), Some("all"));
        assert_eq!(p.get("enable.idempotence"), Some("true"));
        let c = consumer_config("127.0.0.1:9092", "g", &props);
        assert_eq!(c.get("fetch.wait.max.ms"), Some("100"));
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(producer_config("b", &[]).get("linger.ms"), Some("50"));
    }
}
