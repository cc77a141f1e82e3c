//! Kafka side of provisioning: topic creation through the admin API.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use super::ProvisionError;

const TIMEOUT: Duration = Duration::from_secs(15);

pub struct TopicAdmin {
    admin: AdminClient<DefaultClientContext>,
    replication: i32,
}

impl TopicAdmin {
    pub fn new(brokers: &str) -> Result<Self, ProvisionError> {
        let admin = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .map_err(|e| ProvisionError::Kafka(format!("admin client: {e}")))?;
        Ok(Self { admin, replication: 1 })
    }

    /// Replication factor for new topics (1 for a single local broker; 3 in production).
    pub fn with_replication(mut self, replication: i32) -> Self {
        self.replication = replication;
        self
    }

    /// Creates the topic if missing; returns the partition count it has.
    pub async fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<i32, ProvisionError> {
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(self.replication));
        let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT)).request_timeout(Some(TIMEOUT));
        let results =
            self.admin.create_topics([&new], &opts).await.map_err(|e| ProvisionError::Kafka(format!("create topic {topic}: {e}")))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => return Err(ProvisionError::Kafka(format!("create topic {t}: {code}"))),
            }
        }
        self.partitions(topic).await
    }

    /// Partition count of an existing topic, from broker metadata.
    pub async fn partitions(&self, topic: &str) -> Result<i32, ProvisionError> {
        let metadata = self
            .admin
            .inner()
            .fetch_metadata(Some(topic), TIMEOUT)
            .map_err(|e| ProvisionError::Kafka(format!("metadata for {topic}: {e}")))?;
        let t = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .ok_or_else(|| ProvisionError::Kafka(format!("topic {topic} missing from metadata")))?;
        if let Some(err) = t.error() {
            return Err(ProvisionError::Kafka(format!("metadata for {topic}: {err:?}")));
        }
        Ok(t.partitions().len() as i32)
    }
}
