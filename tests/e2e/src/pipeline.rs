//! Running `sluice run` as a process and reading its topics back through the registry.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;

use crate::{Stack, unique_name};

/// One event as read back: its topic, key fields, op, before and after fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub topic: String,
    pub key: BTreeMap<String, Value>,
    pub op: Option<String>,
    pub before: Option<BTreeMap<String, Value>>,
    pub after: Option<BTreeMap<String, Value>>,
    pub snapshot: Option<String>,
    /// The envelope's `exact` field: null, or the record of what the rows' fields cannot hold.
    pub exact: Value,
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

/// One record read back: topic, decoded key fields, decoded value fields (`None`: tombstone).
pub type Record = (
    String,
    BTreeMap<String, Value>,
    Option<BTreeMap<String, Value>>,
);

/// One message as it is on the topic: topic, key bytes, value bytes (`None`: absent).
pub type RawRecord = (String, Option<Vec<u8>>, Option<Vec<u8>>);

/// Reads `count` messages from `topics` from their beginning, undecoded.
pub async fn read_raw(stack: &Stack, topics: &[String], count: usize) -> Vec<RawRecord> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .set("group.id", unique_name("pipeline_reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).unwrap();
    let mut records = Vec::new();
    while records.len() < count {
        let message = match tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {count} records arrived: {records:#?}",
                    records.len()
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
        records.push((
            message.topic().to_owned(),
            message.key().map(<[u8]>::to_vec),
            message.payload().map(<[u8]>::to_vec),
        ));
    }
    records
}

/// Reads `count` records from `topics`, decoding keys and values through the registry by the
/// schema id each message carries, as a stock Confluent Avro deserializer does.
pub async fn read_records(stack: &Stack, topics: &[String], count: usize) -> Vec<Record> {
    let decoder = AvroDecoder::new(SrSettings::new(stack.registry_url.clone()));
    let mut records = Vec::new();
    for (topic, key, value) in read_raw(stack, topics, count).await {
        // A truncate event has no key.
        let key = match key {
            None => BTreeMap::new(),
            Some(key) => fields(&decoder.decode(Some(&key)).await.unwrap().value),
        };
        let value = match value {
            None => None,
            Some(payload) => Some(fields(&decoder.decode(Some(&payload)).await.unwrap().value)),
        };
        records.push((topic, key, value));
    }
    records
}

/// Reads `count` Debezium-envelope events from `topics`.
pub async fn read_events(stack: &Stack, topics: &[String], count: usize) -> Vec<Event> {
    read_records(stack, topics, count)
        .await
        .into_iter()
        .map(|(topic, key, value)| match value {
            None => Event {
                topic,
                key,
                op: None,
                before: None,
                after: None,
                snapshot: None,
                exact: Value::Null,
            },
            Some(value) => {
                let Value::String(op) = &value["op"] else {
                    panic!("op: {value:?}")
                };
                let source = fields(&value["source"]);
                let Value::String(snapshot) = &source["snapshot"] else {
                    panic!("source.snapshot: {source:?}")
                };
                Event {
                    topic,
                    key,
                    op: Some(op.clone()),
                    before: optional_record(&value["before"]),
                    after: optional_record(&value["after"]),
                    snapshot: Some(snapshot.clone()),
                    exact: unwrap_union(&value["exact"]).clone(),
                }
            }
        })
        .collect()
}

pub struct Sluice {
    child: Child,
}

impl Sluice {
    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Starts `binary run --config config` (tests pass `env!("CARGO_BIN_EXE_sluice-cli")`).
    pub fn start(binary: &str, config: &Path) -> Sluice {
        let child = Command::new(binary)
            .args(["run", "--config"])
            .arg(config)
            .env("SLUICE_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("sluice starts");
        Sluice { child }
    }

    /// Waits (60 s at most) until the process has stopped by itself; `why` says what stops it.
    pub async fn wait_until_stopped(&mut self, why: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.running() {
            assert!(Instant::now() < deadline, "sluice stops: {why}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The process's peak resident set size so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        sluice_bench::process::peak_rss_kib(self.child.id())
    }

    /// Takes over a `sluice run` process the test started itself.
    pub fn from_child(child: std::process::Child) -> Sluice {
        Sluice { child }
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
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

/// Runs `binary run --config config` until it exits (at most `limit`); returns its exit code
/// and what it printed on stderr.
pub fn run_until_exit(binary: &str, config: &Path, limit: Duration) -> (Option<i32>, String) {
    let mut child = Command::new(binary)
        .args(["run", "--config"])
        .arg(config)
        .env("SLUICE_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return (status.code(), stderr);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sluice did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops `sluice` (it must exit 0) and drops the slot it streamed from.
pub async fn stop_and_drop_slot(sluice: Sluice, sql: &tokio_postgres::Client, slot: &str) {
    let status = sluice.stop();
    assert!(status.success(), "sluice exits 0 on SIGTERM: {status:?}");
    sql.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .unwrap();
}

/// PostgreSQL's current WAL write position, as text.
pub async fn current_wal_lsn(sql: &tokio_postgres::Client) -> String {
    sql.query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0)
}

/// Whether `slot` is confirmed only below `lsn`: nothing from `lsn` on was confirmed.
pub async fn confirmed_below(sql: &tokio_postgres::Client, slot: &str, lsn: &str) -> bool {
    sql.query_one(
        "SELECT confirmed_flush_lsn < $2::text::pg_lsn FROM pg_replication_slots WHERE slot_name = $1",
        &[&slot, &lsn],
    )
    .await
    .unwrap()
    .get(0)
}

/// Whether a replication slot named `slot` exists.
pub async fn slot_exists(sql: &tokio_postgres::Client, slot: &str) -> bool {
    sql.query_one(
        "SELECT count(*) > 0 FROM pg_replication_slots WHERE slot_name = $1",
        &[&slot],
    )
    .await
    .unwrap()
    .get(0)
}
/// Creates `schema` with one table `t (id bigint PRIMARY KEY, v text)` of `rows` rows whose
/// `v` is the SQL expression `value` over the row number `g`, analysed so estimates are known.
pub async fn create_filled_table(
    sql: &tokio_postgres::Client,
    schema: &str,
    rows: u64,
    value: &str,
) {
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.t (id bigint PRIMARY KEY, v text NOT NULL);
         INSERT INTO {schema}.t SELECT g, {value} FROM generate_series(1, {rows}) g;
         ANALYZE {schema}.t;"
    ))
    .await
    .unwrap();
}

/// Waits (30 s at most) until sluice streams from `slot`: its walsender has left startup.
pub async fn wait_until_streaming(sql: &tokio_postgres::Client, slot: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    // The slot is active from its creation on (while its exported snapshot is in use); its
    // walsender's command is START_REPLICATION only once it streams (pg_stat_replication's
    // state would say so too, but only to pg_read_all_stats).
    while sql
        .query_opt(
            "SELECT 1 FROM pg_replication_slots s JOIN pg_stat_activity a ON a.pid = s.active_pid
              WHERE s.slot_name = $1 AND a.query LIKE 'START_REPLICATION%'",
            &[&slot],
        )
        .await
        .unwrap()
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "sluice started streaming from {slot}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the walsender streaming from `slot` sends values in binary form (its
/// START_REPLICATION asked for `"binary" 'true'`); `None` while nothing streams from it.
pub async fn streams_binary(sql: &tokio_postgres::Client, slot: &str) -> Option<bool> {
    sql.query_opt(
        "SELECT a.query LIKE '%\"binary\" ''true''%' FROM pg_replication_slots s
           JOIN pg_stat_activity a ON a.pid = s.active_pid
          WHERE s.slot_name = $1 AND a.query LIKE 'START_REPLICATION%'",
        &[&slot],
    )
    .await
    .unwrap()
    .map(|row| row.get(0))
}

/// A configuration file for the local stack capturing every table of `schema`.
pub fn write_config(
    stack: &Stack,
    prefix: &str,
    slot: &str,
    publication: &str,
    schema: &str,
) -> PathBuf {
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

/// The snapshot phase the state topic of `topic_prefix` last recorded for `slot`.
pub async fn snapshot_phase(
    stack: &Stack,
    topic_prefix: &str,
    slot: &str,
) -> Option<sluice_pipeline::state::SnapshotPhase> {
    let kafka = sluice_kafka::KafkaConfig {
        bootstrap_servers: stack.kafka_bootstrap.clone(),
        ..sluice_kafka::KafkaConfig::default()
    };
    let topic = sluice_pipeline::state::state_topic(topic_prefix);
    sluice_pipeline::state::recorded_phase(&kafka, &topic, slot)
        .await
        .unwrap()
}

/// Waits (`limit` at most) until the state topic of `topic_prefix` records `phase` for `slot`.
pub async fn wait_for_snapshot_phase(
    stack: &Stack,
    topic_prefix: &str,
    slot: &str,
    phase: sluice_pipeline::state::SnapshotPhase,
    limit: Duration,
) {
    let deadline = Instant::now() + limit;
    while snapshot_phase(stack, topic_prefix, slot).await != Some(phase) {
        assert!(Instant::now() < deadline, "the snapshot reached {phase:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `topic` exists on the stack's broker.
pub fn topic_exists(stack: &Stack, topic: &str) -> bool {
    let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .set("allow.auto.create.topics", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .unwrap();
    metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none())
}

/// Waits (60 s at most) until `slot` is confirmed at or past `lsn`; `what` says why it should.
pub async fn wait_until_confirmed(sql: &tokio_postgres::Client, slot: &str, lsn: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let passed: bool = sql
            .query_one(
                "SELECT confirmed_flush_lsn >= $2::text::pg_lsn FROM pg_replication_slots
                  WHERE slot_name = $1",
                &[&slot, &lsn],
            )
            .await
            .unwrap()
            .get(0);
        if passed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the slot was confirmed past {lsn}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How many records `topic` holds: the sum of its partitions' high watermarks.
pub fn record_count(stack: &Stack, topic: &str) -> i64 {
    let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .unwrap();
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|partition| {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition.id(), Duration::from_secs(30))
                .unwrap();
            high - low
        })
        .sum()
}
