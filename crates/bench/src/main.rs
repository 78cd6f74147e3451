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
    let args = match cli.command {
        Command::Drain(args) => return drain::main(&args),
        Command::Replication(args) => args,
    };
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
    match runtime.block_on(replication::run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
