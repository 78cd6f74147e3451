//! `sluice tail`: prints a captured table's events from Kafka as JSON, one document a line,
//! decoding keys and values through the schema registry by the id in each message.
//!
//! It reads with a plain partition assignment and no consumer group, so it commits nothing and
//! never disturbs other consumers of the topic.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::{NamesRef, ResolvedSchema};
use apache_avro::types::Value;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use sluice_avro::{Registry, confluent_frame};
use sluice_pipeline::config::{self, Config, TablePattern};
use sluice_pipeline::naming;

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
    let config = match config::load(args.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: configuration: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match crate::runtime(1) {
        Ok(runtime) => runtime,
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

/// Lays out an event: where it is, its key, then the envelope's parts. A tombstone has op,
/// before, after and source null; in upsert mode (no envelope) the whole value is `after`.
fn event_document(topic: &str, partition: i32, offset: i64, key: Json, value: Json) -> Json {
    let mut op = Json::Null;
    let mut before = Json::Null;
    let mut after = Json::Null;
    let mut source = Json::Null;
    let mut ts_ms = Json::Null;
    match value {
        Json::Object(fields)
            if fields.iter().any(|(name, _)| name == "op")
                && fields.iter().any(|(name, _)| name == "source") =>
        {
            for (name, field) in fields {
                match name.as_str() {
                    "op" => op = field,
                    "before" => before = field,
                    "after" => after = field,
                    "source" => source = field,
                    "ts_ms" => ts_ms = field,
                    _ => {}
                }
            }
        }
        Json::Null => {}
        row => after = row,
    }
    Json::Object(vec![
        ("topic".to_owned(), Json::String(topic.to_owned())),
        ("partition".to_owned(), Json::Number(partition.into())),
        ("offset".to_owned(), Json::Number(offset.into())),
        ("key".to_owned(), key),
        ("op".to_owned(), op),
        ("before".to_owned(), before),
        ("after".to_owned(), after),
        ("source".to_owned(), source),
        ("ts_ms".to_owned(), ts_ms),
    ])
}

/// JSON whose objects keep their fields in schema order (serde_json's own map sorts them,
/// which would scatter a row's columns).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Number(n) => n.serialize(serializer),
            Json::String(s) => serializer.serialize_str(s),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (name, value) in fields {
                    map.serialize_entry(name, value)?;
                }
                map.end()
            }
        }
    }
}

/// Debezium's record for a `numeric` without a fixed scale: `{scale, value}`.
const VARIABLE_SCALE_DECIMAL: &str = "io.debezium.data.VariableScaleDecimal";

/// An Avro value as JSON, following its writer schema where one is known: unions unwrapped,
/// records as objects in field order, decimals (and Debezium's variable-scale decimals) as
/// strings of the exact number, bytes as `\x`-prefixed hex (PostgreSQL's bytea form), dates as
/// `YYYY-MM-DD`, every other number as a JSON number.
fn to_json(value: &Value, schema: Option<&Schema>, names: &NamesRef<'_>) -> Result<Json, String> {
    let schema = match schema {
        Some(Schema::Ref { name }) => Some(
            *names
                .get(name)
                .ok_or_else(|| format!("the schema refers to the undefined type {name:?}"))?,
        ),
        other => other,
    };
    Ok(match (value, schema) {
        (Value::Union(index, inner), Some(Schema::Union(union))) => {
            let branch = usize::try_from(*index)
                .ok()
                .and_then(|i| union.variants().get(i));
            to_json(inner, branch, names)?
        }
        (Value::Union(_, inner), _) => to_json(inner, None, names)?,
        (Value::Record(fields), Some(Schema::Record(record)))
            if record.name.fullname(None) == VARIABLE_SCALE_DECIMAL =>
        {
            variable_scale_decimal(fields)?
        }
        (Value::Record(fields), record) => {
            let field_schema = |name: &str| match record {
                Some(Schema::Record(record)) => record
                    .lookup
                    .get(name)
                    .and_then(|&i| record.fields.get(i))
                    .map(|field| &field.schema),
                _ => None,
            };
            Json::Object(
                fields
                    .iter()
                    .map(|(name, field)| {
                        Ok((name.clone(), to_json(field, field_schema(name), names)?))
                    })
                    .collect::<Result<_, String>>()?,
            )
        }
        (Value::Decimal(decimal), Some(Schema::Decimal(decimal_schema))) => {
            let bytes = Vec::<u8>::try_from(decimal).map_err(|err| format!("a decimal: {err}"))?;
            let scale = i64::try_from(decimal_schema.scale)
                .map_err(|_| "a decimal scale beyond 2^63".to_owned())?;
            Json::String(decimal_string(&bytes, scale))
        }
        (Value::Decimal(_), _) => {
            return Err("a decimal value without a decimal schema to give its scale".to_owned());
        }
        (Value::Array(items), schema) => {
            let items_schema = match schema {
                Some(Schema::Array(array)) => Some(array.items.as_ref()),
                _ => None,
            };
            Json::Array(
                items
                    .iter()
                    .map(|item| to_json(item, items_schema, names))
                    .collect::<Result<_, String>>()?,
            )
        }
        (Value::Map(entries), schema) => {
            let values_schema = match schema {
                Some(Schema::Map(map)) => Some(map.types.as_ref()),
                _ => None,
            };
            // A map has no order of its own; sorted keys keep the output stable.
            let mut entries: Vec<(&String, &Value)> = entries.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Json::Object(
                entries
                    .into_iter()
                    .map(|(name, entry)| Ok((name.clone(), to_json(entry, values_schema, names)?)))
                    .collect::<Result<_, String>>()?,
            )
        }
        (scalar, _) => scalar_json(scalar),
    })
}

fn scalar_json(value: &Value) -> Json {
    let number = |n: i64| Json::Number(n.into());
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Date(days) => Json::String(iso_date(i64::from(*days))),
        Value::Int(n) | Value::TimeMillis(n) => number(i64::from(*n)),
        Value::Long(n)
        | Value::TimeMicros(n)
        | Value::TimestampMillis(n)
        | Value::TimestampMicros(n)
        | Value::TimestampNanos(n)
        | Value::LocalTimestampMillis(n)
        | Value::LocalTimestampMicros(n)
        | Value::LocalTimestampNanos(n) => number(*n),
        // Through its shortest text, so 0.1f32 prints as 0.1 and not as its f64 widening.
        Value::Float(f) => float(f.to_string().parse().unwrap_or(f64::NAN)),
        Value::Double(f) => float(*f),
        Value::Bytes(bytes) | Value::Fixed(_, bytes) => Json::String(hex(bytes)),
        Value::String(s) | Value::Enum(_, s) => Json::String(s.clone()),
        Value::Uuid(uuid) => Json::String(uuid.to_string()),
        Value::BigDecimal(decimal) => Json::String(decimal.to_string()),
        Value::Duration(duration) => Json::Object(vec![
            (
                "months".to_owned(),
                number(i64::from(u32::from(duration.months()))),
            ),
            (
                "days".to_owned(),
                number(i64::from(u32::from(duration.days()))),
            ),
            (
                "millis".to_owned(),
                number(i64::from(u32::from(duration.millis()))),
            ),
        ]),
        // Containers and decimals are handled by `to_json`.
        Value::Decimal(_)
        | Value::Union(..)
        | Value::Record(_)
        | Value::Array(_)
        | Value::Map(_) => Json::Null,
    }
}

/// JSON has no NaN or infinities; they are written as PostgreSQL spells them.
fn float(f: f64) -> Json {
    match serde_json::Number::from_f64(f) {
        Some(n) => Json::Number(n),
        None if f.is_nan() => Json::String("NaN".to_owned()),
        None if f > 0.0 => Json::String("Infinity".to_owned()),
        None => Json::String("-Infinity".to_owned()),
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + 2 * bytes.len());
    out.push_str("\\x");
    for byte in bytes {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

fn variable_scale_decimal(fields: &[(String, Value)]) -> Result<Json, String> {
    let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    match (field("scale"), field("value")) {
        (Some(Value::Int(scale)), Some(Value::Bytes(unscaled))) => {
            Ok(Json::String(decimal_string(unscaled, i64::from(*scale))))
        }
        _ => Err(format!(
            "a {VARIABLE_SCALE_DECIMAL} without an int scale and bytes value"
        )),
    }
}

/// The exact decimal `unscaled × 10^-scale`, `unscaled` being big-endian two's complement as
/// Avro's decimal stores it: "10.50" for 1050 at scale 2.
fn decimal_string(unscaled: &[u8], scale: i64) -> String {
    let negative = unscaled.first().is_some_and(|b| b & 0x80 != 0);
    let mut magnitude = unscaled.to_vec();
    if negative {
        // Two's complement negation: invert, then add one from the least significant byte.
        for byte in &mut magnitude {
            *byte = !*byte;
        }
        for byte in magnitude.iter_mut().rev() {
            let (sum, carry) = byte.overflowing_add(1);
            *byte = sum;
            if !carry {
                break;
            }
        }
    }
    // Long division by 10 over the base-256 digits, least significant decimal digit first.
    let mut digits = Vec::new();
    while magnitude.iter().any(|&b| b != 0) {
        let mut remainder: u16 = 0;
        for byte in &mut magnitude {
            let current = remainder * 256 + u16::from(*byte);
            // remainder < 10, so current < 2560 and the quotient fits a byte.
            *byte = u8::try_from(current / 10).unwrap_or(u8::MAX);
            remainder = current % 10;
        }
        digits.push(char::from(b'0' + u8::try_from(remainder).unwrap_or(0)));
    }
    if digits.is_empty() {
        digits.push('0');
    }
    digits.reverse();
    let mut text: String = digits.into_iter().collect();
    if scale < 0 {
        text.extend(std::iter::repeat_n(
            '0',
            usize::try_from(-scale).unwrap_or(0),
        ));
    } else if let Ok(scale) = usize::try_from(scale)
        && scale > 0
    {
        if text.len() <= scale {
            text = format!("{}{text}", "0".repeat(scale + 1 - text.len()));
        }
        text.insert(text.len() - scale, '.');
    }
    if negative && text.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        text.insert(0, '-');
    }
    text
}

/// The proleptic Gregorian date `days` after 1970-01-01, as `YYYY-MM-DD`.
fn iso_date(days: i64) -> String {
    let (year, month, day) = sluice_avro::civil_from_days(days);
    if year < 0 {
        format!("-{:04}-{month:02}-{day:02}", -year)
    } else {
        format!("{year:04}-{month:02}-{day:02}")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(decimal_string(&[0x04, 0x1a], 2), "10.50");
        assert_eq!(decimal_string(&[0x04, 0x1a], 0), "1050");
        assert_eq!(decimal_string(&[0x05], 3), "0.005");
        assert_eq!(decimal_string(&[0xfb], 3), "-0.005");
        assert_eq!(decimal_string(&[0x80], 0), "-128");
        assert_eq!(decimal_string(&[0xff, 0x7f], 1), "-12.9");
        assert_eq!(decimal_string(&[], 2), "0.00");
        assert_eq!(decimal_string(&[0x00], 0), "0");
        assert_eq!(decimal_string(&[0x0c], -2), "1200");
        // 2^64, beyond any machine integer.
        let big = [0x01, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(decimal_string(&big, 4), "1844674407370955.1616");
    }

    #[test]
    fn dates() {
        assert_eq!(iso_date(0), "1970-01-01");
        assert_eq!(iso_date(-1), "1969-12-31");
        assert_eq!(iso_date(19_723), "2024-01-01");
        assert_eq!(iso_date(19_782), "2024-02-29");
        assert_eq!(iso_date(-719_528), "0000-01-01");
        assert_eq!(iso_date(2_932_896), "9999-12-31");
    }

    #[test]
    fn values_follow_the_schema() {
        let schema = Schema::parse_str(
            r#"{"type": "record", "name": "Value", "namespace": "demo.public.t", "fields": [
                {"name": "id", "type": "long"},
                {"name": "amount", "type": ["null", {"type": "bytes", "logicalType": "decimal",
                                                     "precision": 10, "scale": 2}]},
                {"name": "any", "type": ["null", {"type": "record", "name": "VariableScaleDecimal",
                    "namespace": "io.debezium.data",
                    "fields": [{"name": "scale", "type": "int"}, {"name": "value", "type": "bytes"}]}]},
                {"name": "again", "type": ["null", "io.debezium.data.VariableScaleDecimal"]},
                {"name": "day", "type": {"type": "int", "logicalType": "date"}},
                {"name": "blob", "type": "bytes"},
                {"name": "ratio", "type": "float"},
                {"name": "tags", "type": {"type": "array", "items": "string"}}
            ]}"#,
        )
        .unwrap();
        let variable = |scale: i32, unscaled: Vec<u8>| {
            Value::Record(vec![
                ("scale".to_owned(), Value::Int(scale)),
                ("value".to_owned(), Value::Bytes(unscaled)),
            ])
        };
        let value = Value::Record(vec![
            ("id".to_owned(), Value::Long(9_007_199_254_740_993)),
            (
                "amount".to_owned(),
                Value::Union(1, Box::new(Value::Decimal(vec![0x04, 0x1a].into()))),
            ),
            (
                "any".to_owned(),
                Value::Union(1, Box::new(variable(3, vec![0x30, 0x39]))),
            ),
            (
                "again".to_owned(),
                Value::Union(1, Box::new(variable(0, vec![0xff]))),
            ),
            ("day".to_owned(), Value::Date(19_723)),
            ("blob".to_owned(), Value::Bytes(vec![0xde, 0xad])),
            ("ratio".to_owned(), Value::Float(0.1)),
            (
                "tags".to_owned(),
                Value::Array(vec![Value::String("a".to_owned())]),
            ),
        ]);
        let resolved = ResolvedSchema::try_from(&schema).unwrap();
        let json = to_json(&value, Some(&schema), resolved.get_names()).unwrap();
        assert_eq!(
            serde_json::to_string(&json).unwrap(),
            r#"{"id":9007199254740993,"amount":"10.50","any":"12.345","again":"-1","day":"2024-01-01","blob":"\\xdead","ratio":0.1,"tags":["a"]}"#
        );
    }

    #[test]
    fn documents() {
        let envelope = Json::Object(vec![
            ("before".to_owned(), Json::Null),
            (
                "after".to_owned(),
                Json::Object(vec![("id".to_owned(), Json::Number(1.into()))]),
            ),
            (
                "source".to_owned(),
                Json::Object(vec![("table".to_owned(), Json::String("t".to_owned()))]),
            ),
            ("op".to_owned(), Json::String("c".to_owned())),
            ("ts_ms".to_owned(), Json::Number(5.into())),
        ]);
        let key = Json::Object(vec![("id".to_owned(), Json::Number(1.into()))]);
        let line =
            serde_json::to_string(&event_document("x.public.t", 0, 7, key.clone(), envelope))
                .unwrap();
        assert_eq!(
            line,
            r#"{"topic":"x.public.t","partition":0,"offset":7,"key":{"id":1},"op":"c","before":null,"after":{"id":1},"source":{"table":"t"},"ts_ms":5}"#
        );
        let tombstone =
            serde_json::to_string(&event_document("x.public.t", 1, 8, key, Json::Null)).unwrap();
        assert_eq!(
            tombstone,
            r#"{"topic":"x.public.t","partition":1,"offset":8,"key":{"id":1},"op":null,"before":null,"after":null,"source":null,"ts_ms":null}"#
        );
    }
}
