//! Bad input and broken surroundings: sluice exits non-zero with a message that names the
//! thing and the fix, and never confirms a change it did not deliver.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use apache_avro::types::Value;
use schema_registry_converter::async_impl::schema_registry::{
    SrSettings, get_schema_by_subject_and_version,
};
use sluice_e2e::pipeline::{
    self, Sluice, assert_exactly, decode_records, events_of, read_events_exactly, read_raw_to_end,
    read_records, slot_exists, stop_and_drop_slot, wait_for_records, wait_until_streaming,
    write_config,
};
use sluice_e2e::{ScratchPg, Stack, stack_env, unique_name};

/// Runs `sluice run` until it exits (at most `limit`); returns its exit code and stderr.
fn run_until_exit(config: &Path, limit: Duration) -> (Option<i32>, String) {
    pipeline::run_until_exit(env!("CARGO_BIN_EXE_sluice-cli"), config, limit)
}

/// A config for a fresh schema with one keyed table, edited by `edit`.
async fn config_with(
    stack: &Stack,
    edit: impl Fn(String) -> String,
) -> (std::path::PathBuf, String, String) {
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("errors");
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.t (id int PRIMARY KEY);"
    ))
    .await
    .unwrap();
    let slot = unique_name("errors_slot");
    let config = write_config(
        stack,
        &unique_name("errors"),
        &slot,
        &unique_name("errors_pub"),
        &schema,
    );
    let text = edit(std::fs::read_to_string(&config).unwrap());
    std::fs::write(&config, text).unwrap();
    (config, schema, slot)
}

/// The publication that publishes the table of `schema`.
async fn publication_of(sql: &tokio_postgres::Client, schema: &str) -> String {
    sql.query_one(
        "SELECT pubname::text FROM pg_publication_tables WHERE schemaname = $1",
        &[&schema],
    )
    .await
    .unwrap()
    .get(0)
}

fn assert_names(stderr: &str, needles: &[&str]) {
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} in:\n{stderr}");
    }
}

#[tokio::test]
async fn an_unreachable_host_and_a_missing_database_are_named() {
    let stack = Stack::from_env();
    let (config, _, _) = config_with(&stack, |c| {
        c.replace(&format!("port = {}", stack.pg_port), "port = 1")
    })
    .await;
    let (code, stderr) = run_until_exit(&config, Duration::from_secs(60));
    assert_eq!(code, Some(75), "an outage: transient, {stderr}");
    assert_names(&stderr, &["connecting to PostgreSQL", "127.0.0.1"]);

    let (config, _, _) = config_with(&stack, |c| {
        c.replace("database = \"sluice\"", "database = \"no_such_db\"")
    })
    .await;
    let (code, stderr) = run_until_exit(&config, Duration::from_secs(60));
    assert_eq!(code, Some(1), "{stderr}");
    assert_names(
        &stderr,
        &["no_such_db", "does not exist", "create the database"],
    );
}

#[tokio::test]
async fn an_unreachable_broker_or_registry_at_startup_is_named_and_fatal() {
    let stack = Stack::from_env();
    let (config, _, _) =
        config_with(&stack, |c| c.replace(&stack.kafka_bootstrap, "127.0.0.1:1")).await;
    let (code, stderr) = run_until_exit(&config, Duration::from_secs(120));
    assert_eq!(code, Some(75), "an outage: transient, {stderr}");
    assert_names(&stderr, &["127.0.0.1:1", "bootstrap_servers"]);

    let (config, _, _) = config_with(&stack, |c| {
        c.replace(&stack.registry_url, "http://127.0.0.1:1/apis/ccompat/v7")
    })
    .await;
    let (code, stderr) = run_until_exit(&config, Duration::from_secs(120));
    assert_eq!(code, Some(75), "an outage: transient, {stderr}");
    assert_names(&stderr, &["schema registry", "127.0.0.1:1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slot_another_program_holds_is_waited_for_with_its_holder_named() {
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    let stack = Stack::from_env();
    let (config, schema, slot) = config_with(&stack, |c| c).await;
    let sql = stack.pg_connect("sluice").await;
    let first = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    wait_until_streaming(&sql, &slot).await;
    assert!(first.stop().success());
    let publication = publication_of(&sql, &schema).await;
    // Another program streams from the slot: it holds no sluice lock. Killed when the test
    // ends, whatever happens; it does not reconnect by itself.
    let mut other = KillOnDrop(
        Command::new("/usr/lib/postgresql/15/bin/pg_recvlogical")
            .args(["-h", &stack.pg_socket_dir().to_string_lossy()])
            .args(["-p", &stack.pg_port.to_string(), "-U", "sluice", "-d"])
            .arg(&stack.pg_database)
            .args([
                "--slot",
                &slot,
                "--start",
                "-f",
                "/dev/null",
                "-o",
                "proto_version=1",
            ])
            .args([
                "-o",
                &format!("publication_names={publication}"),
                "--no-loop",
            ])
            .spawn()
            .unwrap(),
    );
    wait_until_streaming(&sql, &slot).await;
    let other_pid: i32 = sql
        .query_one(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap()
        .get(0);

    let mut waiting = Sluice::start_capturing(env!("CARGO_BIN_EXE_sluice-cli"), &config, "warn");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !waiting.stderr().contains("holds no sluice lock") {
        assert!(
            std::time::Instant::now() < deadline && waiting.running(),
            "sluice names the slot's holder: {}",
            waiting.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_names(
        &waiting.stderr(),
        &[&slot, &format!("PostgreSQL backend {other_pid}")],
    );
    // Once the other lets go, sluice streams.
    other.0.kill().unwrap();
    other.0.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while sql
        .query_opt(
            "SELECT 1 FROM pg_replication_slots s JOIN pg_stat_activity a ON a.pid = s.active_pid
              WHERE s.slot_name = $1 AND a.application_name = 'sluice'
                AND a.query LIKE 'START_REPLICATION%'",
            &[&slot],
        )
        .await
        .unwrap()
        .is_none()
    {
        assert!(std::time::Instant::now() < deadline, "{}", waiting.stderr());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(waiting.stop().success());
    sql.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publication_dropped_while_running_stops_sluice_without_confirming_past_it() {
    let stack = Stack::from_env();
    let (config, schema, slot) = config_with(&stack, |c| c).await;
    let sql = stack.pg_connect("sluice").await;
    let binary = env!("CARGO_BIN_EXE_sluice-cli");
    let mut sluice = Sluice::start_capturing(binary, &config, "error");
    wait_until_streaming(&sql, &slot).await;
    let publication = publication_of(&sql, &schema).await;
    sql.batch_execute(&format!(
        "DROP PUBLICATION {publication}; INSERT INTO {schema}.t VALUES (1);"
    ))
    .await
    .unwrap();
    let after_insert = pipeline::current_wal_lsn(&sql).await;
    let (code, stderr) = sluice.wait_for_exit("its publication is gone").await;
    assert_eq!(code, Some(1), "{stderr}");
    assert_names(&stderr, &[&publication, "does not exist"]);
    assert!(
        pipeline::confirmed_below(&sql, &slot, &after_insert).await,
        "the slot was not confirmed past the undelivered insert"
    );

    // The slot cannot decode that insert with any publication created later (pgoutput looks
    // the publication up as of the change): a restart meets the same error, and names the way
    // back.
    let (code, stderr) = run_until_exit(&config, Duration::from_secs(60));
    assert_eq!(code, Some(1), "{stderr}");
    assert_names(
        &stderr,
        &[
            &publication,
            "does not exist",
            "drop the slot (sluice teardown)",
        ],
    );
    assert!(pipeline::confirmed_below(&sql, &slot, &after_insert).await);

    // That way back: a teardown, and a run that takes a new snapshot: the row arrives, once.
    let teardown = Command::new(binary)
        .args(["teardown", "--yes", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(teardown.status.success(), "{teardown:?}");
    let sluice = Sluice::start_capturing(binary, &config, "error");
    let topic = [format!("{}.{schema}.t", prefix_of(&config))];
    wait_for_records(&stack, &topic, 1).await;
    stop_and_drop_slot(sluice, &sql, &slot).await;
    let events = read_events_exactly(&stack, &topic, 1).await;
    assert_eq!(
        (events[0].op.as_deref(), &events[0].key["id"]),
        (Some("r"), &Value::Int(1))
    );
}

/// The `topic_prefix` of a configuration file.
fn prefix_of(config: &Path) -> String {
    std::fs::read_to_string(config)
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("topic_prefix = \"")
                .map(|p| p.trim_end_matches('"').to_owned())
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schema_change_the_registry_rejects_stops_sluice_naming_subject_and_choices() {
    let stack = Stack::from_env();
    let (config, schema, slot) = config_with(&stack, |c| c).await;
    let sql = stack.pg_connect("sluice").await;
    sql.batch_execute(&format!(
        "ALTER TABLE {schema}.t ADD COLUMN v text; INSERT INTO {schema}.t VALUES (1, 'x');"
    ))
    .await
    .unwrap();
    let prefix = prefix_of(&config);
    let mut sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    read_records(&stack, &[format!("{prefix}.{schema}.t")], 1).await;
    // A text column becoming an integer: BACKWARD compatibility refuses the new schema.
    sql.batch_execute(&format!(
        "ALTER TABLE {schema}.t ALTER COLUMN v TYPE int USING 0; INSERT INTO {schema}.t VALUES (2, 2);"
    ))
    .await
    .unwrap();
    sluice.wait_until_stopped("on a rejected schema").await;
    let (code, stderr) = run_until_exit(&config, Duration::from_secs(60));
    assert_eq!(code, Some(1), "a restart meets the same refusal: {stderr}");
    assert_names(
        &stderr,
        &[
            &format!("{prefix}.{schema}.t-value"),
            &format!("table {schema}.t"),
            "incompatible",
            "compatibility",
            "topic_prefix",
        ],
    );
    // The topic holds the first row only, written with the subject's one version: the refused
    // shape was never registered, and nothing was written with it or past it.
    let topic = [format!("{prefix}.{schema}.t")];
    let raw = read_raw_to_end(&stack, &topic, 1).await;
    assert_exactly(&topic, 1, &raw);
    let subject = format!("{}-value", topic[0]);
    let latest = get_schema_by_subject_and_version(
        &SrSettings::new(stack.registry_url.clone()),
        &subject,
        None,
    )
    .await
    .unwrap();
    assert_eq!(latest.version, Some(1), "{subject}: {}", latest.schema);
    let (_, _, value) = &raw[0];
    let schema_id = u32::from_be_bytes(value.as_ref().unwrap()[1..5].try_into().unwrap());
    assert_eq!(schema_id, latest.id, "written with the accepted version");
    let events = events_of(decode_records(&stack, raw).await);
    let after = events[0].after.as_ref().unwrap();
    assert_eq!(
        (&events[0].key["id"], &after["v"]),
        (&Value::Int(1), &Value::String("x".into()))
    );
    sql.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .unwrap();
}

/// A config like [`write_config`]'s for tables in `public` of the server on `port`.
fn scratch_config(stack: &Stack, port: u16, slot: &str) -> std::path::PathBuf {
    let config = write_config(
        stack,
        &unique_name("scratch"),
        slot,
        "scratch_pub",
        "public",
    );
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            &format!("port = {}", stack.pg_port),
            &format!("port = {port}"),
        ),
    )
    .unwrap();
    config
}

/// Runs `sluice check` (human output); returns its exit code and the lines that failed.
fn check_failures(config: &Path) -> (Option<i32>, Vec<String>) {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice-cli"))
        .args(["check", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let failed = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains("FAIL"))
        .map(str::to_owned)
        .collect();
    (output.status.code(), failed)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_without_logical_wal_level_is_named_by_run_and_check() {
    let stack = Stack::from_env();
    let scratch = ScratchPg::up("errors_wal_replica", &["wal_level=replica"]);
    let sql = stack.pg_connect_port(scratch.port, "sluice").await;
    sql.batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .await
        .unwrap();
    let config = scratch_config(&stack, scratch.port, "walrep_slot");

    let (code, stderr) = run_until_exit(&config, Duration::from_secs(60));
    assert_eq!(code, Some(1), "{stderr}");
    assert_names(&stderr, &["wal_level", "logical", "restart PostgreSQL"]);

    let (code, failed) = check_failures(&config);
    assert_eq!(code, Some(2), "{failed:?}");
    assert!(
        failed
            .iter()
            .any(|line| line.contains("wal_level") && line.contains("replica")),
        "{failed:?}"
    );
    let slots: i64 = sql
        .query_one("SELECT count(*) FROM pg_replication_slots", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(slots, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalidated_slot_is_named_with_the_way_back() {
    let stack = Stack::from_env();
    // A slot may hold back at most 1 MB of WAL: a little writing while sluice is away loses it.
    let scratch = ScratchPg::up("errors_invalidated", &["max_slot_wal_keep_size=1"]);
    let sql = stack.pg_connect_port(scratch.port, "sluice").await;
    sql.batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .await
        .unwrap();
    let slot = unique_name("lost_slot");
    let config = scratch_config(&stack, scratch.port, &slot);
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    wait_until_streaming(&sql, &slot).await;
    assert!(sluice.stop().success());

    let admin = stack.pg_connect_port(scratch.port, "postgres").await;
    for round in 0..3 {
        admin
            .batch_execute(&format!(
                "INSERT INTO t SELECT {round} * 100000 + generate_series(1, 100000);
                 SELECT pg_switch_wal();"
            ))
            .await
            .unwrap();
    }
    admin.batch_execute("CHECKPOINT").await.unwrap();
    let status: Option<String> = admin
        .query_one(
            "SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status.as_deref(), Some("lost"));

    let (code, stderr) = run_until_exit(&config, Duration::from_secs(60));
    assert_eq!(code, Some(1), "{stderr}");
    assert_names(&stderr, &[&slot, "invalidated", "drop the slot"]);

    let (code, failed) = check_failures(&config);
    assert_eq!(code, Some(2), "{failed:?}");
    assert!(
        failed
            .iter()
            .any(|line| line.contains(&slot) && line.contains("invalidated")),
        "{failed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_principal_without_topic_rights_is_refused_naming_the_topic_and_the_acls() {
    let stack = Stack::from_env();
    // The stack's SASL listener enforces ACLs; `sluice_denied` has none.
    let sasl = format!("127.0.0.1:{}", stack_env()["KAFKA_SASL_PORT"]);
    let (config, schema, slot) = config_with(&stack, |c| {
        c.replace(&stack.kafka_bootstrap, &sasl).replace(
            "[registry]",
            "[kafka.producer]
\"security.protocol\" = \"sasl_plaintext\"
\"sasl.mechanism\" = \"PLAIN\"
\"sasl.username\" = \"sluice_denied\"
\"sasl.password\" = \"sluice_denied\"

[registry]",
        )
    })
    .await;
    let sql = stack.pg_connect("sluice").await;
    sql.batch_execute(&format!("INSERT INTO {schema}.t VALUES (1)"))
        .await
        .unwrap();

    let (code, stderr) = run_until_exit(&config, Duration::from_secs(60));
    assert_eq!(code, Some(1), "{stderr}");
    assert_names(&stderr, &["not authorized", "DESCRIBE and WRITE"]);
    // Startup reads the state topic and describes the table's topic side by side: the one
    // refused first is named (the state topic is never taken for empty when refused).
    assert!(
        stderr.contains(&format!("{schema}.t`")) || stderr.contains("._sluice_state`"),
        "a refused topic is named: {stderr}"
    );
    let (code, failed) = check_failures(&config);
    assert_eq!(code, Some(2), "{failed:?}");
    assert!(
        failed
            .iter()
            .any(|line| line.contains(&format!("{schema}.t")) && line.contains("authorization")),
        "{failed:?}"
    );
    // Refused before a slot existed: the next start snapshots the row; nothing was skipped.
    assert!(!slot_exists(&sql, &slot).await);
}
