//! `shale topic create|list|describe|alter|delete|delete-records`.

use clap::{Args, Subcommand};

use super::{BrokerArg, Format, key_value};

/// Topic administration.
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topics.
    List(ListArgs),
    /// Show partitions, offsets and configs of a topic.
    Describe(DescribeArgs),
    /// Set or remove topic configs.
    Alter(AlterArgs),
    /// Delete a topic and its data.
    Delete(DeleteArgs),
    /// Delete a partition's records below an offset (Kafka's DeleteRecords): its log start
    /// moves there on every in-sync replica, and consumers below it start at it.
    DeleteRecords(DeleteRecordsArgs),
}

/// `topic create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Replicas per partition (0 = broker default).
    #[arg(long, default_value_t = 0)]
    pub replication_factor: u32,
    /// Topic config, e.g. --config retention.ms=86400000 (repeatable).
    #[arg(long = "config", value_parser = key_value)]
    pub configs: Vec<(String, String)>,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// `topic list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// `topic describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Topic name.
    pub name: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// `topic alter`.
#[derive(Debug, Args)]
pub struct AlterArgs {
    /// Topic name.
    pub name: String,
    /// Config to set, KEY=VALUE (repeatable).
    #[arg(long = "set", value_parser = key_value)]
    pub set: Vec<(String, String)>,
    /// Config to remove so the broker default applies (repeatable).
    #[arg(long = "delete")]
    pub delete: Vec<String>,
    /// Add partitions so that the topic has this many in all. Keyed records then hash over
    /// the new count: a key's later records may go to another partition than its earlier
    /// ones, so per-key order holds only on each side of the change.
    #[arg(long)]
    pub partitions: Option<u32>,
    /// Change the replicas per partition: every partition is reassigned (new replicas copy
    /// only what is not in the bucket), at most `replication.max_moves` at a time; follow
    /// with `shale cluster rebalance --status`.
    #[arg(long)]
    pub replication_factor: Option<u32>,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// `topic delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Topic name.
    pub name: String,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// `topic delete-records`.
#[derive(Debug, Args)]
pub struct DeleteRecordsArgs {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    #[arg(long)]
    pub partition: u32,
    /// Delete the records below this offset (-1: every record below the high watermark).
    #[arg(long, allow_negative_numbers = true)]
    pub before: i64,
    /// How long to wait for the in-sync replicas to have deleted them too.
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
    #[command(flatten)]
    pub broker: BrokerArg,
}

pub(super) async fn run(cmd: TopicCommand) -> anyhow::Result<()> {
    match cmd {
        TopicCommand::Create(a) => {
            let admin = a.broker.client()?.admin();
            let t = admin
                .create_topic(
                    &a.name,
                    a.partitions,
                    a.replication_factor,
                    a.configs.into_iter().collect(),
                )
                .await?;
            println!(
                "created topic {} with {} partitions (replication factor {}, id {})",
                t.name, t.partitions, t.replication_factor, t.id
            );
        }
        TopicCommand::List(a) => {
            for t in a.broker.client()?.admin().list_topics().await? {
                println!(
                    "{}\t{} partitions\treplication factor {}",
                    t.name, t.partitions, t.replication_factor
                );
            }
        }
        TopicCommand::Describe(a) => {
            let d = a.broker.client()?.admin().describe_topic(&a.name).await?;
            match a.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&describe_json(&d))?),
                Format::Text => print_describe(&d),
            }
        }
        TopicCommand::Alter(a) => {
            if a.partitions.is_none()
                && a.replication_factor.is_none()
                && a.set.is_empty()
                && a.delete.is_empty()
            {
                anyhow::bail!(
                    "nothing to alter on topic {}: give --partitions, --replication-factor, \
                     --set or --delete",
                    a.name
                );
            }
            let admin = a.broker.client()?.admin();
            if let Some(partitions) = a.partitions {
                let t = admin.create_partitions(&a.name, partitions).await?;
                println!(
                    "topic {} now has {} partitions. Keyed records now hash over {}: a key's new \
                     records may go to another partition than its earlier ones (per-key order \
                     holds on each side of the change); producers take the new partitions up \
                     within 5 minutes (their metadata max age), consumer groups at once",
                    t.name, t.partitions, t.partitions
                );
            }
            if let Some(rf) = a.replication_factor {
                let r = admin.alter_replication_factor(&a.name, rf).await?;
                println!(
                    "topic {} now has replication factor {rf}: {} partition(s) reassigned (see \
                     shale cluster rebalance --status)",
                    a.name,
                    r.moves.len()
                );
            }
            if !a.set.is_empty() || !a.delete.is_empty() {
                let configs = admin
                    .alter_topic_config(&a.name, a.set.into_iter().collect(), a.delete)
                    .await?;
                for c in configs.iter().filter(|c| c.source == "topic") {
                    println!("{}={}", c.name, c.value);
                }
            }
        }
        TopicCommand::Delete(a) => {
            a.broker.client()?.admin().delete_topic(&a.name).await?;
            println!("deleted topic {}", a.name);
        }
        TopicCommand::DeleteRecords(a) => {
            let admin = a.broker.client()?.admin();
            let within = std::time::Duration::from_millis(a.timeout_ms);
            let start = admin.delete_records(&a.topic, a.partition, a.before, within).await?;
            println!(
                "deleted the records of {}/{} below offset {}: the partition now starts at {start}",
                a.topic,
                a.partition,
                if a.before < 0 { start } else { a.before }
            );
        }
    }
    Ok(())
}

fn describe_json(d: &crate::proto::pb::DescribeTopicResponse) -> serde_json::Value {
    let topic = d.topic.clone().unwrap_or_default();
    let partitions: Vec<serde_json::Value> = d
        .partitions
        .iter()
        .map(|p| {
            let m = p.metadata.clone().unwrap_or_default();
            serde_json::json!({
                "partition": m.partition,
                "leader": m.leader_id,
                "leader_epoch": m.leader_epoch,
                "replicas": m.replicas,
                "isr": m.isr,
                "log_start_offset": p.log_start_offset,
                "log_end_offset": p.log_end_offset,
                "high_watermark": p.high_watermark,
                "size_bytes": p.size_bytes,
                "segments": p.segments,
                "local_log_start_offset": p.local_log_start_offset,
                "remote_log_start_offset": p.remote_log_start_offset,
                "remote_log_end_offset": p.remote_log_end_offset,
                "remote_size_bytes": p.remote_size_bytes,
                "remote_segments": p.remote_segments,
                "upload_lag_segments": p.upload_lag_segments,
                "upload_lag_bytes": p.upload_lag_bytes,
                "cleaning": p.cleaning.as_ref().map(|c| serde_json::json!({
                    "dirty_ratio": c.dirty_ratio,
                    "dirty_bytes": c.dirty_bytes,
                    "clean_bytes": c.clean_bytes,
                    "first_dirty_offset": c.first_dirty_offset,
                    "due": c.due,
                    "last_clean_ms": c.last_clean_ms,
                    "cleans": c.cleans,
                    "bytes_read": c.bytes_read,
                    "bytes_removed": c.bytes_removed,
                    "remote_first_dirty_offset": c.remote_first_dirty_offset,
                    "remote_last_compaction_ms": c.remote_last_compaction_ms,
                    "failures": c.failures,
                })),
            })
        })
        .collect();
    let configs: serde_json::Map<String, serde_json::Value> = d
        .configs
        .iter()
        .map(|c| (c.name.clone(), serde_json::json!({ "value": c.value, "source": c.source })))
        .collect();
    serde_json::json!({
        "name": topic.name,
        "id": topic.id,
        "partitions": partitions,
        "replication_factor": topic.replication_factor,
        "configs": configs,
    })
}

fn print_describe(d: &crate::proto::pb::DescribeTopicResponse) {
    let topic = d.topic.clone().unwrap_or_default();
    println!(
        "topic {} (id {}) partitions {} replication factor {}",
        topic.name, topic.id, topic.partitions, topic.replication_factor
    );
    println!(
        "partition\tleader\tepoch\treplicas\tisr\tstart\tend\thw\tbytes\tsegments\t\
         local_start\tremote\tremote_bytes\tupload_lag"
    );
    for p in &d.partitions {
        let m = p.metadata.clone().unwrap_or_default();
        let remote = if p.remote_log_end_offset >= 0 {
            format!("{}..{}", p.remote_log_start_offset, p.remote_log_end_offset)
        } else {
            "-".to_string()
        };
        println!(
            "{}\t{}\t{}\t{:?}\t{:?}\t{}\t{}\t{}\t{}\t{}\t{}\t{remote}\t{}\t{} seg / {} B",
            m.partition,
            m.leader_id,
            m.leader_epoch,
            m.replicas,
            m.isr,
            p.log_start_offset,
            p.log_end_offset,
            p.high_watermark,
            p.size_bytes,
            p.segments,
            p.local_log_start_offset,
            p.remote_size_bytes,
            p.upload_lag_segments,
            p.upload_lag_bytes
        );
    }
    let cleaning: Vec<_> = d
        .partitions
        .iter()
        .filter_map(|p| Some((p.metadata.as_ref()?, p.cleaning.as_ref()?)))
        .collect();
    if !cleaning.is_empty() {
        println!("cleaning (compacted, this broker's replicas):");
        println!(
            "partition\tdirty_ratio\tdirty_bytes\tclean_bytes\tfirst_dirty\tdue\tcleans\tremoved_bytes\tlast_clean\tfailures\tremote_first_dirty\tremote_compacted"
        );
        for (m, c) in cleaning {
            let ms_or_dash = |ms: i64| if ms == 0 { "-".to_string() } else { ms.to_string() };
            let last = ms_or_dash(c.last_clean_ms);
            let remote_last = ms_or_dash(c.remote_last_compaction_ms);
            let remote_point = match c.remote_first_dirty_offset {
                -1 => "-".to_string(),
                o => o.to_string(),
            };
            println!(
                "{}\t{:.3}\t{}\t{}\t{}\t{}\t{}\t{}\t{last}\t{}\t{remote_point}\t{remote_last}",
                m.partition,
                c.dirty_ratio,
                c.dirty_bytes,
                c.clean_bytes,
                c.first_dirty_offset,
                c.due,
                c.cleans,
                c.bytes_removed,
                c.failures
            );
        }
    }
    println!("configs:");
    for c in &d.configs {
        println!("  {}={} ({})", c.name, c.value, c.source);
    }
}
