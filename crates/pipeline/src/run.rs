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
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use sluice_avro::{
    ColumnSpec, HstoreMode, MessageCodec, NumericMode, Op, Raw, Registry, RegistryConfig,
    RegistryError, Row, Scratch, SnapshotMarker, Source, TableCodec, TableSpec, TimePrecision,
    TransactionBlock, TransactionCodec, TypeOptions, ValueError,
};
use sluice_kafka::{AckTracker, Deliveries, Delivery, KafkaConfig, Producer, SendError};
use sluice_pgoutput::{
    ColumnValue, LogicalMessage, Lsn, OldTuple, Relation, ReplicaIdentity, Tuple,
};
use sluice_postgres::{
    Change, ChangeStream, ConnectConfig, PgOutputOptions, ReplicationConnection, SnapshotAction,
    SslMode,
};
use tokio_postgres::Client;

use crate::catalog::{self, CapturedTable, Shape, quote_ident, quote_literal};
use crate::copy::CopyReader;
use crate::delivery::{SNAPSHOT_TICKET, STATE_TICKET, take_deliveries, while_full};
use crate::error::{PipelineError, pg};
use crate::metrics::{self, TableMetrics};
use crate::naming;
use crate::publication;
use crate::reconcile::{self, TableReconcile};
use crate::slot::{self, SlotPlan};
use crate::state::{self, SnapshotPhase};
use std::sync::atomic::Ordering::Relaxed;

/// What the pipeline needs to know, resolved from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub postgres: ConnectConfig,
    /// libpq-style connection string for ordinary (catalog, COPY) connections.
    /// libpq conninfo for tokio-postgres, password included: secret.
    pub postgres_conninfo: SecretString,
    pub slot: String,
    pub publication: String,
    pub create_publication: bool,
    pub binary: bool,
    pub streamed_memory_bytes: usize,
    pub status_interval: Duration,
    /// Which tables are captured.
    pub tables: crate::config::TablesSection,
    pub snapshot: bool,
    pub snapshot_parallelism: usize,
    /// Tables estimated to hold more rows are copied in pieces of about this many rows (by
    /// ctid page ranges), by several connections at once.
    pub snapshot_chunk_rows: u64,
    pub snapshot_progress_interval: Duration,
    /// How types are carried; the money scale is the database's, set once connected.
    pub type_options: TypeOptions,
    pub kafka: KafkaConfig,
    pub topic_prefix: String,
    pub registry: RegistryConfig,
    pub tombstones: bool,
    /// Upsert mode: the value is the bare row, a delete is a tombstone only.
    pub upsert: bool,
    /// TRUNCATE becomes an event per table.
    pub truncate: bool,
    /// The compatibility rule sluice sets on each subject it registers, if any.
    pub compatibility: Option<String>,
    /// Prefixes of the logical decoding messages sent to the messages topic.
    pub message_prefixes: Vec<String>,
    pub transactions: bool,
    pub unchanged_placeholder: String,
    pub drain_timeout: Duration,
    /// How often to emit a heartbeat message, if at all.
    pub heartbeat_interval: Option<Duration>,
    /// Warn when the slot retains more WAL than this many bytes.
    pub retained_wal_warn_bytes: u64,
    /// Where `/metrics`, `/health` and `/ready` are served, if anywhere.
    pub metrics_bind: Option<std::net::SocketAddr>,
}

/// The messages topic's encoder and registered schema ids.
#[derive(Debug)]
/// A topic of sluice's own beside the tables' (messages, transactions): its codec and ids.
struct SideTopic<C> {
    topic: String,
    codec: C,
    key_id: u32,
    value_id: u32,
}

type MessagesOut = SideTopic<MessageCodec>;
type TransactionsOut = SideTopic<TransactionCodec>;

/// Creates the topic if needed and registers its key and value schemas.
async fn side_topic<C>(
    registry: &mut Registry,
    producer: &Producer,
    topic: String,
    codec: C,
    key_schema: &str,
    value_schema: &str,
) -> Result<SideTopic<C>, PipelineError> {
    producer.ensure_topics(std::slice::from_ref(&topic)).await?;
    let key_id = register(registry, &naming::key_subject(&topic), key_schema, None).await?;
    let value_id = register(registry, &naming::value_subject(&topic), value_schema, None).await?;
    Ok(SideTopic {
        topic,
        codec,
        key_id,
        value_id,
    })
}

/// Where the events of the transaction being produced stand, for transaction metadata.
struct TransactionOrder {
    /// `<xid>:<commit LSN>`.
    id: String,
    commit_time_ms: i64,
    total: u64,
    /// Events per table (`schema.table`), in the order the tables first appeared.
    per_table: Vec<(String, u64)>,
}

impl TransactionOrder {
    /// Counts one more event of `collection`; its total and per-table order, from 1.
    fn next(&mut self, collection: &str) -> (u64, u64) {
        self.total += 1;
        let count = match self
            .per_table
            .iter_mut()
            .find(|(name, _)| name == collection)
        {
            Some((_, count)) => {
                *count += 1;
                *count
            }
            None => {
                self.per_table.push((collection.to_owned(), 1));
                1
            }
        };
        (self.total, count)
    }
}

/// A captured table's encoder and registered schema ids.
#[derive(Debug, Clone)]
struct TableOut {
    topic: String,
    codec: TableCodec,
    key_id: u32,
    value_id: u32,
    upsert: bool,
    metrics: Arc<TableMetrics>,
    /// `schema.table`, as transaction metadata names it.
    collection: String,
    /// How many columns every tuple of the table carries.
    columns: usize,
    /// The topic's partition count, for the events sent to every partition (TRUNCATE).
    partitions: i32,
    /// (name, type, modifier) of each column, to notice a changed Relation.
    shape: Shape,
}

impl TableOut {
    /// A table captured without a key (`tables.allow_keyless`): its events have no Kafka key.
    fn keyless(&self) -> bool {
        self.codec.key_columns().is_empty()
    }

    /// Where the table's events go: its topic, and for a keyless table its first partition,
    /// so that its events keep their order (a keyed event goes to its key's partition).
    fn target(&self) -> (&str, Option<i32>) {
        (&self.topic, self.keyless().then_some(0))
    }

    /// Appends an event's value: the Debezium envelope, or in upsert mode the bare row.
    /// Returns false when the event has no value: an upsert-mode delete is only a tombstone.
    #[allow(clippy::too_many_arguments)]
    fn encode_value<R: Row>(
        &self,
        op: Op,
        before: Option<&R>,
        after: Option<&R>,
        source: &Source<'_>,
        now_us: i64,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<bool, PipelineError> {
        if self.upsert {
            let Some(row) = after else { return Ok(false) };
            self.codec
                .encode_row_value(self.value_id, row, out, scratch)?;
        } else {
            self.codec.encode_envelope(
                self.value_id,
                op,
                before,
                after,
                source,
                now_us,
                out,
                scratch,
            )?;
        }
        Ok(true)
    }
}

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
            changes,
            mut registry,
            mut outs,
            producer,
            mut deliveries,
        } = started;
        let streamed = stream_changes(
            &settings,
            &sql,
            messages.as_ref(),
            transactions.as_ref(),
            changes,
            &mut registry,
            &mut outs,
            &producer,
            &mut deliveries,
            shutdown.as_mut(),
        )
        .await;
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
fn undecodable_in_binary(err: &PipelineError) -> bool {
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
const SLOT_RELEASE_WAIT: Duration = Duration::from_secs(120);

/// Waits until no walsender holds `slot` (the one of a stream just dropped exits when it
/// sees the connection closed).
async fn wait_for_slot_release(sql: &Client, slot: &str) -> Result<(), PipelineError> {
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
struct Started {
    sql: Client,
    messages: Option<MessagesOut>,
    transactions: Option<TransactionsOut>,
    changes: ChangeStream,
    registry: Registry,
    outs: HashMap<u32, TableOut>,
    producer: Arc<Producer>,
    deliveries: Deliveries,
}

/// Startup, the snapshot when one is due, and `START_REPLICATION`.
async fn start(settings: &mut Settings) -> Result<Started, PipelineError> {
    // First, so that it connects to the broker while PostgreSQL is asked about the tables.
    let (producer, mut deliveries) = Producer::new(&settings.kafka)?;
    let producer = Arc::new(producer);
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
                    &producer,
                    &mut deliveries,
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
                    &producer,
                    &mut deliveries,
                    reconcile_with,
                )
                .await?;
                state::write_phase(
                    &producer,
                    &mut deliveries,
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
        producer,
        deliveries,
    })
}

/// What is set up before the slot is looked at.
struct Prepared {
    sql: Client,
    tables: Vec<CapturedTable>,
    conn: ReplicationConnection,
    registry: Registry,
    outputs: Outputs,
}

/// The tables, their publication, topics and schemas, and a replication connection.
async fn prepare(settings: &mut Settings, producer: &Producer) -> Result<Prepared, PipelineError> {
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
    let mut registry = Registry::new(&settings.registry)?;
    let settings = &*settings;
    let (outputs, conn) = tokio::try_join!(
        prepare_outputs(&mut registry, producer, settings, &tables),
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

/// Where the captured tables' events, and the optional message and transaction records, go.
struct Outputs {
    outs: HashMap<u32, TableOut>,
    messages: Option<MessagesOut>,
    transactions: Option<TransactionsOut>,
}

/// Makes sure every topic exists and every schema is registered.
async fn prepare_outputs(
    registry: &mut Registry,
    producer: &Producer,
    settings: &Settings,
    tables: &[CapturedTable],
) -> Result<Outputs, PipelineError> {
    let mut outs: HashMap<u32, TableOut> = HashMap::new();
    let topics: Vec<String> = tables.iter().map(|t| topic_of(settings, t)).collect();
    let partitions = producer.ensure_topics(&topics).await?;
    for ((table, topic), partitions) in tables.iter().zip(topics).zip(partitions) {
        let out = table_out(
            registry,
            (topic, partitions),
            &table.spec,
            table.shape.clone(),
            settings,
            None,
        )
        .await
        .map_err(|err| match err {
            PipelineError::Registry(err @ RegistryError::Incompatible { .. }) => {
                PipelineError::Setup(format!(
                    "table {}: its current shape was refused: {err}",
                    table.qualified()
                ))
            }
            other => other,
        })?;
        outs.insert(table.oid, out);
    }
    let messages = if settings.message_prefixes.is_empty() {
        None
    } else {
        let topic = naming::messages_topic(&settings.topic_prefix);
        let codec = MessageCodec::new(&topic);
        let (key, value) = (
            codec.key_schema().to_owned(),
            codec.value_schema().to_owned(),
        );
        Some(side_topic(registry, producer, topic, codec, &key, &value).await?)
    };
    let transactions = if settings.transactions {
        let topic = naming::transactions_topic(&settings.topic_prefix);
        let codec = TransactionCodec::new(&topic);
        let (key, value) = (
            codec.key_schema().to_owned(),
            codec.value_schema().to_owned(),
        );
        Some(side_topic(registry, producer, topic, codec, &key, &value).await?)
    } else {
        None
    };
    Ok(Outputs {
        outs,
        messages,
        transactions,
    })
}

/// An ordinary connection (catalog, COPY) with the same TLS rules as the replication one.
pub async fn connect_sql(settings: &Settings) -> Result<Client, PipelineError> {
    let tls = sql_tls(&settings.postgres)?;
    let (client, connection) =
        tokio_postgres::connect(settings.postgres_conninfo.expose_secret(), tls)
            .await
            .map_err(|e| {
                let target = settings.postgres.target();
                let hint = if e.as_db_error().is_none() {
                    " (check postgres.host and postgres.port, and that PostgreSQL listens there)"
                } else {
                    ""
                };
                pg(&format!("connecting to PostgreSQL at {target}{hint}"), &e)
            })?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %err, "a PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// The TLS of ordinary connections, with the same rules as the replication connection's.
pub fn sql_tls(
    postgres: &ConnectConfig,
) -> Result<postgres_native_tls::MakeTlsConnector, PipelineError> {
    Ok(postgres_native_tls::MakeTlsConnector::new(
        postgres.tls_connector()?,
    ))
}

pub fn topic_of(settings: &Settings, table: &CapturedTable) -> String {
    naming::table_topic(&settings.topic_prefix, &table.spec.schema, &table.spec.name)
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

/// Where a table's events go: its topic (of `partitions` partitions), and its schemas,
/// registered.
async fn table_out(
    registry: &mut Registry,
    (topic, partitions): (String, i32),
    spec: &TableSpec,
    shape: Shape,
    settings: &Settings,
    mut stream: Option<&mut ChangeStream>,
) -> Result<TableOut, PipelineError> {
    let upsert = settings.upsert;
    let collection = format!("{}.{}", spec.schema, spec.name);
    let codec = TableCodec::with_options(&topic, spec, &settings.type_options)
        .with_unchanged_placeholder(&settings.unchanged_placeholder);
    let key_subject = naming::key_subject(&topic);
    let key_id = register(
        registry,
        &key_subject,
        codec.key_schema(),
        stream.as_deref_mut(),
    )
    .await?;
    let value_subject = naming::value_subject(&topic);
    let value_schema = if upsert {
        codec.row_schema()
    } else {
        codec.value_schema()
    };
    let value_id = register(registry, &value_subject, value_schema, stream).await?;
    if let Some(level) = &settings.compatibility {
        for subject in [&key_subject, &value_subject] {
            registry.set_compatibility(subject, level).await?;
        }
    }
    Ok(TableOut {
        topic,
        codec,
        key_id,
        value_id,
        upsert,
        metrics: metrics::global().table(&collection),
        collection,
        columns: spec.columns.len(),
        partitions,
        shape,
    })
}

/// How long an unreachable registry is waited for at startup, before any stream is open:
/// most likely the URL is wrong, and the operator should hear so.
const STARTUP_REGISTRY_WAIT: Duration = Duration::from_secs(20);

/// Registers a schema, waiting out an unavailable registry: nothing is produced, and so
/// nothing confirmed, until it answers. While it waits, the replication stream (if one is
/// open) keeps getting status updates, so the walsender does not time it out. Without a
/// stream (at startup) the wait is bounded.
async fn register(
    registry: &mut Registry,
    subject: &str,
    schema: &str,
    mut stream: Option<&mut ChangeStream>,
) -> Result<u32, PipelineError> {
    let mut delay = Duration::from_millis(200);
    let started = tokio::time::Instant::now();
    loop {
        let result = registry.register(subject, schema).await;
        let stats = registry.stats();
        metrics::global().registry_calls.store(stats.calls, Relaxed);
        metrics::global()
            .registry_cache_hits
            .store(stats.cache_hits, Relaxed);
        match result {
            Ok(id) => return Ok(id),
            Err(err) if stream.is_none() && started.elapsed() >= STARTUP_REGISTRY_WAIT => {
                return Err(err.into());
            }
            Err(err) if err.is_transient() => {
                tracing::warn!(error = %err, retry_in = ?delay, "registry unavailable");
                let until = tokio::time::Instant::now() + delay;
                while tokio::time::Instant::now() < until {
                    if let Some(changes) = stream.as_deref_mut() {
                        keep_alive(changes).await?;
                    }
                    tokio::time::sleep_until(
                        until.min(tokio::time::Instant::now() + KEEP_ALIVE_WHILE_WAITING),
                    )
                    .await;
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// How often a waiting pipeline (registry away, broker queue full) checks that the stream
/// gets its status update.
const KEEP_ALIVE_WHILE_WAITING: Duration = Duration::from_millis(500);

/// Sends the stream's status update if one is due.
async fn keep_alive(changes: &mut ChangeStream) -> Result<(), PipelineError> {
    if changes.stream().status_due() {
        changes.stream().send_status(false).await?;
    }
    Ok(())
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Copies every table inside the exported snapshot and produces an `r` event per row; returns
/// when the broker has acknowledged them all.
async fn snapshot(
    settings: &Settings,
    snapshot_name: &str,
    tables: &[CapturedTable],
    outs: &HashMap<u32, TableOut>,
    producer: &Arc<Producer>,
    deliveries: &mut Deliveries,
    reconcile_with: Option<&Registry>,
) -> Result<(), PipelineError> {
    let sql = connect_sql(settings).await?;
    let mut pieces = Vec::new();
    for table in tables {
        pieces.extend(
            split_table(
                &sql,
                table,
                settings.snapshot_chunk_rows,
                settings.snapshot_parallelism,
            )
            .await?,
        );
    }
    // Largest first would be better for balance; catalog order keeps output predictable.
    pieces.reverse();
    let parallelism = settings
        .snapshot_parallelism
        .max(1)
        .min(pieces.len().max(1));
    let names: Vec<String> = tables.iter().map(CapturedTable::qualified).collect();
    let progress = tokio::spawn(report_progress(names, settings.snapshot_progress_interval));
    // Rows an earlier snapshot sent may be gone now: the keys this one sends are noted, to
    // be compared with what each table's topic held before it began.
    let mut reconciles: HashMap<u32, TableReconcile> = HashMap::new();
    if reconcile_with.is_some() {
        for table in tables {
            let estimate = metrics::global()
                .table(&table.qualified())
                .snapshot_rows_estimate
                .load(Relaxed);
            let topic = &outs[&table.oid].topic;
            let reconcile = TableReconcile::prepare(&settings.kafka, topic, estimate).await?;
            reconciles.insert(table.oid, reconcile);
        }
    }
    let reconciles = Arc::new(reconciles);
    let queue = Arc::new(std::sync::Mutex::new(pieces));
    let mut copiers = tokio::task::JoinSet::new();
    for _ in 0..parallelism {
        let client = connect_sql(settings).await?;
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT {}",
                quote_literal(snapshot_name)
            ))
            .await
            .map_err(|e| pg("importing the slot's snapshot", &e))?;
        let queue = Arc::clone(&queue);
        let outs = outs.clone();
        let producer = Arc::clone(producer);
        let tables: HashMap<u32, CapturedTable> =
            tables.iter().map(|t| (t.oid, t.clone())).collect();
        let settings = settings.clone();
        let reconciles = Arc::clone(&reconciles);
        copiers.spawn(async move {
            let mut copier = Copier {
                settings: &settings,
                client: &client,
                producer: &producer,
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
                            && let Some(mut earlier) = last_held.replace(held)
                        {
                            while_full(deliveries, || earlier.send(producer)).await?;
                        }
                    }
                    None => break,
                },
                Some(delivery) = deliveries.recv() => {
                    delivery.result.map_err(PipelineError::Delivery)?;
                    take_deliveries(deliveries)?;
                }
            }
        }
        Ok::<(), PipelineError>(())
    }
    .await;
    progress.abort();
    copied?;
    if let Some(mut last) = last_held {
        last.mark_last();
        while_full(deliveries, || last.send(producer)).await?;
    }
    let reconciles = Arc::into_inner(reconciles)
        .ok_or_else(|| PipelineError::Internal("the copiers still hold the reconciles".into()))?;
    if let Some(registry) = reconcile_with {
        let events = reconcile::Events {
            upsert: settings.upsert,
            tombstones: settings.tombstones,
            now_us: now_us(),
        };
        for (oid, reconcile) in reconciles {
            let vanished = reconcile
                .finish(&settings.kafka, producer, deliveries, registry, events)
                .await?;
            if vanished > 0 {
                let table = tables
                    .iter()
                    .find(|t| t.oid == oid)
                    .map(CapturedTable::qualified);
                tracing::info!(table = ?table, deleted = vanished, "delete events and tombstones sent for rows gone since an earlier snapshot");
            }
        }
    }
    state::flush(producer).await?;
    take_deliveries(deliveries)?;
    tracing::info!(tables = tables.len(), "snapshot complete and acknowledged");
    Ok(())
}

/// Snapshot progress: on a terminal a line of the overall figures refreshed every second;
/// otherwise every `interval` a log line per unfinished table (rows, estimate, rate, ETA) and
/// one for all tables.
async fn report_progress(tables: Vec<String>, interval: Duration) {
    use std::io::{IsTerminal as _, Write as _};
    let terminal = std::io::stderr().is_terminal();
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(if terminal {
        Duration::from_secs(1)
    } else {
        interval.max(Duration::from_millis(10))
    });
    // The first tick is immediate: nothing to report yet.
    tick.tick().await;
    loop {
        tick.tick().await;
        let elapsed = started.elapsed().as_secs_f64().max(0.001);
        let figures: Vec<(String, u64, u64)> = tables
            .iter()
            .map(|name| {
                let m = metrics::global().table(name);
                (
                    name.clone(),
                    m.snapshot_rows.load(Relaxed),
                    m.snapshot_rows_estimate.load(Relaxed),
                )
            })
            .collect();
        let done: u64 = figures.iter().map(|(_, rows, _)| rows).sum();
        let total: u64 = figures
            .iter()
            .map(|(_, rows, estimate)| (*estimate).max(*rows))
            .sum();
        let rate = crate::progress::rate(done, elapsed);
        if terminal {
            let line = crate::progress::line("snapshot", done, total, rate);
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r{line}\x1b[K");
            let _ = stderr.flush();
        } else {
            for (table, rows, estimate) in
                figures.iter().filter(|(_, rows, estimate)| rows < estimate)
            {
                let table_rate = crate::progress::rate(*rows, elapsed);
                tracing::info!(
                    %table,
                    rows,
                    estimated_rows = estimate,
                    rows_per_second = table_rate,
                    eta_seconds = crate::progress::eta(*rows, *estimate, table_rate),
                    "snapshot progress"
                );
            }
            tracing::info!(
                rows = done,
                estimated_rows = total,
                rows_per_second = rate,
                "snapshot progress, all tables"
            );
        }
    }
}

/// A part of a table to copy: all of it, or the rows on a range of heap pages.
#[derive(Debug, Clone, Copy)]
struct Piece {
    oid: u32,
    /// First page, and the page after the last (`None`: to the end).
    pages: Option<(u64, Option<u64>)>,
}

/// Splits a table estimated to hold more than `chunk_rows` rows into page ranges.
async fn split_table(
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
fn piece_count(estimated_rows: f64, chunk_rows: u64) -> Option<u64> {
    let rows = rows_estimate(estimated_rows)?;
    (rows > chunk_rows).then(|| rows.div_ceil(chunk_rows))
}

/// pg_class.reltuples as a count, when there is an estimate.
fn rows_estimate(estimated_rows: f64) -> Option<u64> {
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

/// One connection inside the exported snapshot, copying pieces one after the other.
struct Copier<'a> {
    settings: &'a Settings,
    client: &'a Client,
    producer: &'a Producer,
    /// The last row copied, not yet produced.
    held: HeldRow,
}

impl Copier<'_> {
    /// Copies one piece of a table, producing an `r` event per row (each row held back until
    /// the next, see [`HeldRow`]).
    async fn copy(
        &mut self,
        table: &CapturedTable,
        out: &TableOut,
        piece: &Piece,
        reconcile: Option<&TableReconcile>,
    ) -> Result<(), PipelineError> {
        use futures_util::StreamExt as _;
        let (settings, client, producer, held) =
            (self.settings, self.client, self.producer, &mut self.held);
        let columns: Vec<String> = table
            .spec
            .columns
            .iter()
            .zip(out.codec.column_kinds())
            .map(|(c, kind)| {
                if kind.reads_binary() {
                    quote_ident(&c.name)
                } else {
                    format!("{}::text", quote_ident(&c.name))
                }
            })
            .collect();
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
            "COPY (SELECT {} FROM {only}{}{range}) TO STDOUT (FORMAT binary)",
            columns.join(", "),
            table.quoted()
        );
        let stream = client
            .copy_out(&copy)
            .await
            .map_err(|e| pg(&format!("COPY {}", table.qualified()), &e))?;
        futures_util::pin_mut!(stream);
        let mut reader = CopyReader::with_text_columns(
            out.codec
                .column_kinds()
                .map(|k| !k.reads_binary())
                .collect(),
        );
        let (mut key, mut value) = (Vec::new(), Vec::new());
        let mut scratch = Scratch::default();
        let keyless = out.keyless();
        let source = Source {
            name: &settings.topic_prefix,
            db: &settings.postgres.dbname,
            commit_time_us: now_us(),
            snapshot: SnapshotMarker::True,
            tx_id: None,
            lsn: None,
            transaction: None,
        };
        let mut rows = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| pg(&format!("COPY {}", table.qualified()), &e))?;
            reader.push(&chunk);
            // One clock read per chunk for the rows' processing time (`ts_ms`).
            let chunk_time_us = now_us();
            // A full producer queue stops the row loop; the row is offered again after a pause.
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
                        held.send(producer)?;
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
                        tokio::time::sleep(Duration::from_millis(5)).await;
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

/// A snapshot row encoded but not yet produced: each copier holds its latest row back until
/// the next, so that the snapshot's very last row can be marked `last` before it goes.
#[derive(Debug, Default)]
struct HeldRow {
    held: bool,
    topic: String,
    partition: Option<i32>,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    /// Where its value holds the snapshot marker (none in upsert mode).
    marker_at: Option<usize>,
}

impl HeldRow {
    /// Holds the row encoded in `key` and `value` back (swapping buffers: nothing is copied).
    fn hold(
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

    /// Produces the row held, if any ([`PipelineError::QueueFull`] when the producer cannot
    /// take it yet: it stays held).
    fn send(&mut self, producer: &Producer) -> Result<(), PipelineError> {
        if self.held {
            producer.send_to(
                &self.topic,
                self.partition,
                self.key.as_deref(),
                Some(&self.value),
                SNAPSHOT_TICKET,
            )?;
            self.held = false;
        }
        Ok(())
    }

    /// Marks the row held the snapshot's last.
    fn mark_last(&mut self) {
        if let Some(at) = self.marker_at.filter(|_| self.held) {
            sluice_avro::mark_snapshot_last(&mut self.value, at);
        }
    }
}

/// A pgoutput tuple as an encoder row. An unchanged TOASTed value (`u`) is taken from `old`
/// where that holds it (all of the row with REPLICA IDENTITY FULL, the key columns of an
/// old key tuple); otherwise it stays unchanged, and the encoder marks it (placeholder or
/// null, and `unchanged_toast`).
struct TupleRow<'a> {
    tuple: &'a Tuple,
    old: Option<&'a Tuple>,
}

impl<'a> TupleRow<'a> {
    fn of(tuple: &'a Tuple) -> Self {
        TupleRow { tuple, old: None }
    }
}

fn raw_of<'a>(value: ColumnValue<'a>) -> Raw<'a> {
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

/// Per-transaction context of the stream.
struct Current {
    ticket: u64,
    xid: u32,
    commit_time_us: i64,
    commit_lsn: Lsn,
    /// With transaction metadata on.
    order: Option<TransactionOrder>,
}

/// How many changes one turn of the stream loop handles from what is already read, before it
/// looks at shutdown, timers and acknowledgements again.
const INTAKE_BATCH: usize = 1024;

/// How many changes pass between reads of whatever the socket holds, within a batch.
const READ_AHEAD_EVERY: usize = 64;

#[allow(clippy::too_many_arguments)]
async fn stream_changes(
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
struct StreamState<'a> {
    settings: &'a Settings,
    sql: &'a Client,
    messages: Option<&'a MessagesOut>,
    transactions: Option<&'a TransactionsOut>,
    registry: &'a mut Registry,
    outs: &'a mut HashMap<u32, TableOut>,
    producer: &'a Producer,
    deliveries: &'a mut Deliveries,
    tracker: AckTracker,
    /// Relations the publication sends that are outside the selection: their changes are
    /// skipped.
    skipped: HashSet<u32>,
    /// The transaction being received.
    current: Option<Current>,
    key: Vec<u8>,
    value: Vec<u8>,
    scratch: Scratch,
    /// When the batch being handled was taken, in microseconds since 1970.
    now_us: i64,
}

impl StreamState<'_> {
    /// Produces the record encoded in `key` and `value`.
    async fn send_encoded(
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
    async fn on_change(
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
const RETENTION_CHECK: Duration = Duration::from_secs(60);

/// The next tick of an optional interval; never, without one.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A non-transactional logical decoding message: WAL in this database that the walsender
/// decodes, so its keepalives (and with them the confirmed position) move on.
async fn emit_heartbeat(sql: &Client) {
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
async fn check_retention(sql: &Client, settings: &Settings) {
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

fn acknowledge(
    tracker: &mut AckTracker,
    changes: &mut ChangeStream,
    delivery: Delivery,
) -> Result<(), PipelineError> {
    if let Err(err) = delivery.result {
        metrics::global().produce_errors.fetch_add(1, Relaxed);
        return Err(PipelineError::Delivery(err));
    }
    if delivery.ticket != SNAPSHOT_TICKET
        && delivery.ticket != STATE_TICKET
        && let Some(confirmed) = tracker.acknowledged(delivery.ticket)
    {
        confirm(changes, Lsn(confirmed));
    }
    metrics::global()
        .in_flight
        .store(tracker.in_flight(), Relaxed);
    Ok(())
}

/// Confirms `lsn` to the server (with the next status update) and reports it.
fn confirm(changes: &mut ChangeStream, lsn: Lsn) {
    let stream = changes.stream();
    stream.confirm(lsn);
    let metrics = metrics::global();
    metrics.confirmed_lsn.store(stream.flushed().0, Relaxed);
    metrics.received_lsn.store(stream.received().0, Relaxed);
}

/// Waits for the deliveries of everything produced, up to the drain timeout, confirming as
/// they come.
async fn drain(
    settings: &Settings,
    tracker: &mut AckTracker,
    changes: &mut ChangeStream,
    deliveries: &mut Deliveries,
) -> Result<(), PipelineError> {
    let deadline = tokio::time::Instant::now() + settings.drain_timeout;
    while tracker.in_flight() > 0 {
        match tokio::time::timeout_at(deadline, deliveries.recv()).await {
            Ok(Some(delivery)) => acknowledge(tracker, changes, delivery)?,
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(
                    in_flight = tracker.in_flight(),
                    "drain timeout: unacknowledged events will be sent again after restart"
                );
                break;
            }
        }
    }
    Ok(())
}

/// What a Relation message means for the table it describes: nothing when its name and shape
/// are those already captured; otherwise the table is captured from here on under its name
/// and shape (a table that joined the publication, a shape change, a rename), or, when it is
/// outside the selection, its changes are skipped from here on.
#[allow(clippy::too_many_arguments)]
async fn on_relation(
    sql: &Client,
    registry: &mut Registry,
    outs: &mut HashMap<u32, TableOut>,
    skipped: &mut HashSet<u32>,
    relation: &Relation,
    settings: &Settings,
    producer: &Producer,
    changes: &mut ChangeStream,
) -> Result<(), PipelineError> {
    let oid = relation.relation_id();
    let table = format!("{}.{}", relation.namespace(), relation.name());
    if !settings
        .tables
        .selects(relation.namespace(), relation.name())
    {
        // The publication covers more than the selection (FOR ALL TABLES, FOR TABLES IN
        // SCHEMA, a table excluded after it was published): its changes are skipped, and the
        // slot still moves past them.
        if outs.remove(&oid).is_some() {
            tracing::warn!(%table, "a captured table is no longer selected (renamed out of tables.include, or excluded): its changes are skipped from here on");
        } else if !skipped.contains(&oid) {
            tracing::debug!(%table, "the publication covers a table outside the selection: its changes are skipped");
        }
        skipped.insert(oid);
        return Ok(());
    }
    skipped.remove(&oid);
    let shape: Shape = relation
        .columns()
        .iter()
        .map(|c| (c.name().to_owned(), c.type_oid(), c.type_modifier()))
        .collect();
    if outs
        .get(&oid)
        .is_some_and(|out| out.shape == shape && out.collection == table)
    {
        return Ok(());
    }
    let key_columns = key_columns(sql, relation).await?;
    let mut spec = TableSpec {
        schema: relation.namespace().to_owned(),
        name: relation.name().to_owned(),
        columns: relation
            .columns()
            .iter()
            .map(|c| {
                let is_key = key_columns.iter().any(|k| k == c.name());
                ColumnSpec {
                    name: c.name().to_owned(),
                    type_oid: c.type_oid(),
                    type_modifier: c.type_modifier(),
                    nullable: !is_key,
                    is_key,
                    type_info: Default::default(),
                    default: None,
                }
            })
            .collect(),
    };
    if key_columns.is_empty()
        && !(settings.tables.allow_keyless && relation.replica_identity() == ReplicaIdentity::Full)
    {
        return Err(catalog::CatalogError::NoKey(table).into());
    }
    catalog::resolve_defaults(sql, oid, &mut spec.columns).await?;
    catalog::resolve_types(sql, &mut spec.columns).await?;
    let topic = naming::table_topic(&settings.topic_prefix, &spec.schema, &spec.name);
    let before = outs
        .get(&oid)
        .map(|out| (out.shape.clone(), out.topic.clone(), out.partitions));
    let partitions = match &before {
        Some((_, old, partitions)) if *old == topic => *partitions,
        // A table added to the publication while sluice runs, or renamed: its topic may not
        // exist yet.
        _ => producer
            .ensure_topics(std::slice::from_ref(&topic))
            .await?
            .first()
            .copied()
            .unwrap_or(settings.kafka.partitions),
    };
    let out = match table_out(
        registry,
        (topic, partitions),
        &spec,
        shape.clone(),
        settings,
        Some(changes),
    )
    .await
    {
        Err(PipelineError::Registry(err @ RegistryError::Incompatible { .. })) => {
            let changed =
                before.map_or_else(String::new, |(before, _, _)| shape_changes(&before, &shape));
            return Err(PipelineError::Setup(format!(
                "table {table}: the new shape ({changed}) was refused: {err}"
            )));
        }
        other => other?,
    };
    if settings.binary {
        let undecodable = binary_undecodable(sql, std::iter::once(&out)).await?;
        if !undecodable.is_empty() {
            return Err(PipelineError::BinaryUndecodable(undecodable.join(", ")));
        }
    }
    match before {
        None => {
            tracing::info!(%table, topic = %out.topic, "a table joined the publication or the selection; capturing it from here on");
        }
        Some((_, old_topic, _)) if old_topic != out.topic => {
            tracing::warn!(%table, from = %old_topic, to = %out.topic, "a captured table was renamed; its events go to the topic of its new name from here on");
        }
        Some(_) => {
            tracing::info!(%table, "table shape changed; new schema versions registered");
        }
    }
    outs.insert(oid, out);
    Ok(())
}

/// The names of the key columns of a table as `relation` describes it. pgoutput flags the
/// replica identity's columns, which under `REPLICA IDENTITY FULL` are all of them: the key
/// of such a table is its primary key, from the catalog (none for a keyless table).
async fn key_columns(sql: &Client, relation: &Relation) -> Result<Vec<String>, PipelineError> {
    if relation.replica_identity() == ReplicaIdentity::Full {
        return Ok(catalog::primary_key_columns(sql, relation.relation_id()).await?);
    }
    Ok(relation
        .columns()
        .iter()
        .filter(|c| c.is_key())
        .map(|c| c.name().to_owned())
        .collect())
}

/// The database's money fraction digits (its `lc_monetary`'s), the scale of money values;
/// and whether it prints money as sluice prints money inside composites and ranges from
/// their binary form (the C locale's `-$1,234,567.89`).
async fn money_format(sql: &Client) -> Result<(u32, bool), PipelineError> {
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
async fn has_interval_infinities(sql: &Client) -> Result<bool, PipelineError> {
    let version: i32 = sql
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(|e| pg("reading server_version_num", &e))?
        .get(0);
    Ok(version >= 170_000)
}

/// The columns of `outs` whose binary form sluice cannot decode, as `schema.table.column
/// (type): why`: pgoutput's binary mode sends a column in binary whenever its type has a
/// send function, so such a column is carried in text mode.
async fn binary_undecodable(
    sql: &Client,
    outs: impl Iterator<Item = &TableOut>,
) -> Result<Vec<String>, PipelineError> {
    let mut undecodable = Vec::new();
    for out in outs {
        for (column, why) in out.codec.binary_unsupported() {
            let declared = out.shape.iter().find(|(name, ..)| name == column);
            let type_name: String = match declared {
                Some((_, oid, modifier)) => sql
                    .query_one("SELECT format_type($1, NULLIF($2, -1))", &[oid, modifier])
                    .await
                    .map_err(|e| pg("naming a column's type", &e))?
                    .get(0),
                None => String::new(),
            };
            undecodable.push(format!("{}.{column} ({type_name}): {why}", out.collection));
        }
    }
    Ok(undecodable)
}

/// The columns that differ between two shapes of a table, for an error message.
fn shape_changes(before: &Shape, after: &Shape) -> String {
    let find = |shape: &Shape, name: &str| shape.iter().find(|(n, _, _)| n == name).cloned();
    let mut changes = Vec::new();
    for (name, oid, modifier) in after {
        match find(before, name) {
            None => changes.push(format!("column {name} added")),
            Some((_, old_oid, old_modifier)) if (old_oid, old_modifier) != (*oid, *modifier) => {
                changes.push(format!("column {name} changed type"));
            }
            Some(_) => {}
        }
    }
    for (name, _, _) in before {
        if find(after, name).is_none() {
            changes.push(format!("column {name} dropped"));
        }
    }
    changes.join(", ")
}

/// Where one change's events go, and the buffers they are encoded into.
struct Emitter<'a> {
    producer: &'a Producer,
    deliveries: &'a mut Deliveries,
    tracker: &'a mut AckTracker,
    key: &'a mut Vec<u8>,
    value: &'a mut Vec<u8>,
    scratch: &'a mut Scratch,
    /// The events' processing time (`ts_ms`), in microseconds since 1970.
    now_us: i64,
    /// With transaction metadata on: its topic, and where the transaction stands.
    transaction: Option<(&'a TransactionsOut, &'a mut TransactionOrder)>,
}

/// What every event of one row change shares.
struct EventContext<'a> {
    out: &'a TableOut,
    source: &'a Source<'a>,
    ticket: u64,
    tombstones: bool,
}

impl Emitter<'_> {
    async fn create(
        &mut self,
        event: &EventContext<'_>,
        new: TupleRow<'_>,
        changes: &mut ChangeStream,
    ) -> Result<(), PipelineError> {
        self.emit(event, Op::Create, None, Some(new), false, changes)
            .await
    }

    /// A delete, followed by a tombstone where configured.
    async fn delete(
        &mut self,
        event: &EventContext<'_>,
        old: &Tuple,
        changes: &mut ChangeStream,
    ) -> Result<(), PipelineError> {
        self.emit(
            event,
            Op::Delete,
            Some(old),
            None,
            event.tombstones,
            changes,
        )
        .await
    }

    /// Encodes one event (and its tombstone, when asked) and produces it; its key is the
    /// new row's, or the old row's when there is none.
    async fn emit(
        &mut self,
        event: &EventContext<'_>,
        op: Op,
        before: Option<&Tuple>,
        after: Option<TupleRow<'_>>,
        tombstone: bool,
        changes: &mut ChangeStream,
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
                    send_waiting(
                        self.producer,
                        (&tx.topic, None),
                        Some(self.key),
                        Some(self.value),
                        event.ticket,
                        self.deliveries,
                        self.tracker,
                        changes,
                    )
                    .await?;
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
        send_waiting(
            self.producer,
            out.target(),
            (!keyless).then_some(key),
            has_value.then_some(value),
            ticket,
            self.deliveries,
            self.tracker,
            changes,
        )
        .await?;
        // In upsert mode the delete itself was the tombstone; a keyless table has no key to
        // forget.
        if tombstone && has_value && !keyless {
            out.metrics.tombstones.fetch_add(1, Relaxed);
            send_waiting(
                self.producer,
                (&out.topic, None),
                Some(key),
                None,
                ticket,
                self.deliveries,
                self.tracker,
                changes,
            )
            .await?;
        }
        Ok(())
    }
}

/// Produces the events of one row change.
async fn produce_change(
    settings: &Settings,
    message: &LogicalMessage,
    outs: &HashMap<u32, TableOut>,
    source: &Source<'_>,
    emitter: &mut Emitter<'_>,
    ticket: u64,
    changes: &mut ChangeStream,
) -> Result<(), PipelineError> {
    let relation = match message {
        LogicalMessage::Insert(m) => m.relation_id(),
        LogicalMessage::Update(m) => m.relation_id(),
        LogicalMessage::Delete(m) => m.relation_id(),
        LogicalMessage::Truncate(m) => {
            return produce_truncate(
                settings,
                m.relation_ids(),
                outs,
                source,
                emitter,
                ticket,
                changes,
            )
            .await;
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
        tombstones: settings.tombstones,
    };
    match message {
        LogicalMessage::Insert(m) => {
            emitter
                .create(&event, TupleRow::of(m.new_tuple()), changes)
                .await
        }
        LogicalMessage::Update(m) => {
            let new = m.new_tuple();
            match m.old_tuple() {
                // A primary-key change: a delete of the old key, then a create of the new.
                Some(kind) if key_changed(out, kind, new) => {
                    emitter.delete(&event, kind.tuple(), changes).await?;
                    // Unchanged TOASTed values of the new row are filled in from the old one
                    // where it has them (see `TupleRow`).
                    let after = TupleRow {
                        tuple: new,
                        old: Some(kind.tuple()),
                    };
                    emitter.create(&event, after, changes).await
                }
                old => {
                    let before = old.map(OldTuple::tuple);
                    // Unchanged TOASTed values are filled in from the old row (all of it with
                    // REPLICA IDENTITY FULL, the key with a `K` tuple) where it has them.
                    let after = TupleRow {
                        tuple: new,
                        old: before,
                    };
                    emitter
                        .emit(&event, Op::Update, before, Some(after), false, changes)
                        .await
                }
            }
        }
        LogicalMessage::Delete(m) => emitter.delete(&event, m.old_tuple().tuple(), changes).await,
        _ => Ok(()),
    }
}

/// A TRUNCATE: one event (op `t`, no key, no rows) on each truncated table's topic.
async fn produce_truncate(
    settings: &Settings,
    relations: &[u32],
    outs: &HashMap<u32, TableOut>,
    source: &Source<'_>,
    emitter: &mut Emitter<'_>,
    ticket: u64,
    changes: &mut ChangeStream,
) -> Result<(), PipelineError> {
    // Upsert mode has no event for it: there is no row to tombstone.
    if !settings.truncate || settings.upsert {
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
            send_waiting(
                emitter.producer,
                (&out.topic, Some(partition)),
                None,
                Some(emitter.value.as_slice()),
                ticket,
                emitter.deliveries,
                emitter.tracker,
                changes,
            )
            .await?;
        }
    }
    Ok(())
}

/// Whether an UPDATE changed the key. pgoutput sends the old key (`K`) when a key column
/// changed, but also when the key is stored out of line (TOASTed) and unchanged; with REPLICA
/// IDENTITY FULL it always sends the old row (`O`). So the key columns are compared either
/// way; a new key value the server did not resend (unchanged TOAST) is unchanged.
fn key_changed(out: &TableOut, old: &OldTuple, new: &Tuple) -> bool {
    let old = old.tuple();
    out.codec.key_columns().iter().any(|&i| {
        let new = new.get(i);
        !matches!(new, Some(ColumnValue::UnchangedToast)) && old.get(i) != new
    })
}

/// Produces to `topic` (to the key's partition, or to the one given), handling deliveries while
/// the producer's queue is full.
#[allow(clippy::too_many_arguments)]
async fn send_waiting(
    producer: &Producer,
    (topic, partition): (&str, Option<i32>),
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    ticket: u64,
    deliveries: &mut Deliveries,
    tracker: &mut AckTracker,
    changes: &mut ChangeStream,
) -> Result<(), PipelineError> {
    // Counted before it is sent: its delivery may be handled in the loop below.
    tracker.sent(ticket);
    loop {
        match producer.send_to(topic, partition, key, payload, ticket) {
            Ok(()) => return Ok(()),
            // The broker is behind or away: take deliveries as they come, and keep the
            // replication stream alive meanwhile.
            Err(SendError::QueueFull) => {
                metrics::global().produce_retries.fetch_add(1, Relaxed);
                tokio::select! {
                    delivery = deliveries.recv() => {
                        if let Some(delivery) = delivery {
                            acknowledge(tracker, changes, delivery)?;
                        }
                    }
                    () = tokio::time::sleep(KEEP_ALIVE_WHILE_WAITING) => keep_alive(changes).await?,
                }
            }
            Err(err) => return Err(err.into()),
        }
    }
}

impl Settings {
    /// The pipeline's settings from a loaded configuration.
    pub fn from_config(config: &crate::config::Config) -> Self {
        let pg = &config.postgres;
        let mut conninfo = format!(
            "host={} port={} dbname={} user={} application_name=sluice connect_timeout={} options={}",
            conninfo_value(&pg.host),
            pg.port,
            conninfo_value(&pg.database),
            conninfo_value(&pg.user),
            pg.connect_timeout.as_secs().max(1),
            conninfo_value(&sluice_postgres::session_options()),
        );
        if let Some(password) = &pg.password {
            conninfo.push_str(&format!(" password={}", conninfo_value(password.expose())));
        }
        let options: Vec<String> = sluice_postgres::SESSION_SETTINGS
            .iter()
            .map(|(name, value)| format!("-c {name}={value}"))
            .collect();
        conninfo.push_str(&format!(" options={}", conninfo_value(&options.join(" "))));
        // tokio-postgres knows disable, prefer and require; verification is the connector's.
        conninfo.push_str(match pg.sslmode {
            SslMode::Disable => " sslmode=disable",
            SslMode::Prefer => " sslmode=prefer",
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => " sslmode=require",
        });
        let kafka = KafkaConfig {
            bootstrap_servers: config.kafka.bootstrap_servers.clone(),
            compression: config.kafka.compression.as_str().to_owned(),
            partitions: config.kafka.partitions,
            replication_factor: config.kafka.replication_factor,
            properties: config
                .kafka
                .producer
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        };
        Settings {
            postgres: pg.connect_config(),
            postgres_conninfo: conninfo.into(),
            slot: config.replication.slot.clone(),
            publication: config.replication.publication.clone(),
            create_publication: config.replication.create_publication,
            binary: config.replication.binary,
            streamed_memory_bytes: config.replication.streamed_memory_bytes(),
            status_interval: config.replication.status_interval,
            tables: config.tables.clone(),
            snapshot: config.snapshot.mode == crate::config::SnapshotMode::Initial,
            snapshot_parallelism: config.snapshot.parallelism,
            snapshot_chunk_rows: config.snapshot.chunk_rows,
            snapshot_progress_interval: config.snapshot.progress_interval,
            type_options: TypeOptions {
                numeric: match config.events.numeric {
                    crate::config::NumericHandling::Decimal => NumericMode::Decimal,
                    crate::config::NumericHandling::String => NumericMode::String,
                },
                hstore: match config.events.hstore {
                    crate::config::HstoreHandling::Json => HstoreMode::Json,
                    crate::config::HstoreHandling::Map => HstoreMode::Map,
                },
                time_precision: match config.events.time_precision {
                    crate::config::TimePrecisionHandling::Adaptive => TimePrecision::Adaptive,
                    crate::config::TimePrecisionHandling::Microseconds => {
                        TimePrecision::Microseconds
                    }
                },
                ..TypeOptions::default()
            },
            kafka,
            topic_prefix: config.kafka.topic_prefix.clone(),
            registry: config.registry.client_config(Duration::from_secs(10)),
            tombstones: config.events.tombstones,
            upsert: config.events.mode == crate::config::EventsMode::Upsert,
            truncate: config.events.truncate,
            compatibility: config
                .registry
                .compatibility
                .map(|level| level.as_str().to_owned()),
            message_prefixes: config.events.message_prefixes.clone(),
            transactions: config.events.transactions,
            unchanged_placeholder: config.events.unchanged_placeholder.clone(),
            drain_timeout: config.shutdown.drain_timeout,
            metrics_bind: config.metrics.enabled.then_some(config.metrics.bind),
            heartbeat_interval: config.replication.heartbeat_interval,
            retained_wal_warn_bytes: config
                .replication
                .retained_wal_warn_mib
                .saturating_mul(1024 * 1024),
        }
    }
}

/// A libpq connection-string value, quoted.
fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod shape_tests {
    use super::shape_changes;

    #[test]
    fn shape_changes_name_added_dropped_and_retyped_columns() {
        let col = |name: &str, oid: u32| (name.to_owned(), oid, -1);
        let before = vec![col("id", 23), col("v", 25), col("gone", 25)];
        let after = vec![col("id", 23), col("v", 23), col("new", 16)];
        assert_eq!(
            shape_changes(&before, &after),
            "column v changed type, column new added, column gone dropped"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_split_by_their_row_estimate() {
        assert_eq!(piece_count(-1.0, 1000), None, "never analyzed: one piece");
        assert_eq!(piece_count(0.0, 1000), None);
        assert_eq!(piece_count(1000.0, 1000), None);
        assert_eq!(piece_count(1001.0, 1000), Some(2));
        assert_eq!(piece_count(10_000_000.0, 100_000), Some(100));
        assert_eq!(piece_count(f64::NAN, 1000), None);
    }
}
