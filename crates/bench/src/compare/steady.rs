//! The steady-state workload: single-row transactions written at a fixed rate while sluice
//! streams them. An event's latency is the broker's append time (its topic is created with
//! `message.timestamp.type = LogAppendTime` before sluice starts, and sluice leaves an
//! existing topic's configuration alone) minus the transaction's commit time that the event
//! carries (`source.ts_us`, from the pgoutput commit message).
//!
//! During a snapshot (`steady-snapshot`), the same writer writes while sluice, in
//! `snapshot.mode = "incremental"`, reads a large table in chunks: see [`during_snapshot_run`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio_postgres::Client;

use super::args::{SnapshotSpec, SteadySpec};
use super::bench::{self, Bench};
use super::contestant::Contestant;
use super::data;
use super::report::{Latency, Measurement, Observation};
use super::sluice::{Sluice, SnapshotMode};
use super::watch::{self, Clock, Target};

/// The steady workload's table: a key and a short payload, so that its events decode simply.
const STEADY_TABLE: &str = "sluicebench_steady";
/// The table snapshotted during the steady-snapshot workload. Its name sorts after
/// [`STEADY_TABLE`]'s, and sluice snapshots its tables one after the other in the order of
/// their names: the steady table's snapshot (its warm-up row alone) is done before this one's
/// begins, so that none of the writer's rows is read by a snapshot.
const SNAPSHOT_TABLE: &str = "sluicebench_steady_snapshot";
/// Bytes of each row's payload.
const PAYLOAD_BYTES: usize = 160;
/// Inserts one writer connection has in flight at most.
const PIPELINE: u64 = 64;

/// The steady workload, one run per sluice contestant; returns the measurements and the
/// seconds of writing. With `spec.snapshot`, the table snapshotted meanwhile is filled once
/// for all runs.
pub(super) async fn steady(
    bench: &Bench,
    index: usize,
    label: &str,
    spec: &SteadySpec,
    contestants: &[Contestant],
) -> anyhow::Result<(Vec<Measurement>, Vec<f64>)> {
    if let Some(snapshot) = &spec.snapshot {
        let filling = Instant::now();
        data::create_filled_table(
            &bench.sql,
            SNAPSHOT_TABLE,
            0..snapshot.rows,
            snapshot.row_bytes,
        )
        .await?;
        eprintln!(
            "{} rows in {SNAPSHOT_TABLE} written in {:.1} s",
            snapshot.rows,
            filling.elapsed().as_secs_f64()
        );
    }
    let outcome = steady_runs(bench, index, label, spec, contestants).await;
    if spec.snapshot.is_some() {
        data::drop_tables(&bench.sql, &[SNAPSHOT_TABLE.to_owned()]).await?;
    }
    outcome
}

async fn steady_runs(
    bench: &Bench,
    index: usize,
    label: &str,
    spec: &SteadySpec,
    contestants: &[Contestant],
) -> anyhow::Result<(Vec<Measurement>, Vec<f64>)> {
    let mut measurements = Vec::new();
    let mut seconds = Vec::new();
    for run in 0..bench.args.runs {
        for contestant in contestants {
            let name = bench.name(index, run, *contestant);
            bench
                .sql
                .batch_execute(&format!(
                    "DROP TABLE IF EXISTS {STEADY_TABLE};
                     CREATE TABLE {STEADY_TABLE} (id bigint PRIMARY KEY, payload text NOT NULL)"
                ))
                .await?;
            let outcome = match &spec.snapshot {
                None => steady_run(bench, *contestant, &name, spec).await,
                Some(snapshot) => {
                    during_snapshot_run(bench, *contestant, &name, spec, snapshot).await
                }
            };
            bench.drop_all_traces(&[(*contestant, name)]).await;
            data::drop_tables(&bench.sql, &[STEADY_TABLE.to_owned()]).await?;
            let (mut observed, latency, written) = outcome?;
            observed.latency = Some(latency);
            // During a snapshot the run is timed by the snapshot: its events are its rows.
            let events = spec.snapshot.map_or(latency.events, |s| s.rows);
            let measurement = Measurement::new(label, *contestant, run, events, events, observed);
            eprintln!(
                "{}; {} tx in {written:.1} s, {:.0} tx/s written, latency p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms",
                measurement.line(),
                latency.events,
                latency.written_per_second,
                latency.p50_ms,
                latency.p99_ms,
                latency.p999_ms
            );
            measurements.push(measurement);
            seconds.push(written);
        }
    }
    Ok((measurements, seconds))
}

/// The steady topic of contestant `name`, created with the broker's append time.
async fn steady_topics(bench: &Bench, name: &str) -> anyhow::Result<[String; 1]> {
    let topics = [format!("{name}.public.{STEADY_TABLE}")];
    bench
        .kafka
        .create_topics_with(
            &topics,
            bench.args.partitions,
            &[("message.timestamp.type", "LogAppendTime")],
        )
        .await?;
    Ok(topics)
}

/// Commits the warm-up row, id -1: the writer's ids are 0 and up.
async fn warm_row(bench: &Bench) -> anyhow::Result<()> {
    bench
        .sql
        .batch_execute(&format!(
            "INSERT INTO {STEADY_TABLE} VALUES (-1, repeat('x', {PAYLOAD_BYTES}))"
        ))
        .await?;
    Ok(())
}

/// Waiting for `records` more records in `topics`, the walsender of slot `name` measured.
fn target<'a>(topics: &'a [String], records: u64, name: &'a str) -> Target<'a> {
    Target {
        topics,
        records,
        slot: Some(name),
        confirm_at: None,
        query_like: None,
    }
}

/// The writer's connections.
async fn writers(bench: &Bench, spec: &SteadySpec) -> anyhow::Result<Vec<Client>> {
    let mut writers = Vec::new();
    for _ in 0..spec.connections {
        writers.push(bench::connect(&bench.tcp).await?);
    }
    Ok(writers)
}

async fn steady_run(
    bench: &Bench,
    contestant: Contestant,
    name: &str,
    spec: &SteadySpec,
) -> anyhow::Result<(Observation, Latency, f64)> {
    let Contestant::Sluice(transport) = contestant else {
        bail!("the steady workload runs sluice only");
    };
    let topics = steady_topics(bench, name).await?;
    let tables = [STEADY_TABLE.to_owned()];
    let mut sluice = Sluice::start(
        bench,
        name,
        bench.pg(transport)?,
        &tables,
        SnapshotMode::Never,
    )?;
    watch::slot_active(bench, name, &mut sluice).await?;
    // One row through first: the schemas are registered and the pipeline is warm.
    let mut clock = Clock::start(bench, &topics).await?;
    warm_row(bench).await?;
    watch::watch(bench, &mut clock, &target(&topics, 1, name), &mut sluice).await?;

    let writers = writers(bench, spec).await?;
    let mut clock = Clock::start(bench, &topics).await?;
    let never = Arc::new(AtomicBool::new(false));
    let (written, write_seconds) = write_steadily(writers, spec, never).await?;
    let observed = watch::watch(
        bench,
        &mut clock,
        &target(&topics, written, name),
        &mut sluice,
    )
    .await?;
    sluice.stop()?;
    let latency = latency(bench, &topics, spec, written, write_seconds).await?;
    Ok((observed, latency, write_seconds))
}

/// The steady writer while sluice snapshots [`SNAPSHOT_TABLE`] incrementally: sluice is timed
/// as in the snapshot workload, from its start until every row of the table is in Kafka; the
/// writer writes from when the steady table's own snapshot is in Kafka until then (or
/// `spec.seconds`), so that every latency measured is one under the snapshot's load.
async fn during_snapshot_run(
    bench: &Bench,
    contestant: Contestant,
    name: &str,
    spec: &SteadySpec,
    snapshot: &SnapshotSpec,
) -> anyhow::Result<(Observation, Latency, f64)> {
    let Contestant::SluiceIncremental(transport) = contestant else {
        bail!("the steady workload during a snapshot runs sluice-incremental only");
    };
    let topics = steady_topics(bench, name).await?;
    // Before the start: the steady table's snapshot reads it, its one `r` event, which also
    // registers the schemas.
    warm_row(bench).await?;
    let snapshot_topics = [format!("{name}.public.{SNAPSHOT_TABLE}")];
    let mut warm_clock = Clock::start(bench, &topics).await?;
    let mut clock = Clock::start(bench, &snapshot_topics).await?;
    let tables = [STEADY_TABLE.to_owned(), SNAPSHOT_TABLE.to_owned()];
    let mut sluice = Sluice::start(
        bench,
        name,
        bench.pg(transport)?,
        &tables,
        SnapshotMode::Incremental,
    )?;
    watch::watch(
        bench,
        &mut warm_clock,
        &target(&topics, 1, name),
        &mut sluice,
    )
    .await?;
    let snapshotted = bench.kafka.count(&snapshot_topics).await?;
    anyhow::ensure!(
        snapshotted < snapshot.rows,
        "{SNAPSHOT_TABLE}'s snapshot was done before {STEADY_TABLE}'s: no steady write during it"
    );

    let writers = writers(bench, spec).await?;
    let mut steady_clock = Clock::start(bench, &topics).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let snapshot_target = Target {
        query_like: Some(SNAPSHOT_TABLE),
        ..target(&snapshot_topics, snapshot.rows, name)
    };
    let (written, observed) =
        tokio::join!(write_steadily(writers, spec, Arc::clone(&stop)), async {
            let observed = watch::watch(bench, &mut clock, &snapshot_target, &mut sluice).await;
            stop.store(true, Relaxed);
            observed
        });
    let observed = observed?;
    let (written, write_seconds) = written?;
    watch::watch(
        bench,
        &mut steady_clock,
        &target(&topics, written, name),
        &mut sluice,
    )
    .await?;
    sluice.stop()?;
    let latency = latency(bench, &topics, spec, written, write_seconds).await?;
    Ok((observed, latency, write_seconds))
}

/// The latencies of the writer's `written` events in `topics` (the warm-up row's left out).
async fn latency(
    bench: &Bench,
    topics: &[String],
    spec: &SteadySpec,
    written: u64,
    write_seconds: f64,
) -> anyhow::Result<Latency> {
    let appended = bench.kafka.appended(topics).await?;
    let mut latencies = Vec::with_capacity(appended.len());
    let (mut to_sluice, mut to_broker) = (Vec::new(), Vec::new());
    for (append_ms, value) in &appended {
        let event = decode(
            value
                .as_deref()
                .context("a tombstone in the steady topic")?,
        )?;
        if event.id >= 0 {
            anyhow::ensure!(
                event.op == "c",
                "the writer's row {} came as op {:?}: a snapshot read it",
                event.id,
                event.op
            );
            latencies.push(ms(append_ms * 1000 - event.commit_us)?);
            to_sluice.push(ms(event.taken_us - event.commit_us)?);
            to_broker.push(ms(append_ms * 1000 - event.taken_us)?);
        }
    }
    to_sluice.sort_by(f64::total_cmp);
    to_broker.sort_by(f64::total_cmp);
    anyhow::ensure!(
        u64::try_from(latencies.len())? == written,
        "{} events in {} for {written} transactions",
        latencies.len(),
        topics.join(", ")
    );
    latencies.sort_by(f64::total_cmp);
    Ok(Latency {
        asked_per_second: spec.rate,
        written_per_second: crate::stats::rate(written, write_seconds),
        events: written,
        p50_ms: quantile(&latencies, 500),
        p99_ms: quantile(&latencies, 990),
        p999_ms: quantile(&latencies, 999),
        max_ms: latencies.last().copied().unwrap_or_default(),
        to_sluice_p50_ms: quantile(&to_sluice, 500),
        to_sluice_p99_ms: quantile(&to_sluice, 990),
        to_broker_p50_ms: quantile(&to_broker, 500),
        to_broker_p99_ms: quantile(&to_broker, 990),
    })
}

/// Microseconds as milliseconds.
fn ms(us: i64) -> anyhow::Result<f64> {
    Ok(f64::from(i32::try_from(us)?) / 1000.0)
}

/// The value at quantile `per_mille` / 1000 of the sorted `values` (nearest rank).
fn quantile(sorted: &[f64], per_mille: usize) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    sorted[(per_mille * n).div_ceil(1000).clamp(1, n) - 1]
}

/// Writes `spec.rate` single-row transactions per second for `spec.seconds` (or until `stop`)
/// over `writers`, each pacing itself and pipelining its inserts (each its own transaction);
/// returns how many it wrote and in how long.
async fn write_steadily(
    writers: Vec<Client>,
    spec: &SteadySpec,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(u64, f64)> {
    let connections = u64::try_from(writers.len())?;
    let duration = Duration::from_secs(spec.seconds);
    let started = Instant::now();
    let payload = "x".repeat(PAYLOAD_BYTES);
    let rate = spec.rate;
    let mut tasks = Vec::new();
    for (number, client) in (0..).zip(writers) {
        let payload = payload.clone();
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let insert = client
                .prepare(&format!(
                    "INSERT INTO {STEADY_TABLE} (id, payload) VALUES ($1, $2)"
                ))
                .await?;
            let mut sent = 0u64;
            loop {
                let elapsed = started.elapsed();
                if elapsed >= duration || stop.load(Relaxed) {
                    break;
                }
                let due = due_by(rate, connections, elapsed);
                if due <= sent {
                    tokio::time::sleep(Duration::from_micros(500)).await;
                    continue;
                }
                let batch = (due - sent).min(PIPELINE);
                let inserts = (sent..sent + batch).map(|k| {
                    let id = i64::try_from(number + connections * k).unwrap_or(i64::MAX);
                    let (client, insert, payload) = (&client, &insert, &payload);
                    async move { client.execute(insert, &[&id, payload]).await }
                });
                futures_util::future::try_join_all(inserts).await?;
                sent += batch;
            }
            anyhow::Ok(sent)
        }));
    }
    let mut written = 0;
    for task in tasks {
        written += task.await??;
    }
    Ok((written, started.elapsed().as_secs_f64()))
}

/// Transactions due after `elapsed` at `per_second` over `connections`, for one of them.
fn due_by(per_second: u64, connections: u64, elapsed: Duration) -> u64 {
    let due =
        u128::from(per_second) * elapsed.as_micros() / (1_000_000 * u128::from(connections.max(1)));
    u64::try_from(due).unwrap_or(u64::MAX)
}

/// Reads Avro's zigzag varint long at `at`.
fn long(bytes: &[u8], at: &mut usize) -> anyhow::Result<i64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).context("a truncated Avro long")?;
        *at += 1;
        n |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            let half = i64::try_from(n >> 1)?;
            return Ok(if n & 1 == 0 { half } else { -half - 1 });
        }
    }
    bail!("an Avro long longer than 10 bytes")
}

/// Reads an Avro string (its bytes) at `at`.
fn string<'a>(bytes: &'a [u8], at: &mut usize) -> anyhow::Result<&'a [u8]> {
    let len = usize::try_from(long(bytes, at)?)?;
    let start = *at;
    *at = start.checked_add(len).context("an Avro string too long")?;
    bytes.get(start..*at).context("a truncated Avro string")
}

fn skip_string(bytes: &[u8], at: &mut usize) -> anyhow::Result<()> {
    string(bytes, at).map(|_| ())
}

/// What the latency is computed from in one event.
#[derive(Debug, PartialEq, Eq)]
struct SteadyEvent {
    id: i64,
    /// `op`: `c` for the writer's inserts, `r` for a row a snapshot read.
    op: String,
    /// `source.ts_us`: the commit time, from the pgoutput commit message.
    commit_us: i64,
    /// The envelope's `ts_us`: when sluice took the change from the stream.
    taken_us: i64,
}

/// Skips an Avro union of null and long.
fn skip_optional_long(bytes: &[u8], at: &mut usize) -> anyhow::Result<()> {
    if long(bytes, at)? == 1 {
        long(bytes, at)?;
    }
    Ok(())
}

/// The row id, `source.ts_us` and the envelope's `ts_us` of an insert event of
/// [`STEADY_TABLE`] in sluice's Debezium envelope (Confluent framing, then `before` null,
/// `after` {id, payload: a union, as sluice makes every column outside the key nullable},
/// `source` {version, connector, name, ts_ms, snapshot, db, sequence, ts_us, ts_ns, schema,
/// table, txId, lsn, xmin, origin, origin_lsn}, `transaction`, `op`, `ts_ms`, `ts_us`, ...).
fn decode(value: &[u8]) -> anyhow::Result<SteadyEvent> {
    let mut at = 5;
    anyhow::ensure!(long(value, &mut at)? == 0, "an event with a before image");
    anyhow::ensure!(
        long(value, &mut at)? == 1,
        "an event without an after image"
    );
    let id = long(value, &mut at)?;
    anyhow::ensure!(long(value, &mut at)? == 1, "an event with a null payload");
    skip_string(value, &mut at)?;
    for _ in 0..3 {
        skip_string(value, &mut at)?; // version, connector, name
    }
    long(value, &mut at)?; // ts_ms
    long(value, &mut at)?; // snapshot's union branch
    skip_string(value, &mut at)?; // snapshot
    skip_string(value, &mut at)?; // db
    long(value, &mut at)?; // sequence: null
    anyhow::ensure!(long(value, &mut at)? == 1, "an event without source.ts_us");
    let commit_us = long(value, &mut at)?;
    skip_optional_long(value, &mut at)?; // ts_ns
    skip_string(value, &mut at)?; // schema
    skip_string(value, &mut at)?; // table
    skip_optional_long(value, &mut at)?; // txId
    skip_optional_long(value, &mut at)?; // lsn
    skip_optional_long(value, &mut at)?; // xmin
    anyhow::ensure!(long(value, &mut at)? == 0, "an event with a source.origin");
    skip_optional_long(value, &mut at)?; // origin_lsn
    anyhow::ensure!(
        long(value, &mut at)? == 0,
        "an event with a transaction block"
    );
    let op = String::from_utf8_lossy(string(value, &mut at)?).into_owned();
    skip_optional_long(value, &mut at)?; // ts_ms
    anyhow::ensure!(long(value, &mut at)? == 1, "an event without ts_us");
    let taken_us = long(value, &mut at)?;
    Ok(SteadyEvent {
        id,
        op,
        commit_us,
        taken_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_longs_and_quantiles() {
        let mut at = 0;
        assert_eq!(long(&[0x02, 0x01, 0x80, 0x01], &mut at).unwrap(), 1);
        assert_eq!(long(&[0x02, 0x01, 0x80, 0x01], &mut at).unwrap(), -1);
        assert_eq!(long(&[0x02, 0x01, 0x80, 0x01], &mut at).unwrap(), 64);
        let values: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(quantile(&values, 500), 500.0);
        assert_eq!(quantile(&values, 990), 990.0);
        assert_eq!(quantile(&values, 999), 999.0);
        assert_eq!(ms(1500).unwrap(), 1.5);
        assert_eq!(due_by(10_000, 8, Duration::from_secs(2)), 2500);
    }
}
