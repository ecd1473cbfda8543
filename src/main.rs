//! The `shale` binary: parse the command line, set up logging, run.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = shale::cli::Cli::parse();
    shale::telemetry::init(cli.log_json);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("shale").build()?;
    runtime.block_on(shale::cli::run(cli))
}
