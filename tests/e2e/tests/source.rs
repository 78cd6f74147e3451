//! The `source` block of events end to end (docs/semantics.md): snapshot rows say they are,
//! and each streamed event carries its transaction's id, commit LSN and commit time, the same
//! for all the events of a transaction.

use std::collections::BTreeMap;

use apache_avro::types::Value;
use sluice_e2e::pipeline::{
    Record, Sluice, fields, read_records_exactly, stop_and_drop_slot, wait_for_records,
    wait_until_streaming, write_config,
};
use sluice_e2e::{Stack, unique_name};

/// The `source` block of a record's value, its fields' unions unwrapped.
fn source_of(record: &Record) -> BTreeMap<String, Value> {
    fields(&record.2.as_ref().expect("not a tombstone")["source"])
}

fn text(value: &Value) -> &str {
    match value {
        Value::String(text) | Value::Enum(_, text) => text,
        other => panic!("not a string: {other:?}"),
    }
}

fn long(value: &Value) -> i64 {
    match value {
        Value::Long(n) => *n,
        other => panic!("not a long: {other:?}"),
    }
}

fn op(record: &Record) -> Option<&str> {
    record.2.as_ref().map(|value| text(&value["op"]))
}

/// The server's clock, in milliseconds since 1970.
async fn server_ms(sql: &impl tokio_postgres::GenericClient) -> i64 {
    sql.query_one(
        "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

/// What a streamed transaction of the test knows of itself: its xid (32 bits, as pgoutput
/// sends it), the WAL position before and after its commit, and the server's clock then.
struct Committed {
    xid: i64,
    lsn: (i64, i64),
    ms: (i64, i64),
}

/// Runs `statements` in one transaction, observed.
async fn commit(sql: &mut tokio_postgres::Client, statements: &str) -> Committed {
    let transaction = sql.transaction().await.unwrap();
    transaction.batch_execute(statements).await.unwrap();
    let xid: i64 = transaction
        .query_one("SELECT txid_current() % 4294967296", &[])
        .await
        .unwrap()
        .get(0);
    let before_ms = server_ms(&transaction).await;
    let before_lsn: i64 = transaction
        .query_one("SELECT (pg_current_wal_lsn() - '0/0')::bigint", &[])
        .await
        .unwrap()
        .get(0);
    transaction.commit().await.unwrap();
    let after_lsn: i64 = sql
        .query_one("SELECT (pg_current_wal_lsn() - '0/0')::bigint", &[])
        .await
        .unwrap()
        .get(0);
    Committed {
        xid,
        lsn: (before_lsn, after_lsn),
        ms: (before_ms, server_ms(&*sql).await),
    }
}

/// A table `t` of three rows in a new schema, and sluice capturing it, streaming.
async fn captured(
    stack: &Stack,
    sql: &tokio_postgres::Client,
) -> (String, String, String, Sluice, i64, i64) {
    let schema = unique_name("source");
    let (prefix, slot) = (unique_name("source"), unique_name("source_slot"));
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.t (id int PRIMARY KEY, v text);
         INSERT INTO {schema}.t VALUES (1, 'a'), (2, 'b'), (3, 'c');"
    ))
    .await
    .unwrap();
    let config = write_config(stack, &prefix, &slot, &unique_name("source_pub"), &schema);
    let started = server_ms(sql).await;
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    wait_until_streaming(sql, &slot).await;
    let streaming = server_ms(sql).await;
    (schema, prefix, slot, sluice, started, streaming)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_source_block_carries_snapshot_flag_transaction_lsn_and_commit_time() {
    let stack = Stack::from_env();
    let mut sql = stack.pg_connect("sluice").await;
    let (schema, prefix, slot, sluice, started, streaming) = captured(&stack, &sql).await;
    let first = commit(
        &mut sql,
        &format!(
            "INSERT INTO {schema}.t VALUES (4, 'd');
             UPDATE {schema}.t SET v = 'a2' WHERE id = 1;
             DELETE FROM {schema}.t WHERE id = 2;"
        ),
    )
    .await;
    let second = commit(&mut sql, &format!("INSERT INTO {schema}.t VALUES (5, 'e')")).await;
    let topic = [format!("{prefix}.{schema}.t")];
    // 3 snapshot rows; create, update, delete and its tombstone; create.
    wait_for_records(&stack, &topic, 3 + 4 + 1).await;
    stop_and_drop_slot(sluice, &sql, &slot).await;
    let records = read_records_exactly(&stack, &topic, 3 + 4 + 1).await;

    for record in records.iter().filter(|r| r.2.is_some()) {
        let source = source_of(record);
        assert_eq!(text(&source["db"]), stack.pg_database, "{source:?}");
        assert_eq!(text(&source["schema"]), schema, "{source:?}");
        assert_eq!(text(&source["table"]), "t", "{source:?}");
        assert_eq!(text(&source["name"]), prefix, "{source:?}");
    }
    // Snapshot rows: read while sluice started up.
    let snapshot: Vec<&Record> = records.iter().filter(|r| op(r) == Some("r")).collect();
    assert_eq!(snapshot.len(), 3);
    for record in &snapshot {
        let source = source_of(record);
        assert!(
            ["true", "last"].contains(&text(&source["snapshot"])),
            "{source:?}"
        );
        let ts = long(&source["ts_ms"]);
        assert!(
            (started..=streaming).contains(&ts),
            "{ts} in {started}..={streaming}"
        );
    }
    // Streamed events: the transaction's xid, commit LSN and commit time, the same for all of
    // its events; the second transaction's its own.
    let key = |record: &Record| record.1["id"].clone();
    let of_first: Vec<&Record> = records
        .iter()
        .filter(|r| matches!(op(r), Some("c" | "u" | "d")) && key(r) != Value::Int(5))
        .collect();
    let of_second: Vec<&Record> = records
        .iter()
        .filter(|r| op(r) == Some("c") && key(r) == Value::Int(5))
        .collect();
    assert_eq!((of_first.len(), of_second.len()), (3, 1), "{records:#?}");
    let mut lsns = Vec::new();
    for (events, committed) in [(of_first, &first), (of_second, &second)] {
        let sources: Vec<BTreeMap<String, Value>> = events.iter().map(|r| source_of(r)).collect();
        let lsn = long(&sources[0]["lsn"]);
        for source in &sources {
            assert_eq!(text(&source["snapshot"]), "false", "{source:?}");
            assert_eq!(long(&source["txId"]), committed.xid, "{source:?}");
            assert_eq!(long(&source["lsn"]), lsn, "one commit LSN: {sources:?}");
            let ts = long(&source["ts_ms"]);
            assert!(
                (committed.ms.0..=committed.ms.1).contains(&ts),
                "commit time {ts} in {:?}",
                committed.ms
            );
        }
        assert!(
            committed.lsn.0 < lsn && lsn < committed.lsn.1,
            "commit LSN {lsn:X} within {:X?}",
            committed.lsn
        );
        lsns.push(lsn);
    }
    assert!(lsns[0] < lsns[1]);
    assert_ne!(first.xid, second.xid);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_snapshots_last_row_is_marked_last() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let (schema, prefix, slot, sluice, _, _) = captured(&stack, &sql).await;
    let topic = [format!("{prefix}.{schema}.t")];
    wait_for_records(&stack, &topic, 3).await;
    stop_and_drop_slot(sluice, &sql, &slot).await;
    let records = read_records_exactly(&stack, &topic, 3).await;
    let mut markers: Vec<String> = records
        .iter()
        .map(|record| text(&source_of(record)["snapshot"]).to_owned())
        .collect();
    markers.sort();
    assert_eq!(
        markers,
        ["last", "true", "true"],
        "docs/semantics.md: `last` for the snapshot's last row"
    );
}
