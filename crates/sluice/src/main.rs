//! The `sluice` command: a thin shell over the library crates.
//!
//! Configuration and tracing are set up synchronously before any runtime is built, so a bad
//! flag or config file is reported without starting threads.

use std::process::ExitCode;

use clap::{Parser, ValueEnum};

/// Streams every committed change of chosen PostgreSQL tables to Kafka as Avro events.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, long_about = None)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, env = "SLUICE_LOG_FORMAT", global = true)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match try_main(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn try_main(_cli: &Cli) -> anyhow::Result<()> {
    anyhow::bail!("no command given; see `sluice --help`")
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
