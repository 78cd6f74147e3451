//! `sluice tail` as a process against the real stack: Confluent-framed Avro written straight to
//! a table's topic is printed back as JSON, and a table without a topic is refused by name.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::{Decimal, Schema};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use schema_registry_converter::async_impl::schema_registry::{SrSettings, post_schema};
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};
use sluice_e2e::{Stack, unique_name};

const KEY_SCHEMA: &str = r#"{"type": "record", "name": "Key", "namespace": "sluice.tailtest",
    "fields": [{"name": "id", "type": "long"}]}"#;

/// A cut-down Debezium envelope: enough to show unions, a named type used twice, a decimal.
const VALUE_SCHEMA: &str = r#"{"type": "record", "name": "Envelope", "namespace": "sluice.tailtest",
    "fields": [
        {"name": "before", "type": ["null", {"type": "record", "name": "Value", "fields": [
            {"name": "id", "type": "long"},
            {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal",
                                        "precision": 10, "scale": 2}},
            {"name": "note", "type": ["null", "string"], "default": null}
        ]}], "default": null},
        {"name": "after", "type": ["null", "Value"], "default": null},
        {"name": "source", "type": {"type": "record", "name": "Source", "fields": [
            {"name": "table", "type": "string"},
            {"name": "lsn", "type": ["null", "long"], "default": null}
        ]}},
        {"name": "op", "type": "string"},
        {"name": "ts_ms", "type": ["null", "long"], "default": null}
    ]}"#;

/// Beyond 2^53: a long that a float would round.
const BIG_ID: i64 = 9_007_199_254_740_993;

fn write_config(stack: &Stack, prefix: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{prefix}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
[postgres]
database = "{db}"
user = "sluice"

[kafka]
bootstrap_servers = "{bootstrap}"
topic_prefix = "{prefix}"

[registry]
url = "{registry}"
"#,
            db = stack.pg_database,
            bootstrap = stack.kafka_bootstrap,
            registry = stack.registry_url,
        ),
    )
    .unwrap();
    path
}

fn tail(config: &PathBuf, args: &[&str]) -> Output {
    tail_with(config, args, &[])
}

/// `sluice tail` with `env` as configuration overrides.
fn tail_with(config: &PathBuf, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice-cli"))
        .arg("tail")
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("SLUICE_CONFIG")
        .envs(env.iter().copied())
        .output()
        .expect("sluice tail runs")
}

/// Creates `topic` with one partition.
async fn create_topic(stack: &Stack, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .create()
        .unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
}

/// Writes `messages` (key, value or a tombstone) to `topic`, in order.
async fn produce(stack: &Stack, topic: &str, messages: &[(Vec<u8>, Option<Vec<u8>>)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .create()
        .unwrap();
    for (key, value) in messages {
        let mut record = FutureRecord::to(topic).key(key);
        if let Some(value) = value {
            record = record.payload(value);
        }
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(err, _)| err)
            .unwrap();
    }
}

fn lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
        .collect()
}

async fn register(settings: &SrSettings, subject: String, schema: &str) -> u32 {
    post_schema(
        settings,
        subject,
        SuppliedSchema::new(None, SchemaType::Avro, schema.to_owned()),
    )
    .await
    .expect("schema registered")
    .id
}

/// Magic byte 0, the schema id big-endian, then the Avro datum.
fn framed(schema: &Schema, id: u32, value: Value) -> Vec<u8> {
    let datum = GenericDatumWriter::builder(schema)
        .build()
        .unwrap()
        .write_value_to_vec(value)
        .unwrap();
    let mut out = vec![0];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&datum);
    out
}

fn row(id: i64, cents: i64, note: Option<&str>) -> Value {
    let note = match note {
        Some(note) => Value::Union(1, Box::new(Value::String(note.to_owned()))),
        None => Value::Union(0, Box::new(Value::Null)),
    };
    Value::Record(vec![
        ("id".to_owned(), Value::Long(id)),
        (
            "amount".to_owned(),
            Value::Decimal(Decimal::from(cents.to_be_bytes())),
        ),
        ("note".to_owned(), note),
    ])
}

fn envelope(op: &str, before: Option<Value>, after: Option<Value>, table: &str) -> Value {
    let optional = |row: Option<Value>| match row {
        Some(row) => Value::Union(1, Box::new(row)),
        None => Value::Union(0, Box::new(Value::Null)),
    };
    Value::Record(vec![
        ("before".to_owned(), optional(before)),
        ("after".to_owned(), optional(after)),
        (
            "source".to_owned(),
            Value::Record(vec![
                ("table".to_owned(), Value::String(table.to_owned())),
                (
                    "lsn".to_owned(),
                    Value::Union(1, Box::new(Value::Long(4242))),
                ),
            ]),
        ),
        ("op".to_owned(), Value::String(op.to_owned())),
        (
            "ts_ms".to_owned(),
            Value::Union(1, Box::new(Value::Long(1_700_000_000_000))),
        ),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn tail_prints_registry_decoded_events_as_json() {
    let stack = Stack::from_env();
    let prefix = unique_name("tailpfx");
    let table = unique_name("tail");
    let topic = format!("{prefix}.public.{table}");
    create_topic(&stack, &topic).await;

    let registry = SrSettings::new(stack.registry_url.clone());
    let key_id = register(&registry, format!("{topic}-key"), KEY_SCHEMA).await;
    let value_id = register(&registry, format!("{topic}-value"), VALUE_SCHEMA).await;
    let key_schema = Schema::parse_str(KEY_SCHEMA).unwrap();
    let value_schema = Schema::parse_str(VALUE_SCHEMA).unwrap();
    let key = |id: i64| {
        framed(
            &key_schema,
            key_id,
            Value::Record(vec![("id".to_owned(), Value::Long(id))]),
        )
    };

    let created_row = row(BIG_ID, 1050, Some("first"));
    let updated_row = row(BIG_ID, -5, None);
    let messages: [(Vec<u8>, Option<Vec<u8>>); 3] = [
        (
            key(BIG_ID),
            Some(framed(
                &value_schema,
                value_id,
                envelope("c", None, Some(created_row.clone()), &table),
            )),
        ),
        (
            key(BIG_ID),
            Some(framed(
                &value_schema,
                value_id,
                envelope("u", Some(created_row), Some(updated_row), &table),
            )),
        ),
        (key(7), None),
    ];
    produce(&stack, &topic, &messages).await;

    let config = write_config(&stack, &prefix);
    let table_arg = format!("public.{table}");
    let output = tail(
        &config,
        &[
            &table_arg,
            "--from-beginning",
            "--count",
            "2",
            "--timeout",
            "30",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events = lines(&output);
    assert_eq!(events.len(), 2, "--count 2 stops after two: {events:#?}");
    let first = &events[0];
    assert_eq!(first["topic"], topic.as_str());
    assert_eq!(first["partition"], 0);
    assert_eq!(first["offset"], 0);
    assert_eq!(first["op"], "c");
    assert_eq!(first["key"], serde_json::json!({"id": BIG_ID}));
    assert_eq!(first["before"], serde_json::Value::Null);
    assert_eq!(
        first["after"],
        serde_json::json!({"id": BIG_ID, "amount": "10.50", "note": "first"})
    );
    assert_eq!(
        first["source"],
        serde_json::json!({"table": table, "lsn": 4242})
    );
    let second = &events[1];
    assert_eq!(second["op"], "u");
    assert_eq!(second["before"]["amount"], "10.50");
    assert_eq!(
        second["after"],
        serde_json::json!({"id": BIG_ID, "amount": "-0.05", "note": null})
    );

    // Without --count it runs until the topic has been quiet for --timeout; the tombstone comes
    // through with op null.
    let output = tail(&config, &[&table_arg, "--from-beginning", "--timeout", "3"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events = lines(&output);
    assert_eq!(events.len(), 3, "{events:#?}");
    let tombstone = &events[2];
    assert_eq!(tombstone["key"], serde_json::json!({"id": 7}));
    assert_eq!(tombstone["op"], serde_json::Value::Null);
    assert_eq!(tombstone["after"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn tail_of_a_table_without_a_topic_fails_naming_the_topic() {
    let stack = Stack::from_env();
    let prefix = unique_name("tailpfx");
    let table = unique_name("nosuch");
    let config = write_config(&stack, &prefix);
    let output = tail(&config, &[&format!("public.{table}"), "--timeout", "5"]);
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("topic {prefix}.public.{table} does not exist")),
        "{stderr}"
    );
    assert!(stderr.contains("sluice run"), "{stderr}");
    assert!(output.stdout.is_empty());

    // A table the configuration does not capture is refused before Kafka is asked.
    let output = tail(&config, &["sales.orders", "--timeout", "5"]);
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("sales.orders is not captured") && stderr.contains("tables.include"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tail_reaches_the_registry_through_tls_a_client_certificate_and_a_token() {
    use sluice_e2e::registry_proxy::{Demand, RegistryProxy, client_certificate};
    let stack = Stack::from_env();
    let prefix = unique_name("tailtls");
    let table = unique_name("tls");
    let topic = format!("{prefix}.public.{table}");
    create_topic(&stack, &topic).await;
    let registry = SrSettings::new(stack.registry_url.clone());
    let key_id = register(&registry, format!("{topic}-key"), KEY_SCHEMA).await;
    let key_schema = Schema::parse_str(KEY_SCHEMA).unwrap();
    let key = framed(
        &key_schema,
        key_id,
        Value::Record(vec![("id".to_owned(), Value::Long(7))]),
    );
    produce(&stack, &topic, &[(key, None)]).await;

    // The registry only through a proxy that wants TLS, a client certificate and a token.
    let proxy = RegistryProxy::start(&stack, Demand::Bearer("t0ken".to_owned()), true).await;
    let ca = stack.ca_cert().display().to_string();
    let (cert, key) = client_certificate(&stack);
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let token_file = std::env::temp_dir().join(format!("{prefix}.token"));
    std::fs::write(&token_file, "t0ken\n").unwrap();
    let token_file = token_file.display().to_string();
    let config = write_config(&stack, &prefix);
    let table_arg = format!("public.{table}");
    let args = [
        table_arg.as_str(),
        "--from-beginning",
        "--count",
        "1",
        "--timeout",
        "30",
    ];
    let mut env = vec![
        ("SLUICE_REGISTRY__URL", proxy.url.as_str()),
        ("SLUICE_REGISTRY__CA_FILE", ca.as_str()),
        ("SLUICE_REGISTRY__CERT_FILE", cert.as_str()),
        ("SLUICE_REGISTRY__KEY_FILE", key.as_str()),
        ("SLUICE_REGISTRY__TOKEN_FILE", token_file.as_str()),
    ];
    let through = tail_with(&config, &args, &env);
    // Without the token the proxy answers 401, and tail says which setting to check.
    env.pop();
    let refused = tail_with(&config, &args, &env);
    let _ = std::fs::remove_file(&token_file);

    assert!(
        through.status.success(),
        "{}",
        String::from_utf8_lossy(&through.stderr)
    );
    let events = lines(&through);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["key"], serde_json::json!({"id": 7}));
    assert_eq!(events[0]["op"], serde_json::Value::Null);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("registry.token"),
        "{stderr}"
    );
    assert!(refused.stdout.is_empty());
}
