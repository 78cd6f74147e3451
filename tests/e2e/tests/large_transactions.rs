//! Large transactions through the replication layer: streamed before they commit, kept in
//! bounded memory, and dropped when rolled back. The drain runs as a process of its own so
//! that its peak memory is measured alone.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use sluice_e2e::{Stack, unique_name};

/// The memory the drain may use for streamed transactions before spilling to disk.
const BUDGET_MIB: u64 = 32;
/// The drain's whole peak RSS must stay under this: the budget plus buffers and the binary.
const PEAK_RSS_LIMIT_MIB: u64 = 96;

struct Drain {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl Drain {
    fn start(stack: &Stack, publication: &str, until_changes: u64) -> Drain {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-drain"))
            .args(["--port", &stack.pg_port.to_string()])
            .args(["--slot", &unique_name("large"), "--create-temporary-slot"])
            .args(["--publication", publication])
            .args(["--until-changes", &until_changes.to_string()])
            .args(["--memory-budget-mib", &BUDGET_MIB.to_string(), "--events"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the drain starts");
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(value) = serde_json::from_str(&line)
                    && sender.send(value).is_err()
                {
                    break;
                }
            }
        });
        let mut drain = Drain { child, lines };
        drain.wait_for("ready", Duration::from_secs(30));
        drain
    }

    fn wait_for(&mut self, event: &str, timeout: Duration) -> Value {
        loop {
            let line = self
                .lines
                .recv_timeout(timeout)
                .unwrap_or_else(|_| panic!("the drain said {event:?} within {timeout:?}"));
            if line["event"] == event {
                return line;
            }
        }
    }

    fn report(mut self) -> Value {
        let done = self.wait_for("done", Duration::from_secs(300));
        assert!(self.child.wait().unwrap().success());
        done["report"].clone()
    }
}

async fn table_with_publication(stack: &Stack) -> (tokio_postgres::Client, String, String) {
    let sql = stack.pg_connect("sluice").await;
    let table = unique_name("large");
    let publication = unique_name("large_pub");
    sql.batch_execute(&format!(
        "CREATE TABLE {table} (id int PRIMARY KEY, payload text);
         CREATE PUBLICATION {publication} FOR TABLE {table};"
    ))
    .await
    .unwrap();
    (sql, table, publication)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_million_row_transaction_streams_before_commit_in_bounded_memory() {
    const ROWS: u64 = 1_000_000;
    let stack = Stack::from_env();
    let (mut sql, table, publication) = table_with_publication(&stack).await;
    let mut drain = Drain::start(&stack, &publication, ROWS);

    let transaction = sql.transaction().await.unwrap();
    transaction
        .batch_execute(&format!(
            "INSERT INTO {table} SELECT g, repeat('x', 100) FROM generate_series(1, {ROWS}) g"
        ))
        .await
        .unwrap();
    // Still uncommitted: the walsender streams it once it outgrows logical_decoding_work_mem.
    drain.wait_for("stream_start", Duration::from_secs(120));
    transaction.commit().await.unwrap();

    let report = drain.report();
    eprintln!("million-row transaction drained: {report}");
    assert_eq!(report["changes"], ROWS, "{report}");
    assert_eq!(report["streamed_transactions"], 1, "{report}");
    assert!(
        report["spilled_transactions"].as_u64().unwrap() >= 1,
        "{report}"
    );
    let peak_mib = report["peak_rss_kib"].as_u64().unwrap() / 1024;
    assert!(
        peak_mib < PEAK_RSS_LIMIT_MIB,
        "peak RSS {peak_mib} MiB is over {PEAK_RSS_LIMIT_MIB} MiB: {report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolled_back_large_transaction_yields_nothing() {
    let stack = Stack::from_env();
    let (mut sql, table, publication) = table_with_publication(&stack).await;
    let mut drain = Drain::start(&stack, &publication, 1);

    let transaction = sql.transaction().await.unwrap();
    transaction
        .batch_execute(&format!(
            "INSERT INTO {table} SELECT g, repeat('x', 100) FROM generate_series(1, 600000) g"
        ))
        .await
        .unwrap();
    drain.wait_for("stream_start", Duration::from_secs(120));
    transaction.rollback().await.unwrap();
    // The only change that may come out: one committed row after the rollback.
    sql.batch_execute(&format!("INSERT INTO {table} VALUES (0, 'marker')"))
        .await
        .unwrap();

    let report = drain.report();
    assert_eq!(report["changes"], 1, "{report}");
    assert_eq!(report["aborted_streams"], 1, "{report}");
    assert_eq!(report["streamed_transactions"], 0, "{report}");
}

/// Rows of the large snapshot: enough that keeping anything per row shows (a delivery report
/// kept per row, 48 bytes, took the peak from 35 to 112 MiB here).
const SNAPSHOT_ROWS: u64 = 2_000_000;
/// sluice's whole peak RSS during that snapshot: the producer's queue, the copy buffers and
/// the binary.
const SNAPSHOT_PEAK_RSS_LIMIT_MIB: u64 = 80;

#[tokio::test(flavor = "multi_thread")]
async fn a_large_snapshot_runs_in_memory_that_does_not_grow_with_the_table() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("bigsnap");
    sluice_e2e::pipeline::create_filled_table(&sql, &schema, SNAPSHOT_ROWS, "repeat('p', 100)")
        .await;
    let slot = unique_name("bigsnap_slot");
    let prefix = unique_name("bigsnap");
    let config = sluice_e2e::pipeline::write_config(
        &stack,
        &prefix,
        &slot,
        &unique_name("bigsnap_pub"),
        &schema,
    );
    let sluice = sluice_e2e::pipeline::Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    // sluice records the snapshot complete once the broker acknowledged every row.
    sluice_e2e::pipeline::wait_for_snapshot_phase(
        &stack,
        &prefix,
        &slot,
        sluice_pipeline::state::SnapshotPhase::Complete,
        Duration::from_secs(300),
    )
    .await;
    let peak_mib = sluice.peak_rss_kib().unwrap() / 1024;
    eprintln!("peak RSS {peak_mib} MiB for a snapshot of {SNAPSHOT_ROWS} rows");
    sluice_e2e::pipeline::stop_and_drop_slot(sluice, &sql, &slot).await;
    let topic = [format!("{prefix}.{schema}.t")];
    let rows = usize::try_from(SNAPSHOT_ROWS).unwrap();
    sluice_e2e::pipeline::assert_each_id_once(&stack, &topic, &[], rows).await;
    sql.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
    assert!(
        peak_mib < SNAPSHOT_PEAK_RSS_LIMIT_MIB,
        "peak RSS {peak_mib} MiB over {SNAPSHOT_PEAK_RSS_LIMIT_MIB} MiB for {SNAPSHOT_ROWS} rows"
    );
}
