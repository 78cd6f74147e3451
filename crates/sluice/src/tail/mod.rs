//! `sluice tail`: prints a captured table's events from Kafka as JSON, one document a line,
//! decoding keys and values through the schema registry by the id in each message.
//!
//! It reads with a plain partition assignment and no consumer group, so it commits nothing and
//! never disturbs other consumers of the topic.

mod json;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::ResolvedSchema;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use sluice_avro::{Registry, confluent_frame};
use sluice_pipeline::config::{Config, TablePattern};
use sluice_pipeline::naming;

use self::json::{Json, event_document, to_json};

/// Bound on reaching the broker and the registry at startup: a wrong address fails in seconds
/// rather than hanging.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// librdkafka properties of `[kafka.producer]` that say how to reach the cluster; they apply to
/// the consumer too. The rest (batching, retries) are producer-only and would only draw
/// librdkafka warnings.
const CONNECTION_PROPERTY_PREFIXES: [&str; 6] = [
    "security.",
    "ssl.",
    "sasl.",
    "socket.",
    "broker.address.",
    "client.dns.",
];

/// Arguments of `sluice tail`.
#[derive(Debug, clap::Args)]
pub(crate) struct TailArgs {
    /// The configuration file `sluice run` uses; topic, brokers and registry are taken from it.
    #[arg(long, short, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// The table, as schema.table (e.g. public.orders).
    table: String,
    /// Start at the oldest event still in the topic instead of at its end.
    #[arg(long)]
    from_beginning: bool,
    /// Stop after this many events.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Stop when no event has arrived for this many seconds.
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
}

/// Runs `sluice tail`: 0 when it stopped as asked, 2 for a bad configuration, 1 otherwise.
pub(crate) fn main(args: TailArgs) -> ExitCode {
    let (config, runtime) = match crate::configured_runtime(args.config.as_deref(), 1) {
        Ok(both) => both,
        Err(code) => return code,
    };
    match runtime.block_on(tail(&config, args.config.as_deref(), &args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn tail(config: &Config, file: Option<&Path>, args: &TailArgs) -> Result<(), String> {
    let file = file.map_or_else(
        || "the configuration".to_owned(),
        |path| path.display().to_string(),
    );
    let topic = topic_of(config, &args.table, &file)?;
    let consumer = consumer(config)?;
    // Blocking librdkafka calls; the runtime has nothing else to do yet.
    let partitions =
        tokio::task::block_in_place(|| partitions_of(&consumer, config, &topic, &args.table))?;
    let (registry, _) = crate::registry::connect(&config.registry.client_config(CONNECT_TIMEOUT))
        .await
        .map_err(|unreachable| {
            format!(
                "cannot use the schema registry at {} (registry.url): {}; {}",
                config.registry.url, unreachable.detail, unreachable.fix
            )
        })?;
    let mut schemas = Schemas {
        registry,
        by_id: HashMap::new(),
    };

    let start = if args.from_beginning {
        Offset::Beginning
    } else {
        Offset::End
    };
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        assignment
            .add_partition_offset(&topic, partition, start)
            .map_err(|err| format!("assigning {topic} partition {partition}: {err}"))?;
    }
    consumer
        .assign(&assignment)
        .map_err(|err| format!("assigning the partitions of {topic}: {err}"))?;

    let idle = args.timeout.map(Duration::from_secs);
    let mut printed: u64 = 0;
    while args.count.is_none_or(|count| printed < count) {
        let received = match idle {
            Some(idle) => match tokio::time::timeout(idle, consumer.recv()).await {
                Ok(received) => received,
                Err(_) => break,
            },
            None => consumer.recv().await,
        };
        let message = match received {
            Ok(message) => message,
            Err(KafkaError::MessageConsumption(
                code @ (RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::TopicAuthorizationFailed),
            )) => return Err(format!("reading {topic}: {code}")),
            // The rest (a broker restarting, a connection dropped) librdkafka retries itself.
            Err(err) => {
                tracing::warn!(topic = %topic, error = %err, "consuming");
                continue;
            }
        };
        let document = document(&mut schemas, &message).await?;
        let mut line = serde_json::to_string(&document)
            .map_err(|err| format!("writing an event as JSON: {err}"))?;
        line.push('\n');
        match std::io::stdout().lock().write_all(line.as_bytes()) {
            Ok(()) => {}
            // The reader went away (`sluice tail … | head`): nothing left to do.
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(err) => return Err(format!("writing to stdout: {err}")),
        }
        printed += 1;
    }
    Ok(())
}

/// The topic of `table`, after checking that the configuration captures it.
fn topic_of(config: &Config, table: &str, file: &str) -> Result<String, String> {
    let Some((schema, name)) = table
        .split_once('.')
        .filter(|(s, t)| !s.is_empty() && !t.is_empty() && !t.contains('.'))
    else {
        return Err(format!(
            "table {table:?}: give it as schema.table, e.g. public.orders"
        ));
    };
    if !config.tables.selects(schema, name) {
        let list = |patterns: &[TablePattern]| {
            patterns
                .iter()
                .map(|p| format!("{:?}", p.to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let excluded = if config.tables.exclude.is_empty() {
            String::new()
        } else {
            format!(", tables.exclude = [{}]", list(&config.tables.exclude))
        };
        return Err(format!(
            "table {table} is not captured by {file} (tables.include = [{}]{excluded}): name a \
             captured table, or add {table} to tables.include and restart `sluice run`",
            list(&config.tables.include)
        ));
    }
    Ok(naming::table_topic(
        &config.kafka.topic_prefix,
        schema,
        name,
    ))
}

fn consumer(config: &Config) -> Result<StreamConsumer, String> {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.kafka.bootstrap_servers)
        .set("client.id", "sluice-tail")
        // librdkafka wants a group even for a plain assignment; nothing is committed to it.
        .set("group.id", "sluice-tail")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // A metadata request must not create the topic with the broker's defaults.
        .set("allow.auto.create.topics", "false");
    for (key, value) in config.kafka.producer.iter() {
        if CONNECTION_PROPERTY_PREFIXES
            .iter()
            .any(|prefix| key.starts_with(prefix))
        {
            client.set(key, value);
        }
    }
    client
        .create()
        .map_err(|err| format!("creating the Kafka consumer: {err}"))
}

/// The topic's partition ids, waiting briefly for a just-created topic to get its leaders.
fn partitions_of(
    consumer: &StreamConsumer,
    config: &Config,
    topic: &str,
    table: &str,
) -> Result<Vec<i32>, String> {
    let brokers = &config.kafka.bootstrap_servers;
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        let metadata = consumer
            .fetch_metadata(Some(topic), CONNECT_TIMEOUT)
            .map_err(|err| {
                format!(
                    "cannot reach Kafka at {brokers} (kafka.bootstrap_servers): {err}; is the \
                     broker running and the address right?"
                )
            })?;
        let found = metadata.topics().iter().find(|t| t.name() == topic);
        let error = found.and_then(|t| t.error()).map(RDKafkaErrorCode::from);
        match (found, error) {
            (None, _) | (_, Some(RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                return Err(format!(
                    "topic {topic} does not exist at {brokers}: `sluice run` creates it when it \
                     starts capturing {table}; start it with this configuration first (or check \
                     kafka.topic_prefix)"
                ));
            }
            (Some(found), None) if !found.partitions().is_empty() => {
                return Ok(found.partitions().iter().map(|p| p.id()).collect());
            }
            (_, error) if Instant::now() >= deadline => {
                let why =
                    error.map_or_else(|| "it has no partitions".to_owned(), |e| e.to_string());
                return Err(format!("topic {topic} at {brokers} is not readable: {why}"));
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The writer schemas of the messages read, by id: each fetched from the registry once.
struct Schemas {
    registry: Registry,
    by_id: HashMap<u32, Schema>,
}

impl Schemas {
    /// A key or value in the Confluent wire format as JSON, decoded with the schema whose id it
    /// carries; null when there is none (a tombstone's value).
    async fn decode(&mut self, framed: Option<&[u8]>) -> Result<Json, String> {
        let Some(framed) = framed.filter(|framed| !framed.is_empty()) else {
            return Ok(Json::Null);
        };
        let (id, mut body) = confluent_frame(framed).ok_or_else(|| {
            "not in the Confluent wire format (a zero byte, then the schema id)".to_owned()
        })?;
        let schema = match self.by_id.entry(id) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(new) => {
                let text = self
                    .registry
                    .schema_by_id(id)
                    .await
                    .map_err(|err| err.to_string())?;
                let parsed =
                    Schema::parse_str(&text).map_err(|err| format!("schema id {id}: {err}"))?;
                new.insert(parsed)
            }
        };
        let value = GenericDatumReader::builder(schema)
            .build()
            .and_then(|reader| reader.read_value(&mut body))
            .map_err(|err| format!("it does not decode with schema id {id}: {err}"))?;
        let resolved =
            ResolvedSchema::try_from(&*schema).map_err(|err| format!("schema id {id}: {err}"))?;
        to_json(&value, Some(schema), resolved.get_names())
    }
}

/// One message as the JSON document `sluice tail` prints.
async fn document(schemas: &mut Schemas, message: &BorrowedMessage<'_>) -> Result<Json, String> {
    let at = || {
        format!(
            "{} partition {} offset {}",
            message.topic(),
            message.partition(),
            message.offset()
        )
    };
    let key = schemas
        .decode(message.key())
        .await
        .map_err(|err| format!("decoding the key of {}: {err}", at()))?;
    let value = schemas
        .decode(message.payload())
        .await
        .map_err(|err| format!("decoding the value of {}: {err}", at()))?;
    Ok(event_document(
        message.topic(),
        message.partition(),
        message.offset(),
        key,
        value,
    ))
}
