//! Startup checks: is Kafka there, and do the topics exist.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::metadata::Metadata;
use rdkafka::producer::Producer as _;

use crate::config::{TracingContext, client_config};
use crate::error::KafkaError;
use crate::producer::Producer;

/// Bound on each admin round trip and on waiting for new topics to get leaders: long enough
/// for a busy controller, short enough that a stuck startup says so.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What the metadata says about one topic.
enum TopicState {
    Missing,
    Exists {
        partitions: usize,
        /// Every partition has a leader, so producing to it works right away.
        ready: bool,
    },
}

impl Producer {
    /// Creates the topics that do not exist yet, with the configured partitions and replication
    /// factor, and waits until their partitions have leaders. Existing topics are left alone; a
    /// topic another process creates meanwhile counts as existing. Returns each topic's
    /// partition count, in the order given.
    pub async fn ensure_topics(&self, topics: &[String]) -> Result<Vec<i32>, KafkaError> {
        self.ensure_topics_with(topics, self.config.partitions, &[])
            .await
    }

    /// Like [`Producer::ensure_topics`], with the partition count and topic configs given
    /// (e.g. a one-partition compacted topic for sluice's own state).
    pub async fn ensure_topics_with(
        &self,
        topics: &[String],
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> Result<Vec<i32>, KafkaError> {
        let mut missing: Vec<&str> = Vec::new();
        let mut counts = Vec::with_capacity(topics.len());
        for topic in topics {
            if missing.contains(&topic.as_str()) {
                counts.push(partitions);
                continue;
            }
            match self.describe(topic).await? {
                TopicState::Missing => {
                    missing.push(topic);
                    counts.push(partitions);
                }
                TopicState::Exists {
                    partitions: found, ..
                } => {
                    let found = i32::try_from(found).unwrap_or(i32::MAX);
                    if found != partitions {
                        tracing::warn!(
                            target: "sluice_kafka",
                            topic = %topic,
                            partitions = found,
                            configured = partitions,
                            "the topic has another partition count than configured; sluice keeps \
                             it and places each key by murmur2 over its {found} partitions. If \
                             partitions were added after events were written, a key's earlier and \
                             later events are in different partitions, and their order across \
                             that change is not kept (docs/semantics.md)"
                        );
                    }
                    counts.push(found);
                }
            }
        }
        if missing.is_empty() {
            return Ok(counts);
        }

        // Only creating needs an admin client; describing goes through the producer's own
        // connection, which is up already (a new client's first connection cost ~100 ms).
        let admin =
            AdminClient::from_config_and_context(&client_config(&self.config), TracingContext)
                .map_err(|source| KafkaError::Create {
                    client: "admin client",
                    source,
                })?;
        let new_topics: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|topic| {
                let replication = TopicReplication::Fixed(self.config.replication_factor);
                configs.iter().fold(
                    NewTopic::new(topic, partitions, replication),
                    |new, (key, value)| new.set(key, value),
                )
            })
            .collect();
        let options = AdminOptions::new()
            .request_timeout(Some(ADMIN_TIMEOUT))
            .operation_timeout(Some(ADMIN_TIMEOUT));
        let results = admin
            .create_topics(&new_topics, &options)
            .await
            .map_err(|source| KafkaError::Topic {
                topic: missing.join(", "),
                code: source.rdkafka_error_code(),
                message: format!("creating the topic failed: {source}"),
            })?;
        for result in results {
            match result {
                Ok(topic) => tracing::info!(
                    target: "sluice_kafka",
                    topic = %topic,
                    partitions,
                    replication_factor = self.config.replication_factor,
                    "created topic"
                ),
                // Another sluice (or an operator) won the race: the topic is there, as wanted.
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(self.creation_error(topic, code)),
            }
        }
        self.wait_until_ready(&missing).await?;
        Ok(counts)
    }

    /// Fetches cluster metadata once: fails, naming the bootstrap servers and what to check,
    /// when no broker answers within `timeout`.
    pub async fn check_reachable(&self, timeout: Duration) -> Result<(), KafkaError> {
        let producer = self.inner.clone();
        let metadata =
            tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, timeout))
                .await
                .map_err(|join| KafkaError::Cancelled(join.to_string()))?;
        let unreachable = |reason: String| self.no_metadata(timeout, reason);
        let metadata = metadata.map_err(|error| unreachable(error.to_string()))?;
        if metadata.brokers().is_empty() {
            return Err(unreachable("the cluster reported no brokers".to_owned()));
        }
        tracing::debug!(
            target: "sluice_kafka",
            brokers = metadata.brokers().len(),
            "Kafka is reachable"
        );
        Ok(())
    }

    async fn describe(&self, topic: &str) -> Result<TopicState, KafkaError> {
        let metadata = self.fetch_topic_metadata(topic).await?;
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Ok(TopicState::Missing);
        };
        match found.error().map(RDKafkaErrorCode::from) {
            None | Some(RDKafkaErrorCode::LeaderNotAvailable) => Ok(TopicState::Exists {
                partitions: found.partitions().len(),
                ready: !found.partitions().is_empty()
                    && found
                        .partitions()
                        .iter()
                        .all(|p| p.error().is_none() && p.leader() >= 0),
            }),
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                Ok(TopicState::Missing)
            }
            Some(
                code @ (RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed),
            ) => Err(KafkaError::TopicAuthorization {
                topic: topic.to_owned(),
                code,
            }),
            Some(code) => Err(KafkaError::Topic {
                topic: topic.to_owned(),
                code: Some(code),
                message: format!("describing the topic failed: {code}"),
            }),
        }
    }

    async fn fetch_topic_metadata(&self, topic: &str) -> Result<Metadata, KafkaError> {
        let producer = self.inner.clone();
        let name = topic.to_owned();
        // fetch_metadata blocks until the broker answers.
        let metadata = tokio::task::spawn_blocking(move || {
            producer.client().fetch_metadata(Some(&name), ADMIN_TIMEOUT)
        })
        .await
        .map_err(|join| KafkaError::Cancelled(join.to_string()))?;
        metadata.map_err(|error| {
            self.no_metadata(
                ADMIN_TIMEOUT,
                format!("describing topic `{topic}`: {error}"),
            )
        })
    }

    /// No metadata came: the brokers refused the connection's security (a definite error) or
    /// did not answer (an outage).
    fn no_metadata(&self, timeout: Duration, reason: String) -> KafkaError {
        match self.inner.context().refused() {
            Some(refused) => KafkaError::Authentication {
                bootstrap_servers: self.config.bootstrap_servers.clone(),
                reason: refused,
            },
            None => KafkaError::Unreachable {
                bootstrap_servers: self.config.bootstrap_servers.clone(),
                timeout,
                reason,
            },
        }
    }

    fn creation_error(&self, topic: String, code: RDKafkaErrorCode) -> KafkaError {
        let message = match code {
            RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed => {
                return KafkaError::TopicAuthorization { topic, code };
            }
            RDKafkaErrorCode::InvalidReplicationFactor => format!(
                "creating the topic failed: {code}; replication factor {} needs at least that \
                 many brokers (set kafka.replication_factor)",
                self.config.replication_factor
            ),
            RDKafkaErrorCode::PolicyViolation => format!(
                "creating the topic failed: {code}; the broker's create.topic.policy refused \
                 {} partitions / replication factor {}: create the topic beforehand",
                self.config.partitions, self.config.replication_factor
            ),
            _ => format!("creating the topic failed: {code}"),
        };
        KafkaError::Topic {
            topic,
            code: Some(code),
            message,
        }
    }

    /// Topic creation returns before every broker knows the topic; wait until the metadata shows
    /// all partitions with a leader, so the first events do not wait on librdkafka's retries.
    async fn wait_until_ready(&self, topics: &[&str]) -> Result<(), KafkaError> {
        let deadline = Instant::now() + ADMIN_TIMEOUT;
        for topic in topics {
            loop {
                if let TopicState::Exists { ready: true, .. } = self.describe(topic).await? {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(KafkaError::Topic {
                        topic: (*topic).to_owned(),
                        code: None,
                        message: format!(
                            "created, but its partitions still have no leader after \
                             {ADMIN_TIMEOUT:?}"
                        ),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }
}
