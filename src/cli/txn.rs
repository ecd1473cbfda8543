//! `shale txn list|describe|abort`: transactions as an operator sees them (Kafka's
//! `kafka-transactions.sh list`, `describe`, `abort`).

use clap::{Args, Subcommand};

use super::{BrokerArg, Format};
use crate::client::TxnAdmin;
use crate::proto::pb;

/// Transaction commands.
#[derive(Debug, Subcommand)]
pub enum TxnCommand {
    /// List transactional ids with their producer id, state and coordinator.
    List(ListArgs),
    /// Show a transactional id's transaction: state, producer, partitions, groups.
    Describe(IdArgs),
    /// Abort a transactional id's open transaction (a hung application's); its producer
    /// is fenced and read_committed readers move past it.
    Abort(IdArgs),
}

/// `txn list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only these states (repeatable): Ongoing, PrepareCommit, PrepareAbort,
    /// CompleteCommit, CompleteAbort, Empty.
    #[arg(long = "state")]
    pub states: Vec<String>,
    /// Only these producer ids (repeatable).
    #[arg(long = "producer-id")]
    pub producer_ids: Vec<i64>,
    /// Only transactions open longer than this many milliseconds (hanging ones).
    #[arg(long)]
    pub open_longer_than_ms: Option<i64>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// `txn describe` and `txn abort`.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// Transactional id.
    pub transactional_id: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub broker: BrokerArg,
}

pub(super) async fn run(cmd: TxnCommand) -> anyhow::Result<()> {
    match cmd {
        TxnCommand::List(a) => {
            let filter = pb::ListTransactionsRequest {
                states: a.states,
                producer_ids: a.producer_ids,
                open_longer_than_ms: a.open_longer_than_ms.unwrap_or(0),
            };
            let listed = TxnAdmin::new(a.broker.client()?).list(filter).await?;
            match a.format {
                Format::Json => {
                    let v: Vec<_> = listed
                        .iter()
                        .map(|t| {
                            serde_json::json!({"transactional_id": t.transactional_id,
                                "producer_id": t.producer_id, "state": t.state,
                                "coordinator": t.coordinator})
                        })
                        .collect();
                    println!("{}", serde_json::Value::Array(v));
                }
                Format::Text => {
                    println!("transactional_id\tproducer_id\tstate\tcoordinator");
                    for t in listed {
                        let (id, pid, state) = (t.transactional_id, t.producer_id, t.state);
                        println!("{id}\t{pid}\t{state}\t{}", t.coordinator);
                    }
                }
            }
        }
        TxnCommand::Describe(a) => {
            let d = TxnAdmin::new(a.broker.client()?).describe(&a.transactional_id).await?;
            let partitions: Vec<String> = d
                .partitions
                .iter()
                .flat_map(|t| t.partitions.iter().map(move |p| format!("{}-{p}", t.topic)))
                .collect();
            match a.format {
                Format::Json => println!(
                    "{}",
                    serde_json::json!({
                        "transactional_id": d.transactional_id,
                        "state": d.state,
                        "producer_id": d.producer_id,
                        "producer_epoch": d.producer_epoch,
                        "transaction_timeout_ms": d.transaction_timeout_ms,
                        "start_time_ms": d.start_time_ms,
                        "partitions": partitions,
                        "groups": d.groups,
                        "coordinator": d.coordinator,
                    })
                ),
                Format::Text => {
                    println!("transactional_id\t{}", d.transactional_id);
                    println!("state\t{}", d.state);
                    println!("producer\t{} epoch {}", d.producer_id, d.producer_epoch);
                    println!("timeout_ms\t{}", d.transaction_timeout_ms);
                    println!("started_ms\t{}", d.start_time_ms);
                    println!("partitions\t{}", partitions.join(" "));
                    println!("groups\t{}", d.groups.join(" "));
                    println!("coordinator\t{}", d.coordinator);
                }
            }
        }
        TxnCommand::Abort(a) => {
            TxnAdmin::new(a.broker.client()?).abort(&a.transactional_id).await?;
            match a.format {
                Format::Json => {
                    println!("{}", serde_json::json!({"aborted": a.transactional_id}));
                }
                Format::Text => println!("aborted the open transaction of {}", a.transactional_id),
            }
        }
    }
    Ok(())
}
