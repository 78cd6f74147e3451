//! Where sluice keeps whether a slot's snapshot completed: a one-partition compacted Kafka
//! topic, `<topic_prefix>._sluice_state`, keyed by slot name. Nothing is written to the
//! source database (sluice needs only SELECT and REPLICATION there) and nothing to local
//! disk, so a sluice moved to another machine resumes as it should.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_kafka::{KafkaConfig, Producer, read_to_end};
use sluice_pgoutput::Lsn;

use crate::error::PipelineError;
use crate::outbox::{OUTSIDE, Outbox, Record};

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
    /// The slot's consistent point: the snapshot is of this slot, no other of its name. Empty
    /// in the `started` record written before the slot is created.
    consistent_point: String,
}

/// What the state topic says of a slot's snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotState {
    pub phase: SnapshotPhase,
    /// The consistent point of the slot the snapshot was taken from, once it was created.
    pub consistent_point: Option<Lsn>,
}

const READ_TIMEOUT: Duration = Duration::from_secs(60);

pub use crate::naming::state_topic;

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

/// The latest phase recorded for `slot` in the state topic `topic`, reading only: for `sluice
/// status`.
pub async fn recorded_phase(
    config: &KafkaConfig,
    topic: &str,
    slot: &str,
) -> Result<Option<SnapshotPhase>, PipelineError> {
    Ok(recorded_state(config, topic, slot)
        .await?
        .map(|state| state.phase))
}

/// The latest state recorded for `slot` in the state topic `topic`; `None` when the topic
/// holds none (or does not exist). A topic that cannot be read, or a record that cannot be
/// understood, is an error: never taken for "no snapshot yet".
pub async fn recorded_state(
    config: &KafkaConfig,
    topic: &str,
    slot: &str,
) -> Result<Option<SlotState>, PipelineError> {
    let records = read_topic(config, topic).await?;
    let Some((_, value)) = records
        .iter()
        .rev()
        .find(|(key, _)| key.as_deref() == Some(slot.as_bytes()))
    else {
        return Ok(None);
    };
    // A tombstone: the state was deleted on purpose (`sluice teardown --delete-state`).
    let Some(value) = value else { return Ok(None) };
    let unreadable = |why: String| {
        PipelineError::Setup(format!(
            "the state topic {topic} holds a record for slot {slot} that sluice cannot read \
             ({why}): it was written by something else, or by a newer sluice; fix or delete the \
             record (a tombstone for key {slot}), or use another topic_prefix"
        ))
    };
    let record: StateRecord =
        serde_json::from_slice(value).map_err(|e| unreadable(e.to_string()))?;
    let consistent_point = if record.consistent_point.is_empty() {
        None
    } else {
        Some(
            record
                .consistent_point
                .parse::<Lsn>()
                .map_err(|_| unreadable("its consistent point is not an LSN".to_owned()))?,
        )
    };
    Ok(Some(SlotState {
        phase: record.snapshot,
        consistent_point,
    }))
}

/// Records `phase` for `slot` and waits until the broker has it.
pub(crate) async fn write_phase(
    outbox: &mut Outbox,
    topic: &str,
    slot: &str,
    phase: SnapshotPhase,
    consistent_point: Option<Lsn>,
) -> Result<(), PipelineError> {
    let record = serde_json::to_vec(&StateRecord {
        slot: slot.to_owned(),
        snapshot: phase,
        consistent_point: consistent_point
            .map(|lsn| lsn.to_string())
            .unwrap_or_default(),
    })
    .map_err(|e| PipelineError::Internal(e.to_string()))?;
    let record = Record {
        topic,
        partition: None,
        key: Some(slot.as_bytes()),
        value: Some(&record),
    };
    outbox.send_when_room(record, OUTSIDE).await?;
    outbox.drain_outside().await
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
