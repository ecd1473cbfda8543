//! `shale cluster describe`: brokers, controller, and every partition's leader;
//! `shale cluster rebalance`: plan, request and follow moves that balance the brokers.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{BrokerArg, Format};
use crate::proto::pb;

/// Cluster commands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Show brokers, the controller and partition leaders.
    Describe(DescribeArgs),
    /// Show the principal a broker sees for these credentials.
    Whoami(WhoamiArgs),
    /// Spread replicas and leaders evenly over the brokers: plan (--dry-run), request
    /// (--execute) or follow (--status) the moves.
    Rebalance(RebalanceArgs),
}

/// `cluster rebalance`.
#[derive(Debug, Args)]
#[group(id = "mode", required = true, multiple = false)]
pub struct RebalanceArgs {
    /// Show the moves that would balance the cluster; change nothing.
    #[arg(long, group = "mode")]
    pub dry_run: bool,
    /// Request the moves (the controller runs at most `replication.max_moves` at once).
    #[arg(long, group = "mode")]
    pub execute: bool,
    /// Show each reassignment pending or in progress, with a progress bar and the bytes
    /// copied.
    #[arg(long, group = "mode")]
    pub status: bool,
    /// With --status or --execute: keep showing progress until no move is left.
    #[arg(long)]
    pub watch: bool,
    /// Most replica moves to plan (0 = as many as balance needs).
    #[arg(long, default_value_t = 0)]
    pub max_moves: u32,
    #[command(flatten)]
    pub broker: BrokerArg,
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
        ClusterCommand::Rebalance(a) => rebalance(a).await,
        ClusterCommand::Whoami(a) => {
            let me = a.broker.client()?.admin().who_am_i().await?;
            let broker = if me.broker { ", a broker" } else { "" };
            println!("{} (authenticated by {}{broker})", me.principal, me.authenticated_by);
            Ok(())
        }
    }
}

async fn describe(a: DescribeArgs) -> anyhow::Result<()> {
    let admin = a.broker.client()?.admin();
    let md = admin.metadata(&[]).await?;
    let cluster = admin.describe_cluster().await?;
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
                "brokers": md.brokers.iter().map(|b| {
                    let load = cluster.loads.get(&b.id).copied().unwrap_or_default();
                    serde_json::json!({
                        "id": b.id, "address": b.address, "rack": b.rack,
                        "replicas": load.replicas, "leaders": load.leaders, "bytes": load.bytes,
                        "decommissioned": cluster.decommissioned.contains(&b.id),
                    })
                }).collect::<Vec<_>>(),
                "decommissioned": cluster.decommissioned,
                "topics": topics,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Text => {
            println!("cluster {} controller {}", md.cluster, md.controller_id);
            println!(
                "brokers (replicas, preferred leaders and local bytes once moves under way are \
                 done):"
            );
            for b in &md.brokers {
                let rack =
                    if b.rack.is_empty() { String::new() } else { format!(" rack {}", b.rack) };
                let load = cluster.loads.get(&b.id).copied().unwrap_or_default();
                let leaving = if cluster.decommissioned.contains(&b.id) {
                    format!(" decommissioned, {} replica(s) left", load.hosted)
                } else {
                    String::new()
                };
                println!(
                    "  {}\t{}{rack}\treplicas {}\tleaders {}\t{}{leaving}",
                    b.id,
                    b.address,
                    load.replicas,
                    load.leaders,
                    human_bytes(load.bytes)
                );
            }
            for id in
                cluster.decommissioned.iter().filter(|id| !md.brokers.iter().any(|b| b.id == **id))
            {
                let left = cluster.loads.get(id).map_or(0, |l| l.hosted);
                println!("  {id}\t(not live)\tdecommissioned, {left} replica(s) left");
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

async fn rebalance(a: RebalanceArgs) -> anyhow::Result<()> {
    let admin = a.broker.client()?.admin();
    if a.status {
        return status(&admin, a.watch).await;
    }
    let plan = admin.rebalance(a.execute, a.max_moves).await?;
    let copying = plan.moves.iter().filter(|m| m.to.iter().any(|r| !m.from.contains(r))).count();
    for m in &plan.moves {
        println!("{}/{}\t{:?} -> {:?}", m.topic, m.partition, m.from, m.to);
    }
    match (a.execute, plan.moves.is_empty()) {
        (_, true) => println!("balanced: replicas and leaders are within one of even"),
        (false, false) => println!(
            "{} move(s) planned ({copying} copying a replica, the others changing the \
             preferred leader); run with --execute to request them",
            plan.moves.len()
        ),
        (true, false) => {
            println!(
                "{} of {} move(s) requested; follow with shale cluster rebalance --status",
                plan.requested,
                plan.moves.len()
            );
            if a.watch {
                status(&admin, true).await?;
            }
        }
    }
    Ok(())
}

/// Copy progress of a move: (fraction done, bytes copied), from what the joining replicas
/// and the leader report.
fn progress(m: &pb::ReassignmentStatus) -> (Option<f64>, u64) {
    let copied = m.joining.iter().map(|j| j.copied_bytes).sum();
    if m.adding.is_empty() {
        return (Some(1.0), copied);
    }
    if m.leader_log_end_offset < 0 || m.joining.len() < m.adding.len() {
        return (None, copied);
    }
    let fraction = m
        .joining
        .iter()
        .map(|j| {
            let total = (m.leader_log_end_offset - j.log_start_offset).max(1) as f64;
            ((j.log_end_offset - j.log_start_offset).max(0) as f64 / total).min(1.0)
        })
        .fold(1.0, f64::min);
    (Some(fraction), copied)
}

fn bar(fraction: Option<f64>) -> String {
    const WIDTH: usize = 24;
    match fraction {
        Some(f) => {
            let done = (f * WIDTH as f64).round() as usize;
            format!("[{}{}] {:>3.0}%", "#".repeat(done), "-".repeat(WIDTH - done), f * 100.0)
        }
        None => format!("[{}]   ?%", "?".repeat(WIDTH)),
    }
}

fn describe_move(m: &pb::ReassignmentStatus) -> String {
    if !m.pending.is_empty() {
        return format!("pending -> {:?} (waiting for a slot)", m.pending);
    }
    let (fraction, copied) = progress(m);
    let in_sync = m.adding.iter().filter(|r| m.isr.contains(r)).count();
    format!(
        "{} copied {}  adding {:?} ({in_sync} in sync) removing {:?}  leader {}",
        bar(fraction),
        human_bytes(copied),
        m.adding,
        m.removing,
        m.leader_id
    )
}

fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

async fn status(admin: &shale_client::admin::Admin, watch: bool) -> anyhow::Result<()> {
    if !watch {
        let moves = admin.list_reassignments().await?;
        if moves.is_empty() {
            println!("no reassignment pending or in progress");
        }
        for m in &moves {
            println!("{}/{}\t{}", m.topic, m.partition, describe_move(m));
        }
        return Ok(());
    }
    let multi = indicatif::MultiProgress::new();
    let mut bars: BTreeMap<(String, u32), indicatif::ProgressBar> = BTreeMap::new();
    loop {
        let moves = admin.list_reassignments().await?;
        let now: BTreeMap<(String, u32), &pb::ReassignmentStatus> =
            moves.iter().map(|m| ((m.topic.clone(), m.partition), m)).collect();
        for (key, pb) in bars.iter() {
            if !now.contains_key(key) {
                pb.finish_with_message(format!("{}/{}\tdone", key.0, key.1));
            }
        }
        bars.retain(|key, _| now.contains_key(key));
        for (key, m) in &now {
            let pb = bars.entry(key.clone()).or_insert_with(|| {
                multi.add(indicatif::ProgressBar::new_spinner().with_style(
                    indicatif::ProgressStyle::with_template("{msg}").expect("a valid template"),
                ))
            });
            pb.set_message(format!("{}/{}\t{}", key.0, key.1, describe_move(m)));
        }
        if moves.is_empty() {
            println!("no reassignment pending or in progress");
            return Ok(());
        }
        shale_core::clock::sleep(Duration::from_secs(1)).await;
    }
}
