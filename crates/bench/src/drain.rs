//! Drains a replication slot through sluice's replication layer (connection, decoder,
//! streamed-transaction assembly) into nothing, counting what passes.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use sluice_pgoutput::{LogicalMessage, Lsn};
use sluice_postgres::{
    Change, ChangeStream, ConnectConfig, Host, PgOutputOptions, ReplicationConnection,
    SnapshotAction, SslMode,
};

use crate::stats::rate;

/// Where PostgreSQL is.
#[derive(Debug, Clone, clap::Args)]
pub struct PgArgs {
    /// Host name, or the directory of the Unix socket when it starts with `/`.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 15432)]
    pub port: u16,
    #[arg(long, default_value = "sluice")]
    pub user: String,
    /// Defaults to the user name, as on the local stack.
    #[arg(long, env = "PGPASSWORD")]
    pub password: Option<String>,
    #[arg(long, default_value = "sluice")]
    pub dbname: String,
}

impl PgArgs {
    pub fn connect_config(&self) -> ConnectConfig {
        let host = if self.host.starts_with('/') {
            Host::UnixSocketDir(PathBuf::from(&self.host))
        } else {
            Host::Tcp(self.host.clone())
        };
        let mut config = ConnectConfig::new(host, self.port, &self.user, &self.dbname);
        config.password = Some(
            self.password
                .clone()
                .unwrap_or_else(|| self.user.clone())
                .into(),
        );
        config.sslmode = SslMode::Disable;
        config
    }

    /// A libpq connection string for tokio-postgres and pg_recvlogical.
    pub fn conninfo(&self) -> String {
        format!(
            "host={} port={} user={} password={} dbname={}",
            self.host,
            self.port,
            self.user,
            self.password.as_deref().unwrap_or(&self.user),
            self.dbname
        )
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct DrainArgs {
    #[command(flatten)]
    pub pg: PgArgs,
    #[arg(long)]
    pub slot: String,
    /// Create the slot as a temporary one first, and say where it starts.
    #[arg(long)]
    pub create_temporary_slot: bool,
    #[arg(long = "publication", required = true)]
    pub publications: Vec<String>,
    #[arg(long)]
    pub binary: bool,
    /// Ask for no streaming of in-progress transactions.
    #[arg(long)]
    pub no_streaming: bool,
    /// Stop after the commit that ends at or past this LSN.
    #[arg(long)]
    pub until_lsn: Option<Lsn>,
    /// Stop after the commit that brings the count of row changes to this.
    #[arg(long)]
    pub until_changes: Option<u64>,
    /// Memory for streamed transactions before they spill to disk.
    #[arg(long, default_value_t = 64)]
    pub memory_budget_mib: usize,
    /// Print a JSON line on stdout for the start and each stream block's first segment.
    #[arg(long)]
    pub events: bool,
}

/// What a drain saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DrainReport {
    pub changes: u64,
    pub transactions: u64,
    pub streamed_transactions: u64,
    pub aborted_streams: u64,
    pub spilled_transactions: u64,
    pub seconds: f64,
    pub changes_per_second: f64,
    pub last_end_lsn: String,
    pub peak_rss_kib: u64,
}

/// Runs a drain on a runtime of its own and prints its report as a JSON line.
pub fn main(args: &DrainArgs) -> std::process::ExitCode {
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(drain(args)));
    match outcome {
        Ok(report) => {
            println!("{}", serde_json::json!({"event": "done", "report": report}));
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Drains as `args` says and reports.
pub async fn drain(args: &DrainArgs) -> anyhow::Result<DrainReport> {
    let mut conn = ReplicationConnection::connect(&args.pg.connect_config()).await?;
    let start = if args.create_temporary_slot {
        conn.create_slot(&args.slot, true, SnapshotAction::NoExport)
            .await?
            .consistent_point
    } else {
        Lsn::ZERO
    };
    let mut options = PgOutputOptions::new(args.publications.clone());
    options.binary = args.binary;
    options.streaming = !args.no_streaming;
    let choice = conn.negotiate(&options);
    let stream = conn
        .start_replication(&args.slot, start, &options, choice)
        .await?;
    let mut changes = ChangeStream::new(stream, args.memory_budget_mib * 1024 * 1024);
    if args.events {
        println!(
            "{}",
            serde_json::json!({"event": "ready", "start": start.to_string(),
                "protocol_version": choice.protocol_version})
        );
    }

    let mut report = DrainReport::default();
    let begun = Instant::now();
    while let Some(change) = changes.next().await? {
        match change {
            Change::Message(
                LogicalMessage::Insert(_) | LogicalMessage::Update(_) | LogicalMessage::Delete(_),
            ) => report.changes += 1,
            Change::Begin { streamed, .. } => {
                report.transactions += 1;
                report.streamed_transactions += u64::from(streamed);
            }
            Change::Commit { end_lsn, .. } => {
                changes.stream().confirm(end_lsn);
                report.last_end_lsn = end_lsn.to_string();
                let lsn_reached = args.until_lsn.is_some_and(|until| end_lsn >= until);
                let count_reached = args.until_changes.is_some_and(|n| report.changes >= n);
                if lsn_reached || count_reached {
                    break;
                }
            }
            Change::StreamBlock {
                xid,
                first_segment: true,
            } if args.events => {
                println!(
                    "{}",
                    serde_json::json!({"event": "stream_start", "xid": xid})
                );
            }
            _ => {}
        }
    }
    report.seconds = begun.elapsed().as_secs_f64();
    report.aborted_streams = changes.aborted_streams();
    report.spilled_transactions = changes.streamed_stats().spilled_transactions;
    report.changes_per_second = rate(report.changes, report.seconds);
    report.peak_rss_kib = peak_rss_kib();
    changes.finish().await?.close().await?;
    Ok(report)
}

/// The process's peak resident set size (VmHWM), in KiB.
pub fn peak_rss_kib() -> u64 {
    crate::process::status_kib("self", "VmHWM").unwrap_or(0)
}
