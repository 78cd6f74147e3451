//! The stream loop's side of incremental snapshots: each table's window of changed keys,
//! the chunks produced at their watermarks, signals taken, progress recorded once confirmed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use sluice_pgoutput::Lsn;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use crate::config::Config;
use crate::error::PipelineError;
use crate::incremental::task::TaskContext;
use crate::incremental::{ChunkRead, Mark, Marks, Request, Seen, Signal, TableJob};
use crate::outbox::{OUTSIDE, Outbox, Record, Reports, Sink};
use crate::outputs::TableOut;
use crate::state::{TablePhase, TableProgress, table_record};

/// Where a watermark came: its transaction (watermarks are transactional messages, so that
/// their commit flushes them to the walsender at once).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Watermark {
    pub(crate) ticket: u64,
    pub(crate) commit_lsn: Lsn,
}

/// The keys of a table the stream changed since its window opened.
#[derive(Debug, Default)]
pub(crate) struct Window {
    changed: HashSet<Vec<u8>>,
    /// A TRUNCATE came: every row read before it is stale.
    truncated: bool,
}

impl Window {
    /// A change of the row with key `key` (its encoded form) was produced.
    pub(crate) fn note(&mut self, key: &[u8]) {
        if !self.changed.contains(key) {
            self.changed.insert(key.to_vec());
        }
    }

    pub(crate) fn truncate(&mut self) {
        self.truncated = true;
    }

    fn changed(&self, key: &[u8]) -> bool {
        self.truncated || self.changed.contains(key)
    }
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Incremental {
    marks: Arc<Marks>,
    seen: UnboundedSender<Seen>,
    requests: UnboundedSender<Request>,
    failed: UnboundedReceiver<PipelineError>,
    windows: HashMap<u32, Window>,
    /// Each table being read, where it stands (as produced, not yet confirmed).
    reading: HashMap<u32, TableProgress>,
    /// Progress to record once the chunk's watermark position is confirmed.
    awaiting: VecDeque<(Lsn, TableProgress)>,
    state_topic: String,
    slot: String,
    /// The slot's consistent point, in every record.
    consistent_point: String,
    /// Tables whose snapshot is recorded or under way (`schema.table`): one that joins the
    /// capture while streaming and is not among them is snapshotted.
    known: HashSet<String>,
    /// Whether tables that join are snapshotted (not with `snapshot.mode = never`).
    joins: bool,
}

impl Incremental {
    /// The loop's side, and what the snapshot task is started with.
    pub(crate) fn new(
        config: &Config,
        state_topic: String,
        consistent_point: Option<Lsn>,
        known: HashSet<String>,
    ) -> (Self, TaskContext) {
        let marks = Arc::new(Marks::new());
        let (seen, seen_rx) = mpsc::unbounded_channel();
        let (requests, requests_rx) = mpsc::unbounded_channel();
        let (failed_tx, failed) = mpsc::unbounded_channel();
        let incremental = Incremental {
            marks: Arc::clone(&marks),
            seen,
            requests,
            failed,
            windows: HashMap::new(),
            reading: HashMap::new(),
            awaiting: VecDeque::new(),
            state_topic,
            slot: config.replication.slot.clone(),
            consistent_point: consistent_point.map(|p| p.to_string()).unwrap_or_default(),
            known,
            joins: config.snapshot.snapshots_tables(),
        };
        let context = TaskContext {
            config: config.clone(),
            marks,
            requests: requests_rx,
            seen: seen_rx,
            failed: failed_tx,
        };
        (incremental, context)
    }

    /// Snapshots `job`'s table (from where it says), recorded as running from its first
    /// confirmed chunk.
    pub(crate) fn start(&mut self, job: TableJob, rows: u64) {
        self.forget_awaiting(&job.table);
        self.known.insert(job.table.clone());
        self.reading.insert(
            job.oid,
            TableProgress {
                slot: self.slot.clone(),
                table: job.table.clone(),
                consistent_point: self.consistent_point.clone(),
                snapshot: TablePhase::Running,
                after: job.after.clone(),
                rows,
            },
        );
        // A new window opens at the task's first watermark.
        self.windows.remove(&job.oid);
        let _ = self.requests.send(Request::Snapshot(job));
    }

    /// A failure of the snapshot task, which ends the session.
    pub(crate) async fn failed(&mut self) -> PipelineError {
        match self.failed.recv().await {
            Some(err) => err,
            None => std::future::pending().await,
        }
    }

    /// The window of table `oid`, while it is being read.
    pub(crate) fn window_mut(&mut self, oid: u32) -> Option<&mut Window> {
        self.windows.get_mut(&oid)
    }

    /// A table the loop just described for the first time this session: snapshotted when it
    /// joined the capture without a snapshot of its own.
    pub(crate) fn joined(&mut self, oid: u32, out: &TableOut) {
        if self.joins && !self.known.contains(&out.collection) && out.codec.has_key() {
            tracing::info!(table = %out.collection, "a table joined the capture: its existing rows follow in an incremental snapshot");
            self.start(
                TableJob {
                    oid,
                    table: out.collection.clone(),
                    after: None,
                },
                0,
            );
        }
    }

    /// A watermark message (of this run, or ignored) in `at`'s transaction.
    pub(crate) fn on_watermark<S: Sink, R: Reports>(
        &mut self,
        content: &[u8],
        at: Watermark,
        outs: &HashMap<u32, TableOut>,
        outbox: &mut Outbox<S, R>,
    ) -> Result<(), PipelineError> {
        let Some((seq, mark)) = self.marks.take(content) else {
            return Ok(());
        };
        let seen = match mark {
            Mark::Open { oid } => {
                let out = outs.get(&oid).filter(|_| self.reading.contains_key(&oid));
                if out.is_some() {
                    self.windows.insert(oid, Window::default());
                }
                Seen::Opened {
                    seq,
                    out: out.cloned(),
                }
            }
            Mark::Chunk(chunk) => self.on_chunk(seq, &chunk, at, outs, outbox)?,
        };
        let _ = self.seen.send(seen);
        Ok(())
    }

    fn on_chunk<S: Sink, R: Reports>(
        &mut self,
        seq: u64,
        chunk: &ChunkRead,
        at: Watermark,
        outs: &HashMap<u32, TableOut>,
        outbox: &mut Outbox<S, R>,
    ) -> Result<Seen, PipelineError> {
        let oid = chunk.oid;
        let Some(out) = outs.get(&oid) else {
            // No longer captured.
            self.windows.remove(&oid);
            self.reading.remove(&oid);
            return Ok(Seen::Stale { seq, out: None });
        };
        // Cancelled, or asked again from the start, since the chunk was read: it is dropped
        // (and a snapshot asked again keeps its new progress).
        let (Some(progress), Some(window)) =
            (self.reading.get_mut(&oid), self.windows.get_mut(&oid))
        else {
            return Ok(Seen::Stale { seq, out: None });
        };
        // The table's shape changed since the chunk was read: read it again, from here.
        if (out.key_id, out.value_id) != (chunk.key_id, chunk.value_id) {
            *window = Window::default();
            return Ok(Seen::Stale {
                seq,
                out: Some(out.clone()),
            });
        }
        let (topic, partition) = out.target();
        let (mut kept, mut dropped, mut bytes) = (0u64, 0u64, 0usize);
        for (key, value) in chunk.records() {
            if window.changed(key) {
                dropped += 1;
                continue;
            }
            let record = Record {
                topic,
                partition,
                key: Some(key),
                value: Some(value),
            };
            outbox.send(record, at.ticket)?;
            kept += 1;
            bytes += key.len() + value.len();
        }
        *window = Window::default();
        out.metrics.read.fetch_add(kept, Relaxed);
        out.metrics
            .bytes
            .fetch_add(u64::try_from(bytes).unwrap_or(0), Relaxed);
        progress.rows += kept;
        progress.after.clone_from(&chunk.upper);
        if chunk.upper.is_none() {
            progress.snapshot = TablePhase::Complete;
        }
        // Recorded once confirmed past the commit: then the rows sent with it are acknowledged
        // (transactions before it end at or before its commit's start).
        self.awaiting
            .push_back((Lsn(at.commit_lsn.0.saturating_add(1)), progress.clone()));
        if chunk.upper.is_none() {
            self.windows.remove(&oid);
            self.reading.remove(&oid);
        }
        Ok(Seen::Emitted { seq, kept, dropped })
    }

    /// A signal message (`sluice snapshot`) in the transaction of `ticket`: what it records
    /// goes with that transaction, so the signal is confirmed only once they are.
    pub(crate) fn on_signal<S: Sink, R: Reports>(
        &mut self,
        content: &[u8],
        outs: &HashMap<u32, TableOut>,
        outbox: &mut Outbox<S, R>,
        ticket: u64,
    ) -> Result<(), PipelineError> {
        let signal: Signal = match serde_json::from_slice(content) {
            Ok(signal) => signal,
            Err(err) => {
                tracing::warn!(error = %err, "a sluice-signal message that sluice cannot read is ignored");
                return Ok(());
            }
        };
        if signal.slot != self.slot {
            return Ok(());
        }
        let oid_of = |table: &str| {
            outs.iter()
                .find(|(_, out)| out.collection == table)
                .map(|(oid, out)| (*oid, out))
        };
        for table in &signal.snapshot {
            match oid_of(table) {
                Some((oid, out)) if out.codec.has_key() => {
                    tracing::info!(%table, "a signal asks for an incremental snapshot");
                    let job = TableJob {
                        oid,
                        table: table.clone(),
                        after: None,
                    };
                    self.start(job, 0);
                    if let Some(progress) = self.reading.get(&oid) {
                        self.record(progress.clone(), outbox, ticket)?;
                    }
                }
                Some(_) => {
                    tracing::warn!(%table, "a signal asks for an incremental snapshot of a table without a primary key: refused (give it one)");
                }
                None => {
                    tracing::warn!(%table, "a signal asks for a snapshot of a table sluice does not capture: ignored");
                }
            }
        }
        for table in &signal.cancel {
            let Some((oid, _)) = oid_of(table) else {
                continue;
            };
            if let Some(mut progress) = self.reading.remove(&oid) {
                tracing::info!(%table, "a signal cancels the table's incremental snapshot");
                self.forget_awaiting(table);
                self.windows.remove(&oid);
                let _ = self.requests.send(Request::Cancel(oid));
                progress.snapshot = TablePhase::Cancelled;
                self.record(progress, outbox, ticket)?;
            }
        }
        Ok(())
    }

    /// Drops the progress of `table`'s chunks still to be recorded: a record written now
    /// (cancelled, started again) must stay the latest.
    fn forget_awaiting(&mut self, table: &str) {
        self.awaiting
            .retain(|(_, progress)| progress.table != table);
    }

    /// Everything up to `lsn` is acknowledged: the chunks' progress up to there is recorded.
    pub(crate) fn confirmed<S: Sink, R: Reports>(
        &mut self,
        lsn: Lsn,
        outbox: &mut Outbox<S, R>,
    ) -> Result<(), PipelineError> {
        while self.awaiting.front().is_some_and(|(at, _)| *at <= lsn) {
            if let Some((_, progress)) = self.awaiting.pop_front() {
                self.record(progress, outbox, OUTSIDE)?;
            }
        }
        Ok(())
    }

    fn record<S: Sink, R: Reports>(
        &self,
        progress: TableProgress,
        outbox: &mut Outbox<S, R>,
        ticket: u64,
    ) -> Result<(), PipelineError> {
        let (key, value) = table_record(&progress)?;
        let record = Record {
            topic: &self.state_topic,
            partition: None,
            key: Some(key.as_bytes()),
            value: Some(&value),
        };
        outbox.send(record, ticket)
    }
}
