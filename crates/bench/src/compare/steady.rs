//! The steady-state workload: single-row transactions written at a fixed rate while sluice
//! streams them. An event's latency is the broker's append time (its topic is created with
//! `message.timestamp.type = LogAppendTime` before sluice starts, and sluice leaves an
//! existing topic's configuration alone) minus the transaction's commit time that the event
//! carries (`source.ts_us`, from the pgoutput commit message).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio_postgres::Client;

use super::args::SteadySpec;
use super::bench::{self, Bench};
use super::contestant::Contestant;
use super::data;
use super::report::{Latency, Measurement, Observation};
use super::sluice::Sluice;
use super::watch::{self, Clock, Target};

/// The steady workload's table: a key and a short payload, so that its events decode simply.
const STEADY_TABLE: &str = "sluicebench_steady";
/// Bytes of each row's payload.
const PAYLOAD_BYTES: usize = 160;
/// Inserts one writer connection has in flight at most.
const PIPELINE: u64 = 64;

/// The steady workload, one run per sluice contestant; returns the measurements and the
/// seconds of writing.
pub(super) async fn steady(
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
            let outcome = steady_run(bench, *contestant, &name, spec).await;
            bench.drop_all_traces(&[(*contestant, name)]).await;
            data::drop_tables(&bench.sql, &[STEADY_TABLE.to_owned()]).await?;
            let (mut observed, latency, written) = outcome?;
            observed.latency = Some(latency);
            let measurement = Measurement::new(
                label,
                *contestant,
                run,
                latency.events,
                latency.events,
                observed,
            );
            eprintln!(
                "{}; {:.0} tx/s written, latency p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms",
                measurement.line(),
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

async fn steady_run(
    bench: &Bench,
    contestant: Contestant,
    name: &str,
    spec: &SteadySpec,
) -> anyhow::Result<(Observation, Latency, f64)> {
    let Contestant::Sluice(transport) = contestant else {
        bail!("the steady workload runs sluice only");
    };
    let topics = [format!("{name}.public.{STEADY_TABLE}")];
    bench
        .kafka
        .create_topics_with(
            &topics,
            bench.args.partitions,
            &[("message.timestamp.type", "LogAppendTime")],
        )
        .await?;
    let tables = [STEADY_TABLE.to_owned()];
    let mut sluice = Sluice::start(bench, name, bench.pg(transport)?, &tables, false)?;
    watch::slot_active(bench, name, &mut sluice).await?;
    // One row through first: the schemas are registered and the pipeline is warm.
    let mut clock = Clock::start(bench, &topics).await?;
    bench
        .sql
        .batch_execute(&format!(
            "INSERT INTO {STEADY_TABLE} VALUES (-1, repeat('x', {PAYLOAD_BYTES}))"
        ))
        .await?;
    let warm = Target {
        topics: &topics,
        records: 1,
        slot: Some(name),
        confirm_at: None,
        query_like: None,
    };
    watch::watch(bench, &mut clock, &warm, &mut sluice).await?;

    let mut writers = Vec::new();
    for _ in 0..spec.connections {
        writers.push(bench::connect(&bench.tcp).await?);
    }
    let mut clock = Clock::start(bench, &topics).await?;
    let (written, write_seconds) = write_steadily(writers, spec).await?;
    let target = Target {
        topics: &topics,
        records: written,
        slot: Some(name),
        confirm_at: None,
        query_like: None,
    };
    let observed = watch::watch(bench, &mut clock, &target, &mut sluice).await?;
    sluice.stop()?;
    let appended = bench.kafka.appended(&topics).await?;
    let mut latencies = Vec::with_capacity(appended.len());
    let (mut to_sluice, mut to_broker) = (Vec::new(), Vec::new());
    for (append_ms, value) in &appended {
        let event = decode(
            value
                .as_deref()
                .context("a tombstone in the steady topic")?,
        )?;
        if event.id >= 0 {
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
        topics[0]
    );
    latencies.sort_by(f64::total_cmp);
    let latency = Latency {
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
    };
    Ok((observed, latency, write_seconds))
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

/// Writes `spec.rate` single-row transactions per second for `spec.seconds` over `writers`,
/// each pacing itself and pipelining its inserts (each its own transaction); returns how many
/// it wrote and in how long.
async fn write_steadily(writers: Vec<Client>, spec: &SteadySpec) -> anyhow::Result<(u64, f64)> {
    let connections = u64::try_from(writers.len())?;
    let duration = Duration::from_secs(spec.seconds);
    let started = Instant::now();
    let payload = "x".repeat(PAYLOAD_BYTES);
    let rate = spec.rate;
    let mut tasks = Vec::new();
    for (number, client) in (0..).zip(writers) {
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let insert = client
                .prepare(&format!(
                    "INSERT INTO {STEADY_TABLE} (id, payload) VALUES ($1, $2)"
                ))
                .await?;
            let mut sent = 0u64;
            loop {
                let elapsed = started.elapsed();
                if elapsed >= duration {
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

fn skip_string(bytes: &[u8], at: &mut usize) -> anyhow::Result<()> {
    let len = usize::try_from(long(bytes, at)?)?;
    *at += len;
    anyhow::ensure!(*at <= bytes.len(), "a truncated Avro string");
    Ok(())
}

/// What the latency is computed from in one event.
#[derive(Debug, PartialEq, Eq)]
struct SteadyEvent {
    id: i64,
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
    skip_string(value, &mut at)?; // op
    skip_optional_long(value, &mut at)?; // ts_ms
    anyhow::ensure!(long(value, &mut at)? == 1, "an event without ts_us");
    let taken_us = long(value, &mut at)?;
    Ok(SteadyEvent {
        id,
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
