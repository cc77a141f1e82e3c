//! Kafka client settings in one place (broker quirks of the local tansu broker live here too,
//! so moving brokers is one change).

use rdkafka::ClientConfig;

/// Producer: idempotent, acks from all in-sync replicas. Kafka is off the real-time path, so
/// it lingers 50 ms to send fewer, larger batches (per-request cost dominates on tansu). A
/// message that cannot be delivered within `message.timeout.ms` fails; its outbox row stays and
/// the sweeper retries it.
pub fn producer_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
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
pub fn consumer_config(brokers: &str, group: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
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
