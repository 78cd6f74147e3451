//! Column defaults become Avro defaults without sluice executing anything from the catalog:
//! a default whose evaluation would run user code (a domain's CHECK, here) runs nothing.

use schema_registry_converter::async_impl::schema_registry::{
    SrSettings, get_schema_by_subject_and_version,
};
use sluice_e2e::pipeline::{
    Sluice, read_records, stop_and_drop_slot, wait_until_streaming, write_config,
};
use sluice_e2e::{Stack, unique_name};

#[tokio::test(flavor = "multi_thread")]
async fn defaults_are_read_without_executing_anything_from_the_catalog() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("defaults");
    let (prefix, slot) = (unique_name("defaults"), unique_name("defaults_slot"));
    // Casting a value to the domain runs its CHECK, which records that it ran.
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.ran (at timestamptz PRIMARY KEY);
         CREATE FUNCTION {schema}.record_run(v int) RETURNS boolean LANGUAGE sql
           AS 'INSERT INTO {schema}.ran VALUES (clock_timestamp()); SELECT true';
         CREATE DOMAIN {schema}.checked AS int CHECK ({schema}.record_run(VALUE));
         CREATE TABLE {schema}.t (id int PRIMARY KEY, c {schema}.checked DEFAULT 5,
                                  n numeric(6,2) DEFAULT 1.5, s char(4) DEFAULT 'ab',
                                  q text DEFAULT 'it''s', f float8 DEFAULT 2);
         INSERT INTO {schema}.t (id) VALUES (1);
         TRUNCATE {schema}.ran;"
    ))
    .await
    .unwrap();
    let config = write_config(
        &stack,
        &prefix,
        &slot,
        &unique_name("defaults_pub"),
        &schema,
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&format!("\"{schema}.*\""), &format!("\"{schema}.t\""))
        + "\n[events]\nnumeric = \"string\"\n";
    std::fs::write(&config, text).unwrap();
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    let topic = format!("{prefix}.{schema}.t");
    read_records(&stack, std::slice::from_ref(&topic), 1).await;
    wait_until_streaming(&sql, &slot).await;
    let runs: i64 = sql
        .query_one(&format!("SELECT count(*) FROM {schema}.ran"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(runs, 0, "sluice ran the domain's CHECK");
    // The defaults are still carried, each in the column type's text form (the row record is
    // defined in `before`; `after` names it).
    let schema_json = registered_value_schema(&stack, &topic).await;
    let row = schema_json["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "before")
        .unwrap()["type"][1]
        .clone();
    let default_of = |name: &str| {
        row["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()["default"]
            .clone()
    };
    assert_eq!(default_of("c"), serde_json::json!(5));
    assert_eq!(default_of("n"), serde_json::json!("1.50"));
    assert_eq!(default_of("s"), serde_json::json!("ab  "));
    assert_eq!(default_of("q"), serde_json::json!("it's"));
    assert_eq!(default_of("f"), serde_json::json!(2.0));
    stop_and_drop_slot(sluice, &sql, &slot).await;
}

/// The latest value schema registered for `topic`, as JSON.
async fn registered_value_schema(stack: &Stack, topic: &str) -> serde_json::Value {
    let settings = SrSettings::new(stack.registry_url.clone());
    let registered = get_schema_by_subject_and_version(&settings, &format!("{topic}-value"), None)
        .await
        .unwrap();
    serde_json::from_str(&registered.schema).unwrap()
}
