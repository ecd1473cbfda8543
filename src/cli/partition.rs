//! `shale partition reassign`: move a partition to another replica set, or cancel a move.

use clap::{Args, Subcommand};

use super::BrokerArg;
use crate::proto::pb;

/// Partition administration.
#[derive(Debug, Subcommand)]
pub enum PartitionCommand {
    /// Move a partition to a new replica set (new replicas copy only what is not in the
    /// bucket, join the ISR, then the replicas left out are removed), or cancel a move.
    Reassign(ReassignArgs),
}

/// `partition reassign`.
#[derive(Debug, Args)]
pub struct ReassignArgs {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// The replica set wanted, preferred leader first, e.g. --replicas 2,3,4.
    #[arg(long, value_delimiter = ',', required_unless_present = "cancel")]
    pub replicas: Vec<i32>,
    /// Cancel the partition's move: it goes back to its replicas from before.
    #[arg(long, conflicts_with = "replicas")]
    pub cancel: bool,
    /// Check the request without making it.
    #[arg(long)]
    pub validate_only: bool,
    #[command(flatten)]
    pub broker: BrokerArg,
}

pub(super) async fn run(cmd: PartitionCommand) -> anyhow::Result<()> {
    match cmd {
        PartitionCommand::Reassign(a) => {
            let admin = a.broker.client()?.admin();
            let r = pb::Reassignment {
                topic: a.topic.clone(),
                partition: a.partition,
                replicas: if a.cancel { vec![] } else { a.replicas.clone() },
            };
            admin.reassign_partitions(vec![r], a.validate_only).await?;
            let what = match (a.cancel, a.validate_only) {
                (true, true) => "can be cancelled".to_string(),
                (true, false) => "is going back to its replicas from before".to_string(),
                (false, true) => format!("can move to replicas {:?}", a.replicas),
                (false, false) => format!(
                    "is moving to replicas {:?}; follow it with shale cluster rebalance --status",
                    a.replicas
                ),
            };
            println!("{}/{} {what}", a.topic, a.partition);
        }
    }
    Ok(())
}
