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
/// Blocking: call it from `spawn_blocking`. `timeout` bounds each wait for the broker, not the
/// whole read, which takes as long as the topic's size needs.
pub fn read_to_end(
    config: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<Record>, KafkaError> {
    let ends = end_offsets(config, topic, timeout)?;
    let mut records = Vec::new();
    read_to(config, topic, &ends, timeout, |key, value| {
        records.push((key.map(<[u8]>::to_vec), value.map(<[u8]>::to_vec)));
        Ok(())
    })?;
    Ok(records)
}

/// Where each partition of `topic` holding records ends now: (partition, offset after its
/// last record). Empty for a topic that does not exist; an error for one the broker will not
/// describe. Blocking.
pub fn end_offsets(
    config: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<(i32, i64)>, KafkaError> {
    let consumer = consumer(config)?;
    let ends = ends_with(&consumer, config, topic, timeout);
    close_in_background(consumer);
    ends
}

/// Calls `record` with every record of `topic` (key, value) up to `ends` (from
/// [`end_offsets`]), partition by partition in offset order. `timeout` bounds each wait for
/// the broker: a read makes progress or fails, however long the topic. Blocking.
pub fn read_to<E: From<KafkaError>>(
    config: &KafkaConfig,
    topic: &str,
    ends: &[(i32, i64)],
    timeout: Duration,
    mut record: impl FnMut(Option<&[u8]>, Option<&[u8]>) -> Result<(), E>,
) -> Result<(), E> {
    if ends.is_empty() {
        return Ok(());
    }
    let consumer = consumer(config)?;
    let read = read_with(&consumer, config, topic, ends, timeout, &mut record);
    close_in_background(consumer);
    read
}

fn consumer(config: &KafkaConfig) -> Result<BaseConsumer<TracingContext>, KafkaError> {
    let mut client = client_config(config);
    client
        .set("group.id", "sluice-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    BaseConsumer::from_config_and_context(&client, TracingContext).map_err(|source| {
        KafkaError::Create {
            client: "consumer",
            source,
        }
    })
}

/// Destroying a consumer waits for librdkafka's threads to stop, about 100 ms: off the
/// caller's path (a restart waits for the read), as nothing depends on it.
fn close_in_background(consumer: BaseConsumer<TracingContext>) {
    let closing = std::thread::Builder::new()
        .name("consumer close".to_owned())
        .spawn(move || drop(consumer));
    if let Err(err) = closing {
        tracing::debug!(target: "sluice_kafka", error = %err, "closing the consumer in place");
    }
}

fn unreachable(config: &KafkaConfig, timeout: Duration, reason: String) -> KafkaError {
    KafkaError::Unreachable {
        bootstrap_servers: config.bootstrap_servers.clone(),
        timeout,
        reason,
    }
}

fn ends_with(
    consumer: &BaseConsumer<TracingContext>,
    config: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<(i32, i64)>, KafkaError> {
    let unreachable = |reason: String| unreachable(config, timeout, reason);
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
    if found.partitions().is_empty() {
        return Err(KafkaError::Topic {
            topic: topic.to_owned(),
            code: None,
            message: "the broker describes the topic without partitions".to_owned(),
        });
    }
    let mut ends = Vec::new();
    for partition in found.partitions() {
        let (low, high) = watermarks(consumer, topic, partition.id(), timeout)
            .map_err(|e| unreachable(format!("reading topic `{topic}`: {e}")))?;
        if high > low {
            ends.push((partition.id(), high));
        }
    }
    Ok(ends)
}

/// A partition's low and high watermarks. A topic just created has no leader for a moment
/// (`NotLeaderForPartition`, `LeaderNotAvailable`): asked again until `timeout`.
fn watermarks(
    consumer: &BaseConsumer<TracingContext>,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<(i64, i64), rdkafka::error::KafkaError> {
    let deadline = Instant::now() + timeout;
    loop {
        match consumer.fetch_watermarks(topic, partition, timeout) {
            Err(err)
                if matches!(
                    err.rdkafka_error_code(),
                    Some(
                        RDKafkaErrorCode::NotLeaderForPartition
                            | RDKafkaErrorCode::LeaderNotAvailable
                    )
                ) && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            done => return done,
        }
    }
}

fn read_with<E: From<KafkaError>>(
    consumer: &BaseConsumer<TracingContext>,
    config: &KafkaConfig,
    topic: &str,
    ends: &[(i32, i64)],
    timeout: Duration,
    record: &mut impl FnMut(Option<&[u8]>, Option<&[u8]>) -> Result<(), E>,
) -> Result<(), E> {
    let unreachable = |reason: String| unreachable(config, timeout, reason);
    let mut assignment = TopicPartitionList::new();
    for (partition, _) in ends {
        assignment
            .add_partition_offset(topic, *partition, Offset::Beginning)
            .map_err(|e| unreachable(e.to_string()))?;
    }
    consumer
        .assign(&assignment)
        .map_err(|e| unreachable(e.to_string()))?;
    let mut remaining: Vec<(i32, i64)> = ends.to_vec();
    let mut last_progress = Instant::now();
    while !remaining.is_empty() {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            // Compaction leaves gaps: a partition whose last offsets were cleaned away is read
            // once the consumer's position has passed its end.
            if let Ok(positions) = consumer.position() {
                remaining.retain(|(partition, end)| {
                    !matches!(
                        positions.find_partition(topic, *partition).map(|p| p.offset()),
                        Some(Offset::Offset(position)) if position >= *end
                    )
                });
                if remaining.is_empty() {
                    break;
                }
            }
            if last_progress.elapsed() > timeout {
                return Err(unreachable(format!(
                    "reading topic `{topic}`: no record arrived for {timeout:?}"
                ))
                .into());
            }
            continue;
        };
        let message = message.map_err(|e| unreachable(format!("reading topic `{topic}`: {e}")))?;
        last_progress = Instant::now();
        let Some(at) = remaining
            .iter()
            .position(|(partition, _)| *partition == message.partition())
        else {
            continue;
        };
        let end = remaining[at].1;
        if message.offset() >= end {
            // Written after the read began: not part of it.
            remaining.swap_remove(at);
            continue;
        }
        record(message.key(), message.payload())?;
        if message.offset() + 1 >= end {
            remaining.swap_remove(at);
        }
    }
    Ok(())
}
