//! The pipeline: tables chosen, publication and slot set up, a consistent snapshot, then the
//! stream, every event Avro-encoded and produced to Kafka, and the slot confirmed only up to
//! the end of the newest transaction all of whose events (and all before it) the broker
//! acknowledged.
//!
//! ```text
//!  CREATE_REPLICATION_SLOT .. EXPORT_SNAPSHOT ──▶ consistent point C, snapshot S
//!        │                                         │
//!        │ (idle until the copiers imported S)     ▼
//!        │                        COPY every table in S ─▶ op r events ─▶ Kafka (all acked)
//!        ▼
//!  START_REPLICATION from C ─▶ changes committed after C ─▶ op c/u/d events ─▶ Kafka
//!                                                               │ acks, in any order
//!  standby status update (flushed) ◀── AckTracker (in commit order) ◀┘
//! ```
//!
//! Nothing committed after C is in the snapshot and nothing committed before C is streamed,
//! so every row reaches Kafka exactly as of one point, then every change after it.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use sluice_avro::{Registry, TypeOptions, ValueError};
use sluice_kafka::Producer;
use sluice_pgoutput::Lsn;
use sluice_postgres::{ChangeStream, PgOutputOptions, ReplicationConnection, SnapshotAction};
use tokio::time::Instant;
use tokio_postgres::Client;

use crate::catalog::{self, CapturedTable};
use crate::config::{Config, EventsSection, RegistrySection, TablesSection};
use crate::connect;
use crate::error::{PipelineError, pg};
use crate::housekeeping;
use crate::incremental::task::TaskContext;
use crate::incremental::{Incremental, SnapshotTask, TableJob};
use crate::metrics::{self};
use crate::outbox::Outbox;
pub use crate::outputs::topic_of;
use crate::outputs::{MessagesOut, Outputs, TableOut, TransactionsOut, prepare_outputs};
use crate::publication;
use crate::retry::Restarts;
use crate::schema_change::{Catalog, binary_undecodable};
use crate::slot::{self, SlotPlan};
use crate::slot_lock;
use crate::snapshot::snapshot;
use crate::state::{self, SnapshotPhase, TablePhase, TableProgress};
use crate::stream::{self, StreamState, stream_changes};

/// Runs until `shutdown` resolves (then drains and exits cleanly) or a fatal error.
///
/// A shutdown before streaming began (during startup or the snapshot) stops at once: nothing
/// was confirmed yet, and a snapshot cut short is taken again on the next start, as after a
/// crash.
///
/// In binary mode, a column whose binary form sluice cannot decode (an extension type it does
/// not know, or a value of a type altered since sluice read the catalog) switches the stream
/// to text mode: at startup before streaming, and while streaming by starting again from the
/// slot's confirmed position (the changes since are sent again, as after a restart).
///
/// Once streaming has begun, a transient failure (PostgreSQL restarting, a connection lost)
/// starts everything again from the slot's confirmed position, as a restart of the process
/// would, for as long as `replication.reconnect_timeout` allows. At startup it ends sluice at
/// once: a wrong address should show, not be retried.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), PipelineError> {
    if let Some(bind) = config.metrics.endpoint() {
        metrics::serve(bind).await?;
    }
    tokio::pin!(shutdown);
    // Off for good once a column's binary form turned out undecodable.
    let mut binary = config.replication.binary;
    let mut restarts = Restarts::new(config.replication.reconnect_timeout);
    let mut streamed_before = false;
    loop {
        let started = tokio::select! {
            biased;
            () = &mut shutdown => {
                tracing::info!("shutdown requested before streaming began: stopped (a snapshot cut short is taken again on the next start)");
                return Ok(());
            }
            started = start(&config, binary) => started,
        };
        let started = match started {
            Ok(started) => started,
            Err(err) if streamed_before => {
                if wait_to_start_again(&mut restarts, err, shutdown.as_mut()).await? {
                    continue;
                }
                return Ok(());
            }
            Err(err) => return Err(err),
        };
        streamed_before = true;
        let session = Instant::now();
        let Started {
            sql,
            type_options,
            binary: streams_binary,
            messages,
            transactions,
            mut changes,
            registry,
            mut outs,
            mut outbox,
            incremental,
        } = started;
        // The catalog session (a new table's description, housekeeping) is bounded by the
        // server too: a query given up by the client alone would still hold the session.
        sql.batch_execute(CATALOG_STATEMENT_TIMEOUT)
            .await
            .map_err(|e| pg("bounding the catalog session's statements", &e))?;
        let sql = Arc::new(sql);
        let housekeeping = housekeeping::start(Arc::clone(&sql), &config.replication);
        let producer = Arc::clone(outbox.sink());
        let (mut incremental, task, jobs) = incremental;
        let snapshot_task = SnapshotTask::start(task);
        for (job, rows) in jobs {
            incremental.start(job, rows);
        }
        let mut state =
            StreamState::new(&config, messages.as_ref(), transactions.as_ref(), &mut outs);
        state.incremental = Some(incremental);
        let mut describe = Catalog {
            sql: &sql,
            registry: &registry,
            producer: &producer,
            config: &config,
            type_options: &type_options,
            binary: streams_binary,
        };
        let streamed = stream_changes(
            &mut state,
            &mut changes,
            &mut outbox,
            &mut describe,
            shutdown.as_mut(),
        )
        .await;
        drop(housekeeping);
        drop(snapshot_task);
        if streamed.is_ok() {
            // Shutdown: what was produced is confirmed as its acknowledgements come, up to
            // the drain timeout; what is not is sent again after the next start. Status
            // updates go on meanwhile, or the walsender could time out a long drain.
            let drain = outbox.drain(config.shutdown.drain_timeout);
            let drained = stream::keeping_alive(&mut changes, drain, None).await?;
            if let Some(lsn) = outbox.take_confirmed() {
                stream::Source::confirm(&mut changes, lsn);
                // The chunks confirmed in the drain: their progress too, so that the next
                // start does not read them again.
                state.confirmed(lsn, &mut outbox)?;
                let recorded = outbox.drain(config.shutdown.drain_timeout);
                stream::keeping_alive(&mut changes, recorded, None).await?;
            }
            if !drained {
                tracing::warn!(
                    in_flight = outbox.in_flight(),
                    "drain timeout: unacknowledged events will be sent again after restart"
                );
            }
            changes.finish().await?.close().await?;
            tracing::info!("stopped cleanly");
            return Ok(());
        }
        match streamed {
            Err(err) if streams_binary && undecodable_in_binary(&err) => {
                tracing::warn!(error = %err, "a value's binary form cannot be decoded: streaming again from the slot's confirmed position, in text mode");
                binary = false;
                // Closed, so that its walsender lets go of the slot now.
                drop(changes);
                wait_for_slot_release(&sql, &config.replication.slot).await?;
            }
            Err(err) => {
                drop(changes);
                restarts.session_failed(session.elapsed());
                if !wait_to_start_again(&mut restarts, err, shutdown.as_mut()).await? {
                    return Ok(());
                }
            }
            Ok(()) => return Ok(()),
        }
    }
}

/// The catalog session's bound on each statement while streaming: past the stream loop's own
/// bound on describing a table ([`stream::DESCRIBE_TIMEOUT`]).
const CATALOG_STATEMENT_TIMEOUT: &str = "SET statement_timeout = '60s'";

/// Waits before starting again after `err` if the retry policy allows: `Ok(true)` to start
/// again, `Ok(false)` when shutdown was requested meanwhile, and `err` itself when not.
async fn wait_to_start_again(
    restarts: &mut Restarts,
    err: PipelineError,
    shutdown: Pin<&mut impl Future<Output = ()>>,
) -> Result<bool, PipelineError> {
    let Some(wait) = restarts.wait_after(&err) else {
        return Err(err);
    };
    metrics::global().restarts.fetch_add(1, Relaxed);
    tracing::warn!(
        error = %err,
        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        "streaming stopped on a transient failure: starting again from the slot's confirmed position"
    );
    tokio::select! {
        biased;
        () = shutdown => {
            tracing::info!("shutdown requested while waiting to start again: stopped");
            Ok(false)
        }
        () = tokio::time::sleep(wait) => Ok(true),
    }
}

/// Whether `err` is a binary value (or a new column's type) sluice cannot decode, which text
/// mode carries.
pub(crate) fn undecodable_in_binary(err: &PipelineError) -> bool {
    match err {
        PipelineError::BinaryUndecodable(_) => true,
        PipelineError::Encode(err) => matches!(
            err.source,
            ValueError::Binary { .. } | ValueError::BinaryUnsupported { .. }
        ),
        _ => false,
    }
}

/// How long a replication slot is waited for to be released by the walsender of a stream
/// sluice closed, before starting again: only bounds a hang.
pub(crate) const SLOT_RELEASE_WAIT: Duration = Duration::from_secs(120);

/// Waits until no walsender holds `slot` (the one of a stream just dropped exits when it
/// sees the connection closed).
pub(crate) async fn wait_for_slot_release(sql: &Client, slot: &str) -> Result<(), PipelineError> {
    let deadline = tokio::time::Instant::now() + SLOT_RELEASE_WAIT;
    loop {
        let active = slot::read(sql, slot)
            .await
            .map_err(|e| pg("reading the replication slot", &e))?
            .map(|facts| facts.active);
        if active != Some(true) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(PipelineError::Setup(format!(
                "replication slot {slot} is still held {} s after its stream was closed",
                SLOT_RELEASE_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Everything the stream loop works with.
pub(crate) struct Started {
    pub(crate) sql: Client,
    /// How values are carried in this database (its money format, interval infinities).
    pub(crate) type_options: TypeOptions,
    /// Whether the stream is in binary mode.
    pub(crate) binary: bool,
    pub(crate) messages: Option<MessagesOut>,
    pub(crate) transactions: Option<TransactionsOut>,
    pub(crate) changes: ChangeStream,
    pub(crate) registry: Registry,
    pub(crate) outs: HashMap<u32, TableOut>,
    pub(crate) outbox: Outbox,
    /// Incremental snapshots: the loop's side, the task's, and the tables to read (with the
    /// rows already recorded for each).
    pub(crate) incremental: (Incremental, TaskContext, Vec<(TableJob, u64)>),
}

/// Startup, the snapshot when one is due, and `START_REPLICATION` (in binary mode if
/// `binary` and every captured column's binary form can be decoded).
pub(crate) async fn start(config: &Config, binary: bool) -> Result<Started, PipelineError> {
    // With postgres.hosts, the one that is the primary now: after a failover, the promoted
    // standby. Every connection of this start goes there.
    let (postgres, sql) = connect::connect_primary(&config.postgres).await?;
    let config = &Config {
        postgres,
        ..config.clone()
    };
    // First, so that it connects to the broker while PostgreSQL is asked about the tables.
    let kafka = config.kafka.client_config();
    let (producer, deliveries) = Producer::new(&kafka)?;
    let producer = Arc::new(producer);
    let mut outbox = Outbox::new(Arc::clone(&producer), deliveries);
    let state_topic = state::state_topic(&config.kafka.topic_prefix);
    let slot = &config.replication.slot;
    let copies = config.snapshot.copies_tables();
    let records = config.snapshot.snapshots_tables();
    // Before anything is read or decided: while another sluice streams this slot, stand by.
    slot_lock::hold(&sql, slot).await?;
    // Independent round trips to the broker, the registry and PostgreSQL, side by side, so a
    // restart streams as soon as the slowest of them is done, not after all of them in turn.
    // Reading the state creates nothing: a startup that fails leaves no topic behind.
    let (prepared, recorded) = tokio::try_join!(
        prepare(config, sql, &producer),
        state::recorded(&kafka, &state_topic, slot),
    )?;
    let Prepared {
        sql,
        type_options,
        tables,
        mut conn,
        registry,
        outputs:
            Outputs {
                outs,
                messages,
                transactions,
            },
    } = prepared;
    let existing = slot::existing(&sql, slot).await?;
    let not_failover = existing.as_ref().is_some_and(|s| s.failover != Some(true));
    let confirmed = existing.map(|s| s.confirmed_flush_lsn.unwrap_or(Lsn::ZERO));
    let mut point = recorded.slot.and_then(|s| s.consistent_point);
    // Tables whose snapshot is recorded (or, before per-table records, every table then).
    let mut snapshotted = false;
    let start = match slot::plan(slot, confirmed, recorded.slot, records)? {
        SlotPlan::Stream => {
            tracing::info!(%slot, "reusing the replication slot; streaming from its confirmed position");
            if config.replication.failover && not_failover {
                conn.make_failover_slot(slot).await?;
                tracing::info!(%slot, "made the replication slot a failover slot");
            }
            Lsn::ZERO
        }
        SlotPlan::Create { drop_existing } => {
            if drop_existing {
                conn.drop_slot(slot, true).await?;
            }
            // A slot made again (lost, invalidated, dropped, or its first snapshot cut short)
            // under a state topic that knows an earlier one: the topics may hold rows deleted
            // since, which only the exported copy (compared with each topic afterwards, in
            // bounded memory) can tell; so it is taken in every mode but `never`.
            let copies = copies || (records && recorded.slot.is_some());
            if records {
                state::ensure_state_topic(&producer, &state_topic).await?;
                // Recorded before the slot exists, so that a crash between its creation and
                // the snapshot's end can never leave an older `complete` beside a new slot.
                state::write_phase(
                    &mut outbox,
                    &state_topic,
                    slot,
                    SnapshotPhase::Started,
                    None,
                )
                .await?;
            }
            let created = conn
                .create_slot_with_failover(
                    slot,
                    false,
                    if copies {
                        SnapshotAction::Export
                    } else {
                        SnapshotAction::NoExport
                    },
                    config.replication.failover,
                )
                .await?;
            let created_at = created.consistent_point;
            point = Some(created_at);
            tracing::info!(%slot, consistent_point = %created_at, "created the replication slot");
            if copies {
                let snapshot_name = created.snapshot_name.clone().ok_or_else(|| {
                    PipelineError::Internal("the slot exported no snapshot".to_owned())
                })?;
                // Rows an earlier snapshot (of this slot's name) sent may have been deleted
                // since: the new snapshot sends tombstones for keys its topic holds that no
                // longer exist.
                let reconcile_with = recorded.slot.is_some().then_some(&registry);
                snapshot(
                    config,
                    &snapshot_name,
                    &tables,
                    &outs,
                    &mut outbox,
                    reconcile_with,
                )
                .await?;
                snapshotted = true;
            }
            if records {
                if snapshotted {
                    record_complete(&mut outbox, &state_topic, slot, point, &tables).await?;
                }
                state::write_phase(
                    &mut outbox,
                    &state_topic,
                    slot,
                    SnapshotPhase::Complete,
                    point,
                )
                .await?;
            }
            created_at
        }
    };
    // Recorded before each table's snapshot was: every table selected then was snapshotted.
    if records
        && let Some(recorded) = recorded.slot.filter(|s| {
            !s.per_table && s.phase == SnapshotPhase::Complete && s.consistent_point == point
        })
    {
        record_complete(&mut outbox, &state_topic, slot, point, &tables).await?;
        state::write_phase(&mut outbox, &state_topic, slot, recorded.phase, point).await?;
        snapshotted = true;
    }
    state::ensure_state_topic(&producer, &state_topic).await?;
    let incremental =
        incremental_setup(config, state_topic, point, &recorded, &tables, snapshotted);

    let mut binary = binary;
    if binary {
        let undecodable = binary_undecodable(&sql, outs.values()).await?;
        if !undecodable.is_empty() {
            tracing::warn!(
                columns = %undecodable.join(", "),
                "replication.binary = true, but sluice cannot decode these columns' binary form: streaming in text mode (values are exactly the same)"
            );
            binary = false;
        }
    }
    let mut options = PgOutputOptions::new(vec![config.replication.publication.clone()]);
    options.binary = binary;
    let choice = conn.negotiate(&options);
    let mut stream = conn
        .start_replication(slot, start, &options, choice)
        .await?;
    stream.set_status_interval(config.replication.status_interval);
    let changes = ChangeStream::new(stream, config.replication.streamed_memory_bytes());
    Ok(Started {
        sql,
        type_options,
        binary,
        messages,
        transactions,
        changes,
        registry,
        outs,
        outbox,
        incremental,
    })
}

/// Records every one of `tables` as snapshotted whole, from the slot at `point`.
async fn record_complete(
    outbox: &mut Outbox,
    state_topic: &str,
    slot: &str,
    point: Option<Lsn>,
    tables: &[CapturedTable],
) -> Result<(), PipelineError> {
    for table in tables {
        let progress = TableProgress {
            slot: slot.to_owned(),
            table: table.qualified(),
            consistent_point: point.map(|p| p.to_string()).unwrap_or_default(),
            snapshot: TablePhase::Complete,
            after: None,
            rows: 0,
        };
        state::write_table(outbox, state_topic, &progress).await?;
    }
    outbox.drain_outside().await
}

/// The loop's and the task's sides of incremental snapshots, and the tables to read now: those
/// whose snapshot was under way, and (unless snapshots are off) the selected ones without a
/// snapshot of their own, which joined the selection since.
fn incremental_setup(
    config: &Config,
    state_topic: String,
    point: Option<Lsn>,
    recorded: &state::Recorded,
    tables: &[CapturedTable],
    snapshotted: bool,
) -> (Incremental, TaskContext, Vec<(TableJob, u64)>) {
    let progress = recorded.tables_of(point);
    // No table recorded yet for this slot: its first snapshot, not tables joining.
    let first = progress.is_empty();
    let mut known = HashSet::new();
    let mut jobs = Vec::new();
    for table in tables {
        let name = table.qualified();
        let job = |after: Option<Vec<String>>| TableJob {
            oid: table.oid,
            table: name.clone(),
            after,
        };
        match progress.get(&name) {
            Some(p) if p.snapshot == TablePhase::Running => {
                jobs.push((job(p.after.clone()), p.rows));
            }
            Some(_) => {}
            None if snapshotted || !config.snapshot.snapshots_tables() => {}
            None if table.spec.columns.iter().any(|c| c.is_key) => {
                if first {
                    tracing::info!(table = %name, "an incremental snapshot reads the table while streaming");
                } else {
                    tracing::info!(table = %name, "a selected table has no snapshot of its own (it joined the selection): an incremental snapshot reads it while streaming");
                }
                jobs.push((job(None), 0));
            }
            None => {
                tracing::warn!(table = %name, "a selected table without a primary key has no snapshot: an incremental snapshot reads tables by key ranges (give it a primary key to have its rows)");
            }
        }
        known.insert(name);
    }
    let (incremental, task) = Incremental::new(config, state_topic, point, known);
    (incremental, task, jobs)
}

/// What is set up before the slot is looked at.
pub(crate) struct Prepared {
    pub(crate) sql: Client,
    pub(crate) type_options: TypeOptions,
    pub(crate) tables: Vec<CapturedTable>,
    pub(crate) conn: ReplicationConnection,
    pub(crate) registry: Registry,
    pub(crate) outputs: Outputs,
}

/// The tables, their publication, topics and schemas, and a replication connection.
pub(crate) async fn prepare(
    config: &Config,
    sql: Client,
    producer: &Producer,
) -> Result<Prepared, PipelineError> {
    let type_options = type_options(&sql, &config.events).await?;
    let tables = choose_tables(&sql, &config.tables).await?;
    let replication = &config.replication;
    publication::ensure(
        &sql,
        &replication.publication,
        &tables,
        replication.create_publication,
    )
    .await?;
    let registry = Registry::new(
        &config
            .registry
            .client_config(RegistrySection::REQUEST_TIMEOUT),
    )?;
    let (outputs, conn) = tokio::try_join!(
        prepare_outputs(&registry, producer, config, &type_options, &tables),
        async {
            ReplicationConnection::connect(&config.postgres.connect_config())
                .await
                .map_err(PipelineError::from)
        },
    )?;
    Ok(Prepared {
        sql,
        type_options,
        tables,
        conn,
        registry,
        outputs,
    })
}

/// The tables `selection` chooses, described from the catalog as they are captured; an error
/// when one cannot be captured, or none is chosen.
pub async fn choose_tables(
    sql: &Client,
    selection: &TablesSection,
) -> Result<Vec<CapturedTable>, PipelineError> {
    let mut chosen = Vec::new();
    for (oid, schema, name, identity) in catalog::list_tables(sql).await? {
        if !selection.selects(&schema, &name) {
            continue;
        }
        let mut table = catalog::describe(sql, oid, &schema, &name, identity).await?;
        catalog::check_capturable(&table, selection.allow_keyless)?;
        // Only key columns are declared non-null: a delete's or key update's old row carries
        // nothing but the key under REPLICA IDENTITY DEFAULT.
        for column in &mut table.spec.columns {
            column.nullable = column.nullable || !column.is_key;
        }
        chosen.push(table);
    }
    if chosen.is_empty() {
        return Err(catalog::CatalogError::NothingSelected {
            include: selection.include.iter().map(ToString::to_string).collect(),
        }
        .into());
    }
    Ok(chosen)
}

/// How values are carried: as `events` says, with the database's money format and whether it
/// has interval infinities.
pub(crate) async fn type_options(
    sql: &Client,
    events: &EventsSection,
) -> Result<TypeOptions, PipelineError> {
    let mut options = events.type_options();
    (options.money_scale, options.money_in_c_format) = money_format(sql).await?;
    options.interval_infinities = has_interval_infinities(sql).await?;
    Ok(options)
}

/// The database's money fraction digits (its `lc_monetary`'s), the scale of money values;
/// and whether it prints money as sluice prints money inside composites and ranges from
/// their binary form (the C locale's `-$1,234,567.89`).
pub(crate) async fn money_format(sql: &Client) -> Result<(u32, bool), PipelineError> {
    const SAMPLE: i64 = 123_456_789;
    let row = sql
        .query_one(
            "SELECT s, (-$1::bigint::numeric / 10::numeric ^ s)::money::text,
                    ($1::bigint::numeric / 10::numeric ^ s)::money::text
               FROM (SELECT scale('1'::money::numeric) AS s) scale",
            &[&SAMPLE],
        )
        .await
        .map_err(|e| pg("reading the money format (lc_monetary)", &e))?;
    let scale = u32::try_from(row.get::<_, i32>(0)).unwrap_or(2);
    let (negative, positive): (String, String) = (row.get(1), row.get(2));
    let c_format = negative == sluice_avro::money_text(-SAMPLE, scale)
        && positive == sluice_avro::money_text(SAMPLE, scale);
    Ok((scale, c_format))
}

/// Whether the server has interval infinities (PostgreSQL 17 on), which change what the
/// binary form of the all-extreme interval means.
pub(crate) async fn has_interval_infinities(sql: &Client) -> Result<bool, PipelineError> {
    let version: i32 = sql
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(|e| pg("reading server_version_num", &e))?
        .get(0);
    Ok(version >= 170_000)
}
