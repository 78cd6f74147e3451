//! Where sluice keeps whether a slot's snapshot completed: a one-partition compacted Kafka
//! topic, `<topic_prefix>._sluice_state`, keyed by slot name. Nothing is written to the
//! source database (sluice needs only SELECT and REPLICATION there) and nothing to local
//! disk, so a sluice moved to another machine resumes as it should.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_kafka::{Deliveries, KafkaConfig, Producer, read_to_end};

use crate::error::PipelineError;

/// How far a slot's snapshot got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotPhase {
    /// Begun; if this is the latest word, it never finished.
    Started,
    /// Every row was acknowledged by the broker.
    Complete,
}

#[derive(Debug, Serialize, Deserialize)]
struct StateRecord {
    slot: String,
    snapshot: SnapshotPhase,
    consistent_point: String,
}

/// The ticket of state records, which belong to no transaction.
pub(crate) const STATE_TICKET: u64 = u64::MAX - 1;

const READ_TIMEOUT: Duration = Duration::from_secs(60);

pub fn state_topic(topic_prefix: &str) -> String {
    format!("{topic_prefix}._sluice_state")
}

/// Creates the state topic `topic` (one partition, compacted) unless it exists: before the
/// first phase is written.
pub(crate) async fn ensure_state_topic(
    producer: &Producer,
    topic: &str,
) -> Result<(), PipelineError> {
    producer
        .ensure_topics_with(&[topic.to_owned()], 1, &[("cleanup.policy", "compact")])
        .await?;
    Ok(())
}

/// The latest phase recorded for `slot` in the state topic `topic`, reading only (a missing
/// topic reads as empty): for `sluice status`.
pub async fn recorded_phase(
    config: &KafkaConfig,
    topic: &str,
    slot: &str,
) -> Result<Option<SnapshotPhase>, PipelineError> {
    let records = read_topic(config, topic).await?;
    Ok(records
        .iter()
        .rev()
        .filter(|(key, _)| key.as_deref() == Some(slot.as_bytes()))
        .filter_map(|(_, value)| value.as_deref())
        .filter_map(|value| serde_json::from_slice::<StateRecord>(value).ok())
        .map(|record| record.snapshot)
        .next())
}

/// Records `phase` for `slot` and waits until the broker has it.
pub(crate) async fn write_phase(
    producer: &std::sync::Arc<Producer>,
    deliveries: &mut Deliveries,
    topic: &str,
    slot: &str,
    phase: SnapshotPhase,
    consistent_point: &str,
) -> Result<(), PipelineError> {
    let record = serde_json::to_vec(&StateRecord {
        slot: slot.to_owned(),
        snapshot: phase,
        consistent_point: consistent_point.to_owned(),
    })
    .map_err(|e| PipelineError::Internal(e.to_string()))?;
    loop {
        match producer.send(topic, Some(slot.as_bytes()), Some(&record), STATE_TICKET) {
            Ok(()) => break,
            Err(sluice_kafka::SendError::QueueFull) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
    flush(producer).await?;
    while let Some(delivery) = deliveries.try_recv() {
        delivery.result.map_err(PipelineError::Delivery)?;
    }
    Ok(())
}

/// Waits until everything produced so far is delivered (librdkafka's flush blocks).
pub(crate) async fn flush(producer: &std::sync::Arc<Producer>) -> Result<(), PipelineError> {
    let producer = std::sync::Arc::clone(producer);
    tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(24 * 3600)))
        .await
        .map_err(|e| PipelineError::Internal(e.to_string()))??;
    Ok(())
}

/// Every record of `topic` (blocking read, off the runtime's threads).
pub(crate) async fn read_topic(
    config: &KafkaConfig,
    topic: &str,
) -> Result<Vec<sluice_kafka::Record>, PipelineError> {
    let config = config.clone();
    let topic = topic.to_owned();
    Ok(
        tokio::task::spawn_blocking(move || read_to_end(&config, &topic, READ_TIMEOUT))
            .await
            .map_err(|e| PipelineError::Internal(e.to_string()))??,
    )
}
