//! The snapshot task: beside the stream loop, on a connection of its own, it takes the tables
//! asked for one after the other and reads each in chunks, a watermark after each.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio_postgres::Client;

use crate::config::Config;
use crate::connect::{self, connect_sql};
use crate::error::{PipelineError, pg};
use crate::incremental::chunk::{SESSION_SETTINGS, read_chunk, table_facts};
use crate::incremental::{Mark, Marks, Request, Seen, WATERMARK_PREFIX};

/// How long the task waits for the stream loop to reach a watermark before it says so (and
/// waits on: the loop may have a backlog to stream first).
const SEEN_PATIENCE: Duration = Duration::from_secs(60);

/// A table to snapshot: where to begin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableJob {
    pub(crate) oid: u32,
    /// `schema.table`.
    pub(crate) table: String,
    /// The key to go on after (a snapshot resumed); from the first row without.
    pub(crate) after: Option<Vec<String>>,
}

/// The task; it stops when dropped.
#[derive(Debug)]
pub(crate) struct SnapshotTask(tokio::task::JoinHandle<()>);

impl Drop for SnapshotTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Everything the task works with.
pub(crate) struct TaskContext {
    pub(crate) config: Config,
    pub(crate) marks: Arc<Marks>,
    pub(crate) requests: UnboundedReceiver<Request>,
    pub(crate) seen: UnboundedReceiver<Seen>,
    /// Where a failure goes: the loop ends the session with it.
    pub(crate) failed: UnboundedSender<PipelineError>,
}

impl SnapshotTask {
    pub(crate) fn start(context: TaskContext) -> Self {
        SnapshotTask(tokio::spawn(async move {
            let failed = context.failed.clone();
            if let Err(err) = run(context).await {
                let _ = failed.send(err);
            }
        }))
    }
}

/// What happened to a table's snapshot.
enum Ended {
    Complete,
    /// Cancelled, asked again from the start, or the table is gone.
    Stopped,
}

async fn run(mut context: TaskContext) -> Result<(), PipelineError> {
    let mut queue: VecDeque<TableJob> = VecDeque::new();
    let mut sql: Option<Client> = None;
    loop {
        let job = match queue.pop_front() {
            Some(job) => job,
            None => match context.requests.recv().await {
                Some(request) => {
                    take_request(request, &mut queue, None);
                    continue;
                }
                None => return Ok(()),
            },
        };
        let client = match &sql {
            Some(client) => client,
            None => {
                let client = connect_sql(&context.config.postgres).await?;
                client
                    .batch_execute(SESSION_SETTINGS)
                    .await
                    .map_err(|e| pg("setting up the incremental snapshot's session", &e))?;
                sql.insert(client)
            }
        };
        if connect::in_recovery(client).await? {
            tracing::error!(table = %job.table, "an incremental snapshot writes watermarks into the WAL, which a standby cannot: the table is not snapshotted (run `sluice snapshot` against a sluice reading the primary)");
            continue;
        }
        tracing::info!(table = %job.table, resumed_after = ?job.after, "incremental snapshot of a table begins");
        match snapshot_table(client, &mut context, &mut queue, &job).await? {
            Ended::Complete => {
                tracing::info!(table = %job.table, "incremental snapshot of a table complete")
            }
            Ended::Stopped => {
                tracing::info!(table = %job.table, "incremental snapshot of a table stopped")
            }
        }
    }
}

/// Queues what `request` asks; whether it stops the table being read (`current`).
fn take_request(request: Request, queue: &mut VecDeque<TableJob>, current: Option<u32>) -> bool {
    match request {
        Request::Snapshot(job) => {
            queue.retain(|queued| queued.oid != job.oid);
            let stops = current == Some(job.oid);
            queue.push_back(job);
            stops
        }
        Request::Cancel(oid) => {
            queue.retain(|queued| queued.oid != oid);
            current == Some(oid)
        }
    }
}

async fn snapshot_table(
    sql: &Client,
    context: &mut TaskContext,
    queue: &mut VecDeque<TableJob>,
    job: &TableJob,
) -> Result<Ended, PipelineError> {
    let Some(table) = table_facts(sql, job.oid).await? else {
        tracing::warn!(table = %job.table, "a table to snapshot no longer exists");
        return Ok(Ended::Stopped);
    };
    let seq = emit(sql, &context.marks, Mark::Open { oid: job.oid }).await?;
    let Some(Seen::Opened { out, .. }) = wait_seen(context, queue, seq, job.oid).await? else {
        return Ok(Ended::Stopped);
    };
    let Some(mut out) = out else {
        return Ok(Ended::Stopped);
    };
    let mut after = job.after.clone();
    let rows = context.config.snapshot.incremental_chunk_rows;
    loop {
        let chunk = read_chunk(sql, &context.config, &table, &out, after.as_deref(), rows).await;
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(err @ PipelineError::Setup(_)) => {
                tracing::error!(table = %table.qualified, error = %err, "an incremental snapshot cannot read this table; it is skipped (give it a primary key, or leave it out of the selection)");
                return Ok(Ended::Stopped);
            }
            Err(err) => {
                // A chunk's transaction that failed is ended before anything else is asked.
                let _ = sql.batch_execute("ROLLBACK").await;
                if table_facts(sql, job.oid).await?.is_none() {
                    tracing::warn!(table = %table.qualified, "a table was dropped while its incremental snapshot read it");
                    return Ok(Ended::Stopped);
                }
                return Err(err);
            }
        };
        let upper = chunk.upper.clone();
        tracing::debug!(table = %table.qualified, rows = chunk.rows.len(), "a chunk read");
        let seq = emit(sql, &context.marks, Mark::Chunk(chunk)).await?;
        match wait_seen(context, queue, seq, job.oid).await? {
            Some(Seen::Emitted { kept, dropped, .. }) => match upper {
                Some(upper) => {
                    tracing::debug!(table = %table.qualified, kept, dropped, "a chunk produced");
                    after = Some(upper);
                }
                None => return Ok(Ended::Complete),
            },
            Some(Seen::Stale { out: Some(now), .. }) => out = now,
            _ => return Ok(Ended::Stopped),
        }
    }
}

/// Keeps `mark` and writes its watermark into the WAL: its sequence number.
async fn emit(sql: &Client, marks: &Marks, mark: Mark) -> Result<u64, PipelineError> {
    let (seq, content) = marks.put(mark);
    sql.execute(
        "SELECT pg_logical_emit_message(true, $1, $2)",
        &[&WATERMARK_PREFIX, &content],
    )
    .await
    .map_err(|e| pg("writing an incremental snapshot's watermark", &e))?;
    Ok(seq)
}

/// Waits until the loop saw watermark `seq`, taking requests meanwhile: `None` when one stops
/// the table being read (`oid`) or the loop is gone.
async fn wait_seen(
    context: &mut TaskContext,
    queue: &mut VecDeque<TableJob>,
    seq: u64,
    oid: u32,
) -> Result<Option<Seen>, PipelineError> {
    let mut stopped = false;
    loop {
        tokio::select! {
            seen = context.seen.recv() => match seen {
                Some(seen) if seen.seq() == seq => return Ok((!stopped).then_some(seen)),
                Some(_) => {}
                None => return Ok(None),
            },
            request = context.requests.recv() => match request {
                // Stopped, but the watermark is still awaited: the loop drops a chunk whose
                // table is no longer being read, and the task must not read on meanwhile.
                Some(request) => stopped |= take_request(request, queue, Some(oid)),
                None => return Ok(None),
            },
            () = tokio::time::sleep(SEEN_PATIENCE) => {
                tracing::info!(seq, "the incremental snapshot waits for the stream to reach its watermark (a backlog streams first)");
            }
        }
    }
}
