//! The command line of `sluice-bench compare`, and the workloads its flags ask for.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::report;
use crate::drain::PgArgs;
use crate::stats::rate;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Drain,
    Snapshot,
    /// Single-row transactions at fixed rates while sluice streams: latency per event.
    Steady,
    /// The steady workload while sluice (`snapshot.mode = "incremental"`) snapshots a table of
    /// --steady-snapshot-rows rows: the writer's latency, and the snapshot's rows/s.
    SteadySnapshot,
    /// One transaction of --transaction-rows rows: time and sluice's memory.
    Transaction,
    /// The drain spread over --tables tables.
    Tables,
}

/// What a drain's changes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Changes {
    /// Inserts only.
    Insert,
    /// 60 % inserts, 30 % updates, 10 % deletes.
    Mix,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pub pg: PgArgs,
    /// The database of the benchmark's tables; created (from --dbname's) when missing.
    #[arg(long, default_value = "sluice_bench")]
    pub database: String,
    /// PostgreSQL's Unix socket directory, for the socket contestants; default the stack's
    /// (`$SLUICE_STATE_DIR/run`) when it is there.
    #[arg(long)]
    pub socket_dir: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub kafka: String,
    /// Apicurio's base URL: sluice uses its Confluent API, Debezium's converter its v2 API.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    pub registry: String,
    #[arg(long, value_delimiter = ',', default_values = ["drain", "snapshot"])]
    pub workloads: Vec<Kind>,
    /// Row changes in a drain's backlog.
    #[arg(long, default_value_t = 20_000)]
    pub changes: u64,
    /// Drain workloads: inserts only, and/or the 60/30/10 insert/update/delete mix.
    #[arg(long, value_delimiter = ',', default_values = ["insert"])]
    pub mix: Vec<Changes>,
    /// Drain workloads: bytes per row (e.g. 200,1000).
    #[arg(long, value_delimiter = ',', default_values_t = [200])]
    pub row_bytes: Vec<u64>,
    /// Drain workloads: rows per transaction (e.g. 1,10,100,1000).
    #[arg(long, value_delimiter = ',', default_values_t = [10])]
    pub rows_per_transaction: Vec<u64>,
    /// Rows of a snapshot workload, over all its tables.
    #[arg(long, default_value_t = 20_000)]
    pub snapshot_rows: u64,
    /// Snapshot workloads: the rows in this many tables (e.g. 1,8).
    #[arg(long, value_delimiter = ',', default_values_t = [1])]
    pub snapshot_tables: Vec<u32>,
    #[arg(long, default_value_t = 200)]
    pub snapshot_row_bytes: u64,
    /// Steady workloads: single-row transactions per second (e.g. 1000,10000).
    #[arg(long, value_delimiter = ',', default_values_t = [1_000, 10_000])]
    pub steady_rates: Vec<u64>,
    /// Steady workloads: how long each rate is written.
    #[arg(long, default_value_t = 30)]
    pub steady_seconds: u64,
    /// Steady workloads: the writer's connections (each pipelines its inserts).
    #[arg(long, default_value_t = 8)]
    pub steady_connections: u64,
    /// Steady-snapshot workloads: rows of the table snapshotted meanwhile (of
    /// --snapshot-row-bytes each).
    #[arg(long, default_value_t = 2_000_000)]
    pub steady_snapshot_rows: u64,
    /// Rows of the transaction workload's one transaction.
    #[arg(long, default_value_t = 1_000_000)]
    pub transaction_rows: u64,
    /// Tables of the tables workload (the drain's --changes spread over them).
    #[arg(long, default_value_t = 100)]
    pub tables: u32,
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// Only these contestants (e.g. sluice/unix,debezium/tcp; a family name such as `sluice`
    /// takes all its transports). Default: all.
    #[arg(long, value_delimiter = ',')]
    pub contestants: Vec<String>,
    /// Run Debezium even if its Connect plugins are not installed yet (`connect start`
    /// installs them). Without either flag Debezium runs when they are installed.
    #[arg(long)]
    pub with_debezium: bool,
    #[arg(long, conflicts_with = "with_debezium")]
    pub without_debezium: bool,
    /// CI's check: 5,000 changes (insert, 200 B, 10 rows/transaction) and a 5,000-row
    /// one-table snapshot, one run; overrides the workload and run flags.
    #[arg(long)]
    pub quick: bool,
    /// Partitions of every contestant's topics.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
    #[arg(long, default_value = "lz4")]
    pub compression: String,
    /// sluice's snapshot.parallelism; Debezium's snapshot.max.threads; COPY connections.
    #[arg(long, default_value_t = 2)]
    pub snapshot_parallelism: u32,
    /// sluice's snapshot.chunk_rows; the COPY ceiling cuts tables the same way.
    #[arg(long, default_value_t = 100_000)]
    pub snapshot_chunk_rows: u64,
    /// sluice's snapshot.incremental_chunk_rows; sluice's default without.
    #[arg(long)]
    pub snapshot_incremental_chunk_rows: Option<u64>,
    /// Longest wait for one contestant's run.
    #[arg(long, default_value_t = 600)]
    pub timeout_seconds: u64,
    /// The sluice binary; default `sluice` beside this one.
    #[arg(long)]
    pub sluice_bin: Option<PathBuf>,
    /// The `deploy/local` directory (Connect's script and templates, stack.env).
    #[arg(long)]
    pub deploy_dir: Option<PathBuf>,
    /// Keep the contestants' configurations and logs.
    #[arg(long)]
    pub keep_work_dir: bool,
    /// Where to write the JSON result.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl CompareArgs {
    pub(crate) fn resolved(&self) -> CompareArgs {
        let mut args = self.clone();
        if args.quick {
            args.workloads = vec![Kind::Drain, Kind::Snapshot];
            args.changes = 5_000;
            args.mix = vec![Changes::Insert];
            args.row_bytes = vec![200];
            args.rows_per_transaction = vec![10];
            args.snapshot_rows = 5_000;
            args.snapshot_tables = vec![1];
            args.runs = 1;
        }
        args
    }

    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds)
    }

    /// The drain workloads of the flags, over `tables` tables.
    fn drains(&self, tables: u32) -> Vec<Workload> {
        let mut workloads = Vec::new();
        for &mix in &self.mix {
            for &row_bytes in &self.row_bytes {
                for &rows_per_transaction in &self.rows_per_transaction {
                    workloads.push(Workload::Drain(DrainSpec {
                        changes: self.changes,
                        mix,
                        row_bytes,
                        rows_per_transaction,
                        tables,
                    }));
                }
            }
        }
        workloads
    }

    /// The steady workloads of the flags, during an incremental snapshot of `snapshot` or not.
    fn steadies(&self, snapshot: Option<SnapshotSpec>) -> Vec<Workload> {
        self.steady_rates
            .iter()
            .map(|&rate| {
                Workload::Steady(SteadySpec {
                    rate,
                    seconds: self.steady_seconds,
                    connections: self.steady_connections,
                    snapshot,
                })
            })
            .collect()
    }

    pub(crate) fn workloads(&self) -> Vec<Workload> {
        let mut workloads = Vec::new();
        for kind in &self.workloads {
            match kind {
                Kind::Drain => workloads.extend(self.drains(1)),
                Kind::Tables => workloads.extend(self.drains(self.tables)),
                Kind::Transaction => workloads.push(Workload::Drain(DrainSpec {
                    changes: self.transaction_rows,
                    mix: Changes::Insert,
                    row_bytes: self.row_bytes.first().copied().unwrap_or(200),
                    rows_per_transaction: self.transaction_rows,
                    tables: 1,
                })),
                Kind::Steady => workloads.extend(self.steadies(None)),
                Kind::SteadySnapshot => workloads.extend(self.steadies(Some(SnapshotSpec {
                    rows: self.steady_snapshot_rows,
                    tables: 1,
                    row_bytes: self.snapshot_row_bytes,
                }))),
                Kind::Snapshot => {
                    for &tables in &self.snapshot_tables {
                        workloads.push(Workload::Snapshot(SnapshotSpec {
                            rows: self.snapshot_rows,
                            tables,
                            row_bytes: self.snapshot_row_bytes,
                        }));
                    }
                }
            }
        }
        workloads
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct DrainSpec {
    pub changes: u64,
    pub mix: Changes,
    pub row_bytes: u64,
    pub rows_per_transaction: u64,
    /// Transaction `t` writes to table `t % tables`.
    pub tables: u32,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct SteadySpec {
    /// Single-row transactions per second.
    pub rate: u64,
    /// How long the writer writes; during a snapshot, at most: it stops when the snapshot is
    /// done, so that every latency measured is one under the snapshot's load.
    pub seconds: u64,
    pub connections: u64,
    /// The table sluice snapshots incrementally meanwhile, if any.
    pub snapshot: Option<SnapshotSpec>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct SnapshotSpec {
    pub rows: u64,
    pub tables: u32,
    pub row_bytes: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum Workload {
    Drain(DrainSpec),
    Snapshot(SnapshotSpec),
    Steady(SteadySpec),
}

impl Workload {
    /// Which kind of workload it is, for choosing its contestants.
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Workload::Drain(_) => Kind::Drain,
            Workload::Snapshot(_) => Kind::Snapshot,
            Workload::Steady(s) if s.snapshot.is_some() => Kind::SteadySnapshot,
            Workload::Steady(_) => Kind::Steady,
        }
    }

    pub(crate) fn label(&self) -> String {
        match self {
            Workload::Drain(d) => format!(
                "drain, {}: {} changes, {} B rows, {} rows/transaction{}",
                match d.mix {
                    Changes::Insert => "insert only",
                    Changes::Mix => "60/30/10 insert/update/delete",
                },
                report::thousands(rate_u64(d.changes)),
                d.row_bytes,
                report::thousands(rate_u64(d.rows_per_transaction)),
                if d.tables > 1 {
                    format!(", over {} tables", d.tables)
                } else {
                    String::new()
                }
            ),
            Workload::Steady(SteadySpec {
                rate,
                seconds,
                snapshot: None,
                ..
            }) => format!(
                "steady state: {} single-row transactions/s for {seconds} s",
                report::thousands(rate_u64(*rate)),
            ),
            Workload::Steady(SteadySpec {
                rate,
                seconds,
                snapshot: Some(snapshot),
                ..
            }) => format!(
                "steady state during an incremental snapshot of {} rows of {} B: {} single-row \
                 transactions/s until it is done, {seconds} s at most (events/s: the snapshot's rows)",
                report::thousands(rate_u64(snapshot.rows)),
                snapshot.row_bytes,
                report::thousands(rate_u64(*rate)),
            ),
            Workload::Snapshot(s) => format!(
                "snapshot: {} rows of {} B in {} table{}",
                report::thousands(rate_u64(s.rows)),
                s.row_bytes,
                s.tables,
                if s.tables == 1 { "" } else { "s" }
            ),
        }
    }
}

fn rate_u64(value: u64) -> f64 {
    rate(value, 1.0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: CompareArgs,
    }

    #[test]
    fn a_steady_snapshot_workload_is_a_steady_one_with_a_table_to_snapshot() {
        let cli = Cli::try_parse_from([
            "compare",
            "--workloads",
            "steady,steady-snapshot",
            "--steady-rates",
            "1000",
            "--steady-snapshot-rows",
            "5000000",
        ])
        .unwrap();
        let workloads = cli.args.workloads();
        let kinds: Vec<Kind> = workloads.iter().map(Workload::kind).collect();
        assert_eq!(kinds, [Kind::Steady, Kind::SteadySnapshot]);
        let Workload::Steady(spec) = workloads[1] else {
            panic!("not a steady workload");
        };
        assert_eq!(spec.rate, 1000);
        assert_eq!(
            spec.snapshot.map(|s| (s.rows, s.tables)),
            Some((5_000_000, 1))
        );
    }
}
