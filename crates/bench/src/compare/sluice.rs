//! sluice as a contestant: the release binary, `sluice run` with a configuration of its own per
//! contestant and run (slot, publication and topic prefix all named after it).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use super::bench::Bench;
use super::kafka::LINGER_MS;
use super::watch::Running;
use crate::drain::PgArgs;
use crate::process::{still_running, terminate};

/// How long a SIGTERM'd sluice may take to drain and exit.
const STOP_GRACE: Duration = Duration::from_secs(60);

/// sluice's `snapshot.mode` in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SnapshotMode {
    /// Stream only (the drains, the steady state).
    Never,
    /// Copy the tables in the slot's exported snapshot, then stream.
    Initial,
    /// Stream at once, and read the tables in key-range chunks meanwhile.
    Incremental,
}

impl SnapshotMode {
    fn as_str(self) -> &'static str {
        match self {
            SnapshotMode::Never => "never",
            SnapshotMode::Initial => "initial",
            SnapshotMode::Incremental => "incremental",
        }
    }
}

/// A running `sluice run`, stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub(crate) struct Sluice {
    child: Child,
    log: PathBuf,
}

impl Sluice {
    /// Starts sluice capturing `tables` (in schema public) as contestant `name`, with the
    /// snapshot `mode`.
    pub(crate) fn start(
        bench: &Bench,
        name: &str,
        pg: &PgArgs,
        tables: &[String],
        mode: SnapshotMode,
    ) -> anyhow::Result<Sluice> {
        let config = bench.work.join(format!("{name}.toml"));
        std::fs::write(&config, config_toml(bench, name, pg, tables, mode))
            .with_context(|| format!("writing {}", config.display()))?;
        let log = bench.work.join(format!("{name}.log"));
        let mut command = Command::new(&bench.sluice_bin);
        // Only this configuration counts: no SLUICE_* override from our environment.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SLUICE_") {
                command.env_remove(key);
            }
        }
        let child = command
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", bench.sluice_bin.display()))?;
        Ok(Sluice { child, log })
    }

    /// SIGTERM, and wait for it to drain and exit.
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        terminate(&mut self.child, STOP_GRACE)
    }
}

impl Running for Sluice {
    fn pid(&mut self) -> Option<u32> {
        Some(self.child.id())
    }

    fn check(&mut self) -> anyhow::Result<()> {
        still_running(&mut self.child, "sluice").with_context(|| {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            format!(
                "its log {}, last lines:\n{}",
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        if let Err(err) = terminate(&mut self.child, STOP_GRACE) {
            eprintln!(
                "warning: stopping sluice (pid {}): {err:#}",
                self.child.id()
            );
        }
    }
}

/// A TOML string (TOML's basic strings escape like JSON's).
fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// sluice's configuration for one contestant run. Everything not named here is sluice's
/// default; TLS is off, as for every contestant.
fn config_toml(
    bench: &Bench,
    name: &str,
    pg: &PgArgs,
    tables: &[String],
    mode: SnapshotMode,
) -> String {
    let args = &bench.args;
    let mut toml = String::new();
    let include: Vec<String> = tables
        .iter()
        .map(|t| quoted(&format!("public.{t}")))
        .collect();
    // Writing to a String cannot fail.
    let _ = write!(
        toml,
        "[postgres]\nhost = {host}\nport = {port}\ndatabase = {database}\nuser = {user}\n\
         password = {password}\nsslmode = \"disable\"\n\n\
         [replication]\nslot = {name_q}\npublication = {name_q}\n\n\
         [tables]\ninclude = [{include}]\n\n\
         [snapshot]\nmode = {mode}\nparallelism = {parallelism}\nchunk_rows = {chunk_rows}\n{incremental}\n\
         [kafka]\nbootstrap_servers = {bootstrap}\ntopic_prefix = {name_q}\npartitions = {partitions}\n\
         replication_factor = 1\ncompression = {compression}\n\n\
         [kafka.producer]\n\"linger.ms\" = {LINGER_MS}\n\n\
         [registry]\nurl = {registry}\n\n\
         [metrics]\nenabled = false\n",
        host = quoted(&pg.host),
        port = pg.port,
        database = quoted(&pg.dbname),
        user = quoted(&pg.user),
        password = quoted(pg.password.as_deref().unwrap_or(&pg.user)),
        name_q = quoted(name),
        include = include.join(", "),
        mode = quoted(mode.as_str()),
        parallelism = args.snapshot_parallelism,
        chunk_rows = args.snapshot_chunk_rows,
        // Left to sluice's default unless asked for: the default is what the issue measures.
        incremental = args
            .snapshot_incremental_chunk_rows
            .map(|rows| format!("incremental_chunk_rows = {rows}\n"))
            .unwrap_or_default(),
        bootstrap = quoted(&args.kafka),
        partitions = args.partitions,
        compression = quoted(&args.compression),
        registry = quoted(&bench.ccompat_url()),
    );
    toml
}
