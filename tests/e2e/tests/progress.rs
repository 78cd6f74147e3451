//! Snapshot progress when stderr is not a terminal: periodic structured log lines with rows,
//! estimate, rate and ETA per table and overall, and never a row's values.

use std::process::{Command, Stdio};

use serde_json::Value;
use sluice_e2e::pipeline::{
    assert_each_id_once, create_filled_table, snapshot_phase, stop_and_drop_slot, topic_ends,
    wait_for_records, wait_for_snapshot_phase, wait_until_streaming, write_config,
};
use sluice_e2e::proxy::PgProxy;
use sluice_e2e::{Stack, unique_name};

const ROWS: u64 = 300_000;

#[tokio::test(flavor = "multi_thread")]
async fn a_long_snapshot_logs_its_progress_as_json_without_row_values() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("progress");
    create_filled_table(&sql, &schema, ROWS, "'do-not-log-' || g").await;
    let slot = unique_name("progress_slot");
    let config = write_config(
        &stack,
        &unique_name("progress"),
        &slot,
        &unique_name("progress_pub"),
        &schema,
    );
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[snapshot]\nprogress_interval = \"100ms\"\nparallelism = 1\n");
    std::fs::write(&config, text).unwrap();
    let log = std::env::temp_dir().join(format!("{schema}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_sluice-cli"))
        .args(["run", "--log-format", "json", "--config"])
        .arg(&config)
        .env("SLUICE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let sluice = sluice_e2e::pipeline::Sluice::from_child(child);
    wait_until_streaming(&sql, &slot).await;
    stop_and_drop_slot(sluice, &sql, &slot).await;

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("do-not-log"), "a row value was logged");
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let table = format!("{schema}.t");
    let per_table: Vec<&Value> = lines
        .iter()
        .map(|line| &line["fields"])
        .filter(|f| f["message"] == "snapshot progress" && f["table"] == table.as_str())
        .collect();
    assert!(per_table.len() >= 2, "progress lines: {per_table:?}");
    let mut previous = 0;
    for fields in &per_table {
        let rows = fields["rows"].as_u64().unwrap();
        assert!(rows >= previous, "{per_table:?}");
        previous = rows;
        let estimate = fields["estimated_rows"].as_u64().unwrap();
        assert!(estimate.abs_diff(ROWS) < ROWS / 10, "{fields}");
        assert!(fields.get("rows_per_second").is_some(), "{fields}");
        if rows > 0 {
            assert!(fields["eta_seconds"].as_u64().is_some(), "{fields}");
        }
    }
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "snapshot progress, all tables"),
        "an overall line"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "snapshot complete and acknowledged"),
        "the snapshot finished"
    );
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_the_snapshot_stops_at_once_and_the_next_start_takes_it_again() {
    use sluice_pipeline::state::SnapshotPhase;
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("cutshort");
    create_filled_table(&sql, &schema, ROWS, "repeat('p', 200)").await;
    let (prefix, slot) = (unique_name("cutshort"), unique_name("cutshort_slot"));
    let config = write_config(
        &stack,
        &prefix,
        &slot,
        &unique_name("cutshort_pub"),
        &schema,
    );
    // Through a proxy that holds the snapshot's copy back after 256 KiB (its connection comes
    // after the catalog's, the replication and the planner's): the snapshot cannot finish.
    let proxy = PgProxy::start(stack.pg_port);
    proxy.hold(4, 256 * 1024);
    let mut text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("port = {}", stack.pg_port),
        &format!("port = {}", proxy.port),
    );
    text.push_str("\n[snapshot]\nparallelism = 1\n");
    std::fs::write(&config, text).unwrap();
    let binary = env!("CARGO_BIN_EXE_sluice-cli");
    let topic = [format!("{prefix}.{schema}.t")];

    let sluice = sluice_e2e::pipeline::Sluice::start(binary, &config);
    let limit = std::time::Duration::from_secs(60);
    wait_for_snapshot_phase(&stack, &prefix, &slot, SnapshotPhase::Started, limit).await;
    wait_for_records(&stack, &topic, 100).await;
    // It stops (within Sluice::stop's bound on a hang) although the snapshot never could.
    let status = sluice.stop();
    assert!(status.success(), "SIGTERM during the snapshot: {status}");
    assert_eq!(
        snapshot_phase(&stack, &prefix, &slot).await,
        Some(SnapshotPhase::Started),
        "the snapshot was cut short"
    );
    let cut = topic_ends(&stack, &topic).await;

    proxy.reset();
    let sluice = sluice_e2e::pipeline::Sluice::start(binary, &config);
    wait_until_streaming(&sql, &slot).await;
    assert_eq!(
        snapshot_phase(&stack, &prefix, &slot).await,
        Some(SnapshotPhase::Complete),
        "the next start took the snapshot again, to its end"
    );
    stop_and_drop_slot(sluice, &sql, &slot).await;
    // After what the first run sent, the second sent every row once.
    let rows = usize::try_from(ROWS).unwrap();
    assert_each_id_once(&stack, &topic, &cut, rows).await;
}
