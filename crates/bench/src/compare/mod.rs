//! `sluice-bench compare`: sluice, Debezium and the ceilings side by side in one run, on the
//! same data, each alone (the others stopped), with a slot, publication and topic prefix of its
//! own per run that are dropped afterwards.
//!
//! # Workloads
//!
//! - **Drain**: a backlog of changes written while every contestant is stopped, then each
//!   contestant started in turn and timed until its backlog is in Kafka. Before the backlog,
//!   each contestant ran once (sluice with `snapshot.mode = never`, Debezium with
//!   `snapshot.mode = no_data`), created its slot, topic and schemas, carried one warm-up row to
//!   Kafka, had its slot confirmed through it, and was stopped: the drain is a restart after
//!   downtime. pg_recvlogical gets a slot made before the backlog. Just before the backlog
//!   every slot is advanced (`pg_replication_slot_advance`) to the same position, so that each
//!   contestant reads exactly the backlog's WAL; all but Debezium's, which refuses a slot past
//!   its stored offset: Debezium is warmed up last, just before the backlog, instead.
//! - **Snapshot**: tables filled once per workload; each contestant starts with no slot and is
//!   timed until every row is in Kafka.
//! - **Transaction**: a drain whose backlog is one transaction of `--transaction-rows` rows;
//!   sluice's resident set size is sampled every 100 ms (peak, and the median after the first
//!   record, "steady").
//! - **Tables**: the drain spread over `--tables` tables (transaction `t` writes table
//!   `t % tables`).
//! - **Steady**: sluice only; single-row transactions at `--steady-rates` while it streams,
//!   latency per event from the broker's append time and the commit time in the event (see
//!   [`steady`]).
//! - **Steady-snapshot**: the steady workload while sluice in `snapshot.mode = "incremental"`
//!   snapshots a table of `--steady-snapshot-rows` rows; the writer writes until the snapshot
//!   is done. Its events/s are the snapshot's rows, its latencies the writer's events'.
//!
//! The snapshot workloads also run `sluice-incremental`, sluice with `snapshot.mode =
//! "incremental"`, timed like sluice and compared with it.
//!
//! # When a run is done
//!
//! Every contestant is timed from the start of its process until its topics' high watermarks
//! (summed over partitions) hold every record it owes: with acks=all, a record below the high
//! watermark is acknowledged. This is exact for sluice and Debezium alike (one record per
//! insert or update, two per delete: the event and its tombstone), needs nothing from the
//! contestant, and does not depend on how often it confirms its slot. For sluice's drains the
//! run then also waits until the slot's `confirmed_flush_lsn` passed the last transaction's
//! changes, reported as "s to slot confirmed": sluice confirms the end of a commit whose
//! events were all acknowledged, every `replication.status_interval` (1 s). Debezium confirms
//! its slot after each offset flush (`offset.flush.interval.ms` = 1000 in
//! `deploy/local/connect`'s workers), but only up to an event it processed before the latest
//! one, so its last transaction is confirmed only when more traffic (or a heartbeat) follows:
//! the records are its only exact mark.
//! pg_recvlogical is done when it exits at `--endpos`; COPY and the producer when they return.
//!
//! The times resolve to [`watch::POLL`].

mod args;
mod bench;
mod ceilings;
mod contestant;
mod data;
mod debezium;
mod kafka;
mod kafka_connect;
mod report;
mod runs;
mod sluice;
mod steady;
mod watch;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::Context as _;
use serde::Serialize;

use self::args::Workload;
pub use self::args::{Changes, CompareArgs, Kind};
use self::bench::{Bench, Failure};
use self::contestant::Contestant;
use self::kafka_connect::DebeziumSettings;
use self::report::{Measurement, Ratio, Summary};
use crate::process::load_average;

/// Runs the comparison and prints its summary as markdown; see the module documentation.
pub async fn run(args: &CompareArgs) -> anyhow::Result<()> {
    let bench = Bench::open(args.resolved()).await?;
    if let Err(err) = bench.drop_leftovers().await {
        eprintln!("warning: dropping what earlier runs left: {err:#}");
    }
    let load_before = load_average();
    let started = date();
    let mut measurements = Vec::new();
    let mut workloads = Vec::new();
    let mut summary = Vec::new();
    let mut ratios = Vec::new();
    let mut markdown = Vec::new();
    for (index, workload) in bench.args.workloads().into_iter().enumerate() {
        let label = workload.label();
        let contestants = bench.contestants(workload.kind());
        eprintln!("== {label}: {}", labels(&contestants).join(", "));
        let (runs, data_seconds) = match &workload {
            Workload::Drain(spec) => runs::drain(&bench, index, &label, spec, &contestants).await?,
            Workload::Snapshot(spec) => {
                runs::snapshot(&bench, index, &label, spec, &contestants).await?
            }
            Workload::Steady(spec) => {
                steady::steady(&bench, index, &label, spec, &contestants).await?
            }
        };
        let workload_summary = report::summarize(&label, &contestants, &runs);
        let workload_ratios = report::ratios(&workload_summary);
        let mut table = report::markdown(
            &format!(
                "{label} ({} run{})",
                bench.args.runs,
                if bench.args.runs == 1 { "" } else { "s" }
            ),
            &workload_summary,
            &workload_ratios,
        );
        for failure in bench
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|f| f.workload == label)
        {
            let _ = writeln!(
                table,
                "\n{} failed in run {}: {}",
                failure.contestant, failure.run, failure.error
            );
        }
        // Each workload's table as soon as it is done: a long run that fails later keeps them.
        eprintln!("{table}");
        markdown.push(table);
        workloads.push(WorkloadResult {
            name: label,
            workload,
            contestants: labels(&contestants),
            data_seconds,
        });
        measurements.extend(runs);
        summary.extend(workload_summary);
        ratios.extend(workload_ratios);
    }
    let result = CompareResult {
        benchmark: "compare",
        started,
        command: std::env::args().collect(),
        quick: bench.args.quick,
        host: Host {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            load_before,
            load_after: load_average(),
        },
        versions: versions(&bench).await?,
        settings: Settings {
            partitions: bench.args.partitions,
            compression: bench.args.compression.clone(),
            linger_ms: kafka::LINGER_MS,
            snapshot_parallelism: bench.args.snapshot_parallelism,
            snapshot_chunk_rows: bench.args.snapshot_chunk_rows,
            snapshot_incremental_chunk_rows: bench.args.snapshot_incremental_chunk_rows,
            runs: bench.args.runs,
            poll_ms: u64::try_from(watch::POLL.as_millis())?,
            tls: false,
            debezium: bench.connect.as_ref().map(|c| c.settings.clone()),
        },
        workloads,
        measurements,
        summary,
        ratios,
        failures: bench
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone(),
    };
    println!("{}", markdown.join("\n"));
    if let Some(out) = &bench.args.out {
        std::fs::write(out, serde_json::to_string_pretty(&result)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    if !bench.args.keep_work_dir {
        let _ = std::fs::remove_dir_all(&bench.work);
    }
    Ok(())
}

fn labels(contestants: &[Contestant]) -> Vec<String> {
    contestants.iter().map(|c| c.label()).collect()
}

#[derive(Debug, Serialize)]
struct CompareResult {
    benchmark: &'static str,
    started: String,
    command: Vec<String>,
    quick: bool,
    host: Host,
    versions: Versions,
    settings: Settings,
    workloads: Vec<WorkloadResult>,
    measurements: Vec<Measurement>,
    summary: Vec<Summary>,
    ratios: Vec<Ratio>,
    failures: Vec<Failure>,
}

#[derive(Debug, Serialize)]
struct Host {
    cpus: usize,
    kernel: String,
    load_before: Option<[f64; 3]>,
    load_after: Option<[f64; 3]>,
}

#[derive(Debug, Serialize)]
struct Versions {
    postgres: String,
    sluice: String,
    kafka: String,
    java: String,
}

#[derive(Debug, Serialize)]
struct Settings {
    partitions: i32,
    compression: String,
    linger_ms: u32,
    snapshot_parallelism: u32,
    snapshot_chunk_rows: u64,
    /// sluice's `snapshot.incremental_chunk_rows`; `None`: sluice's default.
    snapshot_incremental_chunk_rows: Option<u64>,
    runs: u32,
    poll_ms: u64,
    tls: bool,
    debezium: Option<DebeziumSettings>,
}

#[derive(Debug, Serialize)]
struct WorkloadResult {
    name: String,
    workload: Workload,
    contestants: Vec<String>,
    /// Seconds spent writing each run's backlog, or filling the snapshot tables once.
    data_seconds: Vec<f64>,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The first line a command prints (on stdout or stderr).
fn first_line(program: &Path, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|out| {
            let text = if out.stdout.is_empty() {
                out.stderr
            } else {
                out.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_default()
}

fn date() -> String {
    first_line(Path::new("date"), &["-u", "+%Y-%m-%dT%H:%M:%SZ"])
}

async fn versions(bench: &Bench) -> anyhow::Result<Versions> {
    let postgres: String = bench
        .sql
        .query_one("SHOW server_version", &[])
        .await?
        .get(0);
    let stack_env = std::fs::read_to_string(bench.deploy.join("stack.env")).unwrap_or_default();
    let kafka = stack_env
        .lines()
        .find_map(|line| line.strip_prefix("KAFKA_VERSION="))
        .unwrap_or_default()
        .to_owned();
    Ok(Versions {
        postgres,
        sluice: first_line(&bench.sluice_bin, &["--version"]),
        kafka,
        java: if bench.connect.is_some() {
            first_line(Path::new("java"), &["-version"])
        } else {
            String::new()
        },
    })
}
