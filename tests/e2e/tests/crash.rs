//! sluice killed with SIGKILL, again and again, at random points (during the snapshot, mid
//! stream, between produce and ack) while a writer keeps committing. After each kill the
//! slot's confirmed position must not have passed a transaction whose events are not in
//! Kafka; after the last restart, replaying the topic must give exactly the table PostgreSQL
//! holds. Duplicates are allowed (at-least-once) and reported.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use sluice_e2e::pipeline::long_key_id;
use sluice_e2e::{Stack, unique_name};
use sluice_kafka::KafkaConfig;

const KILLS: u32 = 20;
const INITIAL_ROWS: i64 = 3000;

/// A committed writer transaction: the id it inserted, the id it deleted (if any), and the
/// WAL position read right after its commit (at or past its commit's end).
#[derive(Debug, Clone)]
struct Committed {
    inserted: i64,
    lsn_after: u64,
}

fn parse_lsn(text: &str) -> u64 {
    let (high, low) = text.split_once('/').unwrap();
    (u64::from_str_radix(high, 16).unwrap() << 32) | u64::from_str_radix(low, 16).unwrap()
}

fn kafka_config(stack: &Stack) -> KafkaConfig {
    KafkaConfig {
        bootstrap_servers: stack.kafka_bootstrap.clone(),
        ..KafkaConfig::default()
    }
}

fn ids_in_kafka(stack: &Stack, topic: &str) -> Vec<(i64, Option<Vec<u8>>)> {
    sluice_kafka::read_to_end(&kafka_config(stack), topic, Duration::from_secs(60))
        .unwrap()
        .into_iter()
        .filter_map(|(key, value)| key.map(|k| (long_key_id(&k), value)))
        .collect()
}

fn spawn_sluice(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sluice-cli"))
        .args(["run", "--config"])
        .arg(config)
        .env("SLUICE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("sluice starts")
}

fn signal(child: &Child, signal: &str) {
    Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
}

/// A small deterministic generator, so a failing run can be repeated.
struct Lcg(u64);

impl Lcg {
    fn next_in(&mut self, low: u64, high: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        low + (self.0 >> 33) % (high - low)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_points_loses_nothing_and_confirms_nothing_unwritten() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("crash");
    let prefix = unique_name("crash");
    let slot = unique_name("crash_slot");
    let publication = unique_name("crash_pub");
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.t (id bigint PRIMARY KEY, v bigint NOT NULL, pad text);
         INSERT INTO {schema}.t SELECT g, 0, repeat('p', 100) FROM generate_series(1, {INITIAL_ROWS}) g;"
    ))
    .await
    .unwrap();
    let topic = format!("{prefix}.{schema}.t");
    let config = std::env::temp_dir().join(format!("{prefix}.toml"));
    std::fs::write(
        &config,
        format!(
            "[postgres]\nport = {}\ndatabase = \"{}\"\nuser = \"sluice\"\npassword = \"sluice\"\nsslmode = \"disable\"\n\
             [replication]\nslot = \"{slot}\"\npublication = \"{publication}\"\n\
             [tables]\ninclude = [\"{schema}.t\"]\n\
             [kafka]\nbootstrap_servers = \"{}\"\ntopic_prefix = \"{prefix}\"\npartitions = 3\n\
             [registry]\nurl = \"{}\"\n[metrics]\nenabled = false\n",
            stack.pg_port, stack.pg_database, stack.kafka_bootstrap, stack.registry_url
        ),
    )
    .unwrap();

    // The writer: a transaction every few milliseconds, until told to stop.
    let committed: Arc<Mutex<Vec<Committed>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (committed, stop, schema) = (Arc::clone(&committed), Arc::clone(&stop), schema.clone());
        let client = stack.pg_connect("sluice").await;
        tokio::spawn(async move {
            let mut next = INITIAL_ROWS + 1;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let delete = if next % 5 == 0 {
                    next % INITIAL_ROWS + 1
                } else {
                    0
                };
                client
                    .batch_execute(&format!(
                        "BEGIN;
                         INSERT INTO {schema}.t VALUES ({next}, 0, 'new');
                         UPDATE {schema}.t SET v = v + 1 WHERE id = {};
                         DELETE FROM {schema}.t WHERE id = {delete};
                         COMMIT;",
                        next - 1
                    ))
                    .await
                    .unwrap();
                let lsn: String = client
                    .query_one("SELECT pg_current_wal_lsn()::text", &[])
                    .await
                    .unwrap()
                    .get(0);
                committed.lock().unwrap().push(Committed {
                    inserted: next,
                    lsn_after: parse_lsn(&lsn),
                });
                next += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let mut random = Lcg(0x5eed);
    let mut violations = Vec::new();
    let mut checked_kills = 0;
    for kill in 0..KILLS {
        let child = spawn_sluice(&config);
        // The first kills come early, inside the snapshot; later ones mid-stream.
        let wait = if kill < 6 {
            random.next_in(50, 600)
        } else {
            random.next_in(300, 2500)
        };
        tokio::time::sleep(Duration::from_millis(wait)).await;
        signal(&child, "-KILL");
        let mut child = child;
        child.wait().unwrap();

        // What the slot says is durable must be in Kafka.
        let confirmed: Option<String> = sql
            .query_opt(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .unwrap()
            .and_then(|row| row.get(0));
        let Some(confirmed) = confirmed.map(|c| parse_lsn(&c)) else {
            continue;
        };
        // A slot whose snapshot is not recorded complete is one sluice drops on its next start
        // (the snapshot is taken again from a new slot): PostgreSQL set its position when it
        // was created, at the snapshot point, and sluice confirmed nothing on it.
        let phase = sluice_e2e::pipeline::snapshot_phase(&stack, &prefix, &slot).await;
        eprintln!("kill {kill} after {wait} ms: confirmed {confirmed:X}, snapshot {phase:?}");
        if phase != Some(sluice_pipeline::state::SnapshotPhase::Complete) {
            continue;
        }
        checked_kills += 1;
        let in_kafka: BTreeSet<i64> = tokio::task::spawn_blocking({
            let (stack, topic) = (Stack::from_env(), topic.clone());
            move || {
                ids_in_kafka(&stack, &topic)
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect()
            }
        })
        .await
        .unwrap();
        let done = committed.lock().unwrap().clone();
        for transaction in done.iter().filter(|t| t.lsn_after <= confirmed) {
            if !in_kafka.contains(&transaction.inserted) {
                violations.push(format!(
                    "kill {kill}: slot confirmed {confirmed:X} past transaction inserting {} (ended by {:X}), not in Kafka",
                    transaction.inserted, transaction.lsn_after
                ));
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    assert!(violations.is_empty(), "{violations:#?}");
    // Most kills come mid-stream, after the snapshot completed: those must have been checked.
    assert!(
        checked_kills >= KILLS / 2,
        "only {checked_kills} of {KILLS} kills found the snapshot complete"
    );

    // The last run: everything committed arrives; then a clean stop.
    let child = spawn_sluice(&config);
    let expected: BTreeSet<i64> = sql
        .query(&format!("SELECT id FROM {schema}.t"), &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let last_insert = committed
        .lock()
        .unwrap()
        .last()
        .map(|t| t.inserted)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let records = tokio::task::spawn_blocking({
            let (stack, topic) = (Stack::from_env(), topic.clone());
            move || ids_in_kafka(&stack, &topic)
        })
        .await
        .unwrap();
        if records.iter().any(|(id, _)| *id == last_insert) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the last insert ({last_insert}) never reached Kafka"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Let the final events (deletes after the last insert) arrive too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let records = tokio::task::spawn_blocking({
        let (stack, topic) = (Stack::from_env(), topic.clone());
        move || ids_in_kafka(&stack, &topic)
    })
    .await
    .unwrap();
    signal(&child, "-TERM");
    let mut child = child;
    assert!(child.wait().unwrap().success(), "sluice exits 0 on SIGTERM");

    // Replay the topic: per key, the last event decides.
    let decoder = AvroDecoder::new(SrSettings::new(stack.registry_url.clone()));
    let mut live: BTreeMap<i64, bool> = BTreeMap::new();
    let mut seen: HashMap<(i64, String), u32> = HashMap::new();
    for (id, value) in &records {
        let Some(value) = value else {
            live.insert(*id, false);
            continue;
        };
        let decoded = decoder.decode(Some(value)).await.unwrap();
        let Value::Record(fields) = decoded.value else {
            panic!()
        };
        let op = fields
            .iter()
            .find(|(name, _)| name == "op")
            .map(|(_, v)| match v {
                Value::String(op) => op.clone(),
                other => panic!("{other:?}"),
            })
            .unwrap();
        *seen.entry((*id, op.clone())).or_default() += 1;
        live.insert(*id, op != "d");
    }
    let in_kafka: BTreeSet<i64> = live
        .iter()
        .filter(|(_, alive)| **alive)
        .map(|(id, _)| *id)
        .collect();
    let missing: Vec<_> = expected.difference(&in_kafka).collect();
    let extra: Vec<_> = in_kafka.difference(&expected).collect();
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "crash test: {KILLS} kills, {} records in Kafka, {} rows in PostgreSQL, {duplicates} duplicate events",
        records.len(),
        expected.len()
    );
    assert!(
        missing.is_empty(),
        "rows in PostgreSQL but not in Kafka: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "rows deleted in PostgreSQL but alive in Kafka: {extra:?}"
    );
    sql.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .ok();
}
