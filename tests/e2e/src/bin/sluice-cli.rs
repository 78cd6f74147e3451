//! The `sluice` command, built inside the test crate so tests can run it as a process
//! (`CARGO_BIN_EXE_sluice-cli`) and stop or kill it like an operator would.

fn main() -> std::process::ExitCode {
    sluice::main()
}
