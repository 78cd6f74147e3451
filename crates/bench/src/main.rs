//! `sluice-bench`: sluice's benchmarks. See docs/benchmarks.md for how figures are made.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice_bench::{drain, replication};

#[derive(Debug, Parser)]
#[command(name = "sluice-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drain a slot through sluice's replication layer into nothing; prints a JSON report.
    Drain(drain::DrainArgs),
    /// The replication-layer benchmark: sluice's client against pg_recvlogical.
    Replication(replication::ReplicationBenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Drain(args) => {
                let report = drain::drain(&args).await?;
                println!("{}", serde_json::json!({"event": "done", "report": report}));
                Ok(())
            }
            Command::Replication(args) => replication::run(&args).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
