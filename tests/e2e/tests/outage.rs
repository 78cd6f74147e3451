//! The broker killed (SIGKILL), then the registry stopped across a schema change, each for
//! longer than the server's `wal_sender_timeout`: sluice waits and retries, keeps its
//! replication stream alive, loses nothing, and resumes when they return. A test binary of
//! its own: it stops services the other tests use.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use sluice_e2e::pipeline::{
    Event, Sluice, current_wal_lsn, read_events, read_events_exactly, wait_for_records,
    wait_until_streaming, write_config,
};
use sluice_e2e::{Stack, repo_root, unique_name};

/// Stops the stack's `service` with `signal` (`-TERM`, `-KILL`) by the pid its script
/// recorded, and waits until it is gone.
fn stop_service(stack: &Stack, service: &str, signal: &str) {
    let pid = std::fs::read_to_string(stack.state_dir.join(format!("run/{service}.pid")))
        .unwrap_or_else(|_| panic!("{service} was started by deploy/local/stack"));
    let pid = pid.trim();
    assert!(
        Command::new("kill")
            .args([signal, pid])
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

/// The server's clock now, as text.
async fn server_now(sql: &tokio_postgres::Client) -> String {
    sql.query_one("SELECT clock_timestamp()::text", &[])
        .await
        .unwrap()
        .get(0)
}

/// Waits (120 s at most) until sluice's walsender has sent everything up to `lsn` and sluice
/// has answered it later than one `wal_sender_timeout` after `since` (the server's clock): its
/// stream outlived a timeout while the service was away. `admin` may read pg_stat_replication.
async fn wait_for_stream_kept_alive(
    admin: &tokio_postgres::Client,
    slot: &str,
    lsn: &str,
    since: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let alive = admin
            .query_opt(
                "SELECT 1 FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid
                  WHERE s.slot_name = $1 AND r.sent_lsn >= $2::text::pg_lsn
                    AND r.reply_time > $3::text::timestamptz
                                       + current_setting('wal_sender_timeout')::interval",
                &[&slot, &lsn, &since],
            )
            .await
            .unwrap()
            .is_some();
        if alive {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "sluice's stream from {slot} was kept alive a wal_sender_timeout past {since}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The (id, v) of each event's row, and its op, sorted.
fn rows(events: &[Event]) -> Vec<(i32, String, String)> {
    let mut rows: Vec<(i32, String, String)> = events
        .iter()
        .map(|e| {
            let after = e.after.as_ref().unwrap();
            let (Value::Int(id), Value::String(v)) = (&after["id"], &after["v"]) else {
                panic!("{after:?}")
            };
            (*id, v.clone(), e.op.clone().unwrap())
        })
        .collect();
    rows.sort();
    rows
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
    wait_until_streaming(&sql, &slot).await;
    let admin = stack.pg_connect("postgres").await;

    // The broker dies (no clean shutdown) while changes keep coming, for longer than the
    // server would wait for a silent replication client.
    stop_service(&stack, "kafka", "-KILL");
    let since = server_now(&sql).await;
    for id in 100..110 {
        sql.batch_execute(&format!("INSERT INTO {schema}.t VALUES ({id}, 'during')"))
            .await
            .unwrap();
    }
    let written = current_wal_lsn(&sql).await;
    wait_for_stream_kept_alive(&admin, &slot, &written, &since).await;
    assert!(
        sluice.running(),
        "sluice waits for the broker instead of failing"
    );
    stack_up();
    let during = |id: i32| (id, "during".to_owned(), "c".to_owned());
    let snapshot = [(1, "a"), (2, "b"), (3, "c")].map(|(id, v)| (id, v.to_owned(), "r".to_owned()));
    let mut expected: Vec<(i32, String, String)> = snapshot.to_vec();
    expected.extend((100..110).map(during));
    let events = read_events_exactly(&stack, &topics, 13).await;
    assert_eq!(rows(&events), expected, "each row once, with its values");

    // The registry goes away while the table's schema changes: the new schema version can't
    // be registered, so nothing of the table can be produced until it returns.
    stop_service(&stack, "registry", "-TERM");
    let since = server_now(&sql).await;
    sql.batch_execute(&format!(
        "ALTER TABLE {schema}.t ADD COLUMN extra int;
         INSERT INTO {schema}.t VALUES (200, 'after', 7);"
    ))
    .await
    .unwrap();
    let written = current_wal_lsn(&sql).await;
    wait_for_stream_kept_alive(&admin, &slot, &written, &since).await;
    assert!(
        sluice.running(),
        "sluice waits for the registry instead of failing"
    );
    stack_up();
    wait_for_records(&stack, &topics, 14).await;
    let status = sluice.stop();
    assert!(status.success(), "{status:?}");
    let events = read_events_exactly(&stack, &topics, 14).await;
    expected.push((200, "after".to_owned(), "c".to_owned()));
    assert_eq!(rows(&events), expected, "each row once, with its values");
    let last = events
        .iter()
        .find(|e| e.key["id"] == Value::Int(200))
        .unwrap();
    assert_eq!(last.after.as_ref().unwrap()["extra"], Value::Int(7));
    sql.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .unwrap();
}
