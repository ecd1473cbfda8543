//! The `shale` binary: parse the command line, set up logging, run. A failure is printed
//! as one line, `error: ...` (its causes joined by `: `), never a backtrace.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = shale::cli::Cli::parse();
    shale_client::cli::main("shale", cli.log_json, shale::cli::run(cli))
}
