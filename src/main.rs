//! The `shale` binary: parse the command line, set up logging, run ([`shale::cli::main`]).
//! A failure is printed as one line, `error: ...` (its causes joined by `: `), never a
//! backtrace.

fn main() -> std::process::ExitCode {
    shale::cli::main()
}
