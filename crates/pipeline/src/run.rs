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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_avro::{Registry, ValueError};
use sluice_kafka::Producer;
use sluice_pgoutput::Lsn;
use sluice_postgres::{ChangeStream, PgOutputOptions, ReplicationConnection, SnapshotAction};
use tokio_postgres::Client;

use crate::catalog::{self, CapturedTable};
use crate::error::{PipelineError, pg};
use crate::housekeeping;
use crate::metrics::{self};
use crate::outbox::Outbox;
pub use crate::outputs::topic_of;
use crate::outputs::{MessagesOut, Outputs, TableOut, TransactionsOut, prepare_outputs};
use crate::publication;
use crate::schema_change::{Catalog, binary_undecodable};
pub use crate::settings::{Settings, connect_sql, sql_tls};
use crate::slot::{self, SlotPlan};
use crate::snapshot::snapshot;
use crate::state::{self, SnapshotPhase};
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
pub async fn run(
    mut settings: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), PipelineError> {
    if let Some(bind) = settings.metrics_bind {
        metrics::serve(bind).await?;
    }
    tokio::pin!(shutdown);
    loop {
        let started = tokio::select! {
            biased;
            () = &mut shutdown => {
                tracing::info!("shutdown requested before streaming began: stopped (a snapshot cut short is taken again on the next start)");
                return Ok(());
            }
            started = start(&mut settings) => started?,
        };
        let Started {
            sql,
            messages,
            transactions,
            mut changes,
            registry,
            mut outs,
            mut outbox,
        } = started;
        let sql = Arc::new(sql);
        let housekeeping = housekeeping::start(Arc::clone(&sql), &settings);
        let producer = Arc::clone(outbox.sink());
        let mut state = StreamState::new(
            &settings,
            messages.as_ref(),
            transactions.as_ref(),
            &mut outs,
        );
        let mut describe = Catalog {
            sql: &sql,
            registry: &registry,
            producer: &producer,
            settings: &settings,
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
        if streamed.is_ok() {
            // Shutdown: what was produced is confirmed as its acknowledgements come, up to
            // the drain timeout; what is not is sent again after the next start.
            let drained = outbox.drain(settings.drain_timeout).await?;
            if let Some(lsn) = outbox.take_confirmed() {
                stream::Source::confirm(&mut changes, lsn);
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
            Err(err) if settings.binary && undecodable_in_binary(&err) => {
                tracing::warn!(error = %err, "a value's binary form cannot be decoded: streaming again from the slot's confirmed position, in text mode");
                settings.binary = false;
                wait_for_slot_release(&sql, &settings.slot).await?;
            }
            other => return other,
        }
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
    pub(crate) messages: Option<MessagesOut>,
    pub(crate) transactions: Option<TransactionsOut>,
    pub(crate) changes: ChangeStream,
    pub(crate) registry: Registry,
    pub(crate) outs: HashMap<u32, TableOut>,
    pub(crate) outbox: Outbox,
}

/// Startup, the snapshot when one is due, and `START_REPLICATION`.
pub(crate) async fn start(settings: &mut Settings) -> Result<Started, PipelineError> {
    // First, so that it connects to the broker while PostgreSQL is asked about the tables.
    let (producer, deliveries) = Producer::new(&settings.kafka)?;
    let producer = Arc::new(producer);
    let mut outbox = Outbox::new(Arc::clone(&producer), deliveries);
    let state_topic = state::state_topic(&settings.topic_prefix);
    let (kafka, slot) = (settings.kafka.clone(), settings.slot.clone());
    // Independent round trips to the broker, the registry and PostgreSQL, side by side, so a
    // restart streams as soon as the slowest of them is done, not after all of them in turn.
    // Reading the state creates nothing: a startup that fails leaves no topic behind.
    let (prepared, recorded) = tokio::try_join!(
        prepare(settings, &producer),
        state::recorded_state(&kafka, &state_topic, &slot),
    )?;
    let Prepared {
        sql,
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
    let existing = slot::position(&sql, &settings.slot).await?;
    let start = match slot::plan(&settings.slot, existing, recorded, settings.snapshot)? {
        SlotPlan::Stream => {
            tracing::info!(slot = %settings.slot, "reusing the replication slot; streaming from its confirmed position");
            Lsn::ZERO
        }
        SlotPlan::Create { drop_existing } => {
            if drop_existing {
                conn.drop_slot(&settings.slot, true).await?;
            }
            if settings.snapshot {
                state::ensure_state_topic(&producer, &state_topic).await?;
                // Recorded before the slot exists, so that a crash between its creation and
                // the snapshot's end can never leave an older `complete` beside a new slot.
                state::write_phase(
                    &mut outbox,
                    &state_topic,
                    &settings.slot,
                    SnapshotPhase::Started,
                    None,
                )
                .await?;
            }
            let created = conn
                .create_slot(&settings.slot, false, SnapshotAction::Export)
                .await?;
            let point = created.consistent_point;
            tracing::info!(slot = %settings.slot, consistent_point = %point, "created the replication slot");
            if settings.snapshot {
                let snapshot_name = created.snapshot_name.clone().ok_or_else(|| {
                    PipelineError::Internal("the slot exported no snapshot".to_owned())
                })?;
                // Rows an earlier snapshot (of this slot's name) sent may have been deleted
                // since: the new snapshot sends tombstones for keys its topic holds that no
                // longer exist.
                let reconcile_with = recorded.is_some().then_some(&registry);
                snapshot(
                    settings,
                    &snapshot_name,
                    &tables,
                    &outs,
                    &mut outbox,
                    reconcile_with,
                )
                .await?;
                state::write_phase(
                    &mut outbox,
                    &state_topic,
                    &settings.slot,
                    SnapshotPhase::Complete,
                    Some(point),
                )
                .await?;
            }
            point
        }
    };

    if settings.binary {
        let undecodable = binary_undecodable(&sql, outs.values()).await?;
        if !undecodable.is_empty() {
            tracing::warn!(
                columns = %undecodable.join(", "),
                "replication.binary = true, but sluice cannot decode these columns' binary form: streaming in text mode (values are exactly the same)"
            );
            settings.binary = false;
        }
    }
    let mut options = PgOutputOptions::new(vec![settings.publication.clone()]);
    options.binary = settings.binary;
    let choice = conn.negotiate(&options);
    let mut stream = conn
        .start_replication(&settings.slot, start, &options, choice)
        .await?;
    stream.set_status_interval(settings.status_interval);
    let changes = ChangeStream::new(stream, settings.streamed_memory_bytes);
    Ok(Started {
        sql,
        messages,
        transactions,
        changes,
        registry,
        outs,
        outbox,
    })
}

/// What is set up before the slot is looked at.
pub(crate) struct Prepared {
    pub(crate) sql: Client,
    pub(crate) tables: Vec<CapturedTable>,
    pub(crate) conn: ReplicationConnection,
    pub(crate) registry: Registry,
    pub(crate) outputs: Outputs,
}

/// The tables, their publication, topics and schemas, and a replication connection.
pub(crate) async fn prepare(
    settings: &mut Settings,
    producer: &Producer,
) -> Result<Prepared, PipelineError> {
    let sql = connect_sql(settings).await?;
    (
        settings.type_options.money_scale,
        settings.type_options.money_in_c_format,
    ) = money_format(&sql).await?;
    settings.type_options.interval_infinities = has_interval_infinities(&sql).await?;
    let tables = choose_tables(&sql, settings).await?;
    publication::ensure(
        &sql,
        &settings.publication,
        &tables,
        settings.create_publication,
    )
    .await?;
    let registry = Registry::new(&settings.registry)?;
    let settings = &*settings;
    let (outputs, conn) = tokio::try_join!(
        prepare_outputs(&registry, producer, settings, &tables),
        async {
            ReplicationConnection::connect(&settings.postgres)
                .await
                .map_err(PipelineError::from)
        },
    )?;
    Ok(Prepared {
        sql,
        tables,
        conn,
        registry,
        outputs,
    })
}

pub async fn choose_tables(
    sql: &Client,
    settings: &Settings,
) -> Result<Vec<CapturedTable>, PipelineError> {
    let mut chosen = Vec::new();
    for (oid, schema, name, identity) in catalog::list_tables(sql).await? {
        if !settings.tables.selects(&schema, &name) {
            continue;
        }
        let mut table = catalog::describe(sql, oid, &schema, &name, identity).await?;
        catalog::check_capturable(&table, settings.tables.allow_keyless)?;
        // Only key columns are declared non-null: a delete's or key update's old row carries
        // nothing but the key under REPLICA IDENTITY DEFAULT.
        for column in &mut table.spec.columns {
            column.nullable = column.nullable || !column.is_key;
        }
        chosen.push(table);
    }
    if chosen.is_empty() {
        return Err(catalog::CatalogError::NothingSelected {
            include: settings
                .tables
                .include
                .iter()
                .map(ToString::to_string)
                .collect(),
        }
        .into());
    }
    Ok(chosen)
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
