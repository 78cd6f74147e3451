//! Debezium as the peer: its PostgreSQL connector in a Kafka Connect standalone worker started
//! by `deploy/local/connect`, from the template in `deploy/local/connect.d/` plus the settings
//! that make it comparable with sluice (see [`like_for_like`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::bench::Bench;
use super::kafka_connect::{Connect, DebeziumSettings};
use super::watch::{POLL, Running};
use crate::process::read_pid;

/// The connector's properties for contestant `name`: the template filled in, then the settings
/// that make it like sluice (these come later, so they win).
pub(crate) fn properties(
    bench: &Bench,
    connect: &Connect,
    name: &str,
    tables: &[String],
    snapshot: bool,
) -> anyhow::Result<String> {
    let template = std::fs::read_to_string(&connect.template)
        .with_context(|| format!("reading {}", connect.template.display()))?;
    let pg = &bench.tcp;
    // In a .properties file a backslash escapes: `\\.` is the regex `\.`.
    let include: Vec<String> = tables.iter().map(|t| format!("public\\\\.{t}")).collect();
    let values = [
        ("WORKER", name.to_owned()),
        ("PG_HOST", pg.host.clone()),
        ("PG_PORT", pg.port.to_string()),
        ("PG_USER", pg.user.clone()),
        (
            "PG_PASSWORD",
            pg.password.clone().unwrap_or_else(|| pg.user.clone()),
        ),
        ("PG_DATABASE", pg.dbname.clone()),
        (
            "REGISTRY_URL",
            format!("{}/apis/registry/v2", bench.args.registry),
        ),
        ("TOPIC_PREFIX", name.to_owned()),
        ("SLOT_NAME", name.to_owned()),
        ("PUBLICATION_NAME", name.to_owned()),
        ("TABLE_INCLUDE_LIST", include.join(",")),
    ];
    let mut text = String::new();
    for line in template.lines() {
        let mut line = line.to_owned();
        if !line.trim_start().starts_with('#') {
            for (var, value) in &values {
                line = line.replace(&format!("@{var}@"), value);
            }
            if let Some(at) = line.find('@')
                && line[at + 1..].contains('@')
            {
                bail!(
                    "{}: a placeholder this benchmark does not fill: {line}",
                    connect.template.display()
                );
            }
        }
        text.push_str(&line);
        text.push('\n');
    }
    text.push_str(&like_for_like(&connect.settings, snapshot));
    Ok(text)
}

/// What sluice does too: the same partitions, compression, linger, acks and idempotence;
/// snapshot threads as sluice's snapshot parallelism; TLS off.
fn like_for_like(settings: &DebeziumSettings, snapshot: bool) -> String {
    let mut text = String::from("\n# sluice-bench compare: settings shared with sluice\n");
    let _ = writeln!(
        text,
        "snapshot.mode={}",
        if snapshot { "initial" } else { "no_data" }
    );
    let _ = writeln!(
        text,
        "snapshot.max.threads={}",
        settings.snapshot_max_threads
    );
    let _ = writeln!(
        text,
        "topic.creation.default.partitions={}",
        settings.partitions
    );
    for (key, value) in &settings.producer {
        let _ = writeln!(text, "producer.override.{key}={value}");
    }
    text.push_str("database.sslmode=disable\n");
    text
}

/// A worker started by `deploy/local/connect start`, stopped by `connect stop` when dropped.
#[derive(Debug)]
pub(crate) struct Worker {
    connect: Connect,
    name: String,
    /// `connect start`, which returns once the connector runs.
    start: Child,
    start_log: PathBuf,
    pid: Option<u32>,
    stopped: bool,
    /// Connect's log of the worker, scanned for a task that died; how far it was read.
    log: PathBuf,
    log_read: u64,
}

/// What Connect logs when a task has died and will not recover: the run cannot finish.
const TASK_DIED: &str = "Task threw an uncaught and unrecoverable exception";

/// The causes Connect logged after a task death in `log`, if one is there.
fn task_death_in(log: &str) -> Option<String> {
    let at = log.find(TASK_DIED)?;
    let causes: Vec<&str> = log[at..]
        .lines()
        .filter(|line| line.starts_with("Caused by"))
        .take(3)
        .collect();
    Some(if causes.is_empty() {
        "no cause logged".to_owned()
    } else {
        causes.join("; ")
    })
}

impl Worker {
    pub(crate) fn start(
        bench: &Bench,
        connect: &Connect,
        name: &str,
        properties: &str,
    ) -> anyhow::Result<Worker> {
        let file = bench.work.join(format!("{name}.properties"));
        std::fs::write(&file, properties)?;
        let start_log = bench.work.join(format!("{name}.connect-start.log"));
        // A stale pid file would name the previous worker.
        let _ = std::fs::remove_file(connect.workers.join(name).join("worker.pid"));
        let output = std::fs::File::create(&start_log)?;
        let start = Command::new(&connect.script)
            .args(["start", name])
            .arg(&file)
            // Nothing to settle: a source connector fails at once or not at all.
            .env("SLUICE_CONNECT_SETTLE", "0")
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .spawn()
            .with_context(|| format!("running {}", connect.script.display()))?;
        Ok(Worker {
            connect: connect.clone(),
            name: name.to_owned(),
            start,
            start_log,
            pid: None,
            stopped: false,
            log: connect
                .workers
                .parent()
                .unwrap_or(&connect.workers)
                .join("logs")
                .join(format!("connect-{name}.log")),
            log_read: 0,
        })
    }

    /// Stops the worker (its offsets stay for the next start).
    pub(crate) fn stop(&mut self) -> anyhow::Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        // `connect start` stops the worker itself if it fails to start; let it finish first.
        let deadline = Instant::now() + Duration::from_secs(240);
        while self.start.try_wait()?.is_none() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        if self.start.try_wait()?.is_none() {
            self.start.kill()?;
            self.start.wait()?;
        }
        self.connect_command("stop")
    }

    /// Whether Connect wrote the worker's source offsets after `since` (it does every second
    /// when records were acknowledged).
    pub(crate) fn offsets_saved_since(&self, since: std::time::SystemTime) -> bool {
        std::fs::metadata(self.connect.workers.join(&self.name).join("offsets"))
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified > since)
    }

    /// The cause of a task death logged since the last look, if any.
    fn task_death(&mut self) -> Option<String> {
        use std::io::{Read as _, Seek as _};
        let mut file = std::fs::File::open(&self.log).ok()?;
        file.seek(std::io::SeekFrom::Start(self.log_read)).ok()?;
        let mut text = String::new();
        file.read_to_string(&mut text).ok()?;
        // Whole lines only: a line still being written is read again next time.
        let complete = text.rfind('\n').map_or(0, |end| end + 1);
        self.log_read += u64::try_from(complete).unwrap_or(0);
        task_death_in(&text[..complete])
    }

    fn connect_command(&self, command: &str) -> anyhow::Result<()> {
        let status = Command::new(&self.connect.script)
            .args([command, &self.name])
            .stdout(Stdio::null())
            .status()?;
        anyhow::ensure!(
            status.success(),
            "connect {command} {}: {status}",
            self.name
        );
        Ok(())
    }
}

impl Running for Worker {
    fn pid(&mut self) -> Option<u32> {
        if self.pid.is_none() {
            self.pid = read_pid(&self.connect.workers.join(&self.name).join("worker.pid"));
        }
        self.pid
    }

    fn check(&mut self) -> anyhow::Result<()> {
        let failed = match self.start.try_wait()? {
            Some(status) => !status.success(),
            None => false,
        };
        let gone = self
            .pid()
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
        if let Some(cause) = self.task_death() {
            bail!(
                "Debezium's task in worker {} died: {cause} (see {})",
                self.name,
                self.log.display()
            );
        }
        if failed || gone {
            let log = std::fs::read_to_string(&self.start_log).unwrap_or_default();
            bail!(
                "Debezium worker {} failed ({}); connect start said:\n{log}",
                self.name,
                if gone {
                    "its process is gone"
                } else {
                    "connect start failed"
                }
            );
        }
        Ok(())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            eprintln!("warning: stopping Debezium worker {}: {err:#}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::task_death_in;

    #[test]
    fn a_dead_task_is_told_by_its_causes() {
        let log = "[..] INFO starting\n\
                   [..] ERROR WorkerSourceTask{id=x-0} Task threw an uncaught and unrecoverable exception. Task is being killed\n\
                   java.util.concurrent.ExecutionException: boom\n\
                   Caused by: java.lang.OutOfMemoryError: Java heap space\n";
        assert_eq!(
            task_death_in(log).as_deref(),
            Some("Caused by: java.lang.OutOfMemoryError: Java heap space")
        );
        assert_eq!(task_death_in("[..] INFO all fine\n"), None);
    }
}
