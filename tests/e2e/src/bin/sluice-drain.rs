//! `sluice-bench drain`, built inside the test crate so tests can run it as a process of its
//! own (its memory is measured alone) through `CARGO_BIN_EXE_sluice-drain`.

use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: sluice_bench::drain::DrainArgs,
}

fn main() -> ExitCode {
    sluice_bench::drain::main(&Cli::parse().args)
}
