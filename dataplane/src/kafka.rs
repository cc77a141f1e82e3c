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
