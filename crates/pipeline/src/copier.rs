//! One snapshot connection copying pieces of tables, each row an `r` event.

use sluice_avro::{Op, Scratch, SnapshotMarker, Source};
use tokio_postgres::Client;

use crate::catalog::{CapturedTable, quote_ident};
use crate::clock::now_us;
use crate::config::Config;
use crate::copy::CopyReader;
use crate::error::{PipelineError, pg};
use crate::outbox::{OutsideSender, QUEUE_FULL_PAUSE, Record};
use crate::outputs::TableOut;
use crate::reconcile::TableReconcile;
use std::sync::atomic::Ordering::Relaxed;

/// One connection inside the exported snapshot, copying pieces one after the other.
pub(crate) struct Copier<'a> {
    pub(crate) config: &'a Config,
    pub(crate) client: &'a Client,
    pub(crate) sender: &'a OutsideSender,
    /// The last row copied, not yet produced.
    pub(crate) held: HeldRow,
}

impl Copier<'_> {
    /// Copies one piece of a table, producing an `r` event per row (each row held back until
    /// the next, see [`HeldRow`]).
    pub(crate) async fn copy(
        &mut self,
        table: &CapturedTable,
        out: &TableOut,
        piece: &Piece,
        reconcile: Option<&TableReconcile>,
    ) -> Result<(), PipelineError> {
        use futures_util::StreamExt as _;
        let (config, client, sender, held) =
            (self.config, self.client, self.sender, &mut self.held);
        let columns = select_list(table.spec.columns.iter().map(|c| c.name.as_str()), out);
        // Page ranges use TID range scans (PostgreSQL 14+): each piece reads only its pages.
        let range = match piece.pages {
            None => String::new(),
            Some((start, None)) => format!(" WHERE ctid >= '({start},0)'::tid"),
            Some((start, Some(end))) => {
                format!(" WHERE ctid >= '({start},0)'::tid AND ctid < '({end},0)'::tid")
            }
        };
        // ONLY keeps rows of inheritance children out (they are tables of their own); a
        // partitioned table's rows are all in its partitions.
        let only = if table.partitioned { "" } else { "ONLY " };
        let copy = format!(
            "COPY (SELECT {columns} FROM {only}{}{range}) TO STDOUT (FORMAT binary)",
            table.quoted()
        );
        let stream = client
            .copy_out(&copy)
            .await
            .map_err(|e| pg(&format!("COPY {}", table.qualified()), &e))?;
        futures_util::pin_mut!(stream);
        let mut reader = copy_reader(out);
        let (mut key, mut value) = (Vec::new(), Vec::new());
        let mut scratch = Scratch::default();
        let keyless = out.keyless();
        let source = snapshot_source(config, SnapshotMarker::True);
        let mut rows = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| pg(&format!("COPY {}", table.qualified()), &e))?;
            reader.push(&chunk);
            // One clock read per chunk for the rows' processing time (`ts_ms`).
            let chunk_time_us = now_us();
            // A full producer queue stops the row loop; the row is offered again after a pause
            // (the snapshot's task takes the delivery reports that free the queue).
            loop {
                let outcome = reader
                    .rows(|row| {
                        key.clear();
                        value.clear();
                        if !keyless {
                            out.codec
                                .encode_key(out.key_id, row, &mut key, &mut scratch)?;
                        }
                        out.encode_value(
                            Op::Read,
                            None::<&crate::copy::CopyRow<'_>>,
                            Some(row),
                            &source,
                            chunk_time_us,
                            &mut value,
                            &mut scratch,
                        )?;
                        // The row before goes now: this one is held back, in case it is the
                        // snapshot's last.
                        held.send(sender)?;
                        if let Some(reconcile) = reconcile.filter(|_| !keyless) {
                            reconcile.sent(&key)?;
                        }
                        rows += 1;
                        out.metrics.read.fetch_add(1, Relaxed);
                        out.metrics.snapshot_rows.fetch_add(1, Relaxed);
                        out.metrics.bytes.fetch_add(
                            u64::try_from(key.len() + value.len()).unwrap_or(0),
                            Relaxed,
                        );
                        let marker = (!out.upsert).then(|| scratch.snapshot_marker_at());
                        held.hold(
                            out.target(),
                            (!keyless).then_some(&mut key),
                            &mut value,
                            marker,
                        );
                        Ok::<(), PipelineError>(())
                    })
                    .map_err(|e| {
                        PipelineError::Postgres(format!("COPY {}: {e}", table.qualified()))
                    })?;
                match outcome {
                    Ok(()) => break,
                    Err(PipelineError::QueueFull) => {
                        tokio::time::sleep(QUEUE_FULL_PAUSE).await;
                    }
                    Err(err) => return Err(err),
                }
            }
        }
        if !reader.finished() {
            return Err(PipelineError::Postgres(format!(
                "COPY {} ended before its end marker",
                table.qualified()
            )));
        }
        tracing::info!(table = %table.qualified(), pages = ?piece.pages, rows, "table copied");
        Ok(())
    }
}

/// The `source` of snapshot rows read now: outside any transaction, at no position.
pub(crate) fn snapshot_source(config: &Config, marker: SnapshotMarker) -> Source<'_> {
    Source {
        name: &config.kafka.topic_prefix,
        db: &config.postgres.database,
        commit_time_us: now_us(),
        snapshot: marker,
        tx_id: None,
        lsn: None,
        transaction: None,
    }
}

/// The columns `names` of a table as a COPY selects them: those whose binary form the encoder
/// reads as they are, the others as their text (`::text`).
pub(crate) fn select_list<'a>(names: impl Iterator<Item = &'a str>, out: &TableOut) -> String {
    names
        .zip(out.codec.column_kinds())
        .map(|(name, kind)| {
            if kind.reads_binary() {
                quote_ident(name)
            } else {
                format!("{}::text", quote_ident(name))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A reader of the rows of a COPY that selected [`select_list`].
pub(crate) fn copy_reader(out: &TableOut) -> CopyReader {
    CopyReader::with_text_columns(
        out.codec
            .column_kinds()
            .map(|k| !k.reads_binary())
            .collect(),
    )
}

/// A snapshot row encoded but not yet produced: each copier holds its latest row back until
/// the next, so that the snapshot's very last row can be marked `last` before it goes.
#[derive(Debug, Default)]
pub(crate) struct HeldRow {
    pub(crate) held: bool,
    pub(crate) topic: String,
    pub(crate) partition: Option<i32>,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Vec<u8>,
    /// Where its value holds the snapshot marker (none in upsert mode).
    pub(crate) marker_at: Option<usize>,
}

impl HeldRow {
    /// Holds the row encoded in `key` and `value` back (swapping buffers: nothing is copied).
    pub(crate) fn hold(
        &mut self,
        (topic, partition): (&str, Option<i32>),
        key: Option<&mut Vec<u8>>,
        value: &mut Vec<u8>,
        marker_at: Option<usize>,
    ) {
        if self.topic != topic {
            topic.clone_into(&mut self.topic);
        }
        self.partition = partition;
        match key {
            Some(key) => std::mem::swap(self.key.get_or_insert_with(Vec::new), key),
            None => self.key = None,
        }
        std::mem::swap(&mut self.value, value);
        self.marker_at = marker_at;
        self.held = true;
    }

    /// The row held, if any.
    pub(crate) fn record(&self) -> Option<Record<'_>> {
        self.held.then(|| Record {
            topic: &self.topic,
            partition: self.partition,
            key: self.key.as_deref(),
            value: Some(&self.value),
        })
    }

    /// Produces the row held, if any ([`PipelineError::QueueFull`] when the producer cannot
    /// take it yet: it stays held).
    pub(crate) fn send(&mut self, sender: &OutsideSender) -> Result<(), PipelineError> {
        if let Some(record) = self.record() {
            sender.send(&record)?;
            self.held = false;
        }
        Ok(())
    }

    /// Marks the row held the snapshot's last.
    pub(crate) fn mark_last(&mut self) {
        if let Some(at) = self.marker_at.filter(|_| self.held) {
            sluice_avro::mark_snapshot_last(&mut self.value, at);
        }
    }
}

/// A part of a table to copy: all of it, or the rows on a range of heap pages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Piece {
    pub(crate) oid: u32,
    /// First page, and the page after the last (`None`: to the end).
    pub(crate) pages: Option<(u64, Option<u64>)>,
}
