//! The ceilings: what the box can do at all, measured in the same run on the same data.
//!
//! - WAL read: `pg_recvlogical` (pgoutput, protocol 2) draining the contestant's backlog from a
//!   slot of its own into /dev/null.
//! - Snapshot read: `COPY (SELECT * FROM ONLY t WHERE ctid ...) TO STDOUT (FORMAT binary)` into
//!   nothing, the tables cut into the same page-range pieces sluice copies, on as many
//!   connections as sluice's snapshot parallelism.
//! - Broker: a plain rdkafka producer sending as many records of the same sizes (sluice's own
//!   records, sampled from its topic) with the same settings.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use sluice_pgoutput::Lsn;

use super::bench::Bench;
use super::kafka::Record;
use super::report::Observation;
use super::watch::{Backends, POLL, broker_cpu};
use crate::drain::PgArgs;
use crate::process::{cpu_seconds, reset_own_peak_rss, spawn_timed, status_kib};
use crate::replication::pg_recvlogical_command;

/// `pg_recvlogical` draining `slot` (publication of the same name) until `end`.
pub(crate) async fn pg_recvlogical(
    bench: &Bench,
    pg: &PgArgs,
    slot: &str,
    end: Lsn,
) -> anyhow::Result<Observation> {
    let mut backends = Backends::from_now(&bench.sql).await?;
    let broker_before = broker_cpu(bench);
    let mut child = spawn_timed(&pg_recvlogical_command(
        pg,
        slot,
        &end.to_string(),
        slot,
        false,
    ))?;
    let started = Instant::now();
    loop {
        backends.sample(&bench.sql, Some(slot), None).await?;
        if let Some(usage) = child.try_finish()? {
            // The walsender's last figures, if it is still there.
            backends.sample(&bench.sql, None, None).await?;
            return Ok(Observation {
                seconds: usage.wall_seconds,
                contestant_cpu_seconds: Some(usage.user_cpu_seconds + usage.system_cpu_seconds),
                peak_rss_kib: Some(usage.max_rss_kib),
                postgres_cpu_seconds: backends.total(),
                broker_cpu_seconds: broker_cpu(bench)
                    .zip(broker_before)
                    .map(|(now, then)| now - then),
                ..Observation::default()
            });
        }
        if started.elapsed() > bench.args.timeout() {
            bail!(
                "pg_recvlogical did not reach {end} in {:?}",
                bench.args.timeout()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A piece of a table to copy: pages `start..end` (`end` None: to the end).
#[derive(Debug, Clone)]
struct Piece {
    table: String,
    pages: Option<(i64, Option<i64>)>,
}

impl Piece {
    fn copy_statement(&self) -> String {
        let range = match self.pages {
            None => String::new(),
            Some((start, None)) => format!(" WHERE ctid >= '({start},0)'::tid"),
            Some((start, Some(end))) => {
                format!(" WHERE ctid >= '({start},0)'::tid AND ctid < '({end},0)'::tid")
            }
        };
        format!(
            "COPY (SELECT * FROM ONLY {}{range}) TO STDOUT (FORMAT binary)",
            self.table
        )
    }
}

/// The pieces of `tables`: each cut by page ranges into pieces of about `chunk_rows` rows, as
/// sluice cuts them.
async fn pieces(bench: &Bench, tables: &[String]) -> anyhow::Result<VecDeque<Piece>> {
    let mut pieces = VecDeque::new();
    for table in tables {
        let row = bench
            .sql
            .query_one(
                "SELECT relpages::bigint, greatest(reltuples, 0)::bigint FROM pg_class
                  WHERE oid = $1::text::regclass",
                &[table],
            )
            .await?;
        let (pages, tuples): (i64, i64) = (row.get(0), row.get(1));
        let chunk_rows = i64::try_from(bench.args.snapshot_chunk_rows.max(1))?;
        let count = (tuples + chunk_rows - 1) / chunk_rows;
        if count <= 1 || bench.args.snapshot_parallelism < 2 {
            pieces.push_back(Piece {
                table: table.clone(),
                pages: None,
            });
            continue;
        }
        let step = ((pages + count - 1) / count).max(1);
        let mut start = 0;
        while start < pages {
            // The last piece is open-ended, as sluice's.
            let end = (start + step < pages).then_some(start + step);
            pieces.push_back(Piece {
                table: table.clone(),
                pages: Some((start, end)),
            });
            start += step;
        }
    }
    Ok(pieces)
}

/// Copies every piece of `tables` into nothing, on `snapshot_parallelism` connections.
pub(crate) async fn copy(
    bench: &Bench,
    pg: &PgArgs,
    tables: &[String],
) -> anyhow::Result<Observation> {
    let queue = Arc::new(Mutex::new(pieces(bench, tables).await?));
    let conninfo = format!("{} sslmode=disable", pg.conninfo());
    reset_own_peak_rss();
    let own = std::process::id();
    let cpu_before = cpu_seconds(own);
    let broker_before = broker_cpu(bench);
    let started = Instant::now();
    let workers: Vec<_> = (0..bench.args.snapshot_parallelism.max(1))
        .map(|_| tokio::spawn(copy_pieces(conninfo.clone(), Arc::clone(&queue))))
        .collect();
    let mut backend_cpu = 0.0;
    for worker in workers {
        backend_cpu += worker.await??;
    }
    Ok(Observation {
        seconds: started.elapsed().as_secs_f64(),
        contestant_cpu_seconds: cpu_seconds(own)
            .zip(cpu_before)
            .map(|(now, then)| now - then),
        peak_rss_kib: status_kib("self", "VmHWM"),
        postgres_cpu_seconds: Some(backend_cpu),
        broker_cpu_seconds: broker_cpu(bench)
            .zip(broker_before)
            .map(|(now, then)| now - then),
        ..Observation::default()
    })
}

/// One connection copying pieces until none is left; returns its backend's CPU seconds.
async fn copy_pieces(conninfo: String, queue: Arc<Mutex<VecDeque<Piece>>>) -> anyhow::Result<f64> {
    let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .context("connecting for COPY")?;
    let connection = tokio::spawn(connection);
    let backend: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0);
    let next = || {
        queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    };
    while let Some(piece) = next() {
        let stream = client.copy_out(&piece.copy_statement()).await?;
        futures_util::pin_mut!(stream);
        let mut bytes = 0usize;
        while let Some(chunk) = stream.next().await {
            bytes += chunk?.len();
        }
        std::hint::black_box(bytes);
    }
    let cpu = cpu_seconds(u32::try_from(backend)?).unwrap_or(0.0);
    drop(client);
    connection.await??;
    Ok(cpu)
}

/// The broker ceiling: `records` records cycled from `sample`, over `topics` new topics named
/// after `name`, with the contestants' partitions.
pub(crate) async fn producer(
    bench: &Bench,
    name: &str,
    sample: &[Record],
    records: u64,
    topics: usize,
) -> anyhow::Result<Observation> {
    let topics: Vec<String> = (0..topics).map(|i| format!("{name}.t{i}")).collect();
    bench
        .kafka
        .create_topics(&topics, bench.args.partitions)
        .await?;
    reset_own_peak_rss();
    let own = std::process::id();
    let cpu_before = cpu_seconds(own);
    let broker_before = broker_cpu(bench);
    let started = Instant::now();
    // Blocking, on purpose: nothing else runs meanwhile.
    let first = bench.kafka.produce(&topics, sample, records)?;
    Ok(Observation {
        seconds: started.elapsed().as_secs_f64(),
        first_record_seconds: first.map(|at| (at - started).as_secs_f64()),
        contestant_cpu_seconds: cpu_seconds(own)
            .zip(cpu_before)
            .map(|(now, then)| now - then),
        peak_rss_kib: status_kib("self", "VmHWM"),
        broker_cpu_seconds: broker_cpu(bench)
            .zip(broker_before)
            .map(|(now, then)| now - then),
        ..Observation::default()
    })
}
