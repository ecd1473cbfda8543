//! The `shale` command line: servers (`standalone`, `serve`), administration (`topic`),
//! data (`produce`, `consume`), consumer groups (`group`), transactions (`txn`) and
//! schemas (`schema`). Load generators are a
//! separate binary, `shale-bench` (crates/bench).

mod acl;
mod broker;
mod cluster;
mod consume;
mod group;
mod partition;
mod produce;
mod quota;
mod record_format;
mod schema;
mod serve;
mod topic;
mod txn;
mod user;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use shale_client::cli::{BrokerArg, DEFAULT_BROKER, Format, key_value};

/// Shale: a durable, object-storage-backed log service.
#[derive(Debug, Parser)]
#[command(name = "shale", version, about, propagate_version = true)]
pub struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "SHALE_LOG_JSON")]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a single broker with embedded metadata and local storage.
    Standalone(serve::StandaloneArgs),
    /// Run a broker from a settings file.
    Serve(Box<serve::ServeArgs>),
    /// Inspect and balance the cluster.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Decommission brokers.
    #[command(subcommand)]
    Broker(broker::BrokerCommand),
    /// Reassign partitions to other brokers.
    #[command(subcommand)]
    Partition(partition::PartitionCommand),
    /// Create, list, describe, alter and delete topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Send one record per line of standard input.
    Produce(produce::ProduceArgs),
    /// Print records, one value per line.
    Consume(consume::ConsumeArgs),
    /// List, describe, reset and delete consumer groups.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// List, describe and abort transactions.
    #[command(subcommand)]
    Txn(txn::TxnCommand),
    /// Add, list and remove access-control bindings.
    #[command(subcommand)]
    Acl(acl::AclCommand),
    /// Create, delete and list users' SASL (SCRAM, PLAIN) credentials for the Kafka listener.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Set, list and remove per-principal quotas.
    #[command(subcommand)]
    Quota(quota::QuotaCommand),
    /// List, read, register, check and delete schemas in the schema registry.
    #[command(subcommand)]
    Schema(schema::SchemaCommand),
}

/// The `shale` binary's main: parses the command line, sets up logging, runs the command
/// on a runtime. Here rather than in `main.rs`: whichever crate polls the command's future
/// compiles every async function under it, so the binary would compile them all a second
/// time (as it did, 72 s of a fresh release build).
pub fn main() -> std::process::ExitCode {
    use clap::Parser;
    let cli = Cli::parse();
    if let Err(e) = serve::confine(&cli.command) {
        eprintln!("error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    shale_client::cli::main("shale", cli.log_json, run(cli))
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Standalone(a) => serve::standalone(a).await,
        Command::Serve(a) => serve::serve(*a).await,
        Command::Cluster(c) => cluster::run(c).await,
        Command::Broker(c) => broker::run(c).await,
        Command::Partition(c) => partition::run(c).await,
        Command::Topic(c) => topic::run(c).await,
        Command::Produce(a) => produce::run(a).await,
        Command::Consume(a) => consume::run(a).await,
        Command::Group(c) => group::run(c).await,
        Command::Txn(c) => txn::run(c).await,
        Command::Acl(c) => acl::run(c).await,
        Command::Quota(c) => quota::run(c).await,
        Command::User(c) => user::run(c).await,
        Command::Schema(c) => schema::run(c).await,
    }
}

/// A settings file path option shared by server commands.
#[derive(Debug, Clone, Args)]
pub struct ConfigArg {
    /// Settings file (TOML); see deploy/shale.toml.
    #[arg(long, env = "SHALE_CONFIG")]
    pub config: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    /// clap's own checks of every command and argument (unique names, conflicts naming
    /// arguments that exist), which otherwise fail only when that command runs.
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
