//! `shale-bench latency`: produce latency at fixed offered rates, open loop (see
//! `open_loop`): each record is due at `start + i / rate` and its latency runs from then to
//! its acknowledgement, so a stall is charged to every record it delayed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use rand::RngCore;
use shale_client::cli::{BrokerArg, Format, key_value, parse_acks};
use shale_client::{Producer, ProducerConfig, ProducerRecord};
use shale_core::acks::Acks;

use crate::grpc_floor::RawSender;
use crate::open_loop::{self, Acked};

/// `shale-bench latency`.
#[derive(Debug, Args)]
pub(crate) struct LatencyBench {
    /// Topic (created with --partitions if missing).
    #[arg(long, default_value = "latency")]
    pub topic: String,
    /// Partitions when the topic is created; records go round-robin over them.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Replication factor when the topic is created (0: the broker's default).
    #[arg(long, default_value_t = 0)]
    pub replication_factor: u32,
    /// Topic config when the topic is created, KEY=VALUE (repeatable).
    #[arg(long = "config", value_parser = key_value)]
    pub configs: Vec<(String, String)>,
    #[command(flatten)]
    pub schedule: open_loop::Schedule,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Keys the records cycle through (`key-00000000`, ...), for compacted topics; 0: no
    /// key.
    #[arg(long, default_value_t = 0)]
    pub keys: u64,
    /// 0, 1 or all.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    pub acks: Acks,
    /// Producer batch bytes (default: the client's default).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Producer linger in milliseconds (default: the client's default).
    #[arg(long)]
    pub linger_ms: Option<u64>,
    /// Batches awaiting acks per partition (default: the client's default).
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// Idempotent producer (producer id and sequence numbers), as by default.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub idempotence: bool,
    /// Send each record as a request of its own over one ProduceMany stream, without the
    /// producer (no producer id, batching, metadata or retries; plaintext; the topic must
    /// exist): the load `shale-bench grpc-floor` can take as well as a broker.
    #[arg(long, conflicts_with_all = ["keys", "batch_size", "linger_ms", "max_in_flight"])]
    pub raw: bool,
    /// Label of this run in the report.
    #[arg(long, default_value = "shale")]
    pub label: String,
    /// Output format: a line per round, or a JSON object per round.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// `record` with the key of the `i`th record when records cycle through `keys` keys.
pub(crate) fn with_key(record: ProducerRecord, i: u64, keys: u64) -> ProducerRecord {
    match keys {
        0 => record,
        _ => record.key(format!("key-{:08}", i % keys)),
    }
}

/// Where the records go: the client's producer, or one raw `ProduceMany` stream.
#[derive(Clone)]
enum Sink {
    Producer(Producer),
    Raw(Arc<RawSender>),
}

impl Sink {
    /// Sends the `i`th record (to `partition`); resolves once it is sent, to its ack.
    fn send(
        &self,
        b: &LatencyBench,
        value: &Bytes,
        partition: u32,
        i: u64,
    ) -> Pin<Box<dyn Future<Output = Result<Acked, String>> + Send>> {
        match self {
            Sink::Producer(producer) => {
                let record =
                    ProducerRecord::new(b.topic.clone(), value.clone()).partition(partition);
                let record = with_key(record, i, b.keys);
                let producer = producer.clone();
                Box::pin(async move {
                    let delivery = producer.send(record).await.map_err(|e| e.to_string())?;
                    Ok(Box::pin(
                        async move { delivery.await.map(|_| ()).map_err(|e| e.to_string()) },
                    ) as Acked)
                })
            }
            Sink::Raw(raw) => {
                let answer = raw.send(partition);
                Box::pin(std::future::ready(Ok(Box::pin(async move {
                    answer.await.map_err(|_| "the stream ended".to_string())?
                }) as Acked)))
            }
        }
    }
}

/// Runs `latency`.
pub(crate) async fn run(b: LatencyBench) -> anyhow::Result<()> {
    let mut value = vec![0u8; b.record_size];
    rand::rng().fill_bytes(&mut value);
    let value = Bytes::from(value);
    let sink = match b.raw {
        true => Sink::Raw(Arc::new(
            RawSender::connect(&b.broker.broker, &b.topic, b.acks, value.clone()).await?,
        )),
        false => Sink::Producer(producer(&b).await?),
    };
    let b = Arc::new(b);
    let handle = tokio::runtime::Handle::current();
    let mut failed = None;
    for (round, rate, warmup, measure) in b.schedule.each() {
        let (to, bench, value, handle) = (sink.clone(), b.clone(), value.clone(), handle.clone());
        let result = tokio::task::spawn_blocking(move || {
            let partitions = bench.partitions.max(1);
            let (mut next, mut sent) = (0u32, 0u64);
            open_loop::offer(&handle, rate, warmup, measure, || {
                let sending = to.send(&bench, &value, next, sent);
                next = (next + 1) % partitions;
                sent += 1;
                sending
            })
        })
        .await?;
        if let Sink::Producer(producer) = &sink {
            producer.flush().await?;
        }
        report(&b, round, rate, &result, &mut failed);
    }
    match failed {
        Some(e) => anyhow::bail!(e),
        None => Ok(()),
    }
}

/// The client's producer as `b` configures it, the topic created if missing.
async fn producer(b: &LatencyBench) -> anyhow::Result<Producer> {
    let client = b.broker.client()?;
    if client.partition_count(&b.topic).await.is_err() {
        client
            .admin()
            .create_topic(
                &b.topic,
                b.partitions,
                b.replication_factor,
                b.configs.iter().cloned().collect(),
            )
            .await?;
    }
    let defaults = ProducerConfig::default();
    let config = ProducerConfig {
        acks: b.acks,
        batch_size: b.batch_size.unwrap_or(defaults.batch_size),
        linger: b.linger_ms.map_or(defaults.linger, Duration::from_millis),
        max_in_flight: b.max_in_flight.unwrap_or(defaults.max_in_flight),
        idempotence: b.idempotence,
        ..defaults
    };
    Ok(Producer::new(client, config))
}

/// Prints a round's line (or JSON object) and keeps its first failure in `failed`.
fn report(
    b: &LatencyBench,
    round: u32,
    rate: u64,
    result: &open_loop::Round,
    failed: &mut Option<String>,
) {
    let mib = rate as f64 * b.record_size as f64 / f64::from(1 << 20);
    match b.format {
        Format::Text => println!("{}", result.line(&format!("{} round {round}", b.label))),
        Format::Json => {
            let mut json = result.json(&b.label, round);
            json["offered_mib_per_sec"] = mib.into();
            json["partitions"] = b.partitions.into();
            println!("{json}");
        }
    }
    if let Some(e) = &result.first_error {
        failed.get_or_insert(format!("{} records failed at {rate}/s; first: {e}", result.errors));
    }
}
