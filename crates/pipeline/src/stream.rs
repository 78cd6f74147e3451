//! The stream loop: changes taken from the replication stream, their events produced through
//! the outbox, the slot confirmed as the broker acknowledges them.
//!
//! One `select!` with its arms in priority order:
//!
//! 1. shutdown: stop taking changes (the caller drains the outbox);
//! 2. delivery reports: acknowledgements before intake, so memory stays bounded, and the
//!    confirmed position moves as soon as it can;
//! 3. the status update, when due (a keepalive asking for a reply makes it due at once): the
//!    loop is the only writer to the replication connection, and never from inside a race;
//! 4. retry of what is held: records the producer's full queue refused, or a table whose
//!    description waits for the registry or the broker to come back;
//! 5. intake, only while nothing is held: the next change, then every further change the same
//!    read brought, up to [`INTAKE_BATCH`];
//! 6. a failure of the incremental snapshot task, which ends the session like the stream's.
//!
//! The change source ([`Source`]), where records go ([`Outbox`] over a [`Sink`]) and where
//! tables are described ([`Describe`]) are seams, so the loop's ordering, back-pressure and
//! confirmation are unit-tested without services (`stream_tests.rs`).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use sluice_avro::{Scratch, SnapshotMarker, Source as EventSource};
use sluice_pgoutput::{LogicalMessage, Lsn};
use sluice_postgres::{Change, ChangeStream};
use tokio::time::Instant;

use crate::clock::now_us;
use crate::config::Config;
use crate::emit::{Emitter, produce_change};
use crate::error::PipelineError;
use crate::incremental::{Incremental, SIGNAL_PREFIX, WATERMARK_PREFIX, Watermark};
use crate::metrics;
use crate::outbox::{Outbox, Record, Reports, Sink};
use crate::outputs::{MessagesOut, TableOut, TransactionOrder, TransactionsOut};
use crate::retry::Backoff;
use crate::schema_change::{Describe, needs_describing, note_described};

/// How many changes one turn of the stream loop handles from what is already read, before it
/// looks at shutdown, reports and timers again.
pub(crate) const INTAKE_BATCH: usize = 1024;

/// How many changes pass between reads of whatever the socket holds, within a batch.
pub(crate) const READ_AHEAD_EVERY: usize = 64;

/// How soon records the producer's queue refused are offered again when no delivery report
/// came meanwhile (librdkafka may free its queue by its own retries).
const BLOCKED_RETRY: Duration = Duration::from_millis(5);

/// How long describing a table (catalog queries, schema registration, topic creation) may
/// take before it is given up as a transient failure, to be tried again later.
pub(crate) const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(60);

/// Awaits `work` while sending the status updates that fall due meanwhile, so that the
/// walsender does not time sluice out while it waits on something else; with `limit`, gives
/// up (a transient [`PipelineError::TimedOut`]) after that long.
pub(crate) async fn keeping_alive<T>(
    source: &mut impl Source,
    work: impl Future<Output = Result<T, PipelineError>>,
    limit: Option<(&'static str, Duration)>,
) -> Result<T, PipelineError> {
    let deadline = limit.map(|(_, after)| Instant::now() + after);
    tokio::pin!(work);
    loop {
        tokio::select! {
            biased;
            done = &mut work => return done,
            () = sleep_until_some(deadline) => {
                let (what, after) = limit.unwrap_or(("waiting", Duration::ZERO));
                return Err(PipelineError::TimedOut { what, after });
            }
            () = tokio::time::sleep_until(source.status_at()) => source.send_status().await?,
        }
    }
}

/// Sleeps until `deadline`; for ever without one.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Where the loop takes changes from: the replication stream, or a test's fake.
pub(crate) trait Source {
    /// The next change, waiting for one; cancel-safe (it never writes). `None` when the
    /// server ended the stream.
    fn recv(&mut self) -> impl Future<Output = Result<Option<Change>, PipelineError>>;
    /// The next change already read, without waiting or writing.
    fn try_recv(&mut self) -> Result<Option<Change>, PipelineError>;
    /// Reads what the socket already holds, without waiting; whether it read any.
    fn read_ahead(&mut self) -> Result<bool, PipelineError>;
    /// When the next status update is due.
    fn status_at(&self) -> Instant;
    /// Sends the status update (the position confirmed so far).
    fn send_status(&mut self) -> impl Future<Output = Result<(), PipelineError>>;
    /// Everything up to `lsn` is durable downstream: confirmed with the next status update.
    fn confirm(&mut self, lsn: Lsn);
}

impl Source for ChangeStream {
    async fn recv(&mut self) -> Result<Option<Change>, PipelineError> {
        Ok(ChangeStream::recv(self).await?)
    }

    fn try_recv(&mut self) -> Result<Option<Change>, PipelineError> {
        Ok(self.try_next()?)
    }

    fn read_ahead(&mut self) -> Result<bool, PipelineError> {
        Ok(ChangeStream::read_ahead(self)?)
    }

    fn status_at(&self) -> Instant {
        ChangeStream::status_at(self)
    }

    async fn send_status(&mut self) -> Result<(), PipelineError> {
        Ok(self.stream().send_status(false).await?)
    }

    fn confirm(&mut self, lsn: Lsn) {
        let stream = self.stream();
        stream.confirm(lsn);
        let metrics = metrics::global();
        metrics.confirmed_lsn.store(stream.flushed().0, Relaxed);
        metrics.received_lsn.store(stream.received().0, Relaxed);
        let streamed = self.streamed_stats();
        metrics.streamed_open.store(
            u64::try_from(streamed.open_transactions).unwrap_or(u64::MAX),
            Relaxed,
        );
        metrics.streamed_memory_bytes.store(
            u64::try_from(streamed.memory_bytes).unwrap_or(u64::MAX),
            Relaxed,
        );
        metrics
            .streamed_spilled
            .store(streamed.spilled_transactions, Relaxed);
    }
}

/// Per-transaction context of the stream.
pub(crate) struct Current {
    pub(crate) ticket: u64,
    pub(crate) xid: u32,
    pub(crate) commit_time_us: i64,
    pub(crate) commit_lsn: Lsn,
    /// With transaction metadata on.
    pub(crate) order: Option<TransactionOrder>,
}

/// What the stream loop works with and keeps between changes.
pub(crate) struct StreamState<'a> {
    pub(crate) config: &'a Config,
    pub(crate) messages: Option<&'a MessagesOut>,
    pub(crate) transactions: Option<&'a TransactionsOut>,
    pub(crate) outs: &'a mut HashMap<u32, TableOut>,
    /// Relations the publication sends that are outside the selection: their changes are
    /// skipped.
    pub(crate) skipped: HashSet<u32>,
    /// The transaction being received.
    pub(crate) current: Option<Current>,
    /// A change that could not be handled yet (a table's description waiting for the
    /// registry or the broker): intake waits until it is.
    pub(crate) pending: Option<Change>,
    /// How long to wait before trying the pending change again.
    pub(crate) backoff: Backoff,
    /// When to try again what is held (the pending change, records the queue refused): a
    /// deadline, not a wait started anew each turn, which other arms firing would put off.
    pub(crate) retry_at: Option<Instant>,
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
    pub(crate) scratch: Scratch,
    /// When the batch being handled was taken, in microseconds since 1970.
    pub(crate) now_us: i64,
    /// Incremental snapshots: each table's window, the chunks at their watermarks, signals.
    pub(crate) incremental: Option<Incremental>,
}

impl<'a> StreamState<'a> {
    pub(crate) fn new(
        config: &'a Config,
        messages: Option<&'a MessagesOut>,
        transactions: Option<&'a TransactionsOut>,
        outs: &'a mut HashMap<u32, TableOut>,
    ) -> Self {
        StreamState {
            config,
            messages,
            transactions,
            outs,
            skipped: HashSet::new(),
            current: None,
            pending: None,
            backoff: Backoff::default(),
            retry_at: None,
            key: Vec::new(),
            value: Vec::new(),
            scratch: Scratch::default(),
            now_us: now_us(),
            incremental: None,
        }
    }
}

/// Runs the loop until `shutdown` resolves or an error: see the module documentation. The
/// caller drains the outbox afterwards.
pub(crate) async fn stream_changes<S: Sink, R: Reports>(
    state: &mut StreamState<'_>,
    source: &mut impl Source,
    outbox: &mut Outbox<S, R>,
    describe: &mut impl Describe,
    shutdown: impl Future<Output = ()>,
) -> Result<(), PipelineError> {
    metrics::global().streaming.store(true, Relaxed);
    tokio::pin!(shutdown);
    loop {
        let held = outbox.is_blocked() || state.pending.is_some();
        let retry_at = if held {
            *state
                .retry_at
                .get_or_insert_with(|| Instant::now() + BLOCKED_RETRY)
        } else {
            state.retry_at = None;
            Instant::now()
        };
        tokio::select! {
            biased;
            // 1.
            () = &mut shutdown => return Ok(()),
            // 2.
            reported = outbox.reports() => {
                reported?;
                confirm(state, source, outbox)?;
            }
            // 3.
            () = tokio::time::sleep_until(source.status_at()) => source.send_status().await?,
            // 4.
            () = tokio::time::sleep_until(retry_at), if held => {
                state.retry_at = None;
                outbox.retry()?;
                if let Some(change) = state.pending.take() {
                    state.on_change(change, source, outbox, describe).await?;
                }
                confirm(state, source, outbox)?;
            }
            // 5.
            change = source.recv(), if !held => {
                let Some(change) = change? else {
                    return Err(PipelineError::PostgresUnavailable(
                        "the server ended the replication stream".into(),
                    ));
                };
                // One clock read per batch: the events' processing time (`ts_ms`).
                state.now_us = now_us();
                state.on_change(change, source, outbox, describe).await?;
                for handled in 1..INTAKE_BATCH {
                    if outbox.is_blocked() || state.pending.is_some() {
                        break;
                    }
                    // Keep the socket drained while busy: a stalled walsender waits for us.
                    if handled % READ_AHEAD_EVERY == 0 {
                        source.read_ahead()?;
                    }
                    let change = match source.try_recv()? {
                        Some(change) => change,
                        None if source.read_ahead()? => match source.try_recv()? {
                            Some(change) => change,
                            None => break,
                        },
                        None => break,
                    };
                    state.on_change(change, source, outbox, describe).await?;
                }
                confirm(state, source, outbox)?;
            }
            // 6.
            failed = snapshot_failed(state.incremental.as_mut()) => return Err(failed),
        }
    }
}

/// The incremental snapshot task's failure; never without incremental snapshots.
async fn snapshot_failed(incremental: Option<&mut Incremental>) -> PipelineError {
    match incremental {
        Some(incremental) => incremental.failed().await,
        None => std::future::pending().await,
    }
}

/// Confirms the newest position the outbox's acknowledgements allow.
fn confirm<S: Sink, R: Reports>(
    state: &mut StreamState<'_>,
    source: &mut impl Source,
    outbox: &mut Outbox<S, R>,
) -> Result<(), PipelineError> {
    if let Some(lsn) = outbox.take_confirmed() {
        source.confirm(lsn);
        state.confirmed(lsn, outbox)?;
    }
    Ok(())
}

impl StreamState<'_> {
    /// Everything up to `lsn` is confirmed: what waited for that is done.
    pub(crate) fn confirmed<S: Sink, R: Reports>(
        &mut self,
        lsn: Lsn,
        outbox: &mut Outbox<S, R>,
    ) -> Result<(), PipelineError> {
        match self.incremental.as_mut() {
            Some(incremental) => incremental.confirmed(lsn, outbox),
            None => Ok(()),
        }
    }

    /// Handles one change of the stream: produces its events, or tracks the transaction.
    /// Never waits on the broker: what the producer's queue refuses the outbox keeps.
    pub(crate) async fn on_change<S: Sink, R: Reports>(
        &mut self,
        change: Change,
        source: &mut impl Source,
        outbox: &mut Outbox<S, R>,
        describe: &mut impl Describe,
    ) -> Result<(), PipelineError> {
        let config = self.config;
        match change {
            Change::Begin {
                xid,
                commit_lsn,
                commit_time,
                ..
            } => {
                let m = metrics::global();
                m.last_commit_us
                    .store(commit_time.to_unix_micros(), Relaxed);
                m.lag_us
                    .store(self.now_us - commit_time.to_unix_micros(), Relaxed);
                self.current = Some(Current {
                    // The end LSN comes with the Commit; it is set at seal.
                    ticket: outbox.begin(commit_lsn),
                    xid,
                    commit_time_us: commit_time.to_unix_micros(),
                    commit_lsn,
                    order: self.transactions.map(|_| TransactionOrder {
                        id: format!("{xid}:{}", commit_lsn.0),
                        commit_time_ms: commit_time.to_unix_micros().div_euclid(1000),
                        total: 0,
                        per_table: Vec::new(),
                    }),
                });
            }
            Change::Commit { end_lsn, .. } => {
                if let Some(done) = self.current.take() {
                    if let (Some(out), Some(order)) = (self.transactions, &done.order)
                        && order.total > 0
                    {
                        self.key.clear();
                        self.value.clear();
                        out.codec.encode_key(out.key_id, &order.id, &mut self.key);
                        out.codec.encode_end(
                            out.value_id,
                            &order.id,
                            order.commit_time_ms,
                            order
                                .per_table
                                .iter()
                                .map(|(name, count)| (name.as_str(), *count)),
                            &mut self.value,
                        );
                        let record = Record {
                            topic: &out.topic,
                            partition: None,
                            key: Some(&self.key),
                            value: Some(&self.value),
                        };
                        outbox.send(record, done.ticket)?;
                    }
                    outbox.seal(done.ticket, end_lsn);
                }
                metrics::global()
                    .in_flight
                    .store(outbox.in_flight(), Relaxed);
            }
            // Nothing in flight or open: everything the server sent is durable.
            Change::Keepalive { wal_end } if self.current.is_none() && outbox.idle() => {
                source.confirm(wal_end);
                self.confirmed(wal_end, outbox)?;
            }
            Change::Message(LogicalMessage::Relation(relation)) => {
                if !needs_describing(&relation, &config.tables, self.outs, &mut self.skipped) {
                    return Ok(());
                }
                let oid = relation.relation_id();
                let described = keeping_alive(
                    source,
                    describe.describe(
                        &relation,
                        self.outs.get(&oid),
                        self.current.as_ref().map(|now| now.xid),
                    ),
                    Some(("describing a table", DESCRIBE_TIMEOUT)),
                )
                .await;
                match described {
                    Ok(out) => {
                        note_described(self.outs.get(&oid), &out);
                        if let (None, Some(incremental)) =
                            (self.outs.get(&oid), self.incremental.as_mut())
                        {
                            incremental.joined(oid, &out);
                        }
                        self.outs.insert(oid, out);
                        self.backoff.reset();
                    }
                    // The registry or the broker is away: the change waits (and intake with
                    // it), tried again after a while.
                    Err(err) if err.is_transient() => {
                        let delay = self.backoff.next();
                        tracing::warn!(error = %err, retry_in = ?delay, "describing a table waits for a service");
                        self.retry_at = Some(Instant::now() + delay);
                        self.pending = Some(Change::Message(LogicalMessage::Relation(relation)));
                    }
                    Err(err) => return Err(err),
                }
            }
            Change::Message(LogicalMessage::Message(message))
                if message.prefix() == WATERMARK_PREFIX =>
            {
                if let (Some(incremental), Some(now)) =
                    (self.incremental.as_mut(), self.current.as_ref())
                {
                    let at = Watermark {
                        ticket: now.ticket,
                        commit_lsn: now.commit_lsn,
                    };
                    incremental.on_watermark(message.content(), at, self.outs, outbox)?;
                }
            }
            Change::Message(LogicalMessage::Message(message))
                if message.prefix() == SIGNAL_PREFIX =>
            {
                if let (Some(incremental), Some(now)) =
                    (self.incremental.as_mut(), self.current.as_ref())
                {
                    incremental.on_signal(message.content(), self.outs, outbox, now.ticket)?;
                }
            }
            Change::Message(LogicalMessage::Message(message)) => {
                let Some(out) = self.messages.filter(|_| {
                    config
                        .events
                        .message_prefixes
                        .iter()
                        .any(|p| message.prefix().starts_with(p.as_str()))
                }) else {
                    return Ok(());
                };
                // A transactional message belongs to its transaction; another one stands
                // alone, confirmed at its own position once delivered.
                let (ticket, alone) = match self.current.as_ref() {
                    Some(now) if message.transactional() => (now.ticket, false),
                    _ => (outbox.begin(message.lsn()), true),
                };
                let event_source = EventSource {
                    name: &config.kafka.topic_prefix,
                    db: &config.postgres.database,
                    commit_time_us: self
                        .current
                        .as_ref()
                        .map_or(self.now_us, |now| now.commit_time_us),
                    snapshot: SnapshotMarker::False,
                    tx_id: self.current.as_ref().map(|now| now.xid),
                    lsn: Some(message.lsn().0),
                    transaction: None,
                };
                self.key.clear();
                self.value.clear();
                out.codec
                    .encode_key(out.key_id, message.prefix(), &mut self.key);
                out.codec.encode_value(
                    out.value_id,
                    message.prefix(),
                    message.content(),
                    &event_source,
                    "",
                    self.now_us,
                    &mut self.value,
                );
                let record = Record {
                    topic: &out.topic,
                    partition: None,
                    key: Some(&self.key),
                    value: Some(&self.value),
                };
                outbox.send(record, ticket)?;
                if alone {
                    outbox.seal(ticket, message.lsn());
                }
            }
            Change::Message(message) => {
                let relation = match &message {
                    LogicalMessage::Insert(m) => Some(m.relation_id()),
                    LogicalMessage::Update(m) => Some(m.relation_id()),
                    LogicalMessage::Delete(m) => Some(m.relation_id()),
                    LogicalMessage::Truncate(m) => {
                        if let Some(incremental) = self.incremental.as_mut() {
                            for &relation in m.relation_ids() {
                                if let Some(window) = incremental.window_mut(relation) {
                                    window.truncate();
                                }
                            }
                        }
                        None
                    }
                    _ => None,
                };
                // A table outside the selection that the publication sends anyway.
                if relation.is_some_and(|r| self.skipped.contains(&r)) {
                    return Ok(());
                }
                // The stream checks that row changes come inside a transaction.
                let Some(now) = self.current.as_mut() else {
                    return Err(PipelineError::Internal(
                        "a change outside a transaction".to_owned(),
                    ));
                };
                let event_source = EventSource {
                    name: &config.kafka.topic_prefix,
                    db: &config.postgres.database,
                    commit_time_us: now.commit_time_us,
                    snapshot: SnapshotMarker::False,
                    tx_id: Some(now.xid),
                    lsn: Some(now.commit_lsn.0),
                    transaction: None,
                };
                let mut emitter = Emitter {
                    outbox,
                    key: &mut self.key,
                    value: &mut self.value,
                    scratch: &mut self.scratch,
                    now_us: self.now_us,
                    transaction: self.transactions.zip(now.order.as_mut()),
                    window: relation
                        .zip(self.incremental.as_mut())
                        .and_then(|(relation, incremental)| incremental.window_mut(relation)),
                };
                produce_change(
                    &config.events,
                    &message,
                    self.outs,
                    &event_source,
                    &mut emitter,
                    now.ticket,
                )?;
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
