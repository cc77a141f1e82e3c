//! Kafka client settings in one place (broker quirks of the local tansu broker live here too,
//! so moving brokers is one change).

use rdkafka::ClientConfig;

/// Producer: idempotent, acks from all in-sync replicas, short linger for low latency. A
/// message that cannot be delivered within `message.timeout.ms` fails; its outbox row stays and
/// the sweeper retries it.
pub fn producer_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
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
/// skips). The local tansu broker waits about half of `fetch.wait.max.ms` on every fetch even
/// when data is ready, and busy-polls below that: 100 ms keeps it cheap while notification
/// latency (not on the real-time path) stays well under a second.
pub fn consumer_config(brokers: &str, group: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .set("session.timeout.ms", "10000");
    c
}
