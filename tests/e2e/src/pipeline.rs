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
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
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

/// A record's fields by name, each field's union unwrapped.
pub fn fields(value: &Value) -> BTreeMap<String, Value> {
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

/// Decodes keys and values through the registry by the schema id each message carries, as a
/// stock Confluent Avro deserializer does.
pub async fn decode_records(stack: &Stack, raw: Vec<RawRecord>) -> Vec<Record> {
    let decoder = AvroDecoder::new(SrSettings::new(stack.registry_url.clone()));
    let mut records = Vec::new();
    for (topic, key, value) in raw {
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

/// Reads `count` records from `topics`, decoded (see [`decode_records`]).
pub async fn read_records(stack: &Stack, topics: &[String], count: usize) -> Vec<Record> {
    decode_records(stack, read_raw(stack, topics, count).await).await
}

/// Debezium-envelope events of decoded records.
pub fn events_of(records: Vec<Record>) -> Vec<Event> {
    records
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

/// Reads `count` Debezium-envelope events from `topics`.
pub async fn read_events(stack: &Stack, topics: &[String], count: usize) -> Vec<Event> {
    events_of(read_records(stack, topics, count).await)
}

// ---- Reading topics to their end: every record, none left unseen ----

/// How long the topics may go without a new record before a wait for them is a hang.
const STALL: Duration = Duration::from_secs(60);

fn reader(stack: &Stack) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .set("group.id", unique_name("pipeline_reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("allow.auto.create.topics", "false")
        .create()
        .unwrap()
}

/// One partition of a topic: its name, number, and low and high watermarks (the high one is
/// the offset the next record will get).
pub type PartitionEnd = (String, i32, i64, i64);

/// The partitions of `topics` with their watermarks; a topic not created yet has none. An
/// error while a new topic's partitions have no leader yet.
fn partition_ends(
    consumer: &BaseConsumer,
    topics: &[String],
) -> Result<Vec<PartitionEnd>, rdkafka::error::KafkaError> {
    let mut ends = Vec::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        for found in metadata.topics().iter().filter(|t| t.name() == topic) {
            for partition in found.partitions() {
                let (low, high) =
                    consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(10))?;
                ends.push((topic.clone(), partition.id(), low, high));
            }
        }
    }
    Ok(ends)
}

/// Waits until `topics` hold at least `count` records past the ends `past` recorded, for as long
/// as they keep growing; returns their partitions, the low watermarks moved up to `past`.
fn wait_for_count(
    consumer: &BaseConsumer,
    topics: &[String],
    count: usize,
    past: &[PartitionEnd],
) -> Vec<PartitionEnd> {
    let mut held = 0;
    let mut stalled_at = Instant::now() + STALL;
    loop {
        if let Ok(mut ends) = partition_ends(consumer, topics) {
            for (topic, partition, low, _) in &mut ends {
                if let Some((_, _, _, end)) = past
                    .iter()
                    .find(|(t, p, _, _)| t == topic && p == partition)
                {
                    *low = (*low).max(*end);
                }
            }
            let total: i64 = ends.iter().map(|(_, _, low, high)| high - low).sum();
            let total = usize::try_from(total).unwrap();
            if total >= count {
                return ends;
            }
            if total > held {
                held = total;
                stalled_at = Instant::now() + STALL;
            }
        }
        assert!(
            Instant::now() < stalled_at,
            "{topics:?} hold {held} records, and no more came in {STALL:?}; waited for {count}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every record of the partitions `ends`, from the beginning up to each one's high watermark,
/// given to `each` in offset order per partition.
fn read_up_to(
    consumer: &BaseConsumer,
    ends: &[PartitionEnd],
    mut each: impl FnMut(&BorrowedMessage<'_>),
) {
    let mut assignment = TopicPartitionList::new();
    let mut unfinished: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for (topic, partition, low, high) in ends {
        if high > low {
            assignment
                .add_partition_offset(topic, *partition, Offset::Offset(*low))
                .unwrap();
            unfinished.insert((topic.clone(), *partition), *high);
        }
    }
    if unfinished.is_empty() {
        return;
    }
    consumer.assign(&assignment).unwrap();
    let mut stalled_at = Instant::now() + STALL;
    while !unfinished.is_empty() {
        assert!(
            Instant::now() < stalled_at,
            "reading to the end: nothing came in {STALL:?} from {unfinished:?}"
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.unwrap_or_else(|err| panic!("consuming: {err}"));
        stalled_at = Instant::now() + STALL;
        let at = (message.topic().to_owned(), message.partition());
        let Some(high) = unfinished.get(&at) else {
            continue;
        };
        if message.offset() < *high {
            each(&message);
        }
        if message.offset() + 1 >= *high {
            unfinished.remove(&at);
        }
    }
}

/// Waits until `topics` hold at least `at_least` records, then gives every record they hold at
/// that moment (the end of every partition: its high watermark) to `each`, undecoded, in
/// offset order per partition. Blocking: call it from `spawn_blocking`.
pub fn visit_to_end(
    stack: &Stack,
    topics: &[String],
    at_least: usize,
    each: impl FnMut(&BorrowedMessage<'_>),
) {
    visit_past(stack, topics, &[], at_least, each);
}

/// Like [`visit_to_end`], for the records past the ends `past` recorded (by [`topic_ends`]).
pub fn visit_past(
    stack: &Stack,
    topics: &[String],
    past: &[PartitionEnd],
    at_least: usize,
    each: impl FnMut(&BorrowedMessage<'_>),
) {
    let consumer = reader(stack);
    let ends = wait_for_count(&consumer, topics, at_least, past);
    read_up_to(&consumer, &ends, each);
}

/// Where each partition of `topics` ends now.
pub async fn topic_ends(stack: &Stack, topics: &[String]) -> Vec<PartitionEnd> {
    let (stack, topics) = (stack.clone(), topics.to_vec());
    tokio::task::spawn_blocking(move || partition_ends(&reader(&stack), &topics).unwrap())
        .await
        .unwrap()
}

/// Waits until `topics` hold at least `at_least` records (as long as more keep coming).
pub async fn wait_for_records(stack: &Stack, topics: &[String], at_least: usize) {
    let (stack, topics) = (stack.clone(), topics.to_vec());
    tokio::task::spawn_blocking(move || {
        wait_for_count(&reader(&stack), &topics, at_least, &[]);
    })
    .await
    .unwrap();
}

/// Waits until `topics` hold at least `at_least` records, then reads every record they hold
/// to the end of every partition, undecoded; per partition in offset order.
pub async fn read_raw_to_end(stack: &Stack, topics: &[String], at_least: usize) -> Vec<RawRecord> {
    let (stack, topics) = (stack.clone(), topics.to_vec());
    tokio::task::spawn_blocking(move || {
        let mut records = Vec::new();
        visit_to_end(&stack, &topics, at_least, |message| {
            records.push((
                message.topic().to_owned(),
                message.key().map(<[u8]>::to_vec),
                message.payload().map(<[u8]>::to_vec),
            ));
        });
        records
    })
    .await
    .unwrap()
}

/// [`read_raw_to_end`], decoded (see [`decode_records`]).
pub async fn read_records_to_end(stack: &Stack, topics: &[String], at_least: usize) -> Vec<Record> {
    decode_records(stack, read_raw_to_end(stack, topics, at_least).await).await
}

/// Reads `topics` to their end again and again until `done` holds for all they hold (60 s at
/// most): for topics other tests write to as well.
pub async fn read_records_until(
    stack: &Stack,
    topics: &[String],
    done: impl Fn(&[Record]) -> bool,
) -> Vec<Record> {
    let deadline = Instant::now() + STALL;
    loop {
        let records = read_records_to_end(stack, topics, 0).await;
        if done(&records) {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "{topics:?} never held what was waited for: {records:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads `topics` to their end once they hold `count` records, and asserts that they hold
/// exactly that many: no duplicate, no stray event past the ones expected.
pub async fn read_records_exactly(stack: &Stack, topics: &[String], count: usize) -> Vec<Record> {
    let records = read_records_to_end(stack, topics, count).await;
    assert_exactly(topics, count, &records);
    records
}

/// [`read_records_exactly`], as Debezium-envelope events.
pub async fn read_events_exactly(stack: &Stack, topics: &[String], count: usize) -> Vec<Event> {
    events_of(read_records_exactly(stack, topics, count).await)
}

/// Asserts that `records`, all that `topics` hold, are `count`.
pub fn assert_exactly<T: std::fmt::Debug>(topics: &[String], count: usize, records: &[T]) {
    if records.len() != count {
        let shown = &records[..records.len().min(40)];
        panic!(
            "{topics:?} hold {} records, not exactly {count}; the first {}: {shown:#?}",
            records.len(),
            shown.len()
        );
    }
}

/// Asserts that the records of `topics` past the ends `past` recorded (read to their end once
/// there are `ids` of them) are keyed by the ids 1 to `ids` (a `long` key field), each once.
pub async fn assert_each_id_once(
    stack: &Stack,
    topics: &[String],
    past: &[PartitionEnd],
    ids: usize,
) {
    let (stack, topics, past) = (stack.clone(), topics.to_vec(), past.to_vec());
    let (counts, others) = tokio::task::spawn_blocking(move || {
        let mut counts = vec![0u32; ids + 1];
        let mut others = 0usize;
        visit_past(&stack, &topics, &past, ids, |message| {
            let id = message
                .key()
                .map(long_key_id)
                .and_then(|id| usize::try_from(id).ok());
            match id.filter(|id| (1..=ids).contains(id)) {
                Some(id) => counts[id] += 1,
                None => others += 1,
            }
        });
        (counts, others)
    })
    .await
    .unwrap();
    let wrong: Vec<(usize, u32)> = counts
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, count)| **count != 1)
        .map(|(id, count)| (id, *count))
        .take(20)
        .collect();
    assert!(
        others == 0 && wrong.is_empty(),
        "each of ids 1 to {ids} once: {others} records of other keys; (id, times) {wrong:?}"
    );
}

/// The id in a key of one `long` field: its zig-zag varint after the 5-byte Confluent header.
pub fn long_key_id(key: &[u8]) -> i64 {
    let mut value: u64 = 0;
    for (i, byte) in key[5..].iter().enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            break;
        }
    }
    let value = i64::from_ne_bytes(value.to_ne_bytes());
    (value >> 1) ^ -(value & 1)
}

pub struct Sluice {
    child: Child,
    /// Where its stderr goes, when captured.
    stderr: Option<PathBuf>,
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
        Sluice {
            child,
            stderr: None,
        }
    }

    /// Like [`Sluice::start`], with what it prints on stderr (at level `log`) kept for
    /// [`Sluice::wait_for_exit`] and [`Sluice::stderr`].
    pub fn start_capturing(binary: &str, config: &Path, log: &str) -> Sluice {
        let path = std::env::temp_dir().join(format!("{}.stderr", unique_name("sluice")));
        let child = Command::new(binary)
            .args(["run", "--config"])
            .arg(config)
            .env("SLUICE_LOG", log)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&path).unwrap())
            .spawn()
            .expect("sluice starts");
        Sluice {
            child,
            stderr: Some(path),
        }
    }

    /// What it printed on stderr so far (started with [`Sluice::start_capturing`]).
    pub fn stderr(&self) -> String {
        let path = self.stderr.as_ref().expect("started with start_capturing");
        std::fs::read_to_string(path).unwrap()
    }

    /// Waits (60 s at most) until the process has stopped by itself; `why` says what stops it.
    /// Its exit code and what it printed on stderr (started with [`Sluice::start_capturing`]).
    pub async fn wait_for_exit(&mut self, why: &str) -> (Option<i32>, String) {
        self.wait_until_stopped(why).await;
        let status = self.child.wait().unwrap();
        (status.code(), self.stderr())
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
        Sluice {
            child,
            stderr: None,
        }
    }

    /// SIGKILL, as a crash: nothing is drained or confirmed.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate()
    }

    /// SIGTERM, then the exit status and what it printed on stderr (started with
    /// [`Sluice::start_capturing`]).
    pub fn stop_with_stderr(mut self) -> (std::process::ExitStatus, String) {
        let status = self.terminate();
        (status, self.stderr())
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
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
        if let Some(path) = &self.stderr {
            if std::thread::panicking() {
                eprintln!("sluice's stderr is in {}", path.display());
            } else {
                let _ = std::fs::remove_file(path);
            }
        }
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

/// Creates hstore and citext in `public` unless they exist (and keeps them: others use them).
pub async fn create_extensions(stack: &Stack) {
    let admin = stack.pg_connect("postgres").await;
    for extension in ["hstore", "citext"] {
        let created = admin
            .batch_execute(&format!(
                "CREATE EXTENSION IF NOT EXISTS {extension} SCHEMA public"
            ))
            .await;
        // Another test creating it at the same moment is as good.
        if let Err(err) = created {
            let exists = admin
                .query_opt(
                    "SELECT 1 FROM pg_extension WHERE extname = $1",
                    &[&extension],
                )
                .await
                .unwrap();
            assert!(exists.is_some(), "CREATE EXTENSION {extension}: {err}");
        }
    }
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

/// What the state topic of `topic_prefix` records for `slot`.
pub async fn recorded_state(
    stack: &Stack,
    topic_prefix: &str,
    slot: &str,
) -> sluice_pipeline::state::Recorded {
    let kafka = sluice_kafka::KafkaConfig {
        bootstrap_servers: stack.kafka_bootstrap.clone(),
        ..sluice_kafka::KafkaConfig::default()
    };
    let topic = sluice_pipeline::state::state_topic(topic_prefix);
    sluice_pipeline::state::recorded(&kafka, &topic, slot)
        .await
        .unwrap()
}

/// The snapshot phase the state topic of `topic_prefix` last recorded for `slot`.
pub async fn snapshot_phase(
    stack: &Stack,
    topic_prefix: &str,
    slot: &str,
) -> Option<sluice_pipeline::state::SnapshotPhase> {
    recorded_state(stack, topic_prefix, slot)
        .await
        .slot
        .map(|state| state.phase)
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
