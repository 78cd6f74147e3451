//! Where sluice keeps whether a slot's snapshot completed, and how far each table's snapshot
//! got: a one-partition compacted Kafka topic, `<topic_prefix>._sluice_state`, keyed by slot
//! name (`<slot>/table/<schema.table>` for a table's). Nothing is written to the source
//! database (sluice needs only SELECT and REPLICATION there) and nothing to local disk, so a
//! sluice moved to another machine resumes as it should.

use std::collections::HashMap;
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
    /// Whether each table's snapshot is recorded on its own (every sluice since incremental
    /// snapshots); before, a complete snapshot covered every table selected.
    #[serde(default)]
    per_table: bool,
}

/// How far one table's snapshot got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TablePhase {
    /// Chunks are being read; `after` is the key the next one starts after.
    Running,
    /// Every row was acknowledged by the broker.
    Complete,
    /// Cancelled (`sluice snapshot --cancel`) before it completed.
    Cancelled,
}

impl TablePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            TablePhase::Running => "running",
            TablePhase::Complete => "complete",
            TablePhase::Cancelled => "cancelled",
        }
    }
}

/// One table's snapshot, as the state topic records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableProgress {
    pub slot: String,
    /// `schema.table`.
    pub table: String,
    /// The consistent point of the slot it belongs to (empty when none is recorded): a record
    /// of another slot of the same name does not count.
    pub consistent_point: String,
    pub snapshot: TablePhase,
    /// The key (each column's text) the next chunk starts after; none before the first.
    pub after: Option<Vec<String>>,
    /// Rows produced and acknowledged so far.
    pub rows: u64,
}

/// Where a table's record is kept.
pub(crate) fn table_key(slot: &str, table: &str) -> String {
    format!("{slot}/table/{table}")
}

/// The slot a record of the state topic belongs to, by its key (slot names hold no `/`).
pub fn slot_of_key(key: &str) -> &str {
    key.split_once("/table/").map_or(key, |(slot, _)| slot)
}

/// Everything the state topic says of a slot.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub slot: Option<SlotState>,
    /// Each table's latest record, by `schema.table`.
    pub tables: HashMap<String, TableProgress>,
}

impl Recorded {
    /// The tables' records that belong to the slot whose consistent point is `point`.
    pub fn tables_of(&self, point: Option<Lsn>) -> HashMap<String, TableProgress> {
        let point = point.map(|p| p.to_string()).unwrap_or_default();
        self.tables
            .iter()
            .filter(|(_, p)| p.consistent_point == point)
            .map(|(name, p)| (name.clone(), p.clone()))
            .collect()
    }
}

/// What the state topic says of a slot's snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotState {
    pub phase: SnapshotPhase,
    /// The consistent point of the slot the snapshot was taken from, once it was created.
    pub consistent_point: Option<Lsn>,
    /// Whether tables' snapshots are recorded one by one (see [`TableProgress`]).
    pub per_table: bool,
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

/// Everything recorded for `slot` in the state topic `topic` (nothing when it does not
/// exist). A topic that cannot be read, or a record that cannot be understood, is an error:
/// never taken for "no snapshot yet".
pub async fn recorded(
    config: &KafkaConfig,
    topic: &str,
    slot: &str,
) -> Result<Recorded, PipelineError> {
    let records = read_topic(config, topic).await?;
    let unreadable = |key: &str, why: String| {
        PipelineError::Setup(format!(
            "the state topic {topic} holds a record for {key} that sluice cannot read \
             ({why}): it was written by something else, or by a newer sluice; fix or delete the \
             record (a tombstone for key {key}), or use another topic_prefix"
        ))
    };
    let table_prefix = table_key(slot, "");
    let mut latest: HashMap<&[u8], Option<&[u8]>> = HashMap::new();
    for (key, value) in &records {
        if let Some(key) = key.as_deref() {
            latest.insert(key, value.as_deref());
        }
    }
    let mut recorded = Recorded::default();
    for (key, value) in latest {
        // A tombstone: the state was deleted on purpose (`sluice teardown --delete-state`).
        let Some(value) = value else { continue };
        if key == slot.as_bytes() {
            recorded.slot = Some(slot_state(value).map_err(|why| unreadable(slot, why))?);
        } else if let Some(table) = key.strip_prefix(table_prefix.as_bytes()) {
            let table = String::from_utf8_lossy(table).into_owned();
            let progress: TableProgress = serde_json::from_slice(value)
                .map_err(|e| unreadable(&table_key(slot, &table), e.to_string()))?;
            recorded.tables.insert(table, progress);
        }
    }
    Ok(recorded)
}

/// A slot's record read.
fn slot_state(value: &[u8]) -> Result<SlotState, String> {
    let record: StateRecord = serde_json::from_slice(value).map_err(|e| e.to_string())?;
    let consistent_point = if record.consistent_point.is_empty() {
        None
    } else {
        Some(
            record
                .consistent_point
                .parse::<Lsn>()
                .map_err(|_| "its consistent point is not an LSN".to_owned())?,
        )
    };
    Ok(SlotState {
        phase: record.snapshot,
        consistent_point,
        per_table: record.per_table,
    })
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
        per_table: true,
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

/// Sends one table's progress record, waiting only for room in the producer's queue (the
/// caller drains): outside the stream loop.
pub(crate) async fn write_table(
    outbox: &mut Outbox,
    topic: &str,
    progress: &TableProgress,
) -> Result<(), PipelineError> {
    let (key, value) = table_record(progress)?;
    let record = Record {
        topic,
        partition: None,
        key: Some(key.as_bytes()),
        value: Some(&value),
    };
    outbox.send_when_room(record, OUTSIDE).await
}

/// A table's record: its key and value.
pub(crate) fn table_record(progress: &TableProgress) -> Result<(String, Vec<u8>), PipelineError> {
    let value = serde_json::to_vec(progress).map_err(|e| PipelineError::Internal(e.to_string()))?;
    Ok((table_key(&progress.slot, &progress.table), value))
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
