//! The initial snapshot: every table copied inside the slot's exported snapshot, in pieces
//! by page ranges, by several connections; its rows acknowledged before streaming begins.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_avro::Registry;
use tokio_postgres::Client;

use crate::catalog::{CapturedTable, quote_literal};
use crate::clock::now_us;
use crate::config::Config;
use crate::connect::connect_sql;
use crate::copier::{Copier, HeldRow, Piece};
use crate::error::{PipelineError, pg};
use crate::metrics::{self};
use crate::outbox::{OUTSIDE, Outbox};
use crate::outputs::TableOut;
use crate::progress::report_progress;
use crate::reconcile::{self, TableReconcile};
use std::sync::atomic::Ordering::Relaxed;

/// Copies every table inside the exported snapshot and produces an `r` event per row; returns
/// when the broker has acknowledged them all.
pub(crate) async fn snapshot(
    config: &Config,
    snapshot_name: &str,
    tables: &[CapturedTable],
    outs: &HashMap<u32, TableOut>,
    outbox: &mut Outbox,
    reconcile_with: Option<&Registry>,
) -> Result<(), PipelineError> {
    let sql = connect_sql(&config.postgres).await?;
    let (chunk_rows, parallelism) = (config.snapshot.chunk_rows, config.snapshot.parallelism);
    let mut pieces = Vec::new();
    for table in tables {
        pieces.extend(split_table(&sql, table, chunk_rows, parallelism).await?);
    }
    // Largest first would be better for balance; catalog order keeps output predictable.
    pieces.reverse();
    let parallelism = parallelism.max(1).min(pieces.len().max(1));
    let names: Vec<String> = tables.iter().map(CapturedTable::qualified).collect();
    let progress = tokio::spawn(report_progress(names, config.snapshot.progress_interval));
    // Rows an earlier snapshot sent may be gone now: the keys this one sends are noted, to
    // be compared with what each table's topic held before it began.
    let mut reconciles: HashMap<u32, TableReconcile> = HashMap::new();
    let kafka = config.kafka.client_config();
    if reconcile_with.is_some() {
        for table in tables {
            let estimate = metrics::global()
                .table(&table.qualified())
                .snapshot_rows_estimate
                .load(Relaxed);
            let topic = &outs[&table.oid].topic;
            let reconcile = TableReconcile::prepare(&kafka, topic, estimate).await?;
            reconciles.insert(table.oid, reconcile);
        }
    }
    let reconciles = Arc::new(reconciles);
    let queue = Arc::new(std::sync::Mutex::new(pieces));
    let sender = outbox.outside_sender();
    let shared = Arc::new(config.clone());
    let mut copiers = tokio::task::JoinSet::new();
    for _ in 0..parallelism {
        let client = connect_sql(&config.postgres).await?;
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT {}",
                quote_literal(snapshot_name)
            ))
            .await
            .map_err(|e| pg("importing the slot's snapshot", &e))?;
        let queue = Arc::clone(&queue);
        let outs = outs.clone();
        let sender = sender.clone();
        let tables: HashMap<u32, CapturedTable> =
            tables.iter().map(|t| (t.oid, t.clone())).collect();
        let config = Arc::clone(&shared);
        let reconciles = Arc::clone(&reconciles);
        copiers.spawn(async move {
            let mut copier = Copier {
                config: &config,
                client: &client,
                sender: &sender,
                held: HeldRow::default(),
            };
            loop {
                let next = queue
                    .lock()
                    .map_err(|_| PipelineError::Internal("queue".into()))?
                    .pop();
                let Some(piece) = next else { break };
                let oid = piece.oid;
                copier
                    .copy(&tables[&oid], &outs[&oid], &piece, reconciles.get(&oid))
                    .await?;
            }
            let held = copier.held;
            client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| pg("ending the snapshot transaction", &e))?;
            Ok::<HeldRow, PipelineError>(held)
        });
    }
    // The rows' delivery reports are taken as they come: kept until the end, they grew with
    // the table (~48 bytes a row, 480 MB for 10 million), and a failed delivery stops the
    // snapshot at once instead of after the last row.
    // Each copier's last row is held until another copier finishes after it: the one held at
    // the end is the snapshot's last.
    let mut last_held: Option<HeldRow> = None;
    let copied = async {
        loop {
            tokio::select! {
                done = copiers.join_next() => match done {
                    Some(done) => {
                        let held = done.map_err(|e| PipelineError::Internal(e.to_string()))??;
                        if held.held
                            && let Some(earlier) = last_held.replace(held)
                            && let Some(record) = earlier.record()
                        {
                            outbox.send_when_room(record, OUTSIDE).await?;
                        }
                    }
                    None => break,
                },
                reported = outbox.reports() => reported?,
            }
        }
        Ok::<(), PipelineError>(())
    }
    .await;
    progress.abort();
    copied?;
    if let Some(mut last) = last_held {
        last.mark_last();
        if let Some(record) = last.record() {
            outbox.send_when_room(record, OUTSIDE).await?;
        }
    }
    let reconciles = Arc::into_inner(reconciles)
        .ok_or_else(|| PipelineError::Internal("the copiers still hold the reconciles".into()))?;
    if let Some(registry) = reconcile_with {
        let events = reconcile::Events {
            upsert: config.events.is_upsert(),
            tombstones: config.events.tombstones,
            now_us: now_us(),
        };
        for (oid, reconcile) in reconciles {
            let vanished = reconcile.finish(&kafka, outbox, registry, events).await?;
            if vanished > 0 {
                let table = tables
                    .iter()
                    .find(|t| t.oid == oid)
                    .map(CapturedTable::qualified);
                tracing::info!(table = ?table, deleted = vanished, "delete events and tombstones sent for rows gone since an earlier snapshot");
            }
        }
    }
    outbox.drain_outside().await?;
    tracing::info!(tables = tables.len(), "snapshot complete and acknowledged");
    Ok(())
}

/// Splits a table estimated to hold more than `chunk_rows` rows into page ranges.
pub(crate) async fn split_table(
    sql: &Client,
    table: &CapturedTable,
    chunk_rows: u64,
    parallelism: usize,
) -> Result<Vec<Piece>, PipelineError> {
    let whole = vec![Piece {
        oid: table.oid,
        pages: None,
    }];
    // Sized even when it is copied whole: the estimate is what progress reports measure against.
    // A partitioned table has no pages of its own: its rows are its leaf partitions', and it
    // is copied whole through the root.
    let row = sql
        .query_one(
            "SELECT CASE WHEN c.relkind = 'p' THEN 0
                         ELSE pg_relation_size(c.oid) / current_setting('block_size')::bigint END,
                    CASE WHEN c.relkind = 'p' THEN
                      (SELECT COALESCE(sum(GREATEST(l.reltuples, 0)), 0)::float8
                         FROM pg_partition_tree(c.oid) t JOIN pg_class l ON l.oid = t.relid
                        WHERE t.isleaf)
                    ELSE c.reltuples::float8 END
               FROM pg_class c WHERE c.oid = $1",
            &[&table.oid],
        )
        .await
        .map_err(|e| pg(&format!("sizing {}", table.qualified()), &e))?;
    let pages = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
    let estimated_rows: f64 = row.get(1);
    if let Some(rows) = rows_estimate(estimated_rows) {
        metrics::global()
            .table(&table.qualified())
            .snapshot_rows_estimate
            .store(rows, Relaxed);
    }
    if parallelism < 2 || chunk_rows == 0 || table.partitioned {
        return Ok(whole);
    }
    let Some(pieces) = piece_count(estimated_rows, chunk_rows) else {
        return Ok(whole);
    };
    let step = pages.div_ceil(pieces).max(1);
    let mut out = Vec::new();
    let mut start = 0;
    while start < pages {
        let end = start + step;
        // The last piece is open-ended: it also covers pages the estimate missed.
        let end = (end < pages).then_some(end);
        out.push(Piece {
            oid: table.oid,
            pages: Some((start, end)),
        });
        match end {
            Some(end) => start = end,
            None => break,
        }
    }
    Ok(if out.is_empty() { whole } else { out })
}

/// How many pieces `estimated_rows` (pg_class.reltuples: -1 when never analyzed) makes.
pub(crate) fn piece_count(estimated_rows: f64, chunk_rows: u64) -> Option<u64> {
    let rows = rows_estimate(estimated_rows)?;
    (rows > chunk_rows).then(|| rows.div_ceil(chunk_rows))
}

/// pg_class.reltuples as a count, when there is an estimate.
pub(crate) fn rows_estimate(estimated_rows: f64) -> Option<u64> {
    if !estimated_rows.is_finite() || estimated_rows <= 0.0 {
        return None;
    }
    // Estimates are far below 2^53, where the conversion is exact enough.
    #[allow(
        clippy::as_conversions,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    Some(estimated_rows as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(crate) fn tables_are_split_by_their_row_estimate() {
        assert_eq!(piece_count(-1.0, 1000), None, "never analyzed: one piece");
        assert_eq!(piece_count(0.0, 1000), None);
        assert_eq!(piece_count(1000.0, 1000), None);
        assert_eq!(piece_count(1001.0, 1000), Some(2));
        assert_eq!(piece_count(10_000_000.0, 100_000), Some(100));
        assert_eq!(piece_count(f64::NAN, 1000), None);
    }
}
