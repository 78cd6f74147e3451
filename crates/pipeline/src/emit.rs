//! The events of one change: encoded from the pgoutput tuples and produced.

use std::collections::HashMap;

use sluice_avro::{Op, Raw, Row, Scratch, Source, TransactionBlock};
use sluice_pgoutput::{ColumnValue, LogicalMessage, OldTuple, Tuple};

use crate::config::EventsSection;
use crate::error::PipelineError;
use crate::incremental::Window;
use crate::outbox::{Outbox, Record, Reports, Sink};
use crate::outputs::{TableOut, TransactionOrder, TransactionsOut};
use std::sync::atomic::Ordering::Relaxed;

/// A pgoutput tuple as an encoder row. An unchanged TOASTed value (`u`) is taken from `old`
/// where that holds it (all of the row with REPLICA IDENTITY FULL, the key columns of an
/// old key tuple); otherwise it stays unchanged, and the encoder marks it (placeholder or
/// null, and `unchanged_toast`).
pub(crate) struct TupleRow<'a> {
    pub(crate) tuple: &'a Tuple,
    pub(crate) old: Option<&'a Tuple>,
}

impl<'a> TupleRow<'a> {
    pub(crate) fn of(tuple: &'a Tuple) -> Self {
        TupleRow { tuple, old: None }
    }
}

pub(crate) fn raw_of<'a>(value: ColumnValue<'a>) -> Raw<'a> {
    match value {
        ColumnValue::Text(text) => Raw::Text(text),
        ColumnValue::Binary(bytes) => Raw::Binary(bytes),
        ColumnValue::UnchangedToast => Raw::Unchanged,
        _ => Raw::Null,
    }
}

impl Row for TupleRow<'_> {
    fn values(&self) -> impl Iterator<Item = Raw<'_>> {
        let mut old = self.old.map(Tuple::iter);
        self.tuple.iter().map(move |value| {
            let previous = old.as_mut().and_then(Iterator::next);
            match (value, previous) {
                // An old key tuple (`K`) holds the key's values and nulls for the rest.
                (ColumnValue::UnchangedToast, Some(previous)) if !previous.is_null() => {
                    raw_of(previous)
                }
                (value, _) => raw_of(value),
            }
        })
    }
}

/// Where one change's events go, and the buffers they are encoded into.
pub(crate) struct Emitter<'a, S, R> {
    pub(crate) outbox: &'a mut Outbox<S, R>,
    pub(crate) key: &'a mut Vec<u8>,
    pub(crate) value: &'a mut Vec<u8>,
    pub(crate) scratch: &'a mut Scratch,
    /// The events' processing time (`ts_ms`), in microseconds since 1970.
    pub(crate) now_us: i64,
    /// With transaction metadata on: its topic, and where the transaction stands.
    pub(crate) transaction: Option<(&'a TransactionsOut, &'a mut TransactionOrder)>,
    /// While the table is read by an incremental snapshot: where its changed keys are noted.
    pub(crate) window: Option<&'a mut Window>,
}

/// What every event of one row change shares.
pub(crate) struct EventContext<'a> {
    pub(crate) out: &'a TableOut,
    pub(crate) source: &'a Source<'a>,
    pub(crate) ticket: u64,
    pub(crate) tombstones: bool,
}

impl<S: Sink, R: Reports> Emitter<'_, S, R> {
    pub(crate) fn create(
        &mut self,
        event: &EventContext<'_>,
        new: TupleRow<'_>,
    ) -> Result<(), PipelineError> {
        self.emit(event, Op::Create, None, Some(new), false)
    }

    /// A delete, followed by a tombstone where configured.
    pub(crate) fn delete(
        &mut self,
        event: &EventContext<'_>,
        old: &Tuple,
    ) -> Result<(), PipelineError> {
        self.emit(event, Op::Delete, Some(old), None, event.tombstones)
    }

    /// Encodes one event (and its tombstone, when asked) and produces it; its key is the
    /// new row's, or the old row's when there is none.
    pub(crate) fn emit(
        &mut self,
        event: &EventContext<'_>,
        op: Op,
        before: Option<&Tuple>,
        after: Option<TupleRow<'_>>,
        tombstone: bool,
    ) -> Result<(), PipelineError> {
        let out = event.out;
        let ordered;
        let source = match self.transaction.as_mut() {
            None => event.source,
            Some((tx, order)) => {
                if order.total == 0 {
                    self.key.clear();
                    self.value.clear();
                    tx.codec.encode_key(tx.key_id, &order.id, self.key);
                    tx.codec
                        .encode_begin(tx.value_id, &order.id, order.commit_time_ms, self.value);
                    let record = Record {
                        topic: &tx.topic,
                        partition: None,
                        key: Some(self.key),
                        value: Some(self.value),
                    };
                    self.outbox.send(record, event.ticket)?;
                }
                let (total_order, data_collection_order) = order.next(&out.collection);
                ordered = Source {
                    transaction: Some(TransactionBlock {
                        id: &order.id,
                        total_order,
                        data_collection_order,
                    }),
                    ..*event.source
                };
                &ordered
            }
        };
        self.key.clear();
        self.value.clear();
        let before = before.map(TupleRow::of);
        let Some(key_row) = after.as_ref().or(before.as_ref()) else {
            return Err(PipelineError::Internal("an event without a row".to_owned()));
        };
        let keyless = out.keyless();
        if !keyless {
            out.codec
                .encode_key(out.key_id, key_row, self.key, self.scratch)?;
            if let Some(window) = self.window.as_deref_mut() {
                window.note(self.key);
            }
        }
        let has_value = out.encode_value(
            op,
            before.as_ref(),
            after.as_ref(),
            source,
            self.now_us,
            self.value,
            self.scratch,
        )?;
        let (key, value) = (self.key.as_slice(), self.value.as_slice());
        let ticket = event.ticket;
        let counter = match op {
            Op::Create => &out.metrics.created,
            Op::Update => &out.metrics.updated,
            Op::Delete => &out.metrics.deleted,
            Op::Read => &out.metrics.read,
            Op::Truncate => &out.metrics.truncated,
        };
        counter.fetch_add(1, Relaxed);
        // Without a key there is nothing to delete by: an upsert-mode delete sends nothing.
        if keyless && !has_value {
            return Ok(());
        }
        let bytes = key.len() + if has_value { value.len() } else { 0 };
        out.metrics
            .bytes
            .fetch_add(u64::try_from(bytes).unwrap_or(0), Relaxed);
        let (topic, partition) = out.target();
        let record = Record {
            topic,
            partition,
            key: (!keyless).then_some(key),
            value: has_value.then_some(value),
        };
        self.outbox.send(record, ticket)?;
        // In upsert mode the delete itself was the tombstone; a keyless table has no key to
        // forget.
        if tombstone && has_value && !keyless {
            out.metrics.tombstones.fetch_add(1, Relaxed);
            let tombstone = Record {
                topic: &out.topic,
                partition: None,
                key: Some(key),
                value: None,
            };
            self.outbox.send(tombstone, ticket)?;
        }
        Ok(())
    }
}

/// Produces the events of one row change, as `events` says.
pub(crate) fn produce_change<S: Sink, R: Reports>(
    events: &EventsSection,
    message: &LogicalMessage,
    outs: &HashMap<u32, TableOut>,
    source: &Source<'_>,
    emitter: &mut Emitter<'_, S, R>,
    ticket: u64,
) -> Result<(), PipelineError> {
    let relation = match message {
        LogicalMessage::Insert(m) => m.relation_id(),
        LogicalMessage::Update(m) => m.relation_id(),
        LogicalMessage::Delete(m) => m.relation_id(),
        LogicalMessage::Truncate(m) => {
            return produce_truncate(events, m.relation_ids(), outs, source, emitter, ticket);
        }
        _ => return Ok(()),
    };
    let out = outs.get(&relation).ok_or_else(|| {
        PipelineError::Internal(format!(
            "a change of relation {relation} before its Relation message"
        ))
    })?;
    let tuples = match message {
        LogicalMessage::Insert(m) => [Some(m.new_tuple()), None],
        LogicalMessage::Update(m) => [Some(m.new_tuple()), m.old_tuple().map(OldTuple::tuple)],
        LogicalMessage::Delete(m) => [Some(m.old_tuple().tuple()), None],
        _ => [None, None],
    };
    for tuple in tuples.into_iter().flatten() {
        if tuple.len() != out.columns {
            return Err(PipelineError::Postgres(format!(
                "a change of {} carries {} columns, but its Relation message declared {}",
                out.collection,
                tuple.len(),
                out.columns
            )));
        }
    }
    let event = EventContext {
        out,
        source,
        ticket,
        tombstones: events.tombstones,
    };
    match message {
        LogicalMessage::Insert(m) => emitter.create(&event, TupleRow::of(m.new_tuple())),
        LogicalMessage::Update(m) => {
            let new = m.new_tuple();
            match m.old_tuple() {
                // A primary-key change: a delete of the old key, then a create of the new.
                Some(kind) if key_changed(out, kind, new) => {
                    emitter.delete(&event, kind.tuple())?;
                    // Unchanged TOASTed values of the new row are filled in from the old one
                    // where it has them (see `TupleRow`).
                    let after = TupleRow {
                        tuple: new,
                        old: Some(kind.tuple()),
                    };
                    emitter.create(&event, after)
                }
                old => {
                    let before = old.map(OldTuple::tuple);
                    // Unchanged TOASTed values are filled in from the old row (all of it with
                    // REPLICA IDENTITY FULL, the key with a `K` tuple) where it has them.
                    let after = TupleRow {
                        tuple: new,
                        old: before,
                    };
                    emitter.emit(&event, Op::Update, before, Some(after), false)
                }
            }
        }
        LogicalMessage::Delete(m) => emitter.delete(&event, m.old_tuple().tuple()),
        _ => Ok(()),
    }
}

/// A TRUNCATE: one event (op `t`, no key, no rows) on each truncated table's topic.
pub(crate) fn produce_truncate<S: Sink, R: Reports>(
    events: &EventsSection,
    relations: &[u32],
    outs: &HashMap<u32, TableOut>,
    source: &Source<'_>,
    emitter: &mut Emitter<'_, S, R>,
    ticket: u64,
) -> Result<(), PipelineError> {
    // Upsert mode has no event for it: there is no row to tombstone.
    if !events.truncate || events.is_upsert() {
        return Ok(());
    }
    for relation in relations {
        let Some(out) = outs.get(relation) else {
            continue;
        };
        emitter.value.clear();
        out.codec.encode_envelope(
            out.value_id,
            Op::Truncate,
            None::<&TupleRow<'_>>,
            None::<&TupleRow<'_>>,
            source,
            emitter.now_us,
            emitter.value,
            emitter.scratch,
        )?;
        out.metrics.truncated.fetch_add(1, Relaxed);
        // A TRUNCATE concerns every key, so every partition gets it, in order with the events
        // of the keys there.
        for partition in 0..out.partitions {
            let record = Record {
                topic: &out.topic,
                partition: Some(partition),
                key: None,
                value: Some(emitter.value.as_slice()),
            };
            emitter.outbox.send(record, ticket)?;
        }
    }
    Ok(())
}

/// Whether an UPDATE changed the key. pgoutput sends the old key (`K`) when a key column
/// changed, but also when the key is stored out of line (TOASTed) and unchanged; with REPLICA
/// IDENTITY FULL it always sends the old row (`O`). So the key columns are compared either
/// way; a new key value the server did not resend (unchanged TOAST) is unchanged.
pub(crate) fn key_changed(out: &TableOut, old: &OldTuple, new: &Tuple) -> bool {
    let old = old.tuple();
    out.codec.key_columns().iter().any(|&i| {
        let new = new.get(i);
        !matches!(new, Some(ColumnValue::UnchangedToast)) && old.get(i) != new
    })
}
