//! The `sluice` command: a thin shell over the library crates.
//!
//! Flags, configuration and tracing are set up synchronously before any runtime is built, so
//! a bad flag or config file is reported without starting threads.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use sluice_pipeline::config;
use sluice_pipeline::run::run;

mod check;
mod registry;
mod snapshot;
mod status;
mod tail;
mod teardown;

/// Streams every committed change of chosen PostgreSQL tables to Kafka as Avro events.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, long_about = None)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, env = "SLUICE_LOG_FORMAT", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Snapshot the chosen tables, then stream their changes to Kafka until stopped.
    Run {
        /// The configuration file (TOML); `SLUICE_<SECTION>__<KEY>` variables override it.
        #[arg(long, short, env = "SLUICE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print a captured table's events from Kafka as JSON, one document a line.
    Tail(tail::TailArgs),
    /// Check PostgreSQL, Kafka and the registry before running: one line per item, with the fix.
    Check(check::CheckArgs),
    /// Where capture stands: confirmed position, WAL retained, lag, snapshot state.
    Status(status::StatusArgs),
    /// Drop the replication slot and publication sluice created.
    Teardown(teardown::TeardownArgs),
    /// Ask the running sluice to snapshot tables again while it streams (or `--cancel` one).
    Snapshot(snapshot::SnapshotArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

/// The whole program; `main` only returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match cli.command {
        Command::Run { config } => run_command(config),
        Command::Tail(args) => tail::main(args),
        Command::Check(args) => check::main(&args),
        Command::Status(args) => status::main(&args),
        Command::Teardown(args) => teardown::main(&args),
        Command::Snapshot(args) => snapshot::main(&args),
    }
}

fn run_command(path: Option<PathBuf>) -> ExitCode {
    let config = match load_config(path.as_deref()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    tracing::info!(config = %config.redacted_summary(), "starting");
    let runtime = match runtime(2) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    // On a worker, not the main thread: the worker that waits on the sockets then runs the
    // pipeline itself, instead of waking the main thread for every batch that arrives.
    let pipeline = runtime.spawn(run(config, shutdown_signal()));
    let outcome = runtime.block_on(pipeline).unwrap_or_else(|err| {
        Err(sluice_pipeline::PipelineError::Internal(format!(
            "the pipeline task ended abnormally: {err}"
        )))
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let kind = if err.is_transient() {
                "transient: starting again later may succeed"
            } else {
                "definite: needs a fix before a new start"
            };
            tracing::error!(error = %err, kind, "stopped");
            eprintln!("error: {err}");
            // 75 (EX_TEMPFAIL) for an outage, 1 for what needs a fix: a supervisor restarts
            // the first, and need not hammer the second (docs/operations.md).
            ExitCode::from(err.exit_code())
        }
    }
}

/// The configuration at `path` with its overrides; on a bad configuration, exit code 2 after
/// saying why.
fn load_config(path: Option<&Path>) -> Result<config::Config, ExitCode> {
    config::load(path, std::env::vars()).map_err(|err| {
        eprintln!("error: configuration: {err}");
        ExitCode::from(2)
    })
}

/// A multi-threaded runtime, or the exit code after saying why there is none.
fn runtime(workers: usize) -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(|err| {
            eprintln!("error: starting the runtime: {err}");
            ExitCode::FAILURE
        })
}

/// The configuration at `path` and a runtime of `workers` threads for a command that stops on
/// a bad configuration; the exit code after saying why when either fails.
fn configured_runtime(
    path: Option<&Path>,
    workers: usize,
) -> Result<(config::Config, tokio::runtime::Runtime), ExitCode> {
    Ok((load_config(path)?, runtime(workers)?))
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGTERM; only SIGINT stops sluice cleanly");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutdown requested: draining in-flight events");
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
