//! sluice's sessions pin the settings its value parsers depend on: a role whose own settings
//! print dates, intervals, floats and bytea otherwise is captured exactly, snapshot and stream.

use apache_avro::types::Value;
use sluice_e2e::pipeline::{
    Sluice, read_events, stop_and_drop_slot, wait_until_streaming, write_config,
};
use sluice_e2e::{Stack, unique_name};

#[tokio::test(flavor = "multi_thread")]
async fn a_role_with_other_output_settings_is_captured_exactly() {
    let stack = Stack::from_env();
    let admin = stack.pg_connect("postgres").await;
    let role = unique_name("dmy");
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN REPLICATION PASSWORD '{role}';
             GRANT CREATE ON DATABASE {db} TO {role};
             ALTER ROLE {role} SET DateStyle = 'SQL, DMY';
             ALTER ROLE {role} SET IntervalStyle = 'sql_standard';
             ALTER ROLE {role} SET extra_float_digits = 0;
             ALTER ROLE {role} SET bytea_output = 'escape';
             ALTER ROLE {role} SET TimeZone = 'Asia/Kathmandu';",
            db = stack.pg_database
        ))
        .await
        .unwrap();
    let sql = stack.pg_connect(&role).await;
    let schema = unique_name("dmy");
    let (prefix, slot) = (unique_name("dmy"), unique_name("dmy_slot"));
    let row = |id: i32| {
        format!(
            "({id}, '2024-02-29', '2024-02-29 12:34:56.789012', '2024-02-29 12:34:56.789012+00',
              '1 year 2 mons 3 days 04:05:06.5', 1.0::float8 / 3, 0.1::float4 * 3,
              '\\x0102ff5c27', '[2024-01-01,2024-02-01)', '(\"2024-02-29 01:02:03\",0.30000000000000004)')"
        )
    };
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TYPE {schema}.pair AS (at timestamp, x float8);
         CREATE TABLE {schema}.t (id int PRIMARY KEY, d date, ts timestamp, tstz timestamptz,
                                  i interval, f8 float8, f4 float4, b bytea, dr daterange,
                                  p {schema}.pair);
         INSERT INTO {schema}.t VALUES {};",
        row(1)
    ))
    .await
    .unwrap();
    let config = write_config(&stack, &prefix, &slot, &unique_name("dmy_pub"), &schema);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("user = \"sluice\"", &format!("user = \"{role}\""))
        .replace("password = \"sluice\"", &format!("password = \"{role}\""));
    std::fs::write(&config, text).unwrap();
    let mut sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    let topics = [format!("{prefix}.{schema}.t")];
    read_events(&stack, &topics, 1).await;
    wait_until_streaming(&sql, &slot).await;
    sql.batch_execute(&format!("INSERT INTO {schema}.t VALUES {}", row(2)))
        .await
        .unwrap();
    let events = read_events(&stack, &topics, 2).await;
    assert!(sluice.running(), "sluice keeps running");
    for event in &events {
        let after = event.after.as_ref().unwrap();
        let expect = [
            ("d", Value::Int(19782)),
            ("ts", Value::Long(1_709_210_096_789_012)),
            (
                "tstz",
                Value::String("2024-02-29T12:34:56.789012Z".to_owned()),
            ),
            ("i", Value::String("P1Y2M3DT4H5M6.5S".to_owned())),
            ("f8", Value::Double(1.0 / 3.0)),
            ("f4", Value::Float(0.1f32 * 3.0)),
            ("b", Value::Bytes(vec![1, 2, 0xff, b'\\', b'\''])),
            ("dr", Value::String("[2024-01-01,2024-02-01)".to_owned())),
            (
                "p",
                Value::String("(\"2024-02-29 01:02:03\",0.30000000000000004)".to_owned()),
            ),
        ];
        for (column, value) in expect {
            assert_eq!(after[column], value, "{column} of {:?} event", event.op);
        }
    }
    stop_and_drop_slot(sluice, &sql, &slot).await;
    drop(sql);
    admin
        .batch_execute(&format!(
            "DROP SCHEMA {schema} CASCADE;
             DROP OWNED BY {role}; DROP ROLE {role};"
        ))
        .await
        .unwrap();
}
