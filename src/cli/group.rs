//! `shale group list|describe|reset-offsets|delete`.

use clap::{Args, Subcommand};

use super::{BrokerArg, Format};
use crate::client::GroupAdmin;
use crate::proto::pb;

/// Consumer group commands.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List groups with their state and member count.
    List(ListArgs),
    /// Show a group's members, assignment and per-partition committed offset and lag.
    Describe(DescribeArgs),
    /// Move an empty group's committed offsets.
    ResetOffsets(ResetArgs),
    /// Delete an empty group and its offsets.
    Delete(DeleteArgs),
}

/// `group list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// `group describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Group id.
    pub group: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// `group reset-offsets`.
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Group id.
    pub group: String,
    /// Topic whose offsets move.
    #[arg(long)]
    pub topic: String,
    /// Only these partitions (repeatable; default: all).
    #[arg(long = "partition")]
    pub partitions: Vec<u32>,
    /// To the log start.
    #[arg(long, group = "to")]
    pub to_earliest: bool,
    /// To the end (skip everything not yet consumed).
    #[arg(long, group = "to")]
    pub to_latest: bool,
    /// To the first record at or after this time (ms since the epoch).
    #[arg(long, group = "to")]
    pub to_timestamp: Option<i64>,
    /// To this offset.
    #[arg(long, group = "to")]
    pub to_offset: Option<i64>,
    /// Print the new offsets without changing them.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// `group delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Group id.
    pub group: String,
    #[command(flatten)]
    pub broker: BrokerArg,
}

pub(super) async fn run(cmd: GroupCommand) -> anyhow::Result<()> {
    match cmd {
        GroupCommand::List(a) => {
            let groups = GroupAdmin::new(a.broker.client()?).list().await?;
            match a.format {
                Format::Json => {
                    let v: Vec<_> = groups
                        .iter()
                        .map(|g| {
                            serde_json::json!({"group": g.group, "state": g.state,
                                "members": g.members, "protocol": g.protocol})
                        })
                        .collect();
                    println!("{}", serde_json::Value::Array(v));
                }
                Format::Text => {
                    println!("group\tstate\tmembers\tprotocol");
                    for g in groups {
                        println!("{}\t{}\t{}\t{}", g.group, g.state, g.members, g.protocol);
                    }
                }
            }
        }
        GroupCommand::Describe(a) => {
            let d = GroupAdmin::new(a.broker.client()?).describe(&a.group).await?;
            print_describe(&d, a.format);
        }
        GroupCommand::ResetOffsets(a) => {
            use pb::reset_offsets_request::To;
            let to = match (a.to_earliest, a.to_latest, a.to_timestamp, a.to_offset) {
                (true, ..) => To::Earliest(true),
                (_, true, ..) => To::Latest(true),
                (_, _, Some(ts), _) => To::TimestampMs(ts),
                (_, _, _, Some(o)) => To::Offset(o),
                _ => anyhow::bail!(
                    "say where to: --to-earliest, --to-latest, --to-timestamp MS or --to-offset N"
                ),
            };
            let offsets = GroupAdmin::new(a.broker.client()?)
                .reset_offsets(pb::ResetOffsetsRequest {
                    group: a.group.clone(),
                    topic: a.topic.clone(),
                    partitions: a.partitions.clone(),
                    to: Some(to),
                    dry_run: a.dry_run,
                })
                .await?;
            match a.format {
                Format::Json => {
                    let v: Vec<_> = offsets
                        .iter()
                        .map(|o| serde_json::json!({"topic": o.topic, "partition": o.partition, "offset": o.offset}))
                        .collect();
                    println!("{}", serde_json::Value::Array(v));
                }
                Format::Text => {
                    let verb = if a.dry_run { "would set" } else { "set" };
                    for o in offsets {
                        println!("{verb} {}-{} to {}", o.topic, o.partition, o.offset);
                    }
                }
            }
        }
        GroupCommand::Delete(a) => {
            GroupAdmin::new(a.broker.client()?).delete(&a.group).await?;
            println!("deleted group {}", a.group);
        }
    }
    Ok(())
}

fn partitions_text(tps: &[pb::TopicPartitions]) -> String {
    tps.iter()
        .map(|t| {
            let ps: Vec<String> = t.partitions.iter().map(u32::to_string).collect();
            format!("{}[{}]", t.topic, ps.join(","))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_describe(d: &pb::DescribeGroupResponse, format: Format) {
    match format {
        Format::Json => {
            let members: Vec<_> = d
                .members
                .iter()
                .map(|m| {
                    let assignment: Vec<_> = m
                        .assignment
                        .iter()
                        .map(|t| serde_json::json!({"topic": t.topic, "partitions": t.partitions}))
                        .collect();
                    serde_json::json!({
                        "member_id": m.member_id,
                        "client_id": m.client_id,
                        "member_epoch": m.member_epoch,
                        "topics": m.topics,
                        "topic_pattern": m.topic_pattern,
                        "assignment": assignment,
                        "revoking": partitions_text(&m.revoking),
                        "target": partitions_text(&m.target),
                        "protocol": m.protocol,
                        "topic_regex": m.topic_regex,
                        "instance_id": m.instance_id,
                        "client_host": m.client_host,
                    })
                })
                .collect();
            let partitions: Vec<_> = d
                .partitions
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "topic": p.topic,
                        "partition": p.partition,
                        "committed": p.committed,
                        "log_end": p.log_end,
                        "lag": p.lag,
                        "member_id": p.member_id,
                        "in_flight": p.share.then_some(p.in_flight),
                        "acknowledged": p.share.then_some(p.acknowledged),
                        "archived": p.share.then_some(p.archived),
                        "max_delivery_count": p.share.then_some(p.max_delivery_count),
                    })
                })
                .collect();
            let v = serde_json::json!({
                "group": d.group,
                "protocol": d.protocol,
                "state": d.state,
                "group_epoch": d.group_epoch,
                "assignor": d.assignor,
                "coordinator": d.coordinator,
                "members": members,
                "partitions": partitions,
            });
            println!("{v}");
        }
        Format::Text => {
            println!(
                "group {} type {} state {} epoch {} assignor {} coordinator {}",
                d.group, d.protocol, d.state, d.group_epoch, d.assignor, d.coordinator
            );
            println!("member\tclient\tprotocol\tepoch\tassignment");
            for m in &d.members {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    m.member_id,
                    m.client_id,
                    m.protocol,
                    m.member_epoch,
                    partitions_text(&m.assignment)
                );
            }
            if d.protocol == "share" {
                // Shared partitions: where each starts, and what is in flight past it.
                println!(
                    "topic\tpartition\tstart\tlog_end\tlag\tin_flight\tacked\tarchived\tmax_deliveries"
                );
                for p in &d.partitions {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        p.topic,
                        p.partition,
                        p.committed,
                        p.log_end,
                        p.lag,
                        p.in_flight,
                        p.acknowledged,
                        p.archived,
                        p.max_delivery_count
                    );
                }
                return;
            }
            println!("topic\tpartition\tcommitted\tlog_end\tlag\tmember");
            for p in &d.partitions {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    p.topic, p.partition, p.committed, p.log_end, p.lag, p.member_id
                );
            }
        }
    }
}
