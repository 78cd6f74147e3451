//! No row value reaches sluice's logs or error messages: a run at the most verbose log level
//! over rows of distinctive values, through the snapshot and the stream, one of them a value
//! sluice's parsers cannot read as it arrives (a role whose `DateStyle` and `IntervalStyle`
//! are not PostgreSQL's defaults, so the stream's text form of a date and an interval differs
//! from what sluice expects unless sluice pins those settings), and everything sluice printed
//! searched for the values.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_e2e::pipeline::{
    Sluice, confirmed_below, current_wal_lsn, read_events, slot_exists, write_config,
};
use sluice_e2e::{Stack, unique_name};

/// What must not appear in the output: every value's text as PostgreSQL and sluice might show
/// it (ISO and the role's styles for the date and the interval, hex for bytea).
const CANARIES: &[&str] = &[
    "canary",
    "63616e617279",
    "31415926535897932384626",
    "27182818284590452353602",
    "1912-06-23",
    "23/06/1912",
    "23-06-1912",
    "1815-12-10",
    "10/12/1815",
    "14:15.161718",
    "14 mins 15.161718",
    "P0Y0M17DT13H14M15.161718S",
];

#[tokio::test(flavor = "multi_thread")]
async fn row_values_never_reach_the_logs_even_when_refused() {
    let stack = Stack::from_env();
    let admin = stack.pg_connect("postgres").await;
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("privacy");
    let prefix = unique_name("sluice_privacy");
    let slot = unique_name("privacy_slot");
    let publication = unique_name("privacy_pub");
    let role = format!("{schema}_role");
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN REPLICATION PASSWORD '{role}';
             ALTER ROLE {role} SET DateStyle = 'SQL, DMY';
             ALTER ROLE {role} SET IntervalStyle = 'postgres_verbose';"
        ))
        .await
        .unwrap();
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.t (id bigint PRIMARY KEY, t text, b bytea, j jsonb, n numeric,
                                  d date, i interval, a text[]);
         GRANT USAGE ON SCHEMA {schema} TO {role};
         GRANT SELECT ON {schema}.t TO {role};
         CREATE PUBLICATION {publication} FOR TABLE {schema}.t;
         INSERT INTO {schema}.t VALUES (1, 'canary-text-7Q9x', '\\x63616e6172792d62797465',
             '{{\"canary\": \"json-5K2w\"}}', 31415926535897932384626, '1912-06-23',
             '17 days 13:14:15.161718', '{{canary-array-8R4v}}');"
    ))
    .await
    .unwrap();
    let config = write_config(&stack, &prefix, &slot, &publication, &schema);
    let log_path = std::env::temp_dir().join(format!("{prefix}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_sluice-cli"))
        .args(["run", "--config"])
        .arg(&config)
        .env("SLUICE_LOG", "trace")
        .env("SLUICE_POSTGRES__USER", &role)
        .env("SLUICE_POSTGRES__PASSWORD", &role)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let mut sluice = Sluice::from_child(child);
    let topic = format!("{prefix}.{schema}.t");
    read_events(&stack, std::slice::from_ref(&topic), 1).await;

    // Streamed in text form, in the role's styles.
    sql.batch_execute(&format!(
        "INSERT INTO {schema}.t VALUES (2, 'canary-stream-3M8z', '\\x63616e617279',
             '[\"canary-json-9P1q\"]', -27182818284590452353602, '1815-12-10',
             '-17 days -13:14:15.161718', '{{canary-2}}');"
    ))
    .await
    .unwrap();
    let after_insert = current_wal_lsn(&sql).await;
    // Either sluice carries the row (the slot is confirmed past it) or it stops on it.
    let deadline = Instant::now() + Duration::from_secs(120);
    while sluice.running() && confirmed_below(&sql, &slot, &after_insert).await {
        assert!(
            Instant::now() < deadline,
            "sluice neither carried nor refused the streamed row"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let refused = !sluice.running();
    if !refused {
        assert!(sluice.stop().success());
    }

    if slot_exists(&sql, &slot).await {
        sql.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await
            .unwrap();
    }
    sql.batch_execute(&format!(
        "DROP PUBLICATION {publication}; DROP SCHEMA {schema} CASCADE;"
    ))
    .await
    .unwrap();
    admin
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role};"))
        .await
        .unwrap();

    let output = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    // The run did log, at every level: the table by name, and its refusal if it refused.
    assert!(output.contains(&format!("{schema}.t")), "{output}");
    assert!(
        output.contains("TRACE") && output.contains("DEBUG"),
        "{output}"
    );
    if refused {
        assert!(output.contains(&format!("{schema}.t.d")), "{output}");
    }
    for canary in CANARIES {
        let lines: Vec<&str> = output.lines().filter(|l| l.contains(canary)).collect();
        assert!(
            lines.is_empty(),
            "{canary:?} in sluice's output: {lines:#?}"
        );
    }
}
