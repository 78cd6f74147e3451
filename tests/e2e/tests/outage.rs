//! The broker stopped for 30 s, then the registry stopped across a schema change: sluice
//! waits and retries, keeps its replication stream alive, loses nothing, and resumes when
//! they return. A test binary of its own: it stops services the other tests use.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use sluice_e2e::pipeline::{Sluice, read_events, write_config};
use sluice_e2e::{Stack, repo_root, unique_name};

/// Stops the stack's `service` by the pid its script recorded, and waits until it is gone.
fn stop_service(stack: &Stack, service: &str) {
    let pid = std::fs::read_to_string(stack.state_dir.join(format!("run/{service}.pid")))
        .unwrap_or_else(|_| panic!("{service} was started by deploy/local/stack"));
    let pid = pid.trim();
    assert!(
        Command::new("kill")
            .args(["-TERM", pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z")
    {
        assert!(Instant::now() < deadline, "{service} did not stop");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts whatever of the stack is not running.
fn stack_up() {
    let status = Command::new(repo_root().join("deploy/local/stack"))
        .arg("up")
        .status()
        .unwrap();
    assert!(status.success(), "deploy/local/stack up");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_outage_and_a_registry_outage_lose_nothing() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("outage");
    let prefix = unique_name("outage");
    let slot = unique_name("outage_slot");
    let publication = unique_name("outage_pub");
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.t (id int PRIMARY KEY, v text);
         INSERT INTO {schema}.t VALUES (1, 'a'), (2, 'b'), (3, 'c');"
    ))
    .await
    .unwrap();
    let config = write_config(&stack, &prefix, &slot, &publication, &schema);
    let mut sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    let topics = [format!("{prefix}.{schema}.t")];
    read_events(&stack, &topics, 3).await;

    // The broker goes away for 30 s while changes keep coming.
    stop_service(&stack, "kafka");
    for id in 100..110 {
        sql.batch_execute(&format!("INSERT INTO {schema}.t VALUES ({id}, 'during')"))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        sluice.running(),
        "sluice waits for the broker instead of failing"
    );
    stack_up();
    let events = read_events(&stack, &topics, 13).await;
    for id in 100..110 {
        assert!(
            events.iter().any(|e| e.key["id"] == Value::Int(id)),
            "row {id}, written while the broker was down, arrived"
        );
    }

    // The registry goes away while the table's schema changes: the new schema version can't
    // be registered, so nothing of the table can be produced until it returns.
    stop_service(&stack, "registry");
    sql.batch_execute(&format!(
        "ALTER TABLE {schema}.t ADD COLUMN extra int;
         INSERT INTO {schema}.t VALUES (200, 'after', 7);"
    ))
    .await
    .unwrap();
    // Longer than the stack's 10 s wal_sender_timeout: the stream must be kept alive.
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert!(
        sluice.running(),
        "sluice waits for the registry instead of failing"
    );
    stack_up();
    let events = read_events(&stack, &topics, 14).await;
    let last = events
        .iter()
        .find(|e| e.key["id"] == Value::Int(200))
        .expect("the row written across the schema change arrived");
    assert_eq!(last.after.as_ref().unwrap()["extra"], Value::Int(7));

    let status = sluice.stop();
    assert!(status.success(), "{status:?}");
    sql.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .unwrap();
}
