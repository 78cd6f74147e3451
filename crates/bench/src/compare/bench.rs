//! What every part of the benchmark shares: the flags, the database, Kafka, the registry, the
//! contestants' working directory and Debezium's Connect; the names a run gives what it creates,
//! and dropping them afterwards (also what runs that died left behind).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use serde::Serialize;
use tokio_postgres::Client;

use super::args::{CompareArgs, Kind};
use super::contestant::{Contestant, Transport};
use super::kafka::{Kafka, Registry};
use super::kafka_connect::Connect;
use crate::drain::PgArgs;
use crate::process::read_pid;

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
pub(crate) async fn connect(pg: &PgArgs) -> anyhow::Result<Client> {
    let conninfo = format!("{} sslmode=disable", pg.conninfo());
    let (sql, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to PostgreSQL database {}", pg.dbname))?;
    tokio::spawn(connection);
    Ok(sql)
}

impl Bench {
    pub(crate) async fn open(args: CompareArgs) -> anyhow::Result<Bench> {
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

    pub(crate) fn pg(&self, transport: Transport) -> anyhow::Result<&PgArgs> {
        match transport {
            Transport::Tcp => Ok(&self.tcp),
            Transport::Unix => self.unix.as_ref().context("no Unix socket directory"),
        }
    }

    pub(crate) fn connect(&self) -> anyhow::Result<&Connect> {
        self.connect.as_ref().context("Debezium is not set up")
    }

    /// Slot, publication, topic prefix and worker name of one contestant's run.
    pub(crate) fn name(&self, workload: usize, run: u32, contestant: Contestant) -> String {
        format!("{}_w{workload}_r{run}_{}", self.tag, contestant.short())
    }

    /// The contestants of a workload of `kind`, as the flags choose.
    pub(crate) fn contestants(&self, kind: Kind) -> Vec<Contestant> {
        let mut transports = vec![Transport::Tcp];
        if self.unix.is_some() {
            transports.push(Transport::Unix);
        }
        let mut all: Vec<Contestant> = transports.iter().map(|t| Contestant::Sluice(*t)).collect();
        if matches!(kind, Kind::Snapshot | Kind::SteadySnapshot) {
            all.extend(transports.iter().map(|t| Contestant::SluiceIncremental(*t)));
        }
        if self.connect.is_some() {
            all.push(Contestant::Debezium);
        }
        for &t in &transports {
            match kind {
                Kind::Drain | Kind::Transaction | Kind::Tables => {
                    all.push(Contestant::PgRecvlogical(t));
                }
                Kind::Snapshot => all.push(Contestant::Copy(t)),
                Kind::Steady | Kind::SteadySnapshot => {}
            }
        }
        match kind {
            // Latency is measured for sluice alone; during an incremental snapshot, of course.
            Kind::Steady => all.retain(|c| matches!(c, Contestant::Sluice(_))),
            Kind::SteadySnapshot => all.retain(|c| matches!(c, Contestant::SluiceIncremental(_))),
            _ => all.push(Contestant::KafkaProducer),
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
    pub(crate) async fn drop_leftovers(&self) -> anyhow::Result<()> {
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
    pub(crate) async fn drop_all_traces(&self, names: &[(Contestant, String)]) {
        for (contestant, name) in names {
            if let Err(err) = self.drop_traces(name, *contestant).await {
                eprintln!("warning: cleaning up after {name}: {err:#}");
            }
        }
    }
}
