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

mod ceilings;
mod data;
mod debezium;
mod kafka;
mod report;
mod runs;
mod sluice;
mod steady;
mod watch;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use tokio_postgres::Client;

use self::data::Shares;
use self::debezium::{Connect, DebeziumSettings};
use self::kafka::{Kafka, Registry};
use self::report::{Measurement, Ratio, Summary};
use crate::drain::PgArgs;
use crate::process::{load_average, read_pid};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Drain,
    Snapshot,
    /// Single-row transactions at fixed rates while sluice streams: latency per event.
    Steady,
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

impl Changes {
    fn shares(self) -> Shares {
        match self {
            Changes::Insert => Shares::INSERT_ONLY,
            Changes::Mix => Shares::MIX,
        }
    }
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
    fn resolved(&self) -> CompareArgs {
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

    fn workloads(&self) -> Vec<Workload> {
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
                Kind::Steady => {
                    for &rate in &self.steady_rates {
                        workloads.push(Workload::Steady(SteadySpec {
                            rate,
                            seconds: self.steady_seconds,
                            connections: self.steady_connections,
                        }));
                    }
                }
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
    pub seconds: u64,
    pub connections: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct SnapshotSpec {
    pub rows: u64,
    pub tables: u32,
    pub row_bytes: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Workload {
    Drain(DrainSpec),
    Snapshot(SnapshotSpec),
    Steady(SteadySpec),
}

impl Workload {
    fn label(&self) -> String {
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
            Workload::Steady(s) => format!(
                "steady state: {} single-row transactions/s for {} s",
                report::thousands(rate_u64(s.rate)),
                s.seconds
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
    crate::stats::rate(value, 1.0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Transport {
    Tcp,
    Unix,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Contestant {
    Sluice(Transport),
    Debezium,
    PgRecvlogical(Transport),
    Copy(Transport),
    KafkaProducer,
}

impl Contestant {
    pub(crate) fn label(self) -> String {
        match self {
            Contestant::Sluice(t) => format!("sluice/{}", t.as_str()),
            Contestant::Debezium => "debezium/tcp".to_owned(),
            Contestant::PgRecvlogical(t) => format!("pg_recvlogical/{}", t.as_str()),
            Contestant::Copy(t) => format!("copy/{}", t.as_str()),
            Contestant::KafkaProducer => "kafka-producer".to_owned(),
        }
    }

    /// The part of slot, publication, topic prefix and worker names that says who.
    fn short(self) -> String {
        self.label().replace(['/', '-'], "_")
    }

    pub(crate) fn role(self) -> &'static str {
        match self {
            Contestant::Sluice(_) => "contestant",
            Contestant::Debezium => "peer",
            _ => "ceiling",
        }
    }
}

/// What every part of the benchmark shares.
pub(crate) struct Bench {
    pub args: CompareArgs,
    /// On the benchmark's database.
    pub sql: Client,
    /// The benchmark's database over TCP, and over the Unix socket when there is one.
    pub tcp: PgArgs,
    pub unix: Option<PgArgs>,
    pub kafka: Kafka,
    pub registry: Registry,
    /// The stack's broker (`$SLUICE_STATE_DIR/run/kafka.pid`).
    pub broker_pid: Option<u32>,
    /// Configurations and logs of this run's contestants.
    pub work: PathBuf,
    pub sluice_bin: PathBuf,
    pub connect: Option<Connect>,
    /// `sluicebench_<pid>`: the start of every name this run creates.
    pub tag: String,
    pub deploy: PathBuf,
    /// Runs of the peer that failed: the comparison goes on without it (see
    /// [`Bench::peer_failed`]).
    pub failures: std::sync::Mutex<Vec<Failure>>,
}

/// A run of a contestant that failed and was left out.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Failure {
    pub workload: String,
    pub contestant: String,
    pub run: u32,
    pub error: String,
}

/// A directory from the environment, else under $HOME.
fn dir_from_env(var: &str, under_home: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(under_home),
        PathBuf::from,
    )
}

/// Connects to `pg` without TLS.
async fn connect(pg: &PgArgs) -> anyhow::Result<Client> {
    let conninfo = format!("{} sslmode=disable", pg.conninfo());
    let (sql, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to PostgreSQL database {}", pg.dbname))?;
    tokio::spawn(connection);
    Ok(sql)
}

impl Bench {
    async fn open(args: CompareArgs) -> anyhow::Result<Bench> {
        let state = dir_from_env("SLUICE_STATE_DIR", ".local/state/sluice");
        let cache = dir_from_env("SLUICE_CACHE_DIR", ".cache/sluice");
        let admin = connect(&args.pg).await?;
        let exists = admin
            .query_opt(
                "SELECT 1 FROM pg_database WHERE datname = $1",
                &[&args.database],
            )
            .await?
            .is_some();
        if !exists {
            admin
                .batch_execute(&format!("CREATE DATABASE {}", args.database))
                .await
                .with_context(|| format!("creating database {}", args.database))?;
        }
        drop(admin);
        let mut tcp = args.pg.clone();
        tcp.dbname.clone_from(&args.database);
        let sql = connect(&tcp).await?;
        let socket_dir = args.socket_dir.clone().or_else(|| {
            let dir = state.join("run");
            dir.join(format!(".s.PGSQL.{}", args.pg.port))
                .exists()
                .then_some(dir)
        });
        let unix = socket_dir.map(|dir| PgArgs {
            host: dir.display().to_string(),
            ..tcp.clone()
        });
        let sluice_bin = match &args.sluice_bin {
            Some(bin) => bin.clone(),
            None => std::env::current_exe()?
                .parent()
                .context("this binary's directory")?
                .join("sluice"),
        };
        anyhow::ensure!(
            sluice_bin.exists(),
            "no sluice binary at {} (cargo build --release -p sluice, or --sluice-bin)",
            sluice_bin.display()
        );
        let deploy = args
            .deploy_dir
            .clone()
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/local"));
        let connect = if args.without_debezium {
            None
        } else {
            Connect::discover(&deploy, &state, &cache, args.with_debezium).map(|mut c| {
                c.configure(&args);
                c
            })
        };
        let tag = format!("sluicebench_{}", std::process::id());
        let work =
            std::env::temp_dir().join(format!("sluice-bench-compare-{}", std::process::id()));
        std::fs::create_dir_all(&work)?;
        Ok(Bench {
            kafka: Kafka::new(&args.kafka, &args.compression)?,
            registry: Registry::new(&format!("{}/apis/ccompat/v7", args.registry)),
            broker_pid: read_pid(&state.join("run/kafka.pid")),
            args,
            sql,
            tcp,
            unix,
            work,
            sluice_bin,
            connect,
            tag,
            deploy,
            failures: std::sync::Mutex::default(),
        })
    }

    /// Records a failed run of the peer (Debezium): a peer that cannot finish a workload (it
    /// ran out of heap, say) is a result to report, not a reason to lose the others'.
    pub(crate) fn peer_failed(&self, workload: &str, run: u32, error: &anyhow::Error) {
        let failure = Failure {
            workload: workload.to_owned(),
            contestant: Contestant::Debezium.label(),
            run,
            error: format!("{error:#}"),
        };
        eprintln!(
            "warning: {} failed in run {run} of {workload}; left out of its later runs: {}",
            failure.contestant, failure.error
        );
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(failure);
    }

    /// Whether the peer failed on `workload` already.
    pub(crate) fn peer_has_failed(&self, workload: &str) -> bool {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .any(|f| f.workload == workload)
    }

    pub(crate) fn ccompat_url(&self) -> String {
        format!("{}/apis/ccompat/v7", self.args.registry)
    }

    fn pg(&self, transport: Transport) -> anyhow::Result<&PgArgs> {
        match transport {
            Transport::Tcp => Ok(&self.tcp),
            Transport::Unix => self.unix.as_ref().context("no Unix socket directory"),
        }
    }

    fn connect(&self) -> anyhow::Result<&Connect> {
        self.connect.as_ref().context("Debezium is not set up")
    }

    /// Slot, publication, topic prefix and worker name of one contestant's run.
    fn name(&self, workload: usize, run: u32, contestant: Contestant) -> String {
        format!("{}_w{workload}_r{run}_{}", self.tag, contestant.short())
    }

    /// The contestants of a workload of `kind`, as the flags choose.
    fn contestants(&self, kind: Kind) -> Vec<Contestant> {
        let mut transports = vec![Transport::Tcp];
        if self.unix.is_some() {
            transports.push(Transport::Unix);
        }
        let mut all: Vec<Contestant> = transports.iter().map(|t| Contestant::Sluice(*t)).collect();
        if self.connect.is_some() {
            all.push(Contestant::Debezium);
        }
        for &t in &transports {
            match kind {
                Kind::Drain | Kind::Transaction | Kind::Tables => {
                    all.push(Contestant::PgRecvlogical(t));
                }
                Kind::Snapshot => all.push(Contestant::Copy(t)),
                Kind::Steady => {}
            }
        }
        if kind == Kind::Steady {
            // Latency is measured for sluice alone.
            all.retain(|c| matches!(c, Contestant::Sluice(_)));
        } else {
            all.push(Contestant::KafkaProducer);
        }
        let chosen = &self.args.contestants;
        all.retain(|c| {
            let label = c.label();
            chosen.is_empty()
                || chosen
                    .iter()
                    .any(|name| label == *name || label.split('/').next() == Some(name.as_str()))
        });
        all
    }

    /// Drops what a run named `name` left: slot, publication, topics, subjects, the worker's
    /// offsets.
    async fn drop_traces(&self, name: &str, contestant: Contestant) -> anyhow::Result<()> {
        crate::replication::drop_slot_when_released(&self.sql, name).await?;
        self.sql
            .batch_execute(&format!("DROP PUBLICATION IF EXISTS {name}"))
            .await?;
        self.kafka
            .delete_topics_with_prefix(&format!("{name}."))
            .await?;
        self.registry
            .delete_subjects_with_prefix(&format!("{name}."))
            .await?;
        if contestant == Contestant::Debezium {
            let status = Command::new(&self.connect()?.script)
                .args(["forget", name])
                .status()?;
            anyhow::ensure!(status.success(), "connect forget {name}: {status}");
        }
        Ok(())
    }

    /// Drops what earlier runs that died left behind: slots, publications, topics and subjects
    /// named after a `sluice-bench` process that no longer exists.
    async fn drop_leftovers(&self) -> anyhow::Result<()> {
        let mut tags = std::collections::BTreeSet::new();
        let slots = self
            .sql
            .query(
                "SELECT slot_name::text FROM pg_replication_slots WHERE slot_name LIKE 'sluicebench\\_%'
                 UNION SELECT pubname::text FROM pg_publication WHERE pubname LIKE 'sluicebench\\_%'",
                &[],
            )
            .await?;
        let names = slots
            .iter()
            .map(|row| row.get::<_, String>(0))
            .chain(self.kafka.topics_with_prefix("sluicebench_").await?);
        for name in names {
            let Some(pid) = name.split('_').nth(1).and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists() {
                tags.insert(format!("sluicebench_{pid}_"));
            }
        }
        for tag in tags {
            eprintln!("dropping what a dead run left: {tag}*");
            for row in self
                .sql
                .query(
                    "SELECT slot_name::text FROM pg_replication_slots WHERE starts_with(slot_name::text, $1)",
                    &[&tag],
                )
                .await?
            {
                crate::replication::drop_slot_when_released(&self.sql, &row.get::<_, String>(0))
                    .await?;
            }
            for row in self
                .sql
                .query(
                    "SELECT pubname::text FROM pg_publication WHERE starts_with(pubname::text, $1)",
                    &[&tag],
                )
                .await?
            {
                let publication: String = row.get(0);
                self.sql
                    .batch_execute(&format!("DROP PUBLICATION IF EXISTS {publication}"))
                    .await?;
            }
            self.kafka.delete_topics_with_prefix(&tag).await?;
            self.registry.delete_subjects_with_prefix(&tag).await?;
        }
        Ok(())
    }

    /// Drops every contestant's traces; reports failures without stopping.
    async fn drop_all_traces(&self, names: &[(Contestant, String)]) {
        for (contestant, name) in names {
            if let Err(err) = self.drop_traces(name, *contestant).await {
                eprintln!("warning: cleaning up after {name}: {err:#}");
            }
        }
    }
}

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
        let contestants = bench.contestants(match workload {
            Workload::Drain(_) => Kind::Drain,
            Workload::Snapshot(_) => Kind::Snapshot,
            Workload::Steady(_) => Kind::Steady,
        });
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
