//! The runs of each workload: warming contestants up, writing the backlog, starting each
//! contestant alone and watching it, cleaning up after it.

use anyhow::{Context as _, bail};

use super::args::{DrainSpec, SnapshotSpec};
use super::bench::Bench;
use super::ceilings;
use super::contestant::Contestant;
use super::data::{self, SNAPSHOT_TABLE_PREFIX};
use super::debezium::{self, Worker};
use super::kafka::Record;
use super::report::{Measurement, Observation};
use super::sluice::{Sluice, SnapshotMode};
use super::watch::{self, Clock, Running, Target};

/// Records of sluice's topic kept as the broker ceiling's messages.
const SAMPLE_RECORDS: usize = 20_000;

/// The topic of `table` for contestant `name`.
fn topic(name: &str, table: &str) -> String {
    format!("{name}.public.{table}")
}

/// A sluice or Debezium process for contestant `name` reading `tables`.
fn start(
    bench: &Bench,
    contestant: Contestant,
    name: &str,
    tables: &[String],
    snapshot: bool,
) -> anyhow::Result<Box<dyn Started>> {
    Ok(match contestant {
        Contestant::Sluice(t) | Contestant::SluiceIncremental(t) => {
            let mode = match (snapshot, contestant) {
                (false, _) => SnapshotMode::Never,
                (true, Contestant::SluiceIncremental(_)) => SnapshotMode::Incremental,
                (true, _) => SnapshotMode::Initial,
            };
            Box::new(Sluice::start(bench, name, bench.pg(t)?, tables, mode)?)
        }
        Contestant::Debezium => {
            let connect = bench.connect()?;
            let properties = debezium::properties(bench, connect, name, tables, snapshot)?;
            Box::new(Worker::start(bench, connect, name, &properties)?)
        }
        other => bail!("{} is not started as a process", other.label()),
    })
}

/// A started sluice or Debezium worker.
trait Started: Running {
    /// Whether a restart would resume after what it delivered since `since` (sluice resumes
    /// from its slot alone).
    fn resumable(&mut self, _since: std::time::SystemTime) -> bool {
        true
    }
    fn stop(self: Box<Self>) -> anyhow::Result<()>;
}

impl Started for Sluice {
    fn stop(self: Box<Self>) -> anyhow::Result<()> {
        Sluice::stop(*self)
    }
}

impl Started for Worker {
    /// Connect flushed the offsets (every second): the restart resumes from them.
    fn resumable(&mut self, since: std::time::SystemTime) -> bool {
        self.offsets_saved_since(since)
    }

    fn stop(mut self: Box<Self>) -> anyhow::Result<()> {
        Worker::stop(&mut self)
    }
}

/// The drain workload, all runs; returns the measurements and each backlog's write time.
pub(super) async fn drain(
    bench: &Bench,
    index: usize,
    label: &str,
    spec: &DrainSpec,
    contestants: &[Contestant],
) -> anyhow::Result<(Vec<Measurement>, Vec<f64>)> {
    let mut measurements = Vec::new();
    let mut backlog_seconds = Vec::new();
    let mut sample = Vec::new();
    for run in 0..bench.args.runs {
        let names: Vec<(Contestant, String)> = contestants
            .iter()
            .filter(|c| **c != Contestant::Debezium || !bench.peer_has_failed(label))
            .map(|c| (*c, bench.name(index, run, *c)))
            .collect();
        data::create_drain_tables(&bench.sql, spec).await?;
        let outcome = drain_run(bench, label, run, spec, &names, &mut sample).await;
        bench.drop_all_traces(&names).await;
        data::drop_tables(&bench.sql, &data::drain_tables(spec)).await?;
        let (runs, seconds) = outcome?;
        measurements.extend(runs);
        backlog_seconds.push(seconds);
    }
    Ok((measurements, backlog_seconds))
}

async fn drain_run(
    bench: &Bench,
    label: &str,
    run: u32,
    spec: &DrainSpec,
    names: &[(Contestant, String)],
    sample: &mut Vec<Record>,
) -> anyhow::Result<(Vec<Measurement>, f64)> {
    let tables = data::drain_tables(spec);
    // Debezium last: its slot cannot be advanced (below), so it is warmed up just before the
    // backlog.
    let warm_order = names
        .iter()
        .filter(|(c, _)| *c != Contestant::Debezium)
        .chain(names.iter().filter(|(c, _)| *c == Contestant::Debezium));
    for (number, (contestant, name)) in (1..).zip(warm_order) {
        match contestant {
            Contestant::Sluice(_) | Contestant::SluiceIncremental(_) | Contestant::Debezium => {
                eprintln!(
                    "run {run} {}: first start, warm-up row, stop",
                    contestant.label()
                );
                let mut process = start(bench, *contestant, name, &tables, false)?;
                warm_up(
                    bench,
                    *contestant,
                    name,
                    &tables[0],
                    spec,
                    number,
                    process.as_mut(),
                )
                .await?;
                process.stop()?;
            }
            Contestant::PgRecvlogical(_) => {
                bench
                    .sql
                    .batch_execute(&format!(
                        "CREATE PUBLICATION {name} FOR TABLE {}",
                        tables.join(", ")
                    ))
                    .await?;
                bench
                    .sql
                    .execute(
                        "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                        &[name],
                    )
                    .await?;
            }
            Contestant::Copy(_) | Contestant::KafkaProducer => {}
        }
    }
    // Slots moved to the same point: each contestant reads the same WAL, the backlog and
    // nothing before it (not the warm-up rows of those warmed up after it, nor what others wrote
    // to this shared server meanwhile). Not Debezium's: it refuses to start from a slot whose
    // confirmed position is past its stored offset ("no longer available on the server").
    let here = data::query_lsn(&bench.sql, "SELECT pg_current_wal_lsn()::text").await?;
    for (contestant, name) in names {
        if contestant.is_sluice() || matches!(contestant, Contestant::PgRecvlogical(_)) {
            bench
                .sql
                .execute(
                    "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)",
                    &[name, &here.to_string()],
                )
                .await
                .with_context(|| format!("advancing slot {name}"))?;
        }
    }
    let backlog = data::write_backlog(&bench.sql, spec).await?;
    eprintln!(
        "run {run}: backlog of {} changes ({} records) written in {:.1} s",
        backlog.changes, backlog.records, backlog.seconds
    );
    let mut measurements = Vec::new();
    for (contestant, name) in names {
        let records = backlog.records;
        let topics: Vec<String> = tables.iter().map(|t| topic(name, t)).collect();
        let target = Target {
            topics: &topics,
            records,
            slot: Some(name),
            confirm_at: confirm_at(*contestant, backlog.last_changed),
            query_like: None,
        };
        let observed = match contestant {
            Contestant::Sluice(_) | Contestant::SluiceIncremental(_) => {
                timed(bench, *contestant, name, &tables, false, &target, sample).await?
            }
            Contestant::Debezium => {
                match timed(bench, *contestant, name, &tables, false, &target, sample).await {
                    Ok(observed) => observed,
                    Err(err) => {
                        bench.peer_failed(label, run, &err);
                        continue;
                    }
                }
            }
            Contestant::PgRecvlogical(t) => {
                ceilings::pg_recvlogical(bench, bench.pg(*t)?, name, backlog.end).await?
            }
            Contestant::KafkaProducer => {
                ceilings::producer(bench, name, sample, backlog.records, 1).await?
            }
            Contestant::Copy(_) => continue,
        };
        let measurement =
            Measurement::new(label, *contestant, run, backlog.changes, records, observed);
        eprintln!("{}", measurement.line());
        measurements.push(measurement);
    }
    Ok((measurements, backlog.seconds))
}

/// The `confirmed_flush_lsn` at which `contestant` has confirmed the transaction whose changes
/// end at `changed`: sluice confirms each commit's end once its events are acknowledged.
/// Debezium confirms the position of an event only once it processed a later one (its
/// documentation's reason for heartbeats), so the last transaction of a quiet database stays
/// unconfirmed: it is timed by its records alone.
fn confirm_at(
    contestant: Contestant,
    changed: sluice_pgoutput::Lsn,
) -> Option<sluice_pgoutput::Lsn> {
    contestant.is_sluice().then_some(changed)
}

/// One warm-up row through the contestant's pipeline, its slot confirmed through it.
async fn warm_up(
    bench: &Bench,
    contestant: Contestant,
    name: &str,
    table: &str,
    spec: &DrainSpec,
    number: u64,
    process: &mut dyn Started,
) -> anyhow::Result<()> {
    watch::slot_active(bench, name, process).await?;
    let topics = [topic(name, table)];
    let mut clock = Clock::start(bench, &topics).await?;
    let written = std::time::SystemTime::now();
    let changed = data::warm_row(&bench.sql, table, spec.row_bytes, number).await?;
    let target = Target {
        topics: &topics,
        records: 1,
        slot: Some(name),
        confirm_at: confirm_at(contestant, changed),
        query_like: None,
    };
    watch::watch(bench, &mut clock, &target, process).await?;
    // Its position must be saved before the stop, or the restart would not resume from it.
    let deadline = std::time::Instant::now() + bench.args.timeout();
    while !process.resumable(written) {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{name} saved no position for its restart"
        );
        tokio::time::sleep(watch::POLL).await;
    }
    Ok(())
}

/// Starts sluice or Debezium, watches it to `target`, keeps a sample of sluice's records for
/// the broker ceiling, stops it.
async fn timed(
    bench: &Bench,
    contestant: Contestant,
    name: &str,
    tables: &[String],
    snapshot: bool,
    target: &Target<'_>,
    sample: &mut Vec<Record>,
) -> anyhow::Result<Observation> {
    let mut clock = Clock::start(bench, target.topics).await?;
    let mut process = start(bench, contestant, name, tables, snapshot)?;
    let mut observed = watch::watch(bench, &mut clock, target, process.as_mut()).await?;
    process.stop()?;
    let count = bench.kafka.count(target.topics).await?;
    observed.extra_records = count.saturating_sub(clock.baseline + target.records);
    if observed.extra_records > 0 {
        eprintln!(
            "warning: {} wrote {} records more than the {} it owed",
            contestant.label(),
            observed.extra_records,
            target.records
        );
    }
    if sample.is_empty() && contestant.is_sluice() {
        *sample = bench.kafka.sample(target.topics, SAMPLE_RECORDS).await?;
    }
    Ok(observed)
}

/// The snapshot workload, all runs; returns the measurements and the time the tables took.
pub(super) async fn snapshot(
    bench: &Bench,
    index: usize,
    label: &str,
    spec: &SnapshotSpec,
    contestants: &[Contestant],
) -> anyhow::Result<(Vec<Measurement>, Vec<f64>)> {
    let filling = std::time::Instant::now();
    let tables = data::create_snapshot_tables(&bench.sql, spec).await?;
    let fill_seconds = filling.elapsed().as_secs_f64();
    eprintln!(
        "{} rows in {} tables written in {fill_seconds:.1} s",
        spec.rows,
        tables.len()
    );
    let mut measurements = Vec::new();
    let mut sample = Vec::new();
    let mut outcome = Ok(());
    'runs: for run in 0..bench.args.runs {
        for contestant in contestants {
            if *contestant == Contestant::Debezium && bench.peer_has_failed(label) {
                continue;
            }
            let name = bench.name(index, run, *contestant);
            let result = snapshot_run(bench, *contestant, &name, spec, &tables, &mut sample).await;
            bench.drop_all_traces(&[(*contestant, name)]).await;
            match result {
                Ok(observed) => {
                    let measurement =
                        Measurement::new(label, *contestant, run, spec.rows, spec.rows, observed);
                    eprintln!("{}", measurement.line());
                    measurements.push(measurement);
                }
                Err(err) if *contestant == Contestant::Debezium => {
                    bench.peer_failed(label, run, &err);
                }
                Err(err) => {
                    outcome = Err(err);
                    break 'runs;
                }
            }
        }
    }
    data::drop_tables(&bench.sql, &tables).await?;
    outcome.map(|()| (measurements, vec![fill_seconds]))
}

async fn snapshot_run(
    bench: &Bench,
    contestant: Contestant,
    name: &str,
    spec: &SnapshotSpec,
    tables: &[String],
    sample: &mut Vec<Record>,
) -> anyhow::Result<Observation> {
    let topics: Vec<String> = tables.iter().map(|t| topic(name, t)).collect();
    let target = Target {
        topics: &topics,
        records: spec.rows,
        slot: Some(name),
        confirm_at: None,
        query_like: Some(SNAPSHOT_TABLE_PREFIX),
    };
    match contestant {
        Contestant::Sluice(_) | Contestant::SluiceIncremental(_) | Contestant::Debezium => {
            timed(bench, contestant, name, tables, true, &target, sample).await
        }
        Contestant::Copy(t) => ceilings::copy(bench, bench.pg(t)?, tables).await,
        Contestant::KafkaProducer => {
            ceilings::producer(bench, name, sample, spec.rows, tables.len()).await
        }
        Contestant::PgRecvlogical(_) => bail!("pg_recvlogical has no snapshot"),
    }
}
