//! `shale broker decommission`: move every replica off a broker so it can leave for good.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::BrokerArg;

/// Broker administration.
#[derive(Debug, Subcommand)]
pub enum BrokerCommand {
    /// Move every replica off a broker and place nothing new on it, so that it can be
    /// stopped for good; a broker added later under a new id takes its share.
    Decommission(DecommissionArgs),
}

/// `broker decommission`.
#[derive(Debug, Args)]
pub struct DecommissionArgs {
    /// Id of the broker leaving.
    pub id: i32,
    /// Let the broker stay after all (replicas already moved stay where they went).
    #[arg(long)]
    pub cancel: bool,
    /// Wait until no replica is left on the broker, printing the count as it falls.
    #[arg(long, conflicts_with = "cancel")]
    pub wait: bool,
    #[command(flatten)]
    pub broker: BrokerArg,
}

pub(super) async fn run(cmd: BrokerCommand) -> anyhow::Result<()> {
    match cmd {
        BrokerCommand::Decommission(a) => {
            let admin = a.broker.client()?.admin();
            let mut left = admin.decommission_broker(a.id, a.cancel).await?;
            if a.cancel {
                println!("broker {} stays: it takes new replicas again", a.id);
                return Ok(());
            }
            println!("broker {} is decommissioning: {left} replica(s) to move off it", a.id);
            let mut last = left;
            while a.wait && left > 0 {
                shale_core::clock::sleep(Duration::from_secs(1)).await;
                let cluster = admin.describe_cluster().await?;
                left = cluster.loads.get(&a.id).map_or(0, |l| l.hosted);
                if left != last {
                    println!("broker {}: {left} replica(s) left", a.id);
                    last = left;
                }
            }
            if left == 0 {
                println!("broker {} holds no replicas: it can be stopped for good", a.id);
            }
        }
    }
    Ok(())
}
