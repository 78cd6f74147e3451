//! `sluice-bench`: sluice's benchmarks. See docs/benchmarks.md for how figures are made.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice_bench::{compare, drain, replication};

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
    /// sluice, Debezium and the ceilings side by side on the same data: JSON result, markdown
    /// summary on stdout.
    Compare(Box<compare::CompareArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Drain(args) = &cli.command {
        return drain::main(args);
    }
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
    let outcome = match &cli.command {
        Command::Replication(args) => runtime.block_on(replication::run(args)),
        Command::Compare(args) => runtime.block_on(compare::run(args)),
        Command::Drain(_) => Ok(()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
