//! The table selection against what the publication sends: a table outside the selection
//! never reaches Kafka (and the slot moves past its changes), a renamed table moves to the
//! topic of its new name, and a restart after a column's type was dropped carries on.

use apache_avro::types::Value;
use sluice_e2e::pipeline::{
    Sluice, current_wal_lsn, read_events, record_count, stop_and_drop_slot, topic_exists,
    wait_until_confirmed, wait_until_streaming, write_config,
};
use sluice_e2e::{Stack, unique_name};

fn with_tables(config: &std::path::Path, tables: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let start = text.find("[tables]").unwrap();
    let end = start + text[start..].find("\n\n").unwrap();
    let text = format!("{}{tables}{}", &text[..start], &text[end..]);
    std::fs::write(config, text).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_excluded_table_in_a_schema_wide_publication_never_reaches_kafka() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let admin = stack.pg_connect("postgres").await;
    let schema = unique_name("excl");
    let (prefix, slot, publication) = (
        unique_name("excl"),
        unique_name("excl_slot"),
        unique_name("excl_pub"),
    );
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.open (id int PRIMARY KEY, v text);
         CREATE TABLE {schema}.secrets (id int PRIMARY KEY, v text);
         INSERT INTO {schema}.open VALUES (1, 'a');
         INSERT INTO {schema}.secrets VALUES (1, 'hidden');"
    ))
    .await
    .unwrap();
    // A publication wider than the selection, as an administrator makes it.
    admin
        .batch_execute(&format!(
            "CREATE PUBLICATION {publication} FOR TABLES IN SCHEMA {schema}"
        ))
        .await
        .unwrap();
    let config = write_config(&stack, &prefix, &slot, &publication, &schema);
    with_tables(
        &config,
        &format!("[tables]\ninclude = [\"{schema}.*\"]\nexclude = [\"{schema}.secrets\"]"),
    );
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    let open = [format!("{prefix}.{schema}.open")];
    read_events(&stack, &open, 1).await;
    wait_until_streaming(&sql, &slot).await;
    sql.batch_execute(&format!(
        "INSERT INTO {schema}.secrets VALUES (2, 'hidden too');
         UPDATE {schema}.secrets SET v = 'still hidden';
         INSERT INTO {schema}.open VALUES (2, 'b');"
    ))
    .await
    .unwrap();
    let events = read_events(&stack, &open, 2).await;
    assert!(events.iter().any(|e| e.key["id"] == Value::Int(2)));
    // Only the excluded table changes now: the slot must still move past its changes.
    sql.batch_execute(&format!("DELETE FROM {schema}.secrets"))
        .await
        .unwrap();
    let after_secrets = current_wal_lsn(&sql).await;
    wait_until_confirmed(
        &sql,
        &slot,
        &after_secrets,
        "past the excluded table's changes",
    )
    .await;
    assert!(
        !topic_exists(&stack, &format!("{prefix}.{schema}.secrets")),
        "no topic, no record of the excluded table"
    );
    stop_and_drop_slot(sluice, &sql, &slot).await;
    admin
        .batch_execute(&format!("DROP PUBLICATION {publication}"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_excluded_after_it_was_captured_sends_nothing_more() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("reexcl");
    let (prefix, slot) = (unique_name("reexcl"), unique_name("reexcl_slot"));
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.open (id int PRIMARY KEY);
         CREATE TABLE {schema}.secrets (id int PRIMARY KEY);
         INSERT INTO {schema}.open VALUES (1);
         INSERT INTO {schema}.secrets VALUES (1);"
    ))
    .await
    .unwrap();
    let config = write_config(&stack, &prefix, &slot, &unique_name("reexcl_pub"), &schema);
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    let (open, secrets) = (
        format!("{prefix}.{schema}.open"),
        format!("{prefix}.{schema}.secrets"),
    );
    read_events(&stack, &[open.clone(), secrets.clone()], 2).await;
    wait_until_streaming(&sql, &slot).await;
    let status = sluice.stop();
    assert!(status.success());
    // The publication sluice made still holds the table; the selection no longer does.
    with_tables(
        &config,
        &format!("[tables]\ninclude = [\"{schema}.*\"]\nexclude = [\"{schema}.secrets\"]"),
    );
    sql.batch_execute(&format!(
        "INSERT INTO {schema}.secrets VALUES (2);
         INSERT INTO {schema}.open VALUES (2);"
    ))
    .await
    .unwrap();
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    wait_until_streaming(&sql, &slot).await;
    let lsn = current_wal_lsn(&sql).await;
    wait_until_confirmed(&sql, &slot, &lsn, "past every change").await;
    // Every record both topics hold: the open table's two, the excluded one's first only.
    let events = read_events(&stack, &[open.clone(), secrets.clone()], 3).await;
    let secrets_events: Vec<_> = events.iter().filter(|e| e.topic == secrets).collect();
    assert_eq!(secrets_events.len(), 1, "{events:?}");
    assert_eq!(secrets_events[0].key["id"], Value::Int(1));
    assert_eq!(
        record_count(&stack, &secrets),
        1,
        "nothing more on the excluded table's topic"
    );
    stop_and_drop_slot(sluice, &sql, &slot).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renamed_table_moves_to_the_topic_of_its_new_name_at_once() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("rename");
    let (prefix, slot) = (unique_name("rename"), unique_name("rename_slot"));
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.old_name (id int PRIMARY KEY, v text);
         INSERT INTO {schema}.old_name VALUES (1, 'a');"
    ))
    .await
    .unwrap();
    let config = write_config(&stack, &prefix, &slot, &unique_name("rename_pub"), &schema);
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    let old_topic = format!("{prefix}.{schema}.old_name");
    let new_topic = format!("{prefix}.{schema}.new_name");
    read_events(&stack, std::slice::from_ref(&old_topic), 1).await;
    wait_until_streaming(&sql, &slot).await;
    sql.batch_execute(&format!(
        "ALTER TABLE {schema}.old_name RENAME TO new_name;
         INSERT INTO {schema}.new_name VALUES (2, 'b');
         UPDATE {schema}.new_name SET v = 'c' WHERE id = 1;"
    ))
    .await
    .unwrap();
    let events = read_events(&stack, std::slice::from_ref(&new_topic), 2).await;
    let mut keys: Vec<&Value> = events.iter().map(|e| &e.key["id"]).collect();
    keys.sort_by_key(|v| format!("{v:?}"));
    assert_eq!(keys, [&Value::Int(1), &Value::Int(2)]);
    assert_eq!(
        record_count(&stack, &old_topic),
        1,
        "the old topic has the snapshot only"
    );
    stop_and_drop_slot(sluice, &sql, &slot).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_after_a_columns_type_was_changed_and_dropped_carries_on() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("droptype");
    let (prefix, slot) = (unique_name("droptype"), unique_name("droptype_slot"));
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TYPE {schema}.mood AS ENUM ('sad', 'happy');
         CREATE TABLE {schema}.t (id int PRIMARY KEY, m {schema}.mood);
         INSERT INTO {schema}.t VALUES (1, 'sad');"
    ))
    .await
    .unwrap();
    let config = write_config(
        &stack,
        &prefix,
        &slot,
        &unique_name("droptype_pub"),
        &schema,
    );
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    let topics = [format!("{prefix}.{schema}.t")];
    read_events(&stack, &topics, 1).await;
    wait_until_streaming(&sql, &slot).await;
    assert!(sluice.stop().success());
    // While sluice lags, a change written with the enum, then the enum replaced and dropped:
    // the change's Relation names a type the catalog no longer has.
    sql.batch_execute(&format!(
        "INSERT INTO {schema}.t VALUES (2, 'happy');
         ALTER TABLE {schema}.t ALTER COLUMN m TYPE text USING m::text;
         DROP TYPE {schema}.mood;
         INSERT INTO {schema}.t VALUES (3, 'plain text');"
    ))
    .await
    .unwrap();
    let mut sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    let events = read_events(&stack, &topics, 3).await;
    let value_of = |id: i32| {
        events
            .iter()
            .find(|e| e.key["id"] == Value::Int(id))
            .and_then(|e| e.after.as_ref())
            .map(|after| after["m"].clone())
    };
    assert_eq!(value_of(2), Some(Value::String("happy".into())));
    assert_eq!(value_of(3), Some(Value::String("plain text".into())));
    assert!(sluice.running());
    stop_and_drop_slot(sluice, &sql, &slot).await;
}
