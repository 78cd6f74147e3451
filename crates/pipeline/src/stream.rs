//! The stream loop: changes taken from the replication stream, their events produced, the
//! slot confirmed as the broker acknowledges them.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sluice_avro::{Registry, Scratch, SnapshotMarker, Source};
use sluice_kafka::{AckTracker, Deliveries, Producer};
use sluice_pgoutput::{LogicalMessage, Lsn};
use sluice_postgres::{Change, ChangeStream};
use tokio_postgres::Client;

use crate::clock::now_us;
use crate::emit::{Emitter, produce_change};
use crate::error::PipelineError;
use crate::metrics::{self};
use crate::outbox::{acknowledge, confirm, drain, send_waiting};
use crate::outputs::{MessagesOut, TableOut, TransactionOrder, TransactionsOut};
use crate::schema_change::on_relation;
use crate::settings::Settings;
use crate::slot::{self};
use std::sync::atomic::Ordering::Relaxed;

/// Per-transaction context of the stream.
pub(crate) struct Current {
    pub(crate) ticket: u64,
    pub(crate) xid: u32,
    pub(crate) commit_time_us: i64,
    pub(crate) commit_lsn: Lsn,
    /// With transaction metadata on.
    pub(crate) order: Option<TransactionOrder>,
}

/// How many changes one turn of the stream loop handles from what is already read, before it
/// looks at shutdown, timers and acknowledgements again.
pub(crate) const INTAKE_BATCH: usize = 1024;

/// How many changes pass between reads of whatever the socket holds, within a batch.
pub(crate) const READ_AHEAD_EVERY: usize = 64;

#[allow(clippy::too_many_arguments)]
pub(crate) async fn stream_changes(
    settings: &Settings,
    sql: &Client,
    messages: Option<&MessagesOut>,
    transactions: Option<&TransactionsOut>,
    mut changes: ChangeStream,
    registry: &mut Registry,
    outs: &mut HashMap<u32, TableOut>,
    producer: &Producer,
    deliveries: &mut Deliveries,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), PipelineError> {
    let mut state = StreamState {
        settings,
        sql,
        messages,
        transactions,
        registry,
        outs,
        producer,
        deliveries,
        tracker: AckTracker::new(),
        skipped: HashSet::new(),
        current: None,
        key: Vec::new(),
        value: Vec::new(),
        scratch: Scratch::default(),
        now_us: now_us(),
    };
    metrics::global().streaming.store(true, Relaxed);
    let mut heartbeat = settings.heartbeat_interval.map(tokio::time::interval);
    let mut retention = tokio::time::interval(RETENTION_CHECK);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            // 1. Shutdown: stop taking changes, then drain below.
            () = &mut shutdown => break,
            // Housekeeping, rare: a heartbeat message, the slot's retained WAL.
            () = tick(&mut heartbeat) => emit_heartbeat(sql).await,
            _ = retention.tick() => check_retention(sql, settings).await,
            // 2. Acknowledgements before intake, so memory stays bounded: every report that
            // has arrived.
            Some(delivery) = state.deliveries.recv() => {
                acknowledge(&mut state.tracker, &mut changes, delivery)?;
                while let Some(delivery) = state.deliveries.try_recv() {
                    acknowledge(&mut state.tracker, &mut changes, delivery)?;
                }
            }
            // 3. Intake: the next change, then the others the same read brought.
            change = changes.next() => {
                let Some(change) = change? else {
                    return Err(PipelineError::Postgres("the server ended the replication stream".into()));
                };
                // One clock read per batch: the events' processing time (`ts_ms`).
                state.now_us = now_us();
                state.on_change(change, &mut changes).await?;
                for handled in 1..INTAKE_BATCH {
                    // Keep the socket drained while busy: a stalled walsender waits for us.
                    if handled % READ_AHEAD_EVERY == 0 {
                        changes.read_ahead()?;
                    }
                    let change = match changes.try_next()? {
                        Some(change) => change,
                        None if changes.read_ahead()? => match changes.try_next()? {
                            Some(change) => change,
                            None => break,
                        },
                        None => break,
                    };
                    state.on_change(change, &mut changes).await?;
                }
            }
        }
    }
    drain(settings, &mut state.tracker, &mut changes, state.deliveries).await?;
    changes.finish().await?.close().await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// What the stream loop works with and keeps between changes.
pub(crate) struct StreamState<'a> {
    pub(crate) settings: &'a Settings,
    pub(crate) sql: &'a Client,
    pub(crate) messages: Option<&'a MessagesOut>,
    pub(crate) transactions: Option<&'a TransactionsOut>,
    pub(crate) registry: &'a mut Registry,
    pub(crate) outs: &'a mut HashMap<u32, TableOut>,
    pub(crate) producer: &'a Producer,
    pub(crate) deliveries: &'a mut Deliveries,
    pub(crate) tracker: AckTracker,
    /// Relations the publication sends that are outside the selection: their changes are
    /// skipped.
    pub(crate) skipped: HashSet<u32>,
    /// The transaction being received.
    pub(crate) current: Option<Current>,
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
    pub(crate) scratch: Scratch,
    /// When the batch being handled was taken, in microseconds since 1970.
    pub(crate) now_us: i64,
}

impl StreamState<'_> {
    /// Produces the record encoded in `key` and `value`.
    pub(crate) async fn send_encoded(
        &mut self,
        topic: &str,
        ticket: u64,
        changes: &mut ChangeStream,
    ) -> Result<(), PipelineError> {
        send_waiting(
            self.producer,
            (topic, None),
            Some(&self.key),
            Some(&self.value),
            ticket,
            self.deliveries,
            &mut self.tracker,
            changes,
        )
        .await
    }

    /// Handles one change of the stream: produces its events, or tracks the transaction.
    pub(crate) async fn on_change(
        &mut self,
        change: Change,
        changes: &mut ChangeStream,
    ) -> Result<(), PipelineError> {
        let settings = self.settings;
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
                    ticket: self.tracker.begin(commit_lsn.0),
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
                        self.send_encoded(&out.topic, done.ticket, changes).await?;
                    }
                    if let Some(confirmed) = self.tracker.seal_at(done.ticket, end_lsn.0) {
                        confirm(changes, Lsn(confirmed));
                    }
                }
                let streamed = changes.streamed_stats();
                let m = metrics::global();
                m.streamed_open.store(
                    u64::try_from(streamed.open_transactions).unwrap_or(u64::MAX),
                    Relaxed,
                );
                m.streamed_memory_bytes.store(
                    u64::try_from(streamed.memory_bytes).unwrap_or(u64::MAX),
                    Relaxed,
                );
                m.streamed_spilled
                    .store(streamed.spilled_transactions, Relaxed);
                m.in_flight.store(self.tracker.in_flight(), Relaxed);
            }
            // Nothing in flight or open: everything the server sent is durable.
            Change::Keepalive { wal_end }
                if self.current.is_none() && self.tracker.open_transactions() == 0 =>
            {
                confirm(changes, wal_end);
            }
            Change::Message(LogicalMessage::Relation(relation)) => {
                on_relation(
                    self.sql,
                    self.registry,
                    self.outs,
                    &mut self.skipped,
                    &relation,
                    settings,
                    self.producer,
                    changes,
                )
                .await?;
            }
            Change::Message(LogicalMessage::Message(message)) => {
                let Some(out) = self.messages.filter(|_| {
                    settings
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
                    _ => (self.tracker.begin(message.lsn().0), true),
                };
                let source = Source {
                    name: &settings.topic_prefix,
                    db: &settings.postgres.dbname,
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
                    &source,
                    "",
                    self.now_us,
                    &mut self.value,
                );
                self.send_encoded(&out.topic, ticket, changes).await?;
                if alone && let Some(confirmed) = self.tracker.seal_at(ticket, message.lsn().0) {
                    confirm(changes, Lsn(confirmed));
                }
            }
            Change::Message(message) => {
                let relation = match &message {
                    LogicalMessage::Insert(m) => Some(m.relation_id()),
                    LogicalMessage::Update(m) => Some(m.relation_id()),
                    LogicalMessage::Delete(m) => Some(m.relation_id()),
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
                let source = Source {
                    name: &settings.topic_prefix,
                    db: &settings.postgres.dbname,
                    commit_time_us: now.commit_time_us,
                    snapshot: SnapshotMarker::False,
                    tx_id: Some(now.xid),
                    lsn: Some(now.commit_lsn.0),
                    transaction: None,
                };
                let mut emitter = Emitter {
                    producer: self.producer,
                    deliveries: self.deliveries,
                    tracker: &mut self.tracker,
                    key: &mut self.key,
                    value: &mut self.value,
                    scratch: &mut self.scratch,
                    now_us: self.now_us,
                    transaction: self.transactions.zip(now.order.as_mut()),
                };
                produce_change(
                    settings,
                    &message,
                    self.outs,
                    &source,
                    &mut emitter,
                    now.ticket,
                    changes,
                )
                .await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// How often the slot's retained WAL is measured.
pub(crate) const RETENTION_CHECK: Duration = Duration::from_secs(60);

/// The next tick of an optional interval; never, without one.
pub(crate) async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A non-transactional logical decoding message: WAL in this database that the walsender
/// decodes, so its keepalives (and with them the confirmed position) move on.
pub(crate) async fn emit_heartbeat(sql: &Client) {
    if let Err(err) = sql
        .execute(
            "SELECT pg_logical_emit_message(false, 'sluice-heartbeat', '')",
            &[],
        )
        .await
    {
        tracing::warn!(error = %err, "heartbeat failed");
    }
}

/// Measures the WAL the slot holds back and warns past the configured threshold.
pub(crate) async fn check_retention(sql: &Client, settings: &Settings) {
    let Ok(Some(facts)) = slot::read(sql, &settings.slot).await else {
        return;
    };
    let Some(bytes) = facts.retained_bytes.and_then(|b| u64::try_from(b).ok()) else {
        return;
    };
    metrics::global().retained_wal_bytes.store(bytes, Relaxed);
    if bytes > settings.retained_wal_warn_bytes {
        tracing::warn!(
            slot = %settings.slot,
            retained_mib = bytes / (1024 * 1024),
            "the slot holds back more WAL than replication.retained_wal_warn_mib: is the broker keeping up?"
        );
    }
}
