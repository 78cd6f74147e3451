fn main() -> std::process::ExitCode {
    sluice::main()
}
