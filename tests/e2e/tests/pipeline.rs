//! `sluice run` end to end against the real stack: a snapshot of existing rows, then live
//! inserts, updates and deletes, read back from Kafka with a stock Avro deserializer that
//! fetches each schema from the registry by the id in the message.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use sluice_e2e::{Stack, unique_name};

/// One event as read back: its topic, key fields, op, before and after fields.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    topic: String,
    key: BTreeMap<String, Value>,
    op: Option<String>,
    before: Option<BTreeMap<String, Value>>,
    after: Option<BTreeMap<String, Value>>,
    snapshot: Option<String>,
}

fn fields(value: &Value) -> BTreeMap<String, Value> {
    match value {
        Value::Record(fields) => fields
            .iter()
            .map(|(name, value)| (name.clone(), unwrap_union(value).clone()))
            .collect(),
        other => panic!("not a record: {other:?}"),
    }
}

fn unwrap_union(value: &Value) -> &Value {
    match value {
        Value::Union(_, inner) => inner,
        other => other,
    }
}

fn optional_record(value: &Value) -> Option<BTreeMap<String, Value>> {
    match unwrap_union(value) {
        Value::Null => None,
        record => Some(fields(record)),
    }
}

/// Reads `count` events from `topics`, decoding keys and values through the registry.
async fn read_events(stack: &Stack, topics: &[String], count: usize) -> Vec<Event> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .set("group.id", unique_name("pipeline_reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).unwrap();
    let decoder = AvroDecoder::new(SrSettings::new(stack.registry_url.clone()));
    let mut events = Vec::new();
    while events.len() < count {
        let message = match tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {count} events arrived: {events:#?}",
                    events.len()
                )
            }) {
            Ok(message) => message,
            // The topics appear once sluice has created them.
            Err(rdkafka::error::KafkaError::MessageConsumption(
                rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
            )) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(err) => panic!("consuming: {err}"),
        };
        let key = decoder.decode(message.key()).await.unwrap();
        let key = fields(&key.value);
        let event = match message.payload() {
            None => Event {
                topic: message.topic().to_owned(),
                key,
                op: None,
                before: None,
                after: None,
                snapshot: None,
            },
            Some(payload) => {
                let value = decoder.decode(Some(payload)).await.unwrap();
                let value = fields(&value.value);
                let Value::String(op) = &value["op"] else {
                    panic!("op: {value:?}")
                };
                let source = fields(&value["source"]);
                let Value::String(snapshot) = &source["snapshot"] else {
                    panic!()
                };
                Event {
                    topic: message.topic().to_owned(),
                    key,
                    op: Some(op.clone()),
                    before: optional_record(&value["before"]),
                    after: optional_record(&value["after"]),
                    snapshot: Some(snapshot.clone()),
                }
            }
        };
        events.push(event);
    }
    events
}

struct Sluice {
    child: Child,
}

impl Sluice {
    fn start(config: &std::path::Path) -> Sluice {
        let child = Command::new(env!("CARGO_BIN_EXE_sluice-cli"))
            .args(["run", "--config"])
            .arg(config)
            .env("SLUICE_LOG", "info")
            .stdout(Stdio::null())
            .spawn()
            .expect("sluice starts");
        Sluice { child }
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "sluice did not stop within 60 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn write_config(
    stack: &Stack,
    prefix: &str,
    slot: &str,
    publication: &str,
    schema: &str,
) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("{prefix}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
[postgres]
host = "127.0.0.1"
port = {port}
database = "{db}"
user = "sluice"
password = "sluice"
sslmode = "disable"

[replication]
slot = "{slot}"
publication = "{publication}"

[tables]
include = ["{schema}.*"]

[kafka]
bootstrap_servers = "{bootstrap}"
topic_prefix = "{prefix}"
partitions = 2

[registry]
url = "{registry}"

[metrics]
enabled = false
"#,
            port = stack.pg_port,
            db = stack.pg_database,
            bootstrap = stack.kafka_bootstrap,
            registry = stack.registry_url,
        ),
    )
    .unwrap();
    path
}

fn long(value: i64) -> Value {
    Value::Long(value)
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_then_stream_arrive_in_kafka_exactly_once_each_and_in_key_order() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("pipe");
    let prefix = unique_name("sluice");
    let slot = unique_name("pipe_slot");
    let publication = unique_name("pipe_pub");
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.orders (id bigint PRIMARY KEY, amount numeric(10,2), note text,
                                       placed timestamptz);
         CREATE TABLE {schema}.items (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO {schema}.orders VALUES (1, 10.50, 'first', '2024-01-01 00:00:00+00'),
                                            (2, NULL, NULL, NULL);
         INSERT INTO {schema}.items VALUES (1, 'apple'), (2, 'pear');"
    ))
    .await
    .unwrap();
    let config = write_config(&stack, &prefix, &slot, &publication, &schema);
    let sluice = Sluice::start(&config);
    let orders = format!("{prefix}.{schema}.orders");
    let items = format!("{prefix}.{schema}.items");
    let topics = [orders.clone(), items.clone()];

    // The snapshot: four rows, op r.
    let snapshot = read_events(&stack, &topics, 4).await;
    assert!(
        snapshot.iter().all(|e| e.op.as_deref() == Some("r")),
        "{snapshot:#?}"
    );
    let order_one = snapshot
        .iter()
        .find(|e| e.topic == orders && e.key["id"] == long(1))
        .unwrap();
    let after = order_one.after.as_ref().unwrap();
    assert_eq!(after["note"], Value::String("first".into()));
    assert_eq!(
        after["placed"],
        Value::String("2024-01-01T00:00:00Z".into())
    );
    assert_eq!(
        after["amount"],
        Value::Decimal(1050i64.to_be_bytes()[6..].to_vec().into())
    );

    // Live changes, in several transactions.
    sql.batch_execute(&format!(
        "INSERT INTO {schema}.orders VALUES (3, 1.00, 'third', now());"
    ))
    .await
    .unwrap();
    let before_last: String = sql
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    sql.batch_execute(&format!(
        "BEGIN;
         UPDATE {schema}.orders SET note = 'changed' WHERE id = 1;
         DELETE FROM {schema}.items WHERE id = 2;
         UPDATE {schema}.items SET id = 20 WHERE id = 1;
         COMMIT;"
    ))
    .await
    .unwrap();
    // 4 snapshot + insert + update + (delete + tombstone) + key change (delete + tombstone + create).
    let all = read_events(&stack, &topics, 4 + 1 + 1 + 2 + 3).await;
    let live: Vec<&Event> = all
        .iter()
        .filter(|e| e.op.as_deref() != Some("r"))
        .collect();
    let describe: Vec<(String, String, String)> = live
        .iter()
        .map(|e| {
            (
                e.topic.rsplit('.').next().unwrap().to_owned(),
                format!("{:?}", e.key["id"]),
                e.op.clone().unwrap_or_else(|| "tombstone".into()),
            )
        })
        .collect();
    let expect =
        |table: &str, id: Value, op: &str| (table.to_owned(), format!("{id:?}"), op.to_owned());
    for wanted in [
        expect("orders", long(3), "c"),
        expect("orders", long(1), "u"),
        expect("items", Value::Int(2), "d"),
        expect("items", Value::Int(2), "tombstone"),
        expect("items", Value::Int(1), "d"),
        expect("items", Value::Int(1), "tombstone"),
        expect("items", Value::Int(20), "c"),
    ] {
        assert_eq!(
            describe.iter().filter(|d| **d == wanted).count(),
            1,
            "{wanted:?} exactly once in {describe:#?}"
        );
    }
    // Per key, order is kept: the delete of item 1 comes before its tombstone.
    let position =
        |wanted: (String, String, String)| describe.iter().position(|d| *d == wanted).unwrap();
    assert!(
        position(expect("items", Value::Int(1), "d"))
            < position(expect("items", Value::Int(1), "tombstone"))
    );
    let update = live.iter().find(|e| e.op.as_deref() == Some("u")).unwrap();
    assert_eq!(
        update.after.as_ref().unwrap()["note"],
        Value::String("changed".into())
    );

    let status = sluice.stop();
    assert!(status.success(), "sluice exits 0 on SIGTERM: {status:?}");

    // The slot was confirmed into the last transaction's WAL, which began after `before_last`:
    // only what the broker acknowledged is confirmed, and everything was.
    let confirmed_past: bool = sql
        .query_one(
            "SELECT confirmed_flush_lsn > $2::text::pg_lsn FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot, &before_last],
        )
        .await
        .unwrap()
        .get(0);
    assert!(confirmed_past, "the slot was confirmed past {before_last}");
    sql.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .unwrap();
}
