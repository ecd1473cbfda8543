//! The `shale` binary: parse the command line, set up logging, run. A failure is printed
//! as one line, `error: ...` (its causes joined by `: `), never a backtrace.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = shale::cli::Cli::parse();
    shale::telemetry::init(cli.log_json);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("shale")
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(shale::cli::run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
