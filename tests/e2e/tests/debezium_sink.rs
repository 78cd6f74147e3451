//! A consumer written for Debezium's PostgreSQL Avro output reads sluice's topics without
//! change: Debezium's JDBC sink (a Kafka Connect worker of `deploy/local/connect`, Apicurio's
//! Avro converter) replays them into database `sluice_replica`, and the replica's rows equal
//! the source's, column by column, through the snapshot, updates, deletes and key changes.
//!
//! Every value here replays exactly, extremes included (0001-01-01 and 9999-12-31, 1582's
//! calendar switch, float8 NaN, Infinity and -0, 5e-324). Left out: `time` 24:00:00, which
//! sluice sends as Debezium does (MicroTime 86400000000); the sink's `LocalTime` refuses it
//! ("Invalid value for NanoOfDay") and its task fails.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use sluice_e2e::connect::ConnectWorker;
use sluice_e2e::pipeline::{Sluice, stop_and_drop_slot, wait_until_streaming, write_config};
use sluice_e2e::{Stack, unique_name};

const REPLICA: &str = "sluice_replica";

/// A captured table: its name, its columns (name, PostgreSQL type, and the canonical text both
/// sides are compared in, `{}` standing for the column, whatever type the sink gave the
/// replica's column) and its primary key.
struct Table {
    name: String,
    columns: &'static [(&'static str, &'static str, &'static str)],
    key: &'static str,
}

/// Every common type Debezium's JDBC sink maps. jsonb may come back as json: both sides go
/// through jsonb's normalised text; numerics at the column's scale; times with TimeZone UTC.
const TYPED: &[(&str, &str, &str)] = &[
    ("id", "int8", "{}::text"),
    ("small", "int2", "{}::text"),
    ("regular", "int4", "{}::text"),
    ("big", "int8", "{}::text"),
    ("amount", "numeric(12,3)", "{}::numeric(12,3)::text"),
    ("ratio", "float8", "{}::float8::text"),
    ("flag", "bool", "{}::bool::text"),
    ("body", "text", "{}::text"),
    ("label", "varchar(20)", "{}::text"),
    ("blob", "bytea", "encode({}, 'hex')"),
    ("ref", "uuid", "{}::text"),
    ("doc", "jsonb", "{}::text::jsonb::text"),
    ("day", "date", "{}::date::text"),
    ("local_at", "timestamp", "{}::timestamp::text"),
    ("zoned_at", "timestamptz", "{}::timestamptz::text"),
    ("clock", "time", "{}::time::text"),
];

const COMPOSITE: &[(&str, &str, &str)] = &[
    ("tenant", "int4", "{}::text"),
    ("code", "text", "{}::text"),
    ("qty", "int4", "{}::text"),
    ("note", "varchar(50)", "{}::text"),
];

impl Table {
    fn create(&self, schema: &str) -> String {
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|(name, kind, _)| format!("{name} {kind}"))
            .collect();
        format!(
            "CREATE TABLE {schema}.{} ({}, PRIMARY KEY ({}));",
            self.name,
            columns.join(", "),
            self.key
        )
    }

    /// Each row of `qualified` (this table, in the source or the replica) as one canonical
    /// text, sorted; the error while the sink has not created the table yet.
    async fn rows(
        &self,
        client: &tokio_postgres::Client,
        qualified: &str,
    ) -> Result<Vec<String>, String> {
        let fields: Vec<String> = self
            .columns
            .iter()
            .map(|(name, _, canonical)| canonical.replace("{}", name))
            .collect();
        let query = format!("SELECT ROW({})::text FROM {qualified}", fields.join(", "));
        let rows = client.query(&query, &[]).await.map_err(|err| {
            err.as_db_error()
                .map_or_else(|| err.to_string(), |db| db.message().to_owned())
        })?;
        let mut rows: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        rows.sort();
        Ok(rows)
    }

    /// What differs between the source's and the replica's rows.
    fn diff(&self, source: &[String], replica: &Result<Vec<String>, String>) -> String {
        let table = &self.name;
        let replica = match replica {
            Ok(rows) => rows,
            Err(err) => return format!("{table}: replica: {err}"),
        };
        let columns: Vec<&str> = self.columns.iter().map(|(name, _, _)| *name).collect();
        let only = |rows: &[String], other: &[String]| {
            rows.iter()
                .filter(|row| !other.contains(row))
                .map(|row| format!("\n    {row}"))
                .collect::<String>()
        };
        format!(
            "{table} ({}):\n  only in the source:{}\n  only in the replica:{}",
            columns.join(","),
            only(source, replica),
            only(replica, source)
        )
    }
}

/// Waits (`timeout` at most) until every table of the replica equals its source; panics with
/// the rows that differ, or as soon as the worker reports a failed connector or task.
async fn wait_until_replayed(
    source: &tokio_postgres::Client,
    replica: &tokio_postgres::Client,
    worker: &ConnectWorker,
    schema: &str,
    tables: &[&Table],
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let mut diffs = Vec::new();
        for table in tables {
            let want = table
                .rows(source, &format!("{schema}.{}", table.name))
                .await
                .unwrap();
            let got = table.rows(replica, &table.name).await;
            if got.as_ref() != Ok(&want) {
                diffs.push(table.diff(&want, &got));
            }
        }
        if diffs.is_empty() {
            return;
        }
        let failures = tokio::task::block_in_place(|| worker.failures());
        assert!(
            failures.is_empty() && Instant::now() < deadline,
            "the replica equals the source within {timeout:?}; sink failures: {failures:#?}\n{}",
            diffs.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Connects to `database` with the session settings the canonical texts assume.
async fn connect(stack: &Stack, database: &str) -> tokio_postgres::Client {
    let client = stack.pg_connect_database(database, "sluice").await;
    client
        .batch_execute(
            "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 1",
        )
        .await
        .unwrap();
    client
}

#[tokio::test(flavor = "multi_thread")]
async fn debeziums_jdbc_sink_replays_sluices_topics_into_an_equal_replica() {
    let stack = Stack::from_env();
    let sql = connect(&stack, &stack.pg_database).await;
    // From a bare stack the replica database does not exist yet (user sluice may create it).
    if sql
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&REPLICA])
        .await
        .unwrap()
        .is_none()
    {
        sql.batch_execute(&format!("CREATE DATABASE {REPLICA}"))
            .await
            .unwrap();
    }
    let replica = connect(&stack, REPLICA).await;

    // The sink names a replica table after the source table alone (collection.name.format
    // ${source.table}), in the replica's public schema: unique names keep runs apart.
    let typed = Table {
        name: unique_name("dbz_typed"),
        columns: TYPED,
        key: "id",
    };
    let composite = Table {
        name: unique_name("dbz_composite"),
        columns: COMPOSITE,
        key: "tenant, code",
    };
    let schema = unique_name("dbzsink");
    let (prefix, slot, publication) = (
        unique_name("dbzsink"),
        unique_name("dbzsink_slot"),
        unique_name("dbzsink_pub"),
    );
    let (t, c) = (
        format!("{schema}.{}", typed.name),
        format!("{schema}.{}", composite.name),
    );
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         {}
         {}
         INSERT INTO {t} VALUES
           (1, 32767, 2147483647, 9223372036854775807, 999999999.999, 1.7976931348623157e308,
            true, 'quote '' backslash \\ tab\t ünïcødé 🎉', 'exactly twenty chars',
            '\\x00ff7f80', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
            '{{\"a\": [1, 2.50], \"b\": null, \"ü\": \"\\u00e9\"}}', '9999-12-31',
            '9999-12-31 23:59:59.999999', '9999-12-31 23:59:59.999999+00', '23:59:59.999999'),
           (2, -32768, -2147483648, -9223372036854775808, -999999999.999, 5e-324,
            false, '', '', '\\x', '00000000-0000-0000-0000-000000000000', '\"a string\"',
            '0001-01-01', '0001-01-01 00:00:00', '0001-01-01 00:00:00+00', '00:00:00'),
           (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
            NULL, NULL),
           (4, 0, 0, 0, 0, '-0', true, e'line\\nbreak', 'x', '\\x00',
            'f81d4fae-7dec-11d0-a765-00a0c91e6bf6', 'null', '1969-12-31',
            '1969-12-31 23:59:59.999999', '2024-02-29 12:34:56.789012+05:30', '12:00:00.5'),
           (5, 1, 1, 1, 1.5, 'NaN', false, 'five', 'five', '\\x05',
            'f81d4fae-7dec-11d0-a765-00a0c91e6bf5', '[]', '2000-02-29',
            '2000-02-29 00:00:00', '2000-02-29 00:00:00-08', '00:00:00.000001'),
           (6, 2, 2, 2, -0.001, 'Infinity', true, 'six', 'six', '\\x06',
            'f81d4fae-7dec-11d0-a765-00a0c91e6bf6', '{{}}', '1582-10-04',
            '1582-10-04 12:00:00', '1582-10-04 12:00:00+00', '13:14:15');
         INSERT INTO {c} VALUES (1, 'a', 10, 'one'), (1, 'b', 20, NULL), (2, 'a', 30, 'two'),
                                (2, 'Ä b/c', -1, 'spaces and a slash');",
        typed.create(&schema),
        composite.create(&schema),
    ))
    .await
    .unwrap();

    let config = write_config(&stack, &prefix, &slot, &publication, &schema);
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    wait_until_streaming(&sql, &slot).await;
    // While streaming: updates (to and from NULL), deletes, key changes, inserts.
    sql.batch_execute(&format!(
        "UPDATE {t} SET body = 'updated', amount = 0.001, flag = NULL,
                        doc = '{{\"nested\": {{\"k\": [true, false]}}}}' WHERE id = 4;
         UPDATE {t} SET small = 7, ratio = 'NaN', body = 'was null', day = '2024-02-29'
          WHERE id = 3;
         DELETE FROM {t} WHERE id = 5;
         UPDATE {t} SET id = 60 WHERE id = 6;
         INSERT INTO {t} (id, body) VALUES (7, 'partial'), (8, 'eight');
         BEGIN;
         UPDATE {c} SET qty = qty + 1 WHERE tenant = 1;
         DELETE FROM {c} WHERE tenant = 2 AND code = 'a';
         UPDATE {c} SET code = 'bb' WHERE tenant = 1 AND code = 'b';
         INSERT INTO {c} VALUES (3, 'z', 0, 'new');
         COMMIT;"
    ))
    .await
    .unwrap();

    let worker_name = unique_name("dbzsink");
    let topics = format!("{prefix}.{t},{prefix}.{c}");
    let started = Instant::now();
    let worker = tokio::task::block_in_place(|| {
        ConnectWorker::start(
            &stack,
            &worker_name,
            &["deploy/local/connect.d/jdbc-sink.properties.template"],
            &[("SINK_TOPICS", &topics), ("SINK_DATABASE", REPLICA)],
        )
    });
    let running = started.elapsed();
    let tables = [&typed, &composite];
    let timeout = Duration::from_secs(120);
    wait_until_replayed(&sql, &replica, &worker, &schema, &tables, timeout).await;
    let replayed = started.elapsed();

    // The sink keeps up with live changes: a deleted key comes back, a key changes back.
    sql.batch_execute(&format!(
        "DELETE FROM {t} WHERE id = 7;
         UPDATE {t} SET label = 'changed live', big = -1 WHERE id = 8;
         INSERT INTO {t} (id, regular, zoned_at) VALUES (5, 55, '2000-01-01 00:00:00-08');
         UPDATE {t} SET id = 6 WHERE id = 60;
         UPDATE {c} SET tenant = 4 WHERE tenant = 3;
         DELETE FROM {c} WHERE code = 'a';"
    ))
    .await
    .unwrap();
    let live = Instant::now();
    wait_until_replayed(&sql, &replica, &worker, &schema, &tables, timeout).await;
    eprintln!(
        "worker RUNNING after {running:?}, replica equal after {replayed:?}, live changes applied in {:?}",
        live.elapsed()
    );

    tokio::task::block_in_place(|| worker.stop_and_forget());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .create()
        .unwrap();
    let group = format!("connect-{worker_name}-jdbc-sink");
    let deleted = admin
        .delete_groups(&[&group], &AdminOptions::new())
        .await
        .unwrap();
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
    stop_and_drop_slot(sluice, &sql, &slot).await;
    sql.batch_execute(&format!(
        "DROP SCHEMA {schema} CASCADE; DROP PUBLICATION IF EXISTS {publication};"
    ))
    .await
    .unwrap();
    replica
        .batch_execute(&format!("DROP TABLE {}, {};", typed.name, composite.name))
        .await
        .unwrap();
}
