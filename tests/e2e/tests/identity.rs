//! Replica identity and keys end to end: the key of a `REPLICA IDENTITY FULL` table stays its
//! primary key through schema changes, and a key change fills in unchanged TOASTed values
//! from the old row.

use apache_avro::types::Value;
use sluice_e2e::pipeline::{
    Sluice, read_events, stop_and_drop_slot, wait_until_streaming, write_config,
};
use sluice_e2e::{Stack, unique_name};

#[tokio::test(flavor = "multi_thread")]
async fn a_full_identity_tables_key_stays_its_primary_key_after_add_column() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("fullkey");
    let (prefix, slot) = (unique_name("fullkey"), unique_name("fullkey_slot"));
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.t (id int PRIMARY KEY, v text);
         ALTER TABLE {schema}.t REPLICA IDENTITY FULL;
         INSERT INTO {schema}.t VALUES (1, 'one');"
    ))
    .await
    .unwrap();
    let config = write_config(&stack, &prefix, &slot, &unique_name("fullkey_pub"), &schema);
    let mut sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    let topics = [format!("{prefix}.{schema}.t")];
    read_events(&stack, &topics, 1).await;
    wait_until_streaming(&sql, &slot).await;
    // pgoutput flags every column of a FULL table as part of the key in its Relation message;
    // the key must stay the primary key, or the registry refuses the new key schema.
    sql.batch_execute(&format!(
        "ALTER TABLE {schema}.t ADD COLUMN w int;
         UPDATE {schema}.t SET v = 'uno', w = 7 WHERE id = 1;
         INSERT INTO {schema}.t VALUES (2, 'two', 8);"
    ))
    .await
    .unwrap();
    let events = read_events(&stack, &topics, 3).await;
    for event in &events {
        assert_eq!(
            event.key.keys().collect::<Vec<_>>(),
            ["id"],
            "the key is the primary key: {event:?}"
        );
    }
    // Keys 1 and 2 may be on different partitions, read in any order.
    let update = events
        .iter()
        .find(|e| e.op.as_deref() == Some("u"))
        .unwrap();
    assert_eq!(update.key["id"], Value::Int(1));
    let after = update.after.as_ref().unwrap();
    assert_eq!(after["w"], Value::Int(7));
    assert_eq!(
        update.before.as_ref().unwrap()["v"],
        Value::String("one".into()),
        "the whole old row"
    );
    let created = events
        .iter()
        .find(|e| e.op.as_deref() == Some("c"))
        .unwrap();
    assert_eq!(created.key["id"], Value::Int(2));
    assert!(sluice.running(), "sluice carries on after the shape change");
    stop_and_drop_slot(sluice, &sql, &slot).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_change_of_a_full_identity_row_carries_its_unchanged_toasted_values() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("fulltoast");
    let (prefix, slot) = (unique_name("fulltoast"), unique_name("fulltoast_slot"));
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.docs (id int PRIMARY KEY, n int, body text, tags text[], doc jsonb);
         ALTER TABLE {schema}.docs REPLICA IDENTITY FULL;"
    ))
    .await
    .unwrap();
    let config = write_config(
        &stack,
        &prefix,
        &slot,
        &unique_name("fulltoast_pub"),
        &schema,
    );
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    let topics = [format!("{prefix}.{schema}.docs")];
    read_events(&stack, &topics, 0).await;
    wait_until_streaming(&sql, &slot).await;
    // Each value is large enough to be stored out of line, so an update that leaves it alone
    // does not send it in the new row.
    sql.batch_execute(&format!(
        "INSERT INTO {schema}.docs
           SELECT 1, 0, string_agg(md5(g::text), ''), array_agg(md5(g::text)),
                  jsonb_agg(md5(g::text))
             FROM generate_series(1, 700) g;
         UPDATE {schema}.docs SET id = 2 WHERE id = 1;"
    ))
    .await
    .unwrap();
    let stored = sql
        .query_one(
            &format!("SELECT body, array_length(tags, 1), doc::text FROM {schema}.docs"),
            &[],
        )
        .await
        .unwrap();
    let (body, tag_count, doc): (String, i32, String) =
        (stored.get(0), stored.get(1), stored.get(2));
    // The insert, then the key change: a delete of key 1 and its tombstone, a create of key 2.
    // Keys 1 and 2 may be on different partitions: each key's events are in order.
    let events = read_events(&stack, &topics, 4).await;
    let ops_of = |id: i32| -> Vec<Option<&str>> {
        events
            .iter()
            .filter(|e| e.key["id"] == Value::Int(id))
            .map(|e| e.op.as_deref())
            .collect()
    };
    assert_eq!(ops_of(1), [Some("c"), Some("d"), None]);
    assert_eq!(ops_of(2), [Some("c")]);
    let created = events
        .iter()
        .find(|e| e.key["id"] == Value::Int(2))
        .unwrap();
    let after = created.after.as_ref().unwrap();
    // Compared without printing: the value is 22 kB.
    assert!(
        after["body"] == Value::String(body),
        "filled in from the old row, not {}",
        if after["body"] == Value::String("__debezium_unavailable_value".into()) {
            "the placeholder"
        } else {
            "another value"
        }
    );
    let Value::Array(tags) = &after["tags"] else {
        panic!("tags: {:?}", after["tags"])
    };
    assert_eq!(tags.len(), usize::try_from(tag_count).unwrap());
    let Value::String(carried) = &after["doc"] else {
        panic!("doc: {:?}", after["doc"])
    };
    let same: bool = sql
        .query_one("SELECT $1::text::jsonb = $2::text::jsonb", &[carried, &doc])
        .await
        .unwrap()
        .get(0);
    assert!(same, "the jsonb value is the stored one");
    stop_and_drop_slot(sluice, &sql, &slot).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_update_that_keeps_a_toasted_key_is_an_update_under_that_key() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("toastkey");
    let (prefix, slot) = (unique_name("toastkey"), unique_name("toastkey_slot"));
    // A key stored out of line in the table (2600 bytes: past the 2 kB at which a row is
    // TOASTed, within the index entry limit of 2704): PostgreSQL sends
    // the old key with an update that leaves it alone, and the new row without it.
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.t (k text PRIMARY KEY, v int);
         ALTER TABLE {schema}.t ALTER COLUMN k SET STORAGE EXTERNAL;"
    ))
    .await
    .unwrap();
    let config = write_config(
        &stack,
        &prefix,
        &slot,
        &unique_name("toastkey_pub"),
        &schema,
    );
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    let topics = [format!("{prefix}.{schema}.t")];
    read_events(&stack, &topics, 0).await;
    wait_until_streaming(&sql, &slot).await;
    sql.batch_execute(&format!(
        "INSERT INTO {schema}.t VALUES (repeat('k', 2600), 1);
         UPDATE {schema}.t SET v = 2;"
    ))
    .await
    .unwrap();
    let key = Value::String("k".repeat(2600));
    let events = read_events(&stack, &topics, 2).await;
    let ops: Vec<Option<&str>> = events.iter().map(|e| e.op.as_deref()).collect();
    assert_eq!(ops, [Some("c"), Some("u")], "an update, not a key change");
    let update = &events[1];
    assert!(update.key["k"] == key, "the event's key is the row's key");
    let after = update.after.as_ref().unwrap();
    assert!(after["k"] == key, "the key column is filled in");
    assert_eq!(after["v"], Value::Int(2));
    stop_and_drop_slot(sluice, &sql, &slot).await;
}
