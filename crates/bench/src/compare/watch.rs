//! Watching a contestant run: when its events are all in Kafka, when its slot is confirmed,
//! and the CPU its process, its PostgreSQL backends and the broker spent until then.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use sluice_pgoutput::Lsn;
use tokio_postgres::Client;

use super::bench::Bench;
use super::report::Observation;
use crate::process::{cpu_seconds, peak_rss_kib, status_kib};

/// How often the topics, the slot and the processes are looked at: the resolution of every
/// time measured here.
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// How often the contestant's resident set size (`VmRSS`) is sampled, at most.
const RSS_EVERY: Duration = Duration::from_millis(100);

/// A contestant's process while it runs.
pub(crate) trait Running {
    /// The process whose CPU and memory are the contestant's, once it is known.
    fn pid(&mut self) -> Option<u32>;
    /// An error when it stopped or failed.
    fn check(&mut self) -> anyhow::Result<()>;
}

/// The CPU time of the PostgreSQL backends that serve one contestant: the walsender of its
/// slot and, for snapshots, the backends whose query names the workload's tables.
#[derive(Debug, Default)]
pub(crate) struct Backends {
    /// Backends started before this (server clock) are someone else's.
    since: String,
    /// The latest CPU seconds read of each backend seen (a backend that exits keeps its last).
    cpu: BTreeMap<u32, f64>,
}

impl Backends {
    /// Backends from now on; call it just before the contestant starts.
    pub(crate) async fn from_now(sql: &Client) -> anyhow::Result<Backends> {
        let since: String = sql
            .query_one("SELECT clock_timestamp()::text", &[])
            .await?
            .get(0);
        Ok(Backends {
            since,
            cpu: BTreeMap::new(),
        })
    }

    /// Looks for the contestant's backends and reads the CPU time of every one seen.
    pub(crate) async fn sample(
        &mut self,
        sql: &Client,
        slot: Option<&str>,
        query_like: Option<&str>,
    ) -> anyhow::Result<()> {
        let rows = sql
            .query(
                "SELECT pid FROM pg_stat_activity
                  WHERE pid <> pg_backend_pid() AND backend_start >= $1::text::timestamptz
                    AND (pid = (SELECT active_pid FROM pg_replication_slots WHERE slot_name = $2)
                         OR ($3 <> '' AND query LIKE '%' || $3 || '%'))",
                &[
                    &self.since,
                    &slot.unwrap_or_default(),
                    &query_like.unwrap_or_default(),
                ],
            )
            .await?;
        for row in rows {
            let pid: i32 = row.get(0);
            self.cpu.entry(u32::try_from(pid)?).or_insert(0.0);
        }
        for (pid, cpu) in &mut self.cpu {
            if let Some(now) = cpu_seconds(*pid) {
                *cpu = now;
            }
        }
        Ok(())
    }

    pub(crate) fn total(&self) -> Option<f64> {
        (!self.cpu.is_empty()).then(|| self.cpu.values().sum())
    }
}

/// The broker's CPU seconds so far, when its pid is known.
pub(crate) fn broker_cpu(bench: &Bench) -> Option<f64> {
    bench.broker_pid.and_then(cpu_seconds)
}

/// What a contestant's run is waited for.
#[derive(Debug)]
pub(crate) struct Target<'a> {
    /// Its topics, with `records` more records in them than at the start when it is done.
    pub topics: &'a [String],
    pub records: u64,
    /// Its slot: the walsender's CPU is measured, and with `confirm_at` the run also waits for
    /// `confirmed_flush_lsn >= confirm_at` once every record is acknowledged.
    pub slot: Option<&'a str>,
    pub confirm_at: Option<Lsn>,
    /// Also measure backends whose query contains this (snapshot COPY/SELECT sessions).
    pub query_like: Option<&'a str>,
}

/// The moment a contestant starts, and the broker's CPU then.
#[derive(Debug)]
pub(crate) struct Clock {
    pub started: Instant,
    pub broker_cpu: Option<f64>,
    pub baseline: u64,
    pub backends: Backends,
}

impl Clock {
    /// Reads where `topics` stand, then starts the clock; start the contestant right after.
    pub(crate) async fn start(bench: &Bench, topics: &[String]) -> anyhow::Result<Clock> {
        let baseline = bench.kafka.count(topics).await?;
        let backends = Backends::from_now(&bench.sql).await?;
        Ok(Clock {
            started: Instant::now(),
            broker_cpu: broker_cpu(bench),
            baseline,
            backends,
        })
    }

    fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

/// Waits until `running` has done what `target` says, measuring as it goes.
pub(crate) async fn watch(
    bench: &Bench,
    clock: &mut Clock,
    target: &Target<'_>,
    running: &mut dyn Running,
) -> anyhow::Result<Observation> {
    let deadline = clock.started + bench.args.timeout();
    let mut seen = Observation::default();
    let mut done = false;
    let mut rss_sampled: Option<Instant> = None;
    let mut rss = Vec::new();
    loop {
        running.check()?;
        if !done
            && seen.first_record_seconds.is_some()
            && rss_sampled.is_none_or(|at| at.elapsed() >= RSS_EVERY)
            && let Some(pid) = running.pid()
            && let Some(kib) = status_kib(&pid.to_string(), "VmRSS")
        {
            rss_sampled = Some(Instant::now());
            rss.push(kib);
        }
        clock
            .backends
            .sample(&bench.sql, target.slot, target.query_like)
            .await?;
        if !done {
            let count = bench.kafka.count(target.topics).await?;
            let now = clock.elapsed();
            let records = count.saturating_sub(clock.baseline);
            if records > 0 && seen.first_record_seconds.is_none() {
                seen.first_record_seconds = Some(now);
            }
            if records >= target.records {
                done = true;
                seen.seconds = now;
                if let Some(pid) = running.pid() {
                    seen.contestant_cpu_seconds = cpu_seconds(pid);
                    seen.peak_rss_kib = peak_rss_kib(pid);
                    if let Some(kib) = status_kib(&pid.to_string(), "VmRSS") {
                        rss.push(kib);
                    }
                }
                rss.sort_unstable();
                seen.steady_rss_kib = rss.get(rss.len() / 2).copied();
                seen.postgres_cpu_seconds = clock.backends.total();
                seen.broker_cpu_seconds = broker_cpu(bench)
                    .zip(clock.broker_cpu)
                    .map(|(now, then)| now - then);
            }
        }
        if let (Some(slot), Some(at), None) =
            (target.slot, target.confirm_at, seen.confirmed_seconds)
            && confirmed(&bench.sql, slot)
                .await?
                .is_some_and(|lsn| lsn >= at)
        {
            seen.confirmed_seconds = Some(clock.elapsed());
        }
        if done && (target.confirm_at.is_none() || seen.confirmed_seconds.is_some()) {
            return Ok(seen);
        }
        if Instant::now() > deadline {
            let count = bench.kafka.count(target.topics).await?;
            let slot = match target.slot {
                Some(slot) => confirmed(&bench.sql, slot).await?,
                None => None,
            };
            bail!(
                "not done after {:?}: {} of {} records in {:?}; slot confirmed at {}, waited for {}",
                bench.args.timeout(),
                count.saturating_sub(clock.baseline),
                target.records,
                target.topics,
                slot.map_or_else(|| "-".to_owned(), |lsn| lsn.to_string()),
                target
                    .confirm_at
                    .map_or_else(|| "-".to_owned(), |lsn| lsn.to_string()),
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The slot's `confirmed_flush_lsn`, if it exists and has one.
pub(crate) async fn confirmed(sql: &Client, slot: &str) -> anyhow::Result<Option<Lsn>> {
    let row = sql
        .query_opt(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
    let text: Option<String> = row.and_then(|row| row.get(0));
    Ok(text.map(|t| t.parse()).transpose()?)
}

/// Waits until `slot` exists, has reached its consistent point and a walsender holds it. A
/// slot being created is active before it is consistent (its creation waits for transactions
/// running then, however long): a row committed in that time is before the slot's start and
/// is never streamed, so `confirmed_flush_lsn`, unset until then, is waited for too.
pub(crate) async fn slot_active(
    bench: &Bench,
    slot: &str,
    running: &mut dyn Running,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + bench.args.timeout();
    loop {
        running.check()?;
        let active = bench
            .sql
            .query_opt(
                "SELECT active AND confirmed_flush_lsn IS NOT NULL FROM pg_replication_slots \
                 WHERE slot_name = $1",
                &[&slot],
            )
            .await?
            .is_some_and(|row| row.get::<_, bool>(0));
        if active {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "slot {slot} is not streaming after {:?}",
                bench.args.timeout()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
