//! Processes seen through /proc: CPU time, peak memory, load; stopping one by its pid.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::stats::rate;

/// Clock ticks per second of /proc/PID/stat's CPU fields (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// User + system CPU seconds of process `pid` so far, or None when it is gone.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(rate(utime.saturating_add(stime), clock_ticks()))
}

/// A `VmHWM`-style line of /proc/`pid`/status, in KiB (`pid` may be `self`).
pub(crate) fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        line.strip_prefix(field)?
            .strip_prefix(':')?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    })
}

/// Peak resident set size of `pid` so far, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(&pid.to_string(), "VmHWM")
}

/// Resets this process's peak RSS to its current RSS (Linux 4.0+), so that an in-process
/// ceiling's peak is its own and not an earlier phase's.
pub(crate) fn reset_own_peak_rss() {
    if let Err(err) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("warning: cannot reset the peak RSS ({err}); it covers earlier phases too");
    }
}

/// The 1, 5 and 15 minute load averages.
pub(crate) fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    Some([
        fields.next()?.ok()?,
        fields.next()?.ok()?,
        fields.next()?.ok()?,
    ])
}

/// A pid read from a pid file, if the file holds one.
pub(crate) fn read_pid(path: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `child` still runs; an error says how it ended when it did.
pub(crate) fn still_running(child: &mut Child, what: &str) -> anyhow::Result<()> {
    match child.try_wait()? {
        None => Ok(()),
        Some(status) => bail!("{what} exited early: {status}"),
    }
}

/// Sends SIGTERM to the child we started, waits up to `grace` for it to exit, then kills it.
pub(crate) fn terminate(child: &mut Child, grace: Duration) -> anyhow::Result<()> {
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .with_context(|| format!("kill -TERM {pid}"))?;
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("warning: pid {pid} did not stop within {grace:?} of SIGTERM; killing it");
    child.kill()?;
    child.wait()?;
    Ok(())
}

/// What /usr/bin/time reports of a process that exited.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    pub wall_seconds: f64,
    pub user_cpu_seconds: f64,
    pub system_cpu_seconds: f64,
    pub max_rss_kib: u64,
}

/// A child run under /usr/bin/time, whose report gives its CPU and peak RSS once it exited.
#[derive(Debug)]
pub(crate) struct TimedChild {
    child: Child,
    report: PathBuf,
    program: String,
}

/// Starts `command` under /usr/bin/time, its stdout discarded.
pub(crate) fn spawn_timed(command: &Command) -> anyhow::Result<TimedChild> {
    static SPAWNED: AtomicU32 = AtomicU32::new(0);
    let report = std::env::temp_dir().join(format!(
        "sluice-bench-time-{}-{}",
        std::process::id(),
        SPAWNED.fetch_add(1, Ordering::Relaxed)
    ));
    let program = command.get_program().to_string_lossy().into_owned();
    let child = Command::new("/usr/bin/time")
        .args(["-f", "%e %U %S %M", "-o"])
        .arg(&report)
        .arg(command.get_program())
        .args(command.get_args())
        .stdout(Stdio::null())
        .spawn()
        .context("running /usr/bin/time (Debian package `time`)")?;
    Ok(TimedChild {
        child,
        report,
        program,
    })
}

impl TimedChild {
    /// The usage once the child exited successfully, None while it runs.
    pub(crate) fn try_finish(&mut self) -> anyhow::Result<Option<Usage>> {
        match self.child.try_wait()? {
            None => Ok(None),
            Some(status) => self.finish(status).map(Some),
        }
    }

    /// Waits for the child to exit.
    pub(crate) fn wait(mut self) -> anyhow::Result<Usage> {
        let status = self.child.wait()?;
        self.finish(status)
    }

    fn finish(&self, status: std::process::ExitStatus) -> anyhow::Result<Usage> {
        let text = std::fs::read_to_string(&self.report);
        let _ = std::fs::remove_file(&self.report);
        if !status.success() {
            bail!("{} failed: {status}", self.program);
        }
        let text = text.context("reading /usr/bin/time's report")?;
        let fields: Vec<&str> = text
            .lines()
            .last()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let field = |i: usize| -> anyhow::Result<&str> {
            fields
                .get(i)
                .copied()
                .with_context(|| format!("short /usr/bin/time report {text:?}"))
        };
        let seconds =
            |i: usize| -> anyhow::Result<f64> { field(i)?.parse().context("/usr/bin/time report") };
        Ok(Usage {
            wall_seconds: seconds(0)?,
            user_cpu_seconds: seconds(1)?,
            system_cpu_seconds: seconds(2)?,
            max_rss_kib: field(3)?.parse().context("/usr/bin/time report")?,
        })
    }
}
