//! The snapshot state in the state topic against the slot it describes: a snapshot is recorded
//! `started` before its slot exists, and a state topic that is gone or cannot be read stops
//! sluice without dropping the slot.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice_e2e::pipeline::{
    Sluice, read_events, run_until_exit, slot_exists, snapshot_phase, stop_and_drop_slot,
    topic_exists, wait_until_streaming, write_config,
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
