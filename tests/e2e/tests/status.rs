//! `sluice status` and `sluice teardown` as processes against the real stack: status while
//! sluice runs and after it stopped, teardown refusing while the slot is in use, declining
//! without a yes, then dropping the slot, the publication and the state topic, and finding
//! nothing to drop the second time; and teardown keeping a state topic another slot shares.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice_e2e::pipeline::{Sluice, read_events, topic_exists, write_config};
use sluice_e2e::{Stack, unique_name};

/// Runs `sluice <args> --config config`, writing `stdin` (if any) to its standard input.
fn sluice(config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-cli"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("SLUICE_CONFIG")
        .env("SLUICE_LOG", "warn")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice starts");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn status_json(config: &Path) -> (Output, serde_json::Value) {
    let output = sluice(config, &["status", "--output", "json"], None);
    let json = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("{err}: {}", text(&output)));
    (output, json)
}

/// Runs `status --output json` until `ready` holds for its document (60 s at most).
fn status_until(config: &Path, ready: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (output, json) = status_json(config);
        if ready(&json) {
            assert_eq!(output.status.code(), Some(0), "{}", text(&output));
            return json;
        }
        assert!(
            Instant::now() < deadline,
            "status never got there: {json:#}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A slot's walsender pid and positions, and the server's current WAL position.
struct SlotFigures {
    active_pid: Option<i32>,
    confirmed: u64,
    restart: u64,
    current: u64,
}

async fn slot_figures(sql: &tokio_postgres::Client, slot: &str) -> SlotFigures {
    let row = sql
        .query_one(
            "SELECT active_pid, confirmed_flush_lsn::text, restart_lsn::text,
                    pg_current_wal_lsn()::text
               FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap();
    SlotFigures {
        active_pid: row.get(0),
        confirmed: parse_lsn(row.get(1)),
        restart: parse_lsn(row.get(2)),
        current: parse_lsn(row.get(3)),
    }
}

fn parse_lsn(text: &str) -> u64 {
    let (high, low) = text.split_once('/').unwrap();
    (u64::from_str_radix(high, 16).unwrap() << 32) | u64::from_str_radix(low, 16).unwrap()
}

async fn slot_count(sql: &tokio_postgres::Client, slot: &str) -> i64 {
    sql.query_one(
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
        &[&slot],
    )
    .await
    .unwrap()
    .get(0)
}

async fn publication_count(sql: &tokio_postgres::Client, publication: &str) -> i64 {
    sql.query_one(
        "SELECT count(*) FROM pg_publication WHERE pubname = $1",
        &[&publication],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_teardown_through_a_slots_life() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("status");
    let prefix = unique_name("statuspfx");
    let slot = unique_name("status_slot");
    let publication = unique_name("status_pub");
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.items (id int PRIMARY KEY, name text);
         INSERT INTO {schema}.items SELECT n, 'item ' || n FROM generate_series(1, 5) n;"
    ))
    .await
    .unwrap();
    let config = write_config(&stack, &prefix, &slot, &publication, &schema);
    let topic = format!("{prefix}.{schema}.items");
    let state_topic = format!("{prefix}._sluice_state");

    let sluice_run = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    read_events(&stack, std::slice::from_ref(&topic), 5).await;

    // While sluice streams: the slot is active and the snapshot recorded complete.
    status_until(&config, |json| {
        json["slot"]["active"] == true && json["snapshot"]["phase"] == "complete"
    });
    // Its figures are PostgreSQL's, read between two looks of the test's own (the positions
    // move on meanwhile, with other tests' WAL).
    let before = slot_figures(&sql, &slot).await;
    let (output, json) = status_json(&config);
    let after = slot_figures(&sql, &slot).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(json["slot"]["exists"], true, "{json:#}");
    assert_eq!(json["slot"]["plugin"], "pgoutput", "{json:#}");
    assert_eq!(json["slot"]["database"], stack.pg_database.as_str());
    assert_eq!(json["slot"]["active"], true, "{json:#}");
    assert_eq!(
        json["slot"]["active_pid"],
        before.active_pid.unwrap(),
        "{json:#}"
    );
    assert_eq!(before.active_pid, after.active_pid);
    assert_eq!(json["slot"]["walsender"]["application_name"], "sluice");
    assert_eq!(json["slot"]["walsender"]["client_addr"], "127.0.0.1");
    let lsn = |value: &serde_json::Value| {
        parse_lsn(value.as_str().unwrap_or_else(|| panic!("an LSN: {json:#}")))
    };
    let (confirmed, restart, current) = (
        lsn(&json["slot"]["confirmed_flush_lsn"]),
        lsn(&json["slot"]["restart_lsn"]),
        lsn(&json["wal"]["current_lsn"]),
    );
    for (name, value, low, high) in [
        (
            "confirmed_flush_lsn",
            confirmed,
            before.confirmed,
            after.confirmed,
        ),
        ("restart_lsn", restart, before.restart, after.restart),
        ("current_lsn", current, before.current, after.current),
    ] {
        assert!(
            (low..=high).contains(&value),
            "{name} {value:X} between {low:X} and {high:X}: {json:#}"
        );
    }
    let bytes = |from: u64| i64::try_from(current - from).unwrap();
    assert_eq!(json["wal"]["retained_bytes"], bytes(restart), "{json:#}");
    assert_eq!(
        json["wal"]["confirmed_lag_bytes"],
        bytes(confirmed),
        "{json:#}"
    );
    assert_eq!(json["publication"]["name"], publication.as_str());
    assert_eq!(json["publication"]["exists"], true, "{json:#}");
    assert_eq!(json["snapshot"]["state_topic"], state_topic.as_str());
    assert_eq!(json["problem"], serde_json::Value::Null, "{json:#}");
    let tables = json["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 1, "{json:#}");
    assert_eq!(tables[0]["table"], format!("{schema}.items"));
    assert_eq!(tables[0]["topic"], topic.as_str());
    assert_eq!(tables[0]["topic_exists"], true, "{json:#}");
    assert_eq!(tables[0]["events"], 5, "the five snapshot rows: {json:#}");

    let human = sluice(&config, &["status"], None);
    assert_eq!(human.status.code(), Some(0), "{}", text(&human));
    let stdout = String::from_utf8_lossy(&human.stdout);
    let table_row = format!("  {schema}.items");
    for (name, value) in [
        ("replication slot", format!("{slot} (pgoutput plugin")),
        ("  state", "active, walsender pid".to_owned()),
        ("snapshot", "complete".to_owned()),
        ("tables", "1 chosen".to_owned()),
        (table_row.as_str(), topic.clone()),
    ] {
        assert!(
            stdout
                .lines()
                .any(|line| line.starts_with(&format!("{name}  ")) && line.contains(&value)),
            "{name:?} with {value:?} in\n{stdout}"
        );
    }

    // Teardown refuses while the slot is in use, naming the walsender's pid.
    let refused = sluice(&config, &["teardown", "--yes", "--delete-state"], None);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let pid = json["slot"]["active_pid"].as_i64().unwrap().to_string();
    assert!(
        stderr.contains("Stop sluice first") && stderr.contains(&pid),
        "{}",
        text(&refused)
    );
    assert_eq!(slot_count(&sql, &slot).await, 1);
    assert_eq!(publication_count(&sql, &publication).await, 1);

    let stopped = sluice_run.stop();
    assert!(stopped.success(), "sluice exits 0 on SIGTERM: {stopped:?}");

    // Stopped: status still answers, the slot inactive (once its walsender has exited).
    let json = status_until(&config, |json| json["slot"]["active"] == false);
    assert_eq!(json["slot"]["exists"], true, "{json:#}");
    assert_eq!(
        json["slot"]["active_pid"],
        serde_json::Value::Null,
        "{json:#}"
    );
    assert_eq!(
        json["slot"]["walsender"],
        serde_json::Value::Null,
        "{json:#}"
    );
    assert_eq!(json["snapshot"]["phase"], "complete", "{json:#}");
    assert_eq!(json["lag"]["replay_lag_ms"], serde_json::Value::Null);

    // Without --yes, anything but y declines.
    let declined = sluice(&config, &["teardown", "--delete-state"], Some("n\n"));
    assert_eq!(declined.status.code(), Some(1), "{}", text(&declined));
    let stdout = String::from_utf8_lossy(&declined.stdout);
    assert!(
        stdout.contains(&format!("to drop     replication slot {slot}"))
            && stdout.contains("[y/N]")
            && stdout.contains("declined"),
        "{}",
        text(&declined)
    );
    assert_eq!(slot_count(&sql, &slot).await, 1);
    assert_eq!(publication_count(&sql, &publication).await, 1);
    assert!(topic_exists(&stack, &state_topic));

    // With --yes: slot, publication and state topic go; the table topic stays.
    let dropped = sluice(&config, &["teardown", "--yes", "--delete-state"], None);
    assert_eq!(dropped.status.code(), Some(0), "{}", text(&dropped));
    let stdout = String::from_utf8_lossy(&dropped.stdout);
    for needle in [
        format!("dropped     replication slot {slot}"),
        format!("dropped     publication {publication}"),
        format!("deleted     Kafka topic {state_topic}"),
        format!("untouched   table topics {prefix}.<schema>.<table>"),
    ] {
        assert!(stdout.contains(&needle), "{needle:?} in {}", text(&dropped));
    }
    assert_eq!(slot_count(&sql, &slot).await, 0);
    assert_eq!(publication_count(&sql, &publication).await, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while topic_exists(&stack, &state_topic) {
        assert!(Instant::now() < deadline, "{state_topic} was not deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        topic_exists(&stack, &topic),
        "the table topic is left alone"
    );

    // Again: nothing to drop, no question asked, exit 0.
    let again = sluice(&config, &["teardown", "--delete-state"], None);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("nothing to drop"),
        "{}",
        text(&again)
    );

    // Status now fails, saying the slot does not exist and what creates it.
    let after = sluice(&config, &["status"], None);
    assert_eq!(after.status.code(), Some(1), "{}", text(&after));
    let stdout = String::from_utf8_lossy(&after.stdout);
    assert!(
        stdout.contains(&format!("replication slot {slot} does not exist"))
            && stdout.contains("sluice run"),
        "{}",
        text(&after)
    );
    let (output, json) = status_json(&config);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert_eq!(json["slot"]["exists"], false, "{json:#}");
    assert_eq!(json["snapshot"]["phase"], "none", "{json:#}");
    assert!(
        json["problem"].as_str().unwrap().contains("does not exist"),
        "{json:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn teardown_keeps_a_state_topic_that_another_slot_shares() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("shared");
    let prefix = unique_name("sharedpfx");
    let slot = unique_name("shared_slot");
    let publication = unique_name("shared_pub");
    let other = unique_name("other_slot");
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.items (id int PRIMARY KEY);
         CREATE PUBLICATION {publication} FOR TABLE {schema}.items;"
    ))
    .await
    .unwrap();
    sql.execute(
        "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
        &[&slot],
    )
    .await
    .unwrap();
    let config = write_config(&stack, &prefix, &slot, &publication, &schema);

    // The state topic as two sluice instances with one topic prefix would leave it.
    let state_topic = format!("{prefix}._sluice_state");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .create()
        .unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new(&state_topic, 1, TopicReplication::Fixed(1))
                .set("cleanup.policy", "compact")],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .create()
        .unwrap();
    for key in [&slot, &other] {
        let value = format!(r#"{{"slot":"{key}","snapshot":"complete","consistent_point":"0/1"}}"#);
        producer
            .send(
                FutureRecord::to(&state_topic).key(key).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(err, _)| err)
            .unwrap();
    }

    let (output, json) = status_json(&config);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(json["slot"]["active"], false, "{json:#}");
    assert_eq!(json["snapshot"]["phase"], "complete", "{json:#}");
    assert_eq!(json["tables"][0]["events"], serde_json::Value::Null);

    // Deleting the topic would lose the other slot's record: refused, nothing dropped.
    let refused = sluice(&config, &["teardown", "--yes", "--delete-state"], None);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&other) && stderr.contains("without --delete-state"),
        "{}",
        text(&refused)
    );
    assert_eq!(slot_count(&sql, &slot).await, 1);
    assert_eq!(publication_count(&sql, &publication).await, 1);

    // Without --delete-state the slot and publication go, the state topic stays.
    let dropped = sluice(&config, &["teardown", "--yes"], None);
    assert_eq!(dropped.status.code(), Some(0), "{}", text(&dropped));
    let stdout = String::from_utf8_lossy(&dropped.stdout);
    assert!(
        stdout.contains(&format!("kept        Kafka topic {state_topic}")),
        "{}",
        text(&dropped)
    );
    assert_eq!(slot_count(&sql, &slot).await, 0);
    assert_eq!(publication_count(&sql, &publication).await, 0);
    assert!(topic_exists(&stack, &state_topic));
}
