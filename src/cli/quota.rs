//! `shale quota set|list|remove`: per-principal quotas, enforced by each broker.

use clap::{Args, Subcommand};

use super::{BrokerArg, Format};
use crate::proto::pb;

/// Quota commands.
#[derive(Debug, Subcommand)]
pub enum QuotaCommand {
    /// Set a principal's quotas (replacing its others; unset limits are unlimited).
    Set(SetArgs),
    /// List every principal's quotas.
    List(ListArgs),
    /// Remove a principal's quotas.
    Remove(RemoveArgs),
}

/// `quota set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// Principal (`User:alice`), or `*` for every principal without quotas of its own.
    #[arg(long)]
    pub principal: String,
    /// Record bytes produced per second, per broker.
    #[arg(long)]
    pub produce_bytes_per_sec: Option<u64>,
    /// Record bytes fetched per second, per broker.
    #[arg(long)]
    pub fetch_bytes_per_sec: Option<u64>,
    /// Requests per second, per broker.
    #[arg(long)]
    pub requests_per_sec: Option<u64>,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// `quota list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// `quota remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Principal, or `*`.
    #[arg(long)]
    pub principal: String,
    #[command(flatten)]
    pub broker: BrokerArg,
}

fn limit(v: Option<u64>) -> String {
    v.map_or("-".to_string(), |v| v.to_string())
}

pub(super) async fn run(cmd: QuotaCommand) -> anyhow::Result<()> {
    match cmd {
        QuotaCommand::Set(a) => {
            let quota = pb::Quota {
                principal: a.principal.clone(),
                produce_bytes_per_sec: a.produce_bytes_per_sec,
                fetch_bytes_per_sec: a.fetch_bytes_per_sec,
                requests_per_sec: a.requests_per_sec,
            };
            if quota.produce_bytes_per_sec.is_none()
                && quota.fetch_bytes_per_sec.is_none()
                && quota.requests_per_sec.is_none()
            {
                anyhow::bail!(
                    "say which limit: --produce-bytes-per-sec, --fetch-bytes-per-sec or \
                     --requests-per-sec (shale quota remove removes them)"
                );
            }
            a.broker.client()?.admin().alter_quota(quota).await?;
            println!(
                "set quotas of {}: produce {} B/s, fetch {} B/s, {} requests/s",
                a.principal,
                limit(a.produce_bytes_per_sec),
                limit(a.fetch_bytes_per_sec),
                limit(a.requests_per_sec)
            );
        }
        QuotaCommand::List(a) => {
            let quotas = a.broker.client()?.admin().describe_quotas().await?;
            match a.format {
                Format::Json => {
                    let v: Vec<_> = quotas
                        .iter()
                        .map(|q| {
                            serde_json::json!({
                                "principal": q.principal,
                                "produce_bytes_per_sec": q.produce_bytes_per_sec,
                                "fetch_bytes_per_sec": q.fetch_bytes_per_sec,
                                "requests_per_sec": q.requests_per_sec,
                            })
                        })
                        .collect();
                    println!("{}", serde_json::Value::Array(v));
                }
                Format::Text => {
                    println!(
                        "principal\tproduce_bytes_per_sec\tfetch_bytes_per_sec\trequests_per_sec"
                    );
                    for q in &quotas {
                        println!(
                            "{}\t{}\t{}\t{}",
                            q.principal,
                            limit(q.produce_bytes_per_sec),
                            limit(q.fetch_bytes_per_sec),
                            limit(q.requests_per_sec)
                        );
                    }
                }
            }
        }
        QuotaCommand::Remove(a) => {
            let quota = pb::Quota { principal: a.principal.clone(), ..Default::default() };
            a.broker.client()?.admin().alter_quota(quota).await?;
            println!("removed the quotas of {}", a.principal);
        }
    }
    Ok(())
}
