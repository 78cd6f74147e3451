//! The rows a table's topic still holds that a snapshot taken again no longer has.
//!
//! When a snapshot is taken again (an earlier one was interrupted, or the slot was lost), rows
//! deleted meanwhile are not in it, but the topic still holds them. Each such key gets a `d`
//! event (its `before` the last row the topic holds, written with that row's own schema) and
//! then a tombstone with the very key bytes the topic holds, so that consumers of the
//! envelope (which ignore tombstones) and compacted topics both forget it.
//!
//! Memory stays bounded however large the topic: the key bodies the new snapshot sends, and
//! the records the topic held before it, are spilled to anonymous temporary files in buckets
//! by a hash of the key body, and the buckets are compared one at a time. A bucket holds about
//! [`KEYS_PER_BUCKET`] keys of each side, so the memory is that many keys twice (for 16-byte
//! keys, about 10 MB), whatever the table's size, up to [`MAX_BUCKETS`] buckets (400 million
//! keys); past that it grows with the keys. The time is one read of the topic and one pass
//! over the files: proportional to the data.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use std::time::Duration;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use sluice_avro::Registry;
use sluice_kafka::{KafkaConfig, end_offsets, read_to};

use crate::error::PipelineError;
use crate::outbox::{OUTSIDE, Outbox, Record};

/// How many keys of each side a bucket aims at.
const KEYS_PER_BUCKET: u64 = 100_000;

/// At most this many buckets (files) per side.
const MAX_BUCKETS: u64 = 4096;

/// How many buckets `expected_keys` (of both sides) need.
pub(crate) fn bucket_count(expected_keys: u64) -> usize {
    let buckets = expected_keys
        .div_ceil(KEYS_PER_BUCKET)
        .clamp(1, MAX_BUCKETS);
    usize::try_from(buckets).unwrap_or(1)
}

/// The bucket of a key body: the same for both sides, stable across runs.
fn bucket_of(body: &[u8], buckets: usize) -> usize {
    let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(body);
    usize::try_from(hash % u64::try_from(buckets).unwrap_or(1)).unwrap_or(0)
}

/// The Avro body of a Confluent-framed key or value: what identifies a row whatever the schema
/// id it was written with.
pub(crate) fn body(framed: &[u8]) -> &[u8] {
    framed.get(5..).unwrap_or_default()
}

/// Entries appended to one anonymous file per bucket.
#[derive(Debug)]
pub(crate) struct Spill {
    files: Vec<BufWriter<File>>,
}

impl Spill {
    pub(crate) fn new(buckets: usize) -> io::Result<Spill> {
        let files = (0..buckets.max(1))
            .map(|_| tempfile::tempfile().map(|file| BufWriter::with_capacity(64 * 1024, file)))
            .collect::<io::Result<_>>()?;
        Ok(Spill { files })
    }

    pub(crate) fn buckets(&self) -> usize {
        self.files.len()
    }

    /// A key body the new snapshot sent.
    pub(crate) fn push_key(&mut self, body: &[u8]) -> io::Result<()> {
        let bucket = bucket_of(body, self.files.len());
        let file = &mut self.files[bucket];
        write_bytes(file, Some(body))
    }

    /// A record the topic holds: its key (framed) and value (`None`: a tombstone).
    pub(crate) fn push_record(&mut self, key: &[u8], value: Option<&[u8]>) -> io::Result<()> {
        let bucket = bucket_of(body(key), self.files.len());
        let file = &mut self.files[bucket];
        write_bytes(file, Some(key))?;
        write_bytes(file, value)
    }

    /// The files, written out and rewound, for reading bucket by bucket.
    fn into_files(self) -> io::Result<Vec<File>> {
        self.files
            .into_iter()
            .map(|writer| {
                let mut file = writer
                    .into_inner()
                    .map_err(io::IntoInnerError::into_error)?;
                file.seek(SeekFrom::Start(0))?;
                Ok(file)
            })
            .collect()
    }
}

fn write_bytes(file: &mut impl Write, bytes: Option<&[u8]>) -> io::Result<()> {
    match bytes {
        None => file.write_all(&u32::MAX.to_le_bytes()),
        Some(bytes) => {
            let length = u32::try_from(bytes.len())
                .ok()
                .filter(|length| *length != u32::MAX)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "entry too large"))?;
            file.write_all(&length.to_le_bytes())?;
            file.write_all(bytes)
        }
    }
}

/// The next length-prefixed entry: `Ok(None)` at the end of the file, `Some(None)` for an
/// absent value.
fn read_bytes(file: &mut impl Read) -> io::Result<Option<Option<Vec<u8>>>> {
    let mut length = [0; 4];
    match file.read_exact(&mut length) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    let length = u32::from_le_bytes(length);
    if length == u32::MAX {
        return Ok(Some(None));
    }
    let mut bytes = vec![0; usize::try_from(length).unwrap_or(0)];
    file.read_exact(&mut bytes)?;
    Ok(Some(Some(bytes)))
}

/// A row the topic holds that the new snapshot did not send: its key as the topic holds it,
/// and its last value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Vanished {
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
}

/// Compares the two sides bucket by bucket, calling `found` for every key whose last record
/// in the topic has a value and whose body the new snapshot did not send.
pub(crate) fn compare(
    sent: Spill,
    held: Spill,
    mut found: impl FnMut(Vanished) -> io::Result<()>,
) -> io::Result<()> {
    if sent.buckets() != held.buckets() {
        return Err(io::Error::other("the two sides have other bucket counts"));
    }
    for (sent, held) in sent.into_files()?.into_iter().zip(held.into_files()?) {
        let mut sent_keys = HashSet::new();
        let mut reader = BufReader::new(sent);
        while let Some(entry) = read_bytes(&mut reader)? {
            sent_keys.insert(entry.unwrap_or_default());
        }
        // The position of each key's last record in the file; the file is in the topic's
        // order per partition, and a key's records are all in one partition.
        let mut last: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut reader = BufReader::new(held);
        loop {
            let position = reader.stream_position()?;
            let Some(key) = read_bytes(&mut reader)? else {
                break;
            };
            let value = read_bytes(&mut reader)?
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "record cut"))?;
            let Some(key) = key else { continue };
            if sent_keys.contains(body(&key)) {
                continue;
            }
            match value {
                Some(_) => {
                    last.insert(key, position);
                }
                None => {
                    last.remove(&key);
                }
            }
        }
        for position in last.into_values() {
            reader.seek(SeekFrom::Start(position))?;
            if let (Some(Some(key)), Some(Some(value))) =
                (read_bytes(&mut reader)?, read_bytes(&mut reader)?)
            {
                found(Vanished { key, value })?;
            }
        }
    }
    Ok(())
}

/// Why a held record cannot be turned into a `d` event.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeleteEventError {
    #[error("the record is not Confluent-framed Avro")]
    Framing,
    #[error("the record does not decode with its schema: {0}")]
    Decode(String),
    #[error("the record is not a Debezium envelope")]
    NotAnEnvelope,
}

/// The schema id of a Confluent-framed record.
pub(crate) fn schema_id(framed: &[u8]) -> Result<u32, DeleteEventError> {
    sluice_avro::confluent_frame(framed)
        .map(|(id, _)| id)
        .ok_or(DeleteEventError::Framing)
}

/// The `d` event of a row that vanished, from the envelope the topic last held for it (an
/// insert, update or snapshot row), encoded with that envelope's own schema `writer` (id
/// `writer_id`): `before` is its `after`, and so are the exact values; `after` is null,
/// `op` is `d`, the times are `now_us`, and the source says snapshot, with no transaction.
/// `None` when the envelope holds no row (a delete without its tombstone, a truncate).
pub(crate) fn delete_event(
    writer: &Schema,
    writer_id: u32,
    framed: &[u8],
    now_us: i64,
) -> Result<Option<Vec<u8>>, DeleteEventError> {
    let decode = |e: apache_avro::Error| DeleteEventError::Decode(e.to_string());
    let value = GenericDatumReader::builder(writer)
        .build()
        .and_then(|reader| reader.read_value(&mut body(framed)))
        .map_err(decode)?;
    let Value::Record(mut fields) = value else {
        return Err(DeleteEventError::NotAnEnvelope);
    };
    let field =
        |fields: &[(String, Value)], name: &str| fields.iter().position(|(field, _)| field == name);
    let (Some(before), Some(after), Some(op)) = (
        field(&fields, "before"),
        field(&fields, "after"),
        field(&fields, "op"),
    ) else {
        return Err(DeleteEventError::NotAnEnvelope);
    };
    let row = match std::mem::replace(&mut fields[after].1, Value::Union(0, Box::new(Value::Null)))
    {
        Value::Union(_, row) if *row != Value::Null => row,
        _ => return Ok(None),
    };
    if fields[op].1 == Value::String("d".to_owned()) {
        return Ok(None);
    }
    fields[before].1 = Value::Union(1, row);
    fields[op].1 = Value::String("d".to_owned());
    let now_ms = now_us.div_euclid(1000);
    for (name, value) in &mut fields {
        match name.as_str() {
            "ts_ms" => *value = Value::Union(1, Box::new(Value::Long(now_ms))),
            "ts_us" => *value = Value::Union(1, Box::new(Value::Long(now_us))),
            "ts_ns" => {
                let now_ns = now_us.saturating_mul(1000);
                *value = Value::Union(1, Box::new(Value::Long(now_ns)));
            }
            "transaction" | "unchanged_toast" => *value = Value::Union(0, Box::new(Value::Null)),
            "source" => mark_source(value, now_ms),
            "exact" => move_exact_to_before(value),
            _ => {}
        }
    }
    let encoded = GenericDatumWriter::builder(writer)
        .build()
        .and_then(|w| w.write_value_to_vec(Value::Record(fields)))
        .map_err(decode)?;
    let mut out = Vec::with_capacity(5 + encoded.len());
    out.push(0);
    out.extend_from_slice(&writer_id.to_be_bytes());
    out.extend_from_slice(&encoded);
    Ok(Some(out))
}

/// The source of a `d` event found by a snapshot: snapshot `true`, taken now, outside any
/// transaction.
fn mark_source(source: &mut Value, now_ms: i64) {
    let Value::Record(fields) = source else {
        return;
    };
    for (name, value) in fields {
        match (name.as_str(), &mut *value) {
            ("snapshot", Value::Union(_, inner)) => **inner = Value::String("true".to_owned()),
            ("ts_ms", Value::Long(ms)) => *ms = now_ms,
            ("ts_us" | "ts_ns" | "txId" | "lsn" | "xmin" | "sequence", Value::Union(..)) => {
                *value = Value::Union(0, Box::new(Value::Null));
            }
            _ => {}
        }
    }
}

/// The exact values of the row that was `after` become `before`'s.
fn move_exact_to_before(exact: &mut Value) {
    let Value::Union(_, inner) = exact else {
        return;
    };
    let Value::Record(sides) = inner.as_mut() else {
        return;
    };
    let after = sides
        .iter_mut()
        .find(|(name, _)| name == "after")
        .map(|(_, value)| std::mem::replace(value, Value::Union(0, Box::new(Value::Null))));
    if let (Some(after), Some((_, before))) = (after, sides.iter_mut().find(|(n, _)| n == "before"))
    {
        *before = after;
    }
}

/// How long a read of a table's topic may wait for the broker without progress.
const READ_STALL: Duration = Duration::from_secs(60);

/// One table's side of a reconciliation: its topic as it ended before the new snapshot
/// began, and the keys the snapshot sends, spilled as they go.
#[derive(Debug)]
pub(crate) struct TableReconcile {
    topic: String,
    ends: Vec<(i32, i64)>,
    sent: std::sync::Mutex<Spill>,
}

impl TableReconcile {
    /// Before the snapshot: where `topic` ends, and a spill sized for its records and the
    /// table's `estimated_rows`.
    pub(crate) async fn prepare(
        kafka: &KafkaConfig,
        topic: &str,
        estimated_rows: u64,
    ) -> Result<TableReconcile, PipelineError> {
        let (config, name) = (kafka.clone(), topic.to_owned());
        let ends = tokio::task::spawn_blocking(move || end_offsets(&config, &name, READ_STALL))
            .await
            .map_err(|e| PipelineError::Internal(e.to_string()))??;
        let held: i64 = ends.iter().map(|(_, end)| *end).sum();
        let buckets = bucket_count(estimated_rows.saturating_add(u64::try_from(held).unwrap_or(0)));
        Ok(TableReconcile {
            topic: topic.to_owned(),
            ends,
            sent: std::sync::Mutex::new(Spill::new(buckets)?),
        })
    }

    /// A key (framed) the new snapshot sent.
    pub(crate) fn sent(&self, key: &[u8]) -> Result<(), PipelineError> {
        self.sent
            .lock()
            .map_err(|_| PipelineError::Internal("the reconcile spill".into()))?
            .push_key(body(key))?;
        Ok(())
    }

    /// After the snapshot was acknowledged: a `d` event and a tombstone (or, in upsert mode,
    /// a tombstone alone) for every key the topic held a row for that the snapshot did not
    /// send. Returns how many rows vanished.
    pub(crate) async fn finish(
        self,
        kafka: &KafkaConfig,
        outbox: &mut Outbox,
        registry: &Registry,
        events: Events,
    ) -> Result<u64, PipelineError> {
        let TableReconcile { topic, ends, sent } = self;
        let sent = sent
            .into_inner()
            .map_err(|_| PipelineError::Internal("the reconcile spill".into()))?;
        let (config, name, buckets) = (kafka.clone(), topic.clone(), sent.buckets());
        let held = tokio::task::spawn_blocking(move || {
            let mut held = Spill::new(buckets)?;
            read_to(&config, &name, &ends, READ_STALL, |key, value| {
                if let Some(key) = key {
                    held.push_record(key, value)?;
                }
                Ok::<(), PipelineError>(())
            })?;
            Ok::<Spill, PipelineError>(held)
        })
        .await
        .map_err(|e| PipelineError::Internal(e.to_string()))??;
        // The comparison reads files; the rows it finds are produced as they come, a bounded
        // number waiting between the two.
        let (found, mut vanished) = tokio::sync::mpsc::channel::<Vanished>(1024);
        let comparing = tokio::task::spawn_blocking(move || {
            compare(sent, held, |row| {
                found
                    .blocking_send(row)
                    .map_err(|_| io::Error::other("the reconciliation stopped"))
            })
        });
        let mut schemas: HashMap<u32, Schema> = HashMap::new();
        let mut count = 0;
        while let Some(row) = vanished.recv().await {
            if !events.upsert {
                let id = schema_id(&row.value).map_err(|e| vanished_error(&topic, &e))?;
                let writer =
                    match schemas.entry(id) {
                        Entry::Occupied(known) => known.into_mut(),
                        Entry::Vacant(new) => {
                            let text = registry.schema_by_id(id).await?;
                            new.insert(Schema::parse_str(&text).map_err(|e| {
                                PipelineError::Internal(format!("schema {id}: {e}"))
                            })?)
                        }
                    };
                let Some(event) = delete_event(writer, id, &row.value, events.now_us)
                    .map_err(|e| vanished_error(&topic, &e))?
                else {
                    continue;
                };
                let record = Record {
                    topic: &topic,
                    partition: None,
                    key: Some(&row.key),
                    value: Some(&event),
                };
                outbox.send_when_room(record, OUTSIDE).await?;
            }
            if events.tombstones || events.upsert {
                let tombstone = Record {
                    topic: &topic,
                    partition: None,
                    key: Some(&row.key),
                    value: None,
                };
                outbox.send_when_room(tombstone, OUTSIDE).await?;
            }
            count += 1;
        }
        comparing
            .await
            .map_err(|e| PipelineError::Internal(e.to_string()))??;
        Ok(count)
    }
}

/// What the events of vanished rows are made of.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Events {
    /// Upsert mode: a tombstone alone, no `d` event.
    pub(crate) upsert: bool,
    pub(crate) tombstones: bool,
    pub(crate) now_us: i64,
}

fn vanished_error(topic: &str, err: &DeleteEventError) -> PipelineError {
    PipelineError::Setup(format!(
        "topic {topic} holds a record sluice cannot turn into a delete event ({err}): a record \
         not written by sluice? Move the table to a new topic (another topic_prefix)"
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn key(id: u8) -> Vec<u8> {
        vec![0, 0, 0, 0, 7, id]
    }

    fn vanished_of(
        sent: &[u8],
        held: &[(Vec<u8>, Option<&[u8]>)],
        buckets: usize,
    ) -> Vec<Vanished> {
        let mut sent_spill = Spill::new(buckets).unwrap();
        for id in sent {
            sent_spill.push_key(body(&key(*id))).unwrap();
        }
        let mut held_spill = Spill::new(buckets).unwrap();
        for (key, value) in held {
            held_spill.push_record(key, *value).unwrap();
        }
        let mut found = Vec::new();
        compare(sent_spill, held_spill, |v| {
            found.push(v);
            Ok(())
        })
        .unwrap();
        found.sort_by(|a, b| a.key.cmp(&b.key));
        found
    }

    #[test]
    fn live_keys_the_snapshot_did_not_send_are_found_with_their_last_value() {
        for buckets in [1, 3, 64] {
            let held = [
                (key(1), Some(&b"one"[..])),
                (key(2), Some(&b"two"[..])),
                (key(2), Some(&b"two again"[..])),
                (key(3), Some(&b"three"[..])),
                (key(3), None),
                (key(4), Some(&b"four"[..])),
            ];
            let found = vanished_of(&[1], &held, buckets);
            assert_eq!(
                found,
                [
                    Vanished {
                        key: key(2),
                        value: b"two again".to_vec()
                    },
                    Vanished {
                        key: key(4),
                        value: b"four".to_vec()
                    },
                ],
                "{buckets} buckets"
            );
        }
    }

    #[test]
    fn a_key_written_with_an_older_schema_id_is_the_same_row() {
        let mut older = key(5);
        older[4] = 3;
        let found = vanished_of(&[5], &[(older, Some(&b"v"[..]))], 4);
        assert!(found.is_empty(), "{found:?}");
        // Not sent: found with the key bytes the topic holds.
        let mut older = key(6);
        older[4] = 3;
        let found = vanished_of(&[5], &[(older.clone(), Some(&b"v"[..]))], 4);
        assert_eq!(found[0].key, older);
    }

    #[test]
    fn buckets_follow_the_keys() {
        assert_eq!(bucket_count(0), 1);
        assert_eq!(bucket_count(100_000), 1);
        assert_eq!(bucket_count(20_000_000), 200);
        assert_eq!(bucket_count(u64::MAX), 4096);
    }

    const ENVELOPE: &str = r#"{"type": "record", "name": "Envelope", "fields": [
        {"name": "before", "type": ["null", {"type": "record", "name": "Value", "fields": [
            {"name": "id", "type": "int"}, {"name": "v", "type": ["null", "string"], "default": null}]}],
         "default": null},
        {"name": "after", "type": ["null", "Value"], "default": null},
        {"name": "source", "type": {"type": "record", "name": "Source", "fields": [
            {"name": "ts_ms", "type": "long"},
            {"name": "snapshot", "type": ["string", "null"], "default": "false"},
            {"name": "lsn", "type": ["null", "long"], "default": null}]}},
        {"name": "transaction", "type": ["null", "string"], "default": null},
        {"name": "op", "type": "string"},
        {"name": "ts_ms", "type": ["null", "long"], "default": null},
        {"name": "exact", "type": ["null", {"type": "record", "name": "Exact", "fields": [
            {"name": "before", "type": ["null", {"type": "map", "values": "string"}], "default": null},
            {"name": "after", "type": ["null", {"type": "map", "values": "string"}], "default": null}]}],
         "default": null}
    ]}"#;

    fn framed(schema: &Schema, value: Value) -> Vec<u8> {
        let mut out = vec![0, 0, 0, 0, 9];
        out.extend(
            GenericDatumWriter::builder(schema)
                .build()
                .unwrap()
                .write_value_to_vec(value)
                .unwrap(),
        );
        out
    }

    fn row(id: i32, v: &str) -> Value {
        Value::Record(vec![
            ("id".to_owned(), Value::Int(id)),
            (
                "v".to_owned(),
                Value::Union(1, Box::new(Value::String(v.to_owned()))),
            ),
        ])
    }

    fn envelope(op: &str, before: Option<Value>, after: Option<Value>) -> Value {
        let optional = |row: Option<Value>| match row {
            Some(row) => Value::Union(1, Box::new(row)),
            None => Value::Union(0, Box::new(Value::Null)),
        };
        Value::Record(vec![
            ("before".to_owned(), optional(before)),
            ("after".to_owned(), optional(after)),
            (
                "source".to_owned(),
                Value::Record(vec![
                    ("ts_ms".to_owned(), Value::Long(1)),
                    (
                        "snapshot".to_owned(),
                        Value::Union(0, Box::new(Value::String("false".into()))),
                    ),
                    ("lsn".to_owned(), Value::Union(1, Box::new(Value::Long(42)))),
                ]),
            ),
            (
                "transaction".to_owned(),
                Value::Union(1, Box::new(Value::String("tx".into()))),
            ),
            ("op".to_owned(), Value::String(op.to_owned())),
            (
                "ts_ms".to_owned(),
                Value::Union(1, Box::new(Value::Long(1))),
            ),
            (
                "exact".to_owned(),
                Value::Union(
                    1,
                    Box::new(Value::Record(vec![
                        ("before".to_owned(), Value::Union(0, Box::new(Value::Null))),
                        (
                            "after".to_owned(),
                            Value::Union(
                                1,
                                Box::new(Value::Map(
                                    [("v".to_owned(), Value::String("x".into()))].into(),
                                )),
                            ),
                        ),
                    ])),
                ),
            ),
        ])
    }

    #[test]
    fn the_delete_event_carries_the_last_row_as_before() {
        let schema = Schema::parse_str(ENVELOPE).unwrap();
        let held = framed(&schema, envelope("u", None, Some(row(1, "last"))));
        let event = delete_event(&schema, 9, &held, 5_000_000).unwrap().unwrap();
        assert_eq!(schema_id(&event).unwrap(), 9);
        let decoded = GenericDatumReader::builder(&schema)
            .build()
            .unwrap()
            .read_value(&mut body(&event))
            .unwrap();
        let Value::Record(fields) = decoded else {
            panic!()
        };
        let get = |name: &str| fields.iter().find(|(n, _)| n == name).unwrap().1.clone();
        assert_eq!(get("before"), Value::Union(1, Box::new(row(1, "last"))));
        assert_eq!(get("after"), Value::Union(0, Box::new(Value::Null)));
        assert_eq!(get("op"), Value::String("d".into()));
        assert_eq!(get("ts_ms"), Value::Union(1, Box::new(Value::Long(5000))));
        assert_eq!(get("transaction"), Value::Union(0, Box::new(Value::Null)));
        let Value::Record(source) = get("source") else {
            panic!()
        };
        assert_eq!(source[0].1, Value::Long(5000));
        assert_eq!(
            source[1].1,
            Value::Union(0, Box::new(Value::String("true".into())))
        );
        assert_eq!(source[2].1, Value::Union(0, Box::new(Value::Null)));
        let Value::Union(1, exact) = get("exact") else {
            panic!()
        };
        let Value::Record(sides) = *exact else {
            panic!()
        };
        assert!(
            matches!(&sides[0].1, Value::Union(1, _)),
            "exact moved to before"
        );
        assert_eq!(sides[1].1, Value::Union(0, Box::new(Value::Null)));
    }

    #[test]
    fn a_held_delete_needs_no_delete_event() {
        let schema = Schema::parse_str(ENVELOPE).unwrap();
        let held = framed(&schema, envelope("d", Some(row(1, "x")), None));
        assert_eq!(delete_event(&schema, 9, &held, 0).unwrap(), None);
        assert!(matches!(
            delete_event(&schema, 9, b"\x01junk", 0),
            Err(DeleteEventError::Decode(_))
        ));
        assert!(matches!(schema_id(b"\x01"), Err(DeleteEventError::Framing)));
    }
}
