//! Kafka side of provisioning: topics through the admin API (create, grow, reconfigure, delete).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use super::ProvisionError;

const TIMEOUT: Duration = Duration::from_secs(15);

pub struct TopicAdmin {
    /// Shared with the blocking thread a metadata request runs on.
    admin: Arc<AdminClient<DefaultClientContext>>,
    /// -1: the broker's default.
    replication: i32,
}

/// A topic as the provisioner wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec<'a> {
    pub name: &'a str,
    pub partitions: i32,
    /// `retention.ms` of a new topic; `None` keeps the broker's default.
    pub retention_ms: Option<i64>,
    /// Also set `retention.ms` on an existing topic (the wanted value changed).
    pub retention_changed: bool,
}

impl TopicAdmin {
    /// An admin client for `brokers`, with extra librdkafka `properties` (credentials).
    pub fn new(brokers: &str, properties: &[(String, String)]) -> Result<Self, ProvisionError> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", brokers);
        for (k, v) in properties {
            config.set(k, v);
        }
        let admin = config.create().map_err(|e| ProvisionError::Kafka(format!("admin client: {e}")))?;
        Ok(Self { admin: Arc::new(admin), replication: -1 })
    }

    /// Replication factor of new topics; without it the broker's `default.replication.factor`
    /// applies (replication factor -1 in CreateTopics, Kafka 2.4 and later).
    pub fn with_replication(mut self, replication: i32) -> Self {
        self.replication = replication;
        self
    }

    fn options() -> AdminOptions {
        AdminOptions::new().operation_timeout(Some(TIMEOUT)).request_timeout(Some(TIMEOUT))
    }

    /// Creates the topic if missing and grows it to `spec.partitions` if it has fewer; never
    /// shrinks (Kafka cannot). Returns the partition count it has afterwards.
    pub async fn ensure_topic(&self, spec: &TopicSpec<'_>) -> Result<i32, ProvisionError> {
        let topic = spec.name;
        let retention = spec.retention_ms.map(|ms| ms.to_string());
        let mut new = NewTopic::new(topic, spec.partitions, TopicReplication::Fixed(self.replication));
        if let Some(ms) = &retention {
            new = new.set("retention.ms", ms);
        }
        let results =
            self.admin.create_topics([&new], &Self::options()).await.map_err(|e| admin_error(format!("create topic {topic}"), e))?;
        let mut created = false;
        for r in results {
            match r {
                Ok(_) => created = true,
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => return Err(ProvisionError::KafkaRefused(format!("create topic {t}: {code}"))),
            }
        }
        if created {
            return self.settled_partitions(topic, spec.partitions).await;
        }
        if let (true, Some(ms)) = (spec.retention_changed, &retention) {
            self.set_retention(topic, ms).await?;
        }
        let have = self.partitions(topic).await?;
        if have >= spec.partitions {
            return Ok(have);
        }
        let grow = NewPartitions::new(topic, spec.partitions as usize);
        let results = self
            .admin
            .create_partitions([&grow], &Self::options())
            .await
            .map_err(|e| admin_error(format!("grow topic {topic} to {} partitions", spec.partitions), e))?;
        for r in results {
            if let Err((t, code)) = r {
                return Err(ProvisionError::KafkaRefused(format!("grow topic {t} from {have} to {} partitions: {code}", spec.partitions)));
            }
        }
        self.settled_partitions(topic, spec.partitions).await
    }

    /// The partition count once broker metadata shows `topic` with at least `want` partitions
    /// (waiting up to the admin timeout): Kafka answers CreateTopics and CreatePartitions when
    /// its controller has committed the change, and the metadata brokers serve catches up a
    /// moment later.
    async fn settled_partitions(&self, topic: &str, want: i32) -> Result<i32, ProvisionError> {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let seen = self.partitions(topic).await;
            match seen {
                Ok(n) if n >= want => return Ok(n),
                _ if tokio::time::Instant::now() >= deadline => {
                    return Err(ProvisionError::Kafka(match seen {
                        Ok(n) => format!("topic {topic}: metadata shows {n} partitions {TIMEOUT:?} after the change to {want}"),
                        Err(e) => format!("topic {topic} not in metadata {TIMEOUT:?} after its creation: {e}"),
                    }));
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Sets `retention.ms` of an existing topic. rdkafka has no IncrementalAlterConfigs, and
    /// AlterConfigs replaces the topic's whole set of overrides: the overrides the topic has are
    /// read first and written back with the new retention, so none is lost.
    async fn set_retention(&self, topic: &str, ms: &str) -> Result<(), ProvisionError> {
        let what = format!("set retention of {topic}");
        let resource = ResourceSpecifier::Topic(topic);
        let described = self.admin.describe_configs([&resource], &Self::options()).await.map_err(|e| admin_error(what.clone(), e))?;
        let mut overrides = BTreeMap::new();
        for r in described {
            let r = r.map_err(|code| ProvisionError::KafkaRefused(format!("{what}: describe configs: {code}")))?;
            for e in r.entries.into_iter().filter(|e| e.source == ConfigSource::DynamicTopic) {
                // A secret override cannot be read back, so it could not be written back either.
                let value = e
                    .value
                    .filter(|_| !e.is_sensitive)
                    .ok_or_else(|| ProvisionError::KafkaRefused(format!("{what}: the topic has a sensitive override {}", e.name)))?;
                overrides.insert(e.name, value);
            }
        }
        overrides.insert("retention.ms".to_string(), ms.to_string());
        let mut alter = AlterConfig::new(resource);
        for (k, v) in &overrides {
            alter = alter.set(k, v);
        }
        let results = self.admin.alter_configs([&alter], &Self::options()).await.map_err(|e| admin_error(what.clone(), e))?;
        for r in results {
            if let Err((_, code)) = r {
                return Err(ProvisionError::KafkaRefused(format!("{what}: {code}")));
            }
        }
        Ok(())
    }

    /// Deletes the topics; missing ones are fine.
    pub async fn delete_topics(&self, topics: &[&str]) -> Result<(), ProvisionError> {
        let results =
            self.admin.delete_topics(topics, &Self::options()).await.map_err(|e| admin_error(format!("delete topics {topics:?}"), e))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((t, code)) => return Err(ProvisionError::KafkaRefused(format!("delete topic {t}: {code}"))),
            }
        }
        Ok(())
    }

    /// The configs set on the topic itself (its overrides of the broker defaults), by name.
    pub async fn topic_overrides(&self, topic: &str) -> Result<BTreeMap<String, String>, ProvisionError> {
        let what = format!("describe configs of {topic}");
        let described = self
            .admin
            .describe_configs([&ResourceSpecifier::Topic(topic)], &Self::options())
            .await
            .map_err(|e| admin_error(what.clone(), e))?;
        let mut overrides = BTreeMap::new();
        for r in described {
            let r = r.map_err(|code| ProvisionError::KafkaRefused(format!("{what}: {code}")))?;
            for e in r.entries.into_iter().filter(|e| e.source == ConfigSource::DynamicTopic) {
                if let Some(v) = e.value {
                    overrides.insert(e.name, v);
                }
            }
        }
        Ok(overrides)
    }

    /// Partition count of an existing topic, from broker metadata.
    pub async fn partitions(&self, topic: &str) -> Result<i32, ProvisionError> {
        // librdkafka's metadata call blocks (up to TIMEOUT): keep it off the async workers.
        let (admin, name) = (self.admin.clone(), topic.to_string());
        let metadata = tokio::task::spawn_blocking(move || admin.inner().fetch_metadata(Some(&name), TIMEOUT))
            .await
            .map_err(|e| ProvisionError::Kafka(format!("metadata for {topic}: {e}")))?
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

/// A failed admin request: refused when the broker answered with an error code (an operator must
/// act: unsupported, not allowed, invalid), unavailable when it could not be asked (retrying helps).
fn admin_error(what: String, e: rdkafka::error::KafkaError) -> ProvisionError {
    use RDKafkaErrorCode as C;
    let code = match &e {
        rdkafka::error::KafkaError::AdminOp(code) => Some(*code),
        other => other.rdkafka_error_code(),
    };
    let transient = matches!(
        code,
        None | Some(
            C::OperationTimedOut
                | C::RequestTimedOut
                | C::AllBrokersDown
                | C::BrokerTransportFailure
                | C::BrokerNotAvailable
                | C::NetworkException
                | C::LeaderNotAvailable
                | C::NotController
                | C::Resolve
                | C::Fail
        )
    );
    if transient {
        ProvisionError::Kafka(format!("{what}: {e}"))
    } else {
        ProvisionError::KafkaRefused(format!("{what}: {e}"))
    }
}
