//! The replication-layer benchmark: one backlog of changes drained by `pg_recvlogical` (the
//! ceiling: PostgreSQL's own client, writing to /dev/null) and by sluice's client, over TCP
//! and the Unix socket, several runs interleaved; plus the decoder's own throughput on the
//! captured messages.
//!
//! Every contestant reads the same backlog from its own slot, all created before the backlog
//! was written, so each drain makes the walsender decode exactly the same WAL.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use serde::Serialize;
use sluice_pgoutput::{ColumnValue, Decoder, LogicalMessage, Lsn};
use sluice_postgres::{PgOutputOptions, ReplicationConnection, StreamEvent};

use crate::drain::PgArgs;
use crate::process::spawn_timed;
use crate::stats::{Spread, rate};

#[derive(Debug, Clone, clap::Args)]
pub struct ReplicationBenchArgs {
    #[command(flatten)]
    pub pg: PgArgs,
    /// The directory of PostgreSQL's Unix socket, for the socket transport.
    #[arg(long)]
    pub socket_dir: Option<PathBuf>,
    /// Row changes in the backlog.
    #[arg(long, default_value_t = 1_000_000)]
    pub changes: u64,
    #[arg(long, default_value_t = 10)]
    pub rows_per_transaction: u64,
    /// Bytes of payload per row.
    #[arg(long, default_value_t = 200)]
    pub row_bytes: u64,
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
    /// pgoutput binary mode for both contestants.
    #[arg(long)]
    pub binary: bool,
    /// Messages kept in memory for the decoder benchmark.
    #[arg(long, default_value_t = 300_000)]
    pub decoder_messages: usize,
    /// Where to write the JSON result.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

const TABLE: &str = "bench_rows";
const PUBLICATION: &str = "bench_pub";

#[derive(Debug, Clone, Serialize)]
struct Measurement {
    contestant: String,
    transport: String,
    run: u32,
    seconds: f64,
    changes_per_second: f64,
    user_cpu_seconds: f64,
    system_cpu_seconds: f64,
    max_rss_kib: u64,
}

#[derive(Debug, Clone, Serialize)]
struct Summary {
    contestant: String,
    transport: String,
    median_changes_per_second: f64,
    min_changes_per_second: f64,
    max_changes_per_second: f64,
    cpu_seconds_per_million_changes: f64,
    max_rss_kib: u64,
}

#[derive(Debug, Clone, Serialize)]
struct DecoderResult {
    messages: usize,
    bytes: usize,
    messages_per_second: f64,
    megabytes_per_second: f64,
}

#[derive(Debug, Serialize)]
struct Result {
    benchmark: &'static str,
    changes: u64,
    rows_per_transaction: u64,
    row_bytes: u64,
    binary: bool,
    runs: u32,
    server_version: String,
    measurements: Vec<Measurement>,
    summary: Vec<Summary>,
    ratios: Vec<(String, f64)>,
    decoder: DecoderResult,
}

pub async fn run(args: &ReplicationBenchArgs) -> anyhow::Result<()> {
    let (sql, connection) = tokio_postgres::connect(&args.pg.conninfo(), tokio_postgres::NoTls)
        .await
        .context("connecting to PostgreSQL")?;
    tokio::spawn(connection);
    let server_version: String = sql.query_one("SHOW server_version", &[]).await?.get(0);

    let mut transports = vec![("tcp".to_owned(), args.pg.clone())];
    if let Some(dir) = &args.socket_dir {
        let mut unix = args.pg.clone();
        unix.host = dir.display().to_string();
        transports.push(("unix".to_owned(), unix));
    }
    let contestants = ["pg_recvlogical", "sluice"];

    eprintln!("setting up {TABLE} and one slot per drain");
    sql.batch_execute(&format!(
        "DROP PUBLICATION IF EXISTS {PUBLICATION};
         DROP TABLE IF EXISTS {TABLE};
         CREATE TABLE {TABLE} (id bigint PRIMARY KEY, payload text);
         CREATE PUBLICATION {PUBLICATION} FOR TABLE {TABLE};
         SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
          WHERE slot_name LIKE 'bench\\_%' AND NOT active;"
    ))
    .await?;
    let mut drains = Vec::new();
    for run in 0..args.runs {
        for (transport, pg) in &transports {
            for contestant in contestants {
                let slot = format!("bench_{}_{transport}_{run}", contestant.replace('_', ""));
                sql.execute(
                    "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                    &[&slot],
                )
                .await?;
                drains.push((run, transport.clone(), pg.clone(), contestant, slot));
            }
        }
    }
    sql.execute(
        "SELECT pg_create_logical_replication_slot('bench_capture', 'pgoutput')",
        &[],
    )
    .await?;

    let transactions = args.changes / args.rows_per_transaction;
    eprintln!(
        "writing the backlog: {} changes in {transactions} transactions of {} rows",
        transactions * args.rows_per_transaction,
        args.rows_per_transaction
    );
    let written = Instant::now();
    sql.batch_execute(&format!(
        "DO $$ BEGIN
           FOR t IN 0..{last} LOOP
             INSERT INTO {TABLE}
               SELECT g, repeat('x', {bytes}) FROM generate_series(t * {k}, t * {k} + {k} - 1) g;
             COMMIT;
           END LOOP;
         END $$;",
        last = transactions.saturating_sub(1),
        bytes = args.row_bytes,
        k = args.rows_per_transaction,
    ))
    .await?;
    let end: String = sql
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await?
        .get(0);
    let total_changes = transactions * args.rows_per_transaction;
    eprintln!(
        "backlog written in {:.1} s, ends at {end}",
        written.elapsed().as_secs_f64()
    );

    let exe = std::env::current_exe()?;
    let mut measurements = Vec::new();
    for (run, transport, pg, contestant, slot) in &drains {
        let usage = match *contestant {
            "pg_recvlogical" => spawn_timed(&pg_recvlogical_command(
                pg,
                slot,
                &end,
                PUBLICATION,
                args.binary,
            ))?
            .wait()?,
            _ => spawn_timed(
                Command::new(&exe)
                    .arg("drain")
                    .args(["--host", &pg.host, "--port", &pg.port.to_string()])
                    .args(["--user", &pg.user, "--dbname", &pg.dbname])
                    .args(["--slot", slot, "--publication", PUBLICATION])
                    .args(["--until-changes", &total_changes.to_string()])
                    .args(if args.binary {
                        &["--binary"][..]
                    } else {
                        &[][..]
                    }),
            )?
            .wait()?,
        };
        let measurement = Measurement {
            contestant: (*contestant).to_owned(),
            transport: transport.clone(),
            run: *run,
            changes_per_second: rate(total_changes, usage.wall_seconds),
            seconds: usage.wall_seconds,
            user_cpu_seconds: usage.user_cpu_seconds,
            system_cpu_seconds: usage.system_cpu_seconds,
            max_rss_kib: usage.max_rss_kib,
        };
        eprintln!(
            "run {run} {transport:<4} {contestant:<14} {:>8.2} s {:>10.0} changes/s",
            measurement.seconds, measurement.changes_per_second
        );
        measurements.push(measurement);
        drop_slot_when_released(&sql, slot).await?;
    }

    let decoder = decoder_benchmark(args, total_changes).await?;
    sql.execute("SELECT pg_drop_replication_slot('bench_capture')", &[])
        .await?;

    let summary = summarize(&measurements, total_changes);
    let mut ratios = Vec::new();
    for (transport, _) in &transports {
        let median = |who: &str| {
            summary
                .iter()
                .find(|s| s.contestant == who && &s.transport == transport)
                .map(|s| s.median_changes_per_second)
        };
        if let (Some(ours), Some(ceiling)) = (median("sluice"), median("pg_recvlogical")) {
            ratios.push((
                format!("sluice / pg_recvlogical ({transport})"),
                ours / ceiling,
            ));
        }
    }
    let result = Result {
        benchmark: "replication-drain",
        changes: total_changes,
        rows_per_transaction: args.rows_per_transaction,
        row_bytes: args.row_bytes,
        binary: args.binary,
        runs: args.runs,
        server_version,
        measurements,
        summary,
        ratios,
        decoder,
    };
    print_summary(&result);
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string_pretty(&result)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

/// Drops `slot`, if it exists, once the walsender of the drain that used it has let go of it.
pub(crate) async fn drop_slot_when_released(
    sql: &tokio_postgres::Client,
    slot: &str,
) -> anyhow::Result<()> {
    for _ in 0..300 {
        let active: Option<bool> = sql
            .query_opt(
                "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await?
            .map(|row| row.get(0));
        match active {
            None => return Ok(()),
            Some(false) => {
                sql.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
                    .await?;
                return Ok(());
            }
            Some(true) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    bail!("slot {slot} is still in use 30 s after its drain ended")
}

/// `pg_recvlogical` draining `slot` with pgoutput (protocol 2) into /dev/null until `end`.
/// TLS is off, as for sluice's connections in the benchmarks: libpq's default (`prefer`)
/// would encrypt over TCP.
pub(crate) fn pg_recvlogical_command(
    pg: &PgArgs,
    slot: &str,
    end: &str,
    publication: &str,
    binary: bool,
) -> Command {
    let mut command = Command::new("pg_recvlogical");
    command
        .arg("-d")
        .arg(format!("{} sslmode=disable", pg.conninfo()))
        .args(["--slot", slot, "--start", "--no-loop", "-f", "/dev/null"])
        .arg(format!("--endpos={end}"))
        .args(["-o", "proto_version=2"])
        .args(["-o", &format!("publication_names={publication}")]);
    if binary {
        command.args(["-o", "binary=true"]);
    }
    command
}

/// Captures the backlog's messages from the capture slot, then times decoding them.
async fn decoder_benchmark(
    args: &ReplicationBenchArgs,
    total_changes: u64,
) -> anyhow::Result<DecoderResult> {
    let conn = ReplicationConnection::connect(&args.pg.connect_config()).await?;
    let mut options = PgOutputOptions::new(vec![PUBLICATION.to_owned()]);
    options.binary = args.binary;
    options.streaming = false;
    let choice = conn.negotiate(&options);
    let mut stream = conn
        .start_replication("bench_capture", Lsn::ZERO, &options, choice)
        .await?;
    let limit = args
        .decoder_messages
        .min(usize::try_from(total_changes).unwrap_or(usize::MAX));
    let mut captured: Vec<Bytes> = Vec::with_capacity(limit);
    while captured.len() < limit {
        match stream.next().await? {
            Some(StreamEvent::XLogData(xlog)) => captured.push(xlog.into_data()),
            Some(_) => {}
            None => break,
        }
    }
    drop(stream);
    let bytes: usize = captured.iter().map(Bytes::len).sum();
    let iterations = 5;
    let mut columns = 0usize;
    let started = Instant::now();
    for _ in 0..iterations {
        let mut decoder = Decoder::new(choice.decoder_options());
        for data in &captured {
            // Bytes::clone is a reference count, as when the stream hands a message over.
            if let LogicalMessage::Insert(insert) = decoder.decode(data.clone())? {
                columns += insert
                    .new_tuple()
                    .iter()
                    .filter(|v| !matches!(v, ColumnValue::Null))
                    .count();
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    std::hint::black_box(columns);
    let messages = captured.len() * iterations;
    let total_bytes = bytes * iterations;
    Ok(DecoderResult {
        messages: captured.len(),
        bytes,
        messages_per_second: rate(u64::try_from(messages)?, seconds),
        megabytes_per_second: rate(u64::try_from(total_bytes)?, seconds) / 1e6,
    })
}

fn summarize(measurements: &[Measurement], changes: u64) -> Vec<Summary> {
    let mut groups: Vec<(String, String)> = measurements
        .iter()
        .map(|m| (m.contestant.clone(), m.transport.clone()))
        .collect();
    groups.dedup();
    groups.sort();
    groups.dedup();
    groups
        .into_iter()
        .map(|(contestant, transport)| {
            let of: Vec<&Measurement> = measurements
                .iter()
                .filter(|m| m.contestant == contestant && m.transport == transport)
                .collect();
            let rates = Spread::of(of.iter().map(|m| m.changes_per_second));
            let cpu: f64 = of
                .iter()
                .map(|m| m.user_cpu_seconds + m.system_cpu_seconds)
                .sum::<f64>()
                / rate(u64::try_from(of.len()).unwrap_or(1), 1.0);
            Summary {
                median_changes_per_second: rates.median,
                min_changes_per_second: rates.min,
                max_changes_per_second: rates.max,
                cpu_seconds_per_million_changes: cpu / rate(changes, 1.0) * 1e6,
                max_rss_kib: of.iter().map(|m| m.max_rss_kib).max().unwrap_or(0),
                contestant,
                transport,
            }
        })
        .collect()
}

fn print_summary(result: &Result) {
    println!(
        "replication drain: {} changes, {} rows/transaction, {} B rows, binary={}, {} runs, PostgreSQL {}",
        result.changes,
        result.rows_per_transaction,
        result.row_bytes,
        result.binary,
        result.runs,
        result.server_version
    );
    println!(
        "{:<15} {:<5} {:>14} {:>14} {:>14} {:>12} {:>10}",
        "contestant", "via", "median ch/s", "min ch/s", "max ch/s", "cpu s/M ch", "rss KiB"
    );
    for s in &result.summary {
        println!(
            "{:<15} {:<5} {:>14.0} {:>14.0} {:>14.0} {:>12.2} {:>10}",
            s.contestant,
            s.transport,
            s.median_changes_per_second,
            s.min_changes_per_second,
            s.max_changes_per_second,
            s.cpu_seconds_per_million_changes,
            s.max_rss_kib
        );
    }
    for (what, ratio) in &result.ratios {
        println!("{what}: {ratio:.2}");
    }
    println!(
        "decoder: {} messages ({} bytes) decoded at {:.0} messages/s, {:.0} MB/s",
        result.decoder.messages,
        result.decoder.bytes,
        result.decoder.messages_per_second,
        result.decoder.megabytes_per_second
    );
}
