//! `shale cluster describe`: brokers, controller, and every partition's leader.

use clap::{Args, Subcommand};

use super::{BrokerArg, Format};

/// Cluster commands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Show brokers, the controller and partition leaders.
    Describe(DescribeArgs),
    /// Show the principal a broker sees for these credentials.
    Whoami(WhoamiArgs),
}

/// `cluster whoami`.
#[derive(Debug, Args)]
pub struct WhoamiArgs {
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// `cluster describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub broker: BrokerArg,
}

pub(super) async fn run(cmd: ClusterCommand) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::Describe(a) => describe(a).await,
        ClusterCommand::Whoami(a) => {
            let me = a.broker.client()?.admin().who_am_i().await?;
            let broker = if me.broker { ", a broker" } else { "" };
            println!("{} (authenticated by {}{broker})", me.principal, me.authenticated_by);
            Ok(())
        }
    }
}

async fn describe(a: DescribeArgs) -> anyhow::Result<()> {
    let md = a.broker.client()?.admin().metadata(&[]).await?;
    match a.format {
        Format::Json => {
            let topics: Vec<serde_json::Value> = md
                .topics
                .iter()
                .map(|t| {
                    let info = t.topic.clone().unwrap_or_default();
                    serde_json::json!({
                        "name": info.name,
                        "partitions": t.partitions.iter().map(|p| serde_json::json!({
                            "partition": p.partition,
                            "leader": p.leader_id,
                            "leader_epoch": p.leader_epoch,
                            "replicas": p.replicas,
                            "isr": p.isr,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let v = serde_json::json!({
                "cluster": md.cluster,
                "controller": md.controller_id,
                "brokers": md.brokers.iter().map(|b| serde_json::json!({
                    "id": b.id, "address": b.address, "rack": b.rack,
                })).collect::<Vec<_>>(),
                "topics": topics,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Text => {
            println!("cluster {} controller {}", md.cluster, md.controller_id);
            println!("brokers:");
            for b in &md.brokers {
                let rack =
                    if b.rack.is_empty() { String::new() } else { format!(" rack {}", b.rack) };
                println!("  {}\t{}{rack}", b.id, b.address);
            }
            println!("partitions:");
            println!("  topic\tpartition\tleader\tepoch\treplicas\tisr");
            for t in &md.topics {
                let name = t.topic.as_ref().map(|i| i.name.clone()).unwrap_or_default();
                for p in &t.partitions {
                    let leader = if p.leader_id < 0 {
                        "offline".to_string()
                    } else {
                        p.leader_id.to_string()
                    };
                    println!(
                        "  {name}\t{}\t{leader}\t{}\t{:?}\t{:?}",
                        p.partition, p.leader_epoch, p.replicas, p.isr
                    );
                }
            }
        }
    }
    Ok(())
}
