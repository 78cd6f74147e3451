//! The snapshot state in the state topic against the slot it describes: a snapshot is recorded
//! `started` before its slot exists, and a state topic that is gone or cannot be read stops
//! sluice without dropping the slot.

use std::time::{Duration, Instant};

use apache_avro::types::Value;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice_e2e::pipeline::{
    Sluice, read_events, read_raw, record_count, run_until_exit, slot_exists, snapshot_phase,
    stop_and_drop_slot, topic_exists, wait_until_streaming, write_config,
};
use sluice_e2e::{Stack, unique_name};
use sluice_pipeline::state::{SnapshotPhase, state_topic};

/// A schema with one table of one row, captured by a sluice that streams.
async fn streaming(
    stack: &Stack,
    name: &str,
) -> (tokio_postgres::Client, String, String, std::path::PathBuf) {
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name(name);
    let (prefix, slot) = (unique_name(name), unique_name(&format!("{name}_slot")));
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.t (id int PRIMARY KEY);
         INSERT INTO {schema}.t VALUES (1);"
    ))
    .await
    .unwrap();
    let config = write_config(
        stack,
        &prefix,
        &slot,
        &unique_name(&format!("{name}_pub")),
        &schema,
    );
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    read_events(stack, &[format!("{prefix}.{schema}.t")], 1).await;
    wait_until_streaming(&sql, &slot).await;
    assert!(sluice.stop().success());
    (sql, prefix, slot, config)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_state_topic_stops_sluice_without_dropping_the_slot() {
    let stack = Stack::from_env();
    let (sql, prefix, slot, config) = streaming(&stack, "nostate").await;
    let topic = state_topic(&prefix);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .create()
        .unwrap();
    let deleted = admin
        .delete_topics(&[&topic], &AdminOptions::new())
        .await
        .unwrap();
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while topic_exists(&stack, &topic) {
        assert!(Instant::now() < deadline, "the state topic was deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, stderr) = run_until_exit(
        env!("CARGO_BIN_EXE_sluice-cli"),
        &config,
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("replication slot {slot} exists"))
            && stderr.contains("records no snapshot"),
        "{stderr}"
    );
    assert!(slot_exists(&sql, &slot).await, "the slot is kept");
    sql.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_state_record_stops_sluice_without_dropping_the_slot() {
    let stack = Stack::from_env();
    let (sql, prefix, slot, config) = streaming(&stack, "badstate").await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&state_topic(&prefix))
                .key(slot.as_bytes())
                .payload("not json"),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let (code, stderr) = run_until_exit(
        env!("CARGO_BIN_EXE_sluice-cli"),
        &config,
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&state_topic(&prefix)) && stderr.contains("cannot read"),
        "{stderr}"
    );
    assert!(slot_exists(&sql, &slot).await, "the slot is kept");
    sql.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_is_recorded_started_before_its_slot_is_created() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("order");
    let (prefix, slot) = (unique_name("order"), unique_name("order_slot"));
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.t (id int PRIMARY KEY);
         INSERT INTO {schema}.t VALUES (1);"
    ))
    .await
    .unwrap();
    // A transaction with an xid held open: creating a slot waits until it ends.
    let holder = stack.pg_connect("sluice").await;
    holder
        .batch_execute(&format!("BEGIN; INSERT INTO {schema}.t VALUES (2);"))
        .await
        .unwrap();
    let config = write_config(&stack, &prefix, &slot, &unique_name("order_pub"), &schema);
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    // While the slot's creation waits, the state topic already says `started`: a crash from
    // here on finds it, and never an older `complete`, beside the new slot.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let creating: bool = sql
            .query_one(
                "SELECT count(*) > 0 FROM pg_stat_activity
                  WHERE query LIKE 'CREATE_REPLICATION_SLOT%' AND strpos(query, $1) > 0",
                &[&slot],
            )
            .await
            .unwrap()
            .get(0);
        if creating {
            break;
        }
        assert!(Instant::now() < deadline, "sluice creates the slot");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        snapshot_phase(&stack, &prefix, &slot).await,
        Some(SnapshotPhase::Started),
        "`started` is recorded before the slot is created"
    );
    holder.batch_execute("COMMIT").await.unwrap();
    read_events(&stack, &[format!("{prefix}.{schema}.t")], 2).await;
    wait_until_streaming(&sql, &slot).await;
    assert_eq!(
        snapshot_phase(&stack, &prefix, &slot).await,
        Some(SnapshotPhase::Complete)
    );
    stop_and_drop_slot(sluice, &sql, &slot).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_taken_again_deletes_rows_gone_since_with_the_keys_the_topic_holds() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("again");
    let (prefix, slot) = (unique_name("again"), unique_name("again_slot"));
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.t (id int PRIMARY KEY, v text);
         INSERT INTO {schema}.t SELECT g, 'row ' || g FROM generate_series(1, 300) g;"
    ))
    .await
    .unwrap();
    let config = write_config(&stack, &prefix, &slot, &unique_name("again_pub"), &schema);
    let topic = format!("{prefix}.{schema}.t");
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    let first = read_raw(&stack, std::slice::from_ref(&topic), 300).await;
    wait_until_streaming(&sql, &slot).await;
    assert!(sluice.stop().success());
    // While sluice is stopped: the key's type widens (a new key schema, the same key bytes
    // after the schema id), two rows go, and the state says the snapshot never finished.
    sql.batch_execute(&format!(
        "ALTER TABLE {schema}.t ALTER COLUMN id TYPE bigint;
         DELETE FROM {schema}.t WHERE id IN (5, 6);"
    ))
    .await
    .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .create()
        .unwrap();
    let started = format!(r#"{{"slot":"{slot}","snapshot":"started","consistent_point":""}}"#);
    producer
        .send(
            FutureRecord::to(&state_topic(&prefix))
                .key(slot.as_bytes())
                .payload(&started),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    wait_until_streaming(&sql, &slot).await;
    // 300 rows first; then 298 again, and for each vanished row a delete and a tombstone.
    let expected = 300 + 298 + 2 * 2;
    let records = read_raw(&stack, std::slice::from_ref(&topic), expected).await;
    assert_eq!(
        record_count(&stack, &topic),
        i64::try_from(expected).unwrap(),
        "nothing more"
    );
    let original_key = |id: u8| {
        first
            .iter()
            .find(|(_, key, _)| key.as_ref().is_some_and(|k| k.last() == Some(&(id * 2))))
            .and_then(|(_, key, _)| key.clone())
            .unwrap()
    };
    for id in [5, 6] {
        let key = original_key(id);
        let of_key: Vec<&Option<Vec<u8>>> = records
            .iter()
            .filter(|(_, k, _)| k.as_ref() == Some(&key))
            .map(|(_, _, value)| value)
            .collect();
        assert_eq!(
            of_key.len(),
            3,
            "r, d and a tombstone for the key as written"
        );
        assert!(of_key[2].is_none(), "the tombstone comes last");
        let events = read_events(&stack, std::slice::from_ref(&topic), records.len()).await;
        let delete = events
            .iter()
            .find(|e| e.op.as_deref() == Some("d") && e.key["id"] == Value::Int(i32::from(id)))
            .unwrap();
        assert_eq!(
            delete.before.as_ref().unwrap()["v"],
            Value::String(format!("row {id}")),
            "the delete's before is the last row the topic held"
        );
    }
    stop_and_drop_slot(sluice, &sql, &slot).await;
}
