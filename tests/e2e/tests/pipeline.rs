//! `sluice run` end to end against the real stack: a snapshot of existing rows, then live
//! inserts, updates and deletes, read back from Kafka with a stock Avro deserializer that
//! fetches each schema from the registry by the id in the message.

use std::time::{Duration, Instant};

use apache_avro::types::Value;
use sluice_e2e::pipeline::{
    Event, Record, Sluice, assert_exactly, current_wal_lsn, decode_records, read_events,
    read_events_exactly, read_raw_to_end, read_records, read_records_exactly, read_records_to_end,
    read_records_until, slot_exists, stop_and_drop_slot, streams_binary, wait_for_records,
    wait_until_confirmed, wait_until_streaming, write_config,
};
use sluice_e2e::{Stack, unique_name};

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
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
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
    let count = 4 + 1 + 1 + 2 + 3;
    wait_for_records(&stack, &topics, count).await;
    // Stopped, sluice has produced all it ever will: the topics hold these events and no more.
    let status = sluice.stop();
    assert!(status.success(), "sluice exits 0 on SIGTERM: {status:?}");
    let all = read_events_exactly(&stack, &topics, count).await;
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

/// Runs `sluice run` to its end on a configuration that cannot work; returns its exit code and
/// what it printed on stderr.
fn run_to_failure(config: &std::path::Path) -> (Option<i32>, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice-cli"))
        .args(["run", "--config"])
        .arg(config)
        .env("SLUICE_LOG", "error")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_table_without_a_primary_key_is_refused_with_both_fixes_and_nothing_is_created() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("keyless");
    let (prefix, slot, publication) = (
        unique_name("keyless"),
        unique_name("keyless_slot"),
        unique_name("keyless_pub"),
    );
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.events (at timestamptz, what text);"
    ))
    .await
    .unwrap();
    let config = write_config(&stack, &prefix, &slot, &publication, &schema);
    let (code, stderr) = run_to_failure(&config);
    assert_eq!(code, Some(1), "{stderr}");
    for needle in [
        format!("{schema}.events"),
        "ADD PRIMARY KEY".to_owned(),
        "REPLICA IDENTITY FULL".to_owned(),
        "allow_keyless".to_owned(),
    ] {
        assert!(stderr.contains(&needle), "{needle:?} in {stderr}");
    }
    assert!(
        !slot_exists(&sql, &slot).await,
        "no slot is left pinning WAL"
    );
}

#[tokio::test]
async fn patterns_that_match_no_table_and_a_wrong_password_name_what_to_fix() {
    let stack = Stack::from_env();
    let config = write_config(
        &stack,
        &unique_name("none"),
        &unique_name("none_slot"),
        &unique_name("none_pub"),
        "no_such_schema",
    );
    let (code, stderr) = run_to_failure(&config);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("no_such_schema.*") && stderr.contains("tables.include"),
        "{stderr}"
    );

    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("password = \"sluice\"", "password = \"wrong\"");
    std::fs::write(&config, text).unwrap();
    let (code, stderr) = run_to_failure(&config);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("password") && stderr.contains("sluice"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upsert_mode_sends_bare_rows_and_tombstones_for_deletes() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("upsert");
    let prefix = unique_name("upsert");
    let slot = unique_name("upsert_slot");
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.kv (k text PRIMARY KEY, v int);
         INSERT INTO {schema}.kv VALUES ('a', 1);"
    ))
    .await
    .unwrap();
    let config = write_config(&stack, &prefix, &slot, &unique_name("upsert_pub"), &schema);
    let text = std::fs::read_to_string(&config).unwrap() + "\n[events]\nmode = \"upsert\"\n";
    std::fs::write(&config, text).unwrap();
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    let topics = [format!("{prefix}.{schema}.kv")];
    read_records(&stack, &topics, 1).await;
    sql.batch_execute(&format!(
        "UPDATE {schema}.kv SET v = 2 WHERE k = 'a'; DELETE FROM {schema}.kv WHERE k = 'a';"
    ))
    .await
    .unwrap();
    wait_for_records(&stack, &topics, 3).await;
    stop_and_drop_slot(sluice, &sql, &slot).await;
    let records = read_records_exactly(&stack, &topics, 3).await;
    let values: Vec<Option<Value>> = records
        .iter()
        .map(|(_, key, value)| {
            assert_eq!(key["k"], Value::String("a".into()));
            value.as_ref().map(|row| {
                assert!(
                    !row.contains_key("op"),
                    "a bare row, not an envelope: {row:?}"
                );
                row["v"].clone()
            })
        })
        .collect();
    assert_eq!(values, [Some(Value::Int(1)), Some(Value::Int(2)), None]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_table_is_copied_in_page_ranges_every_row_exactly_once() {
    const ROWS: i64 = 20_000;
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("chunks");
    let (prefix, slot) = (unique_name("chunks"), unique_name("chunks_slot"));
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.big (id bigint PRIMARY KEY, pad text);
         INSERT INTO {schema}.big SELECT g, repeat('x', 200) FROM generate_series(1, {ROWS}) g;
         ANALYZE {schema}.big;"
    ))
    .await
    .unwrap();
    let config = write_config(&stack, &prefix, &slot, &unique_name("chunks_pub"), &schema);
    let text = std::fs::read_to_string(&config).unwrap()
        + "\n[snapshot]\nparallelism = 2\nchunk_rows = 3000\n";
    std::fs::write(&config, text).unwrap();
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    let topics = [format!("{prefix}.{schema}.big")];
    wait_for_records(&stack, &topics, 20_000).await;
    stop_and_drop_slot(sluice, &sql, &slot).await;
    let records = read_records_exactly(&stack, &topics, 20_000).await;
    let mut ids: Vec<i64> = records
        .iter()
        .map(|(_, key, _)| match key["id"] {
            Value::Long(id) => id,
            ref other => panic!("{other:?}"),
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 20_000, "every row once");
    assert_eq!((ids[0], ids[ids.len() - 1]), (1, ROWS));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_capture_still_advances_the_slot_past_other_tables_writes() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("idle");
    let (prefix, slot) = (unique_name("idle"), unique_name("idle_slot"));
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.quiet (id int PRIMARY KEY);
         CREATE TABLE public.{schema}_busy (id int PRIMARY KEY, pad text);"
    ))
    .await
    .unwrap();
    let config = write_config(&stack, &prefix, &slot, &unique_name("idle_pub"), &schema);
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    wait_until_streaming(&sql, &slot).await;
    // Writes only to a table outside the publication.
    sql.batch_execute(&format!(
        "INSERT INTO public.{schema}_busy SELECT g, repeat('x', 500) FROM generate_series(1, 5000) g;"
    ))
    .await
    .unwrap();
    let written = current_wal_lsn(&sql).await;
    wait_until_confirmed(&sql, &slot, &written, "keepalives advanced the idle slot").await;
    // The slot lets go of that WAL too: once a checkpoint logs the running transactions, its
    // restart_lsn moves past the writes, so they are not retained, however much the other
    // table writes. (How much WAL the server holds is no measure: other tests write plenty.)
    let admin = stack.pg_connect("postgres").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        admin
            .batch_execute(&format!(
                "CHECKPOINT; INSERT INTO public.{schema}_busy SELECT g, 'y' FROM generate_series(-100, -1) g ON CONFLICT (id) DO UPDATE SET pad = 'z';"
            ))
            .await
            .unwrap();
        let released: bool = sql
            .query_one(
                "SELECT restart_lsn >= $2::text::pg_lsn FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot, &written],
            )
            .await
            .unwrap()
            .get(0);
        if released {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the idle slot's restart_lsn passed {written}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop_and_drop_slot(sluice, &sql, &slot).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_too_large_for_the_servers_memory_arrives_whole_and_once() {
    // 300,000 rows of ~120 bytes outgrow logical_decoding_work_mem (64 MB): the walsender
    // streams the transaction before it commits, and sluice keeps it until it does.
    const ROWS: usize = 300_000;
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("bigtx");
    let (prefix, slot) = (unique_name("bigtx"), unique_name("bigtx_slot"));
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.t (id int PRIMARY KEY, pad text);"
    ))
    .await
    .unwrap();
    let config = write_config(&stack, &prefix, &slot, &unique_name("bigtx_pub"), &schema);
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    wait_until_streaming(&sql, &slot).await;
    sql.batch_execute(&format!(
        "INSERT INTO {schema}.t SELECT g, repeat('x', 120) FROM generate_series(1, {ROWS}) g"
    ))
    .await
    .unwrap();
    let topics = [format!("{prefix}.{schema}.t")];
    wait_for_records(&stack, &topics, ROWS).await;
    let streamed: i64 = sql
        .query_one(
            "SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap()
        .get(0);
    stop_and_drop_slot(sluice, &sql, &slot).await;
    let records = read_records_exactly(&stack, &topics, ROWS).await;
    let mut ids: Vec<i32> = records
        .iter()
        .map(|(_, key, value)| {
            assert_eq!(value.as_ref().unwrap()["op"], Value::String("c".into()));
            match key["id"] {
                Value::Int(id) => id,
                ref other => panic!("{other:?}"),
            }
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), ROWS, "every row once");
    assert!(
        streamed >= 1,
        "the transaction was streamed by the server ({streamed} streamed)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_heartbeat_message_is_emitted_at_the_configured_interval() {
    const INTERVAL: Duration = Duration::from_millis(500);
    const COUNTED: u32 = 10;
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    // A database of the test's own: logical decoding sees only its database's messages, so a
    // slot there counts this sluice's heartbeats and no other's.
    let database = unique_name("heartbeat");
    sql.batch_execute(&format!("CREATE DATABASE {database}"))
        .await
        .unwrap();
    let db = stack.pg_connect_database(&database, "sluice").await;
    db.batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .await
        .unwrap();
    let (prefix, slot) = (unique_name("heartbeat"), unique_name("heartbeat_slot"));
    let witness = unique_name("heartbeat_witness");
    db.execute(
        "SELECT pg_create_logical_replication_slot($1, 'test_decoding')",
        &[&witness],
    )
    .await
    .unwrap();
    let config = write_config(
        &stack,
        &prefix,
        &slot,
        &unique_name("heartbeat_pub"),
        "public",
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(
            &format!("database = \"{}\"", stack.pg_database),
            &format!("database = \"{database}\""),
        )
        .replace(
            "[replication]\n",
            &format!(
                "[replication]\nheartbeat_interval = \"{}ms\"\n",
                INTERVAL.as_millis()
            ),
        );
    std::fs::write(&config, text).unwrap();
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    // The heartbeats the witness slot has decoded since it was last asked, and when.
    let heartbeats = async || -> (u32, Instant) {
        let count: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_logical_slot_get_changes($1, NULL, NULL)
                  WHERE data LIKE 'message: transactional: 0 prefix: sluice-heartbeat,%'",
                &[&witness],
            )
            .await
            .unwrap()
            .get(0);
        (u32::try_from(count).unwrap(), Instant::now())
    };
    // From the first heartbeat seen to the COUNTED-th after it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut seen, mut first) = (0, None);
    let spacing = loop {
        let (count, at) = heartbeats().await;
        seen += count;
        match first {
            None if seen > 0 => first = Some((seen, at)),
            Some((from, since)) if seen >= from + COUNTED => {
                break at.duration_since(since) / (seen - from);
            }
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "heartbeats kept coming: {seen} seen in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!("heartbeats {spacing:?} apart on average (configured {INTERVAL:?})");
    // The mean over ten: a late tick is caught up with at the next (tokio's interval never
    // runs ahead of its schedule), so neither bound depends on how busy the machine is.
    assert!(
        spacing >= INTERVAL / 2 && spacing <= INTERVAL * 4,
        "heartbeats {spacing:?} apart on average, configured every {INTERVAL:?}"
    );
    stop_and_drop_slot(sluice, &db, &slot).await;
    db.execute("SELECT pg_drop_replication_slot($1)", &[&witness])
        .await
        .unwrap();
    drop(db);
    sql.batch_execute(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unchanged_toasted_value_is_marked_never_a_silent_null_and_filled_in_with_full_identity()
{
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("toast");
    let (prefix, slot) = (unique_name("toast"), unique_name("toast_slot"));
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.docs (id int PRIMARY KEY, n int, body text);"
    ))
    .await
    .unwrap();
    let config = write_config(&stack, &prefix, &slot, &unique_name("toast_pub"), &schema);
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    let topics = [format!("{prefix}.{schema}.docs")];
    wait_until_streaming(&sql, &slot).await;
    // ~22 kB of hex: stored out of line, so an update that leaves it alone does not send it.
    sql.batch_execute(&format!(
        "INSERT INTO {schema}.docs SELECT 1, 0, string_agg(md5(g::text), '') FROM generate_series(1, 700) g;
         UPDATE {schema}.docs SET n = 1 WHERE id = 1;
         ALTER TABLE {schema}.docs REPLICA IDENTITY FULL;
         UPDATE {schema}.docs SET n = 2 WHERE id = 1;"
    ))
    .await
    .unwrap();
    let body: String = sql
        .query_one(&format!("SELECT body FROM {schema}.docs WHERE id = 1"), &[])
        .await
        .unwrap()
        .get(0);
    wait_for_records(&stack, &topics, 3).await;
    stop_and_drop_slot(sluice, &sql, &slot).await;
    // One key, one partition: the three events in their order.
    let records = read_records_exactly(&stack, &topics, 3).await;
    let after = |i: usize| {
        let value = records[i].2.as_ref().unwrap();
        let Value::Record(fields) = value["after"].clone() else {
            match &value["after"] {
                Value::Union(_, inner) => match inner.as_ref() {
                    Value::Record(fields) => {
                        return (fields.clone(), value["unchanged_toast"].clone());
                    }
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            }
        };
        (fields, value["unchanged_toast"].clone())
    };
    let field = |fields: &Vec<(String, Value)>, name: &str| {
        let value = fields.iter().find(|(n, _)| n == name).unwrap().1.clone();
        match value {
            Value::Union(_, inner) => *inner,
            other => other,
        }
    };
    let (inserted, unchanged) = after(0);
    assert_eq!(field(&inserted, "body"), Value::String(body.clone()));
    assert_eq!(unchanged, Value::Null);
    let (default_identity, unchanged) = after(1);
    assert_eq!(
        field(&default_identity, "body"),
        Value::String("__debezium_unavailable_value".into()),
        "marked, not a silent null"
    );
    assert_eq!(unchanged, Value::Array(vec![Value::String("body".into())]));
    let (full_identity, unchanged) = after(2);
    assert_eq!(
        field(&full_identity, "body"),
        Value::String(body),
        "filled in from the old row"
    );
    assert_eq!(unchanged, Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn truncates_become_events_and_chosen_messages_go_to_the_messages_topic() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("trunc");
    let (prefix, slot) = (unique_name("trunc"), unique_name("trunc_slot"));
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.t (id int PRIMARY KEY);
         INSERT INTO {schema}.t VALUES (1);"
    ))
    .await
    .unwrap();
    let config = write_config(&stack, &prefix, &slot, &unique_name("trunc_pub"), &schema);
    let text = std::fs::read_to_string(&config).unwrap()
        + "\n[events]\ntruncate = true\nmessage_prefixes = [\"audit\"]\n";
    std::fs::write(&config, text).unwrap();
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    let table_topic = format!("{prefix}.{schema}.t");
    let message_topic = format!("{prefix}.message");
    read_records(&stack, std::slice::from_ref(&table_topic), 1).await;
    sql.batch_execute(&format!(
        "TRUNCATE {schema}.t;
         SELECT pg_logical_emit_message(true, 'audit.{schema}', 'in a transaction');
         SELECT pg_logical_emit_message(false, 'audit.{schema}', 'on its own');
         SELECT pg_logical_emit_message(false, 'other.{schema}', 'not chosen');"
    ))
    .await
    .unwrap();
    // Other tests' messages may share the prefix `audit`: only this test's count.
    let ours = |(_, key, _): &&Record| key["prefix"] == Value::String(format!("audit.{schema}"));
    let message_topics = std::slice::from_ref(&message_topic);
    read_records_until(&stack, message_topics, |records| {
        records.iter().filter(ours).count() >= 2
    })
    .await;
    // The snapshot's row, then the truncate on each of the topic's two partitions.
    wait_for_records(&stack, std::slice::from_ref(&table_topic), 3).await;
    stop_and_drop_slot(sluice, &sql, &slot).await;
    let truncate = read_records_exactly(&stack, std::slice::from_ref(&table_topic), 3).await;
    let truncates: Vec<_> = truncate
        .iter()
        .filter(|(_, key, _)| key.is_empty())
        .collect();
    assert_eq!(truncates.len(), 2, "a keyless event on every partition");
    assert!(
        truncates.iter().all(|(_, _, value)| value
            .as_ref()
            .is_some_and(|v| v["op"] == Value::String("t".into()))),
        "op t"
    );
    let messages = read_records_to_end(&stack, message_topics, 0).await;
    // The non-transactional message is sent when decoded, before the commit of the statement
    // batch around it; the transactional one at that commit. Order between them is not fixed.
    let mut contents: Vec<Value> = messages
        .iter()
        .filter(ours)
        .map(|(_, _, value)| {
            let value = value.as_ref().unwrap();
            assert_eq!(value["op"], Value::String("m".into()));
            let Value::Record(message) = &value["message"] else {
                panic!("{value:?}")
            };
            message
                .iter()
                .find(|(n, _)| n == "content")
                .unwrap()
                .1
                .clone()
        })
        .collect();
    contents.sort_by_key(|v| format!("{v:?}"));
    assert_eq!(
        contents,
        [
            Value::Bytes(b"in a transaction".to_vec()),
            Value::Bytes(b"on its own".to_vec())
        ],
        "each of this test's chosen messages once, and no other"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_changes_register_new_versions_and_every_event_decodes_with_its_own() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("evolve");
    let (prefix, slot, publication) = (
        unique_name("evolve"),
        unique_name("evolve_slot"),
        unique_name("evolve_pub"),
    );
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.t (id int PRIMARY KEY, a int, b text);
         INSERT INTO {schema}.t VALUES (1, 1, 'one');"
    ))
    .await
    .unwrap();
    let config = write_config(&stack, &prefix, &slot, &publication, &schema);
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    let topic = format!("{prefix}.{schema}.t");
    read_records(&stack, std::slice::from_ref(&topic), 1).await;
    for step in [
        format!(
            "ALTER TABLE {schema}.t ADD COLUMN c int DEFAULT 5; INSERT INTO {schema}.t (id, a, b) VALUES (2, 2, 'two')"
        ),
        format!("ALTER TABLE {schema}.t DROP COLUMN b; INSERT INTO {schema}.t VALUES (3, 3, 3)"),
        format!(
            "ALTER TABLE {schema}.t RENAME COLUMN a TO a2; INSERT INTO {schema}.t VALUES (4, 4, 4)"
        ),
        format!(
            "ALTER TABLE {schema}.t ALTER COLUMN a2 TYPE bigint; INSERT INTO {schema}.t VALUES (5, 5, 5)"
        ),
        format!(
            "ALTER TABLE {schema}.t ALTER COLUMN c SET NOT NULL; INSERT INTO {schema}.t VALUES (6, 6, 6)"
        ),
        format!(
            "ALTER TABLE {schema}.t ALTER COLUMN c DROP NOT NULL; INSERT INTO {schema}.t VALUES (8, 8, NULL)"
        ),
        // A table that joins the publication while sluice runs.
        format!(
            "CREATE TABLE {schema}.u (id int PRIMARY KEY); ALTER PUBLICATION {publication} ADD TABLE {schema}.u; INSERT INTO {schema}.u VALUES (7)"
        ),
    ] {
        sql.batch_execute(&step).await.unwrap();
    }
    let joined_topic = [format!("{prefix}.{schema}.u")];
    wait_for_records(&stack, std::slice::from_ref(&topic), 7).await;
    // Its insert, then its row again from the incremental snapshot every table that joins
    // the capture gets.
    wait_for_records(&stack, &joined_topic, 2).await;
    stop_and_drop_slot(sluice, &sql, &slot).await;
    let raw = read_raw_to_end(&stack, std::slice::from_ref(&topic), 7).await;
    assert_exactly(std::slice::from_ref(&topic), 7, &raw);
    let records = decode_records(&stack, raw.clone()).await;
    let after = |id: i32| -> std::collections::BTreeMap<String, Value> {
        let (_, _, value) = records
            .iter()
            .find(|(_, key, _)| key["id"] == Value::Int(id))
            .unwrap_or_else(|| panic!("row {id} arrived"));
        // read_records unwraps the envelope's unions; the row's own fields are unions too.
        let Value::Record(fields) = &value.as_ref().unwrap()["after"] else {
            panic!("{value:?}")
        };
        fields
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::Union(_, inner) => inner.as_ref().clone(),
                    other => other.clone(),
                };
                (k.clone(), v)
            })
            .collect()
    };
    assert_eq!(after(2)["c"], Value::Int(5), "the new column's default");
    assert!(!after(3).contains_key("b"), "the dropped column is gone");
    assert_eq!(after(4)["a2"], Value::Int(4), "the renamed column");
    assert_eq!(after(5)["a2"], Value::Long(5), "the widened column");
    assert_eq!(after(6)["c"], Value::Int(6));
    assert_eq!(after(8)["c"], Value::Null, "NOT NULL dropped");
    // Row 1 was written before c existed; read with the schema of row 2 (after ADD COLUMN c
    // DEFAULT 5) it has the value PostgreSQL shows for it: the column's default.
    let schema_of = |payload: &[u8]| {
        let id = u32::from_be_bytes(payload[1..5].try_into().unwrap());
        let text = std::process::Command::new("curl")
            .args(["-fsS", &format!("{}/schemas/ids/{id}", stack.registry_url)])
            .output()
            .unwrap()
            .stdout;
        let body: serde_json::Value = serde_json::from_slice(&text).unwrap();
        apache_avro::Schema::parse_str(body["schema"].as_str().unwrap()).unwrap()
    };
    let decode =
        |payload: &[u8], writer: &apache_avro::Schema, reader: Option<&apache_avro::Schema>| {
            let builder = apache_avro::reader::datum::GenericDatumReader::builder(writer);
            let reader = match reader {
                Some(reader) => builder.reader_schema(reader).build(),
                None => builder.build(),
            };
            reader.unwrap().read_value(&mut &payload[5..]).unwrap()
        };
    let payload_of = |id: i32| {
        raw.iter()
            .find(|(_, key, _)| {
                let key = key.as_deref().unwrap();
                decode(key, &schema_of(key), None)
                    == Value::Record(vec![("id".to_owned(), Value::Int(id))])
            })
            .and_then(|(_, _, value)| value.clone())
            .unwrap()
    };
    let (old, new) = (payload_of(1), payload_of(2));
    let (writer, reader) = (schema_of(&old), schema_of(&new));
    let resolved = decode(&old, &writer, Some(&reader));
    let Value::Record(envelope) = resolved else {
        panic!("{resolved:?}")
    };
    let after_field = &envelope.iter().find(|(n, _)| n == "after").unwrap().1;
    let Value::Union(_, row) = after_field else {
        panic!("{after_field:?}")
    };
    let Value::Record(row) = row.as_ref() else {
        panic!("{row:?}")
    };
    let c = &row.iter().find(|(n, _)| n == "c").unwrap().1;
    assert_eq!(c, &Value::Union(0, Box::new(Value::Int(5))), "the default");
    assert_eq!(
        after(1)["b"],
        Value::String("one".into()),
        "old events decode with their own schema"
    );
    let joined = read_records_exactly(&stack, &joined_topic, 2).await;
    let ops: Vec<_> = joined
        .iter()
        .map(|(_, key, value)| (key["id"].clone(), value.as_ref().map(|v| v["op"].clone())))
        .collect();
    assert_eq!(
        ops,
        [
            (Value::Int(7), Some(Value::String("c".into()))),
            (Value::Int(7), Some(Value::String("r".into())))
        ],
        "the joined table is captured, then snapshotted"
    );
    let versions: serde_json::Value = serde_json::from_str(
        &std::process::Command::new("curl")
            .args([
                "-fsS",
                &format!("{}/subjects/{topic}-value/versions", stack.registry_url),
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap(),
    )
    .unwrap();
    assert!(
        versions.as_array().unwrap().len() >= 5,
        "a version per shape: {versions}"
    );
}

/// The `before` and `after` rows of each event, as field maps (None: no row).
type Rows = (
    Option<std::collections::BTreeMap<String, Value>>,
    Option<std::collections::BTreeMap<String, Value>>,
);

fn rows_of(value: &std::collections::BTreeMap<String, Value>) -> Rows {
    let row = |name: &str| match &value[name] {
        Value::Record(fields) => Some(
            fields
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::Union(_, inner) => inner.as_ref().clone(),
                        other => other.clone(),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        _ => None,
    };
    (row("before"), row("after"))
}

#[tokio::test(flavor = "multi_thread")]
async fn each_replica_identity_gives_the_before_it_allows() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("identity");
    let (prefix, slot) = (unique_name("identity"), unique_name("identity_slot"));
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.by_default (id int PRIMARY KEY, v text);
         CREATE TABLE {schema}.by_full (id int PRIMARY KEY, v text);
         ALTER TABLE {schema}.by_full REPLICA IDENTITY FULL;
         CREATE TABLE {schema}.by_index (code text NOT NULL, v text);
         CREATE UNIQUE INDEX ON {schema}.by_index (code);
         ALTER TABLE {schema}.by_index REPLICA IDENTITY USING INDEX by_index_code_idx;
         INSERT INTO {schema}.by_default VALUES (1, 'a');
         INSERT INTO {schema}.by_full VALUES (1, 'a');
         INSERT INTO {schema}.by_index VALUES ('k', 'a');"
    ))
    .await
    .unwrap();
    let config = write_config(
        &stack,
        &prefix,
        &slot,
        &unique_name("identity_pub"),
        &schema,
    );
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    let topic = |table: &str| format!("{prefix}.{schema}.{table}");
    let topics = [topic("by_default"), topic("by_full"), topic("by_index")];
    read_records(&stack, &topics, 3).await;
    sql.batch_execute(&format!(
        "UPDATE {schema}.by_default SET v = 'b'; DELETE FROM {schema}.by_default;
         UPDATE {schema}.by_full SET v = 'b'; DELETE FROM {schema}.by_full;
         UPDATE {schema}.by_index SET v = 'b'; DELETE FROM {schema}.by_index;"
    ))
    .await
    .unwrap();
    wait_for_records(&stack, &topics, 3 * 4).await;
    stop_and_drop_slot(sluice, &sql, &slot).await;
    for (table, update_before, delete_before) in [
        // DEFAULT: no old row on an update that keeps the key; the key alone on a delete.
        (
            "by_default",
            None,
            Some(vec![("id", Value::Int(1)), ("v", Value::Null)]),
        ),
        // FULL: the whole old row each time.
        (
            "by_full",
            Some(vec![
                ("id", Value::Int(1)),
                ("v", Value::String("a".into())),
            ]),
            Some(vec![
                ("id", Value::Int(1)),
                ("v", Value::String("b".into())),
            ]),
        ),
        // USING INDEX: the index's columns are the key.
        (
            "by_index",
            None,
            Some(vec![
                ("code", Value::String("k".into())),
                ("v", Value::Null),
            ]),
        ),
    ] {
        // Snapshot row, update, delete, tombstone: one key, so in this order.
        let records = read_records_exactly(&stack, &[topic(table)], 4).await;
        let ops: Vec<Option<&Value>> = records
            .iter()
            .map(|(_, _, v)| v.as_ref().map(|v| &v["op"]))
            .collect();
        let op = |op: &str| Some(Value::String(op.into()));
        assert_eq!(
            ops,
            [op("r").as_ref(), op("u").as_ref(), op("d").as_ref(), None],
            "{table}"
        );
        let values: Vec<_> = records.iter().filter_map(|(_, _, v)| v.as_ref()).collect();
        let by_op = |op: &str| {
            values
                .iter()
                .find(|v| v["op"] == Value::String(op.into()))
                .map(|v| rows_of(v))
                .unwrap_or_else(|| panic!("{table}: an {op} event"))
        };
        let expect = |fields: Option<Vec<(&str, Value)>>| {
            fields.map(|f| f.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
        };
        assert_eq!(
            by_op("u").0,
            expect(update_before),
            "{table}: update's before"
        );
        assert_eq!(
            by_op("d").0,
            expect(delete_before),
            "{table}: delete's before"
        );
        assert_eq!(
            records[0].1.len(),
            1,
            "{table}: the key has the identity's columns"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partitioned_table_is_captured_through_its_root_on_one_topic() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("parts");
    let (prefix, slot) = (unique_name("parts"), unique_name("parts_slot"));
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.events (id int, region text, note text, PRIMARY KEY (id, region))
           PARTITION BY LIST (region);
         CREATE TABLE {schema}.events_eu PARTITION OF {schema}.events FOR VALUES IN ('eu');
         CREATE TABLE {schema}.events_us PARTITION OF {schema}.events FOR VALUES IN ('us')
           PARTITION BY HASH (id);
         CREATE TABLE {schema}.events_us0 PARTITION OF {schema}.events_us
           FOR VALUES WITH (MODULUS 2, REMAINDER 0);
         CREATE TABLE {schema}.events_us1 PARTITION OF {schema}.events_us
           FOR VALUES WITH (MODULUS 2, REMAINDER 1);
         INSERT INTO {schema}.events VALUES (1, 'eu', 'a'), (2, 'us', 'b'), (3, 'us', 'c');"
    ))
    .await
    .unwrap();
    let config = write_config(&stack, &prefix, &slot, &unique_name("parts_pub"), &schema);
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    wait_until_streaming(&sql, &slot).await;
    sql.batch_execute(&format!(
        "INSERT INTO {schema}.events VALUES (4, 'eu', 'd'), (5, 'us', 'e');
         UPDATE {schema}.events SET note = 'b2' WHERE id = 2;
         UPDATE {schema}.events SET region = 'eu' WHERE id = 3;
         DELETE FROM {schema}.events WHERE id = 1;"
    ))
    .await
    .unwrap();
    let topic = format!("{prefix}.{schema}.events");
    // 3 snapshot rows; 2 creates, 1 update; the row moving partition changes its key: a delete
    // (+ tombstone) and a create; a delete (+ tombstone).
    let count = 3 + 3 + 3 + 2;
    wait_for_records(&stack, std::slice::from_ref(&topic), count).await;
    stop_and_drop_slot(sluice, &sql, &slot).await;
    let events = read_events_exactly(&stack, std::slice::from_ref(&topic), count).await;
    let mut seen: Vec<(String, i32, String)> = events
        .iter()
        .filter_map(|e| {
            let op = e.op.clone()?;
            let row = e.after.as_ref().or(e.before.as_ref())?;
            let (Value::Int(id), Value::String(region)) = (&row["id"], &row["region"]) else {
                panic!("{row:?}")
            };
            Some((op, *id, region.clone()))
        })
        .collect();
    seen.sort();
    let expected: Vec<(String, i32, String)> = [
        ("c", 3, "eu"),
        ("c", 4, "eu"),
        ("c", 5, "us"),
        ("d", 1, "eu"),
        ("d", 3, "us"),
        ("r", 1, "eu"),
        ("r", 2, "us"),
        ("r", 3, "us"),
        ("u", 2, "us"),
    ]
    .iter()
    .map(|(op, id, region)| ((*op).to_owned(), *id, (*region).to_owned()))
    .collect();
    assert_eq!(seen, expected);
    // No topic of a partition's own.
    let partitions: i64 = sql
        .query_one(
            "SELECT count(*) FROM pg_publication_tables WHERE pubname = (
               SELECT pubname FROM pg_publication p JOIN pg_publication_rel r ON r.prpubid = p.oid
                WHERE r.prrelid = $1::text::regclass) AND tablename <> 'events'",
            &[&format!("{schema}.events")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(partitions, 0, "the publication lists the root only");
    assert!(events.iter().all(|e| e.topic == topic));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publication_of_a_partitioned_table_not_through_its_root_is_altered_to_it() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("partroot");
    let (prefix, slot) = (unique_name("partroot"), unique_name("partroot_slot"));
    let publication = unique_name("partroot_pub");
    // The publication lists the root, and so publishes each partition as a table of its own.
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.events (id int, region text, PRIMARY KEY (id, region))
           PARTITION BY LIST (region);
         CREATE TABLE {schema}.events_eu PARTITION OF {schema}.events FOR VALUES IN ('eu');
         CREATE PUBLICATION {publication} FOR TABLE {schema}.events;"
    ))
    .await
    .unwrap();
    let config = write_config(&stack, &prefix, &slot, &publication, &schema);
    let mut sluice = Sluice::start_capturing(env!("CARGO_BIN_EXE_sluice-cli"), &config, "warn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while streams_binary(&sql, &slot).await.is_none() {
        assert!(sluice.running(), "sluice stopped: {}", sluice.stderr());
        assert!(Instant::now() < deadline, "sluice streams");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sql.batch_execute(&format!("INSERT INTO {schema}.events VALUES (1, 'eu')"))
        .await
        .unwrap();
    let topic = format!("{prefix}.{schema}.events");
    wait_for_records(&stack, std::slice::from_ref(&topic), 1).await;
    stop_and_drop_slot(sluice, &sql, &slot).await;
    let via_root: bool = sql
        .query_one(
            "SELECT pubviaroot FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await
        .unwrap()
        .get(0);
    assert!(via_root, "the publication now publishes through the root");
    let events = read_events_exactly(&stack, std::slice::from_ref(&topic), 1).await;
    assert_eq!(events[0].op.as_deref(), Some("c"));
}

#[tokio::test(flavor = "multi_thread")]
async fn transaction_metadata_brackets_each_transaction_and_orders_its_events() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("txmeta");
    let (prefix, slot) = (unique_name("txmeta"), unique_name("txmeta_slot"));
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.a (id int PRIMARY KEY);
         CREATE TABLE {schema}.b (id int PRIMARY KEY, n int);"
    ))
    .await
    .unwrap();
    let config = write_config(&stack, &prefix, &slot, &unique_name("txmeta_pub"), &schema);
    let text = std::fs::read_to_string(&config).unwrap() + "\n[events]\ntransactions = true\n";
    std::fs::write(&config, text).unwrap();
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    wait_until_streaming(&sql, &slot).await;
    sql.batch_execute(&format!(
        "BEGIN;
         INSERT INTO {schema}.a VALUES (1);
         INSERT INTO {schema}.b VALUES (1, 0);
         INSERT INTO {schema}.a VALUES (2);
         UPDATE {schema}.b SET n = 1 WHERE id = 1;
         COMMIT;
         INSERT INTO {schema}.b VALUES (2, 0);"
    ))
    .await
    .unwrap();
    let xid_topic = format!("{prefix}.transaction");
    let table_topics = [
        format!("{prefix}.{schema}.a"),
        format!("{prefix}.{schema}.b"),
    ];
    wait_for_records(&stack, std::slice::from_ref(&xid_topic), 4).await;
    wait_for_records(&stack, &table_topics, 5).await;
    stop_and_drop_slot(sluice, &sql, &slot).await;
    let markers = read_records_exactly(&stack, std::slice::from_ref(&xid_topic), 4).await;
    let string = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => panic!("{other:?}"),
    };
    // BEGIN, END of the first transaction, BEGIN, END of the second, in order (one key each,
    // so one partition each).
    let mut by_id: std::collections::BTreeMap<
        String,
        Vec<&std::collections::BTreeMap<String, Value>>,
    > = Default::default();
    for (_, key, value) in &markers {
        by_id
            .entry(string(&key["id"]))
            .or_default()
            .push(value.as_ref().unwrap());
    }
    assert_eq!(by_id.len(), 2, "{markers:?}");
    let mut ends = Vec::new();
    for (id, records) in &by_id {
        assert_eq!(records.len(), 2, "{id}: {records:?}");
        assert_eq!(string(&records[0]["status"]), "BEGIN");
        assert_eq!(string(&records[1]["status"]), "END");
        assert_eq!(string(&records[1]["id"]), *id);
        ends.push((id.clone(), records[1]["event_count"].clone()));
    }
    ends.sort_by_key(|(_, count)| format!("{count:?}"));
    assert_eq!(ends[0].1, Value::Long(1));
    assert_eq!(ends[1].1, Value::Long(4));
    let big = &ends[1].0;
    let events = read_records_exactly(&stack, &table_topics, 5).await;
    let mut orders: Vec<(i64, String, i64)> = events
        .iter()
        .filter_map(|(topic, _, value)| {
            let Value::Record(block) = &value.as_ref()?["transaction"] else {
                panic!("{value:?}")
            };
            let get = |name: &str| &block.iter().find(|(n, _)| n == name).unwrap().1;
            if string(get("id")) != *big {
                return None;
            }
            let (Value::Long(total), Value::Long(table)) =
                (get("total_order"), get("data_collection_order"))
            else {
                panic!("{block:?}")
            };
            Some((*total, topic.rsplit('.').next().unwrap().to_owned(), *table))
        })
        .collect();
    orders.sort();
    assert_eq!(
        orders,
        [
            (1, "a".to_owned(), 1),
            (2, "b".to_owned(), 1),
            (3, "a".to_owned(), 2),
            (4, "b".to_owned(), 2)
        ]
    );
}
