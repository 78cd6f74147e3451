//! Reading a topic back from the beginning to its current end: sluice's own state, and the
//! keys a table's topic holds.

use std::time::{Duration, Instant};

use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::config::{KafkaConfig, TracingContext, client_config};
use crate::error::KafkaError;

/// One record read back: key and value (`None` for a tombstone).
pub type Record = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Every record of `topic`, partition by partition, up to the end it had when reading began.
/// Blocking: call it from `spawn_blocking`.
pub fn read_to_end(
    config: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<Record>, KafkaError> {
    let mut client = client_config(config);
    client
        .set("group.id", "sluice-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer<TracingContext> =
        BaseConsumer::from_config_and_context(&client, TracingContext).map_err(|source| {
            KafkaError::Create {
                client: "consumer",
                source,
            }
        })?;
    let records = read_with(&consumer, config, topic, timeout);
    // Destroying a consumer waits for librdkafka's threads to stop, about 100 ms: off the
    // caller's path (a restart waits for this read), as nothing depends on it.
    let closing = std::thread::Builder::new()
        .name("consumer close".to_owned())
        .spawn(move || drop(consumer));
    if let Err(err) = closing {
        tracing::debug!(target: "sluice_kafka", error = %err, "closing the consumer in place");
    }
    records
}

fn read_with(
    consumer: &BaseConsumer<TracingContext>,
    config: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<Record>, KafkaError> {
    let unreachable = |reason: String| KafkaError::Unreachable {
        bootstrap_servers: config.bootstrap_servers.clone(),
        timeout,
        reason,
    };
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| unreachable(format!("reading topic `{topic}`: {e}")))?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(Vec::new());
    };
    // A topic that does not exist holds nothing; one the broker will not describe is an error,
    // never taken for an empty topic.
    match found.error().map(RDKafkaErrorCode::from) {
        None => {}
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            return Ok(Vec::new());
        }
        Some(
            code @ (RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed),
        ) => {
            return Err(KafkaError::TopicAuthorization {
                topic: topic.to_owned(),
                code,
            });
        }
        Some(code) => {
            return Err(KafkaError::Topic {
                topic: topic.to_owned(),
                code: Some(code),
                message: format!("reading the topic failed: {code}"),
            });
        }
    }
    let partitions: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
    if partitions.is_empty() {
        return Err(KafkaError::Topic {
            topic: topic.to_owned(),
            code: None,
            message: "the broker describes the topic without partitions".to_owned(),
        });
    }
    let mut ends = Vec::new();
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, timeout)
            .map_err(|e| unreachable(format!("reading topic `{topic}`: {e}")))?;
        if high > low {
            ends.push((partition, high));
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .map_err(|e| unreachable(e.to_string()))?;
        }
    }
    let mut records = Vec::new();
    if ends.is_empty() {
        return Ok(records);
    }
    consumer
        .assign(&assignment)
        .map_err(|e| unreachable(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    let mut remaining = ends.len();
    while remaining > 0 {
        if Instant::now() > deadline {
            return Err(unreachable(format!(
                "reading topic `{topic}` to its end took longer than {timeout:?}"
            )));
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.map_err(|e| unreachable(format!("reading topic `{topic}`: {e}")))?;
        records.push((
            message.key().map(<[u8]>::to_vec),
            message.payload().map(<[u8]>::to_vec),
        ));
        if let Some((_, end)) = ends.iter().find(|(p, _)| *p == message.partition())
            && message.offset() + 1 == *end
        {
            remaining -= 1;
        }
    }
    Ok(records)
}
