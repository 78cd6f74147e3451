//! Where events go: each captured table's topic and registered schemas, and sluice's own
//! topics beside them (messages, transaction metadata).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use sluice_avro::{
    MessageCodec, Op, Registry, RegistryError, Row, Scratch, Source, TableCodec, TableSpec,
    TransactionCodec, TypeOptions,
};
use sluice_kafka::Producer;

use crate::catalog::{CapturedTable, Shape};
use crate::config::Config;
use crate::error::PipelineError;
use crate::metrics::{self, TableMetrics};
use crate::naming;
use crate::retry::Backoff;
use std::sync::atomic::Ordering::Relaxed;

/// The messages topic's encoder and registered schema ids.
#[derive(Debug)]
/// A topic of sluice's own beside the tables' (messages, transactions): its codec and ids.
pub(crate) struct SideTopic<C> {
    pub(crate) topic: String,
    pub(crate) codec: C,
    pub(crate) key_id: u32,
    pub(crate) value_id: u32,
}

pub(crate) type MessagesOut = SideTopic<MessageCodec>;

pub(crate) type TransactionsOut = SideTopic<TransactionCodec>;

/// Creates the topic if needed and registers its key and value schemas.
pub(crate) async fn side_topic<C>(
    registry: &Registry,
    producer: &Producer,
    topic: String,
    codec: C,
    key_schema: &str,
    value_schema: &str,
) -> Result<SideTopic<C>, PipelineError> {
    producer.ensure_topics(std::slice::from_ref(&topic)).await?;
    let key_id = register(
        registry,
        &naming::key_subject(&topic),
        key_schema,
        Patience::Startup,
    )
    .await?;
    let value_id = register(
        registry,
        &naming::value_subject(&topic),
        value_schema,
        Patience::Startup,
    )
    .await?;
    Ok(SideTopic {
        topic,
        codec,
        key_id,
        value_id,
    })
}

/// Where the events of the transaction being produced stand, for transaction metadata.
pub(crate) struct TransactionOrder {
    /// `<xid>:<commit LSN>`.
    pub(crate) id: String,
    pub(crate) commit_time_ms: i64,
    pub(crate) total: u64,
    /// Events per table (`schema.table`), in the order the tables first appeared.
    pub(crate) per_table: Vec<(String, u64)>,
}

impl TransactionOrder {
    /// Counts one more event of `collection`; its total and per-table order, from 1.
    pub(crate) fn next(&mut self, collection: &str) -> (u64, u64) {
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
pub(crate) struct TableOut {
    pub(crate) topic: String,
    pub(crate) codec: TableCodec,
    pub(crate) key_id: u32,
    pub(crate) value_id: u32,
    pub(crate) upsert: bool,
    pub(crate) metrics: Arc<TableMetrics>,
    /// `schema.table`, as transaction metadata names it.
    pub(crate) collection: String,
    /// How many columns every tuple of the table carries.
    pub(crate) columns: usize,
    /// The topic's partition count, for the events sent to every partition (TRUNCATE).
    pub(crate) partitions: i32,
    /// (name, type, modifier) of each column, to notice a changed Relation.
    pub(crate) shape: Shape,
}

impl TableOut {
    /// A table captured without a key (`tables.allow_keyless`): its events have no Kafka key.
    pub(crate) fn keyless(&self) -> bool {
        self.codec.key_columns().is_empty()
    }

    /// Where the table's events go: its topic, and for a keyless table its first partition,
    /// so that its events keep their order (a keyed event goes to its key's partition).
    pub(crate) fn target(&self) -> (&str, Option<i32>) {
        (&self.topic, self.keyless().then_some(0))
    }

    /// Appends an event's value: the Debezium envelope, or in upsert mode the bare row.
    /// Returns false when the event has no value: an upsert-mode delete is only a tombstone.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn encode_value<R: Row>(
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

/// Where the captured tables' events, and the optional message and transaction records, go.
pub(crate) struct Outputs {
    pub(crate) outs: HashMap<u32, TableOut>,
    pub(crate) messages: Option<MessagesOut>,
    pub(crate) transactions: Option<TransactionsOut>,
}

/// How many tables' schemas startup registers at once.
const REGISTRATIONS_AT_ONCE: usize = 8;

/// Makes sure every topic exists and every schema is registered.
pub(crate) async fn prepare_outputs(
    registry: &Registry,
    producer: &Producer,
    config: &Config,
    type_options: &TypeOptions,
    tables: &[CapturedTable],
) -> Result<Outputs, PipelineError> {
    let prefix = &config.kafka.topic_prefix;
    let topics: Vec<String> = tables.iter().map(|t| topic_of(prefix, t)).collect();
    let partitions = producer.ensure_topics(&topics).await?;
    // Every table's schemas registered side by side: one at a time, a hundred tables took
    // seconds of round trips before the first change was read.
    let registrations: Vec<_> = tables
        .iter()
        .zip(topics)
        .zip(partitions)
        .map(|((table, topic), partitions)| {
            table_out_at_startup(registry, table, (topic, partitions), config, type_options)
        })
        .collect();
    let outs: HashMap<u32, TableOut> = futures_util::stream::iter(registrations)
        .buffer_unordered(REGISTRATIONS_AT_ONCE)
        .try_collect()
        .await?;
    let messages = if config.events.message_prefixes.is_empty() {
        None
    } else {
        let topic = naming::messages_topic(prefix);
        let codec = MessageCodec::new(&topic);
        let (key, value) = (
            codec.key_schema().to_owned(),
            codec.value_schema().to_owned(),
        );
        Some(side_topic(registry, producer, topic, codec, &key, &value).await?)
    };
    let transactions = if config.events.transactions {
        let topic = naming::transactions_topic(prefix);
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

/// A captured table's output at startup, under its oid; a shape the registry refuses names
/// the table.
async fn table_out_at_startup(
    registry: &Registry,
    table: &CapturedTable,
    topic: (String, i32),
    config: &Config,
    type_options: &TypeOptions,
) -> Result<(u32, TableOut), PipelineError> {
    let out = table_out(
        registry,
        topic,
        &table.spec,
        table.shape.clone(),
        config,
        type_options,
        Patience::Startup,
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
    Ok((table.oid, out))
}

/// Where a table's events go: its topic (of `partitions` partitions), and its schemas,
/// registered; values carried as `type_options` say.
pub(crate) async fn table_out(
    registry: &Registry,
    (topic, partitions): (String, i32),
    spec: &TableSpec,
    shape: Shape,
    config: &Config,
    type_options: &TypeOptions,
    patience: Patience,
) -> Result<TableOut, PipelineError> {
    let upsert = config.events.is_upsert();
    let collection = format!("{}.{}", spec.schema, spec.name);
    let codec = TableCodec::with_options(&topic, spec, type_options)
        .with_unchanged_placeholder(&config.events.unchanged_placeholder);
    let key_subject = naming::key_subject(&topic);
    let key_id = register(registry, &key_subject, codec.key_schema(), patience).await?;
    let value_subject = naming::value_subject(&topic);
    let value_schema = if upsert {
        codec.row_schema()
    } else {
        codec.value_schema()
    };
    let value_id = register(registry, &value_subject, value_schema, patience).await?;
    if let Some(level) = config.registry.compatibility {
        for subject in [&key_subject, &value_subject] {
            registry.set_compatibility(subject, level.as_str()).await?;
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
pub(crate) const STARTUP_REGISTRY_WAIT: Duration = Duration::from_secs(20);

/// How long a registration waits out an unavailable registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Patience {
    /// At startup, before any stream is open: up to [`STARTUP_REGISTRY_WAIT`], trying again
    /// as the retry policy says.
    Startup,
    /// While streaming: one attempt; the stream loop tries again later, keeping the
    /// replication connection alive meanwhile.
    Once,
}

/// Registers a schema: its id. Nothing is produced, and so nothing confirmed, until the
/// registry answered.
pub(crate) async fn register(
    registry: &Registry,
    subject: &str,
    schema: &str,
    patience: Patience,
) -> Result<u32, PipelineError> {
    let mut backoff = Backoff::default();
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
            Err(err)
                if err.is_transient()
                    && patience == Patience::Startup
                    && started.elapsed() < STARTUP_REGISTRY_WAIT =>
            {
                let delay = backoff.next();
                tracing::warn!(error = %err, retry_in = ?delay, "registry unavailable");
                tokio::time::sleep(delay).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// The topic of a captured table, under the topic prefix `prefix`.
pub fn topic_of(prefix: &str, table: &CapturedTable) -> String {
    naming::table_topic(prefix, &table.spec.schema, &table.spec.name)
}
