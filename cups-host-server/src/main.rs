//! `cups-server`: the operator command line (see `cups-server --help` and the README).
fn main() -> std::process::ExitCode {
    cups_host_server::cli::main()
}
