//! `shale-bench partitions`: many partitions on one broker. Creates topics of many
//! partitions, produces records to every partition, and reads every partition back
//! (typically after a restart of the broker), timing each step and checking that each
//! partition holds exactly the records it was sent: no loss, no duplicate.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, ValueEnum};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use shale_client::cli::{BrokerArg, Format, key_value};
use shale_client::{Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord};
use shale_core::error::ErrorKind;

use crate::report;

/// A step of `shale-bench partitions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Step {
    /// Create the topics.
    Create,
    /// Send `--records` records to every partition.
    Produce,
    /// Read every partition from its start and check what it holds.
    Verify,
}

/// `shale-bench partitions`.
#[derive(Debug, Args)]
pub(crate) struct PartitionsBench {
    /// Topics, named PREFIX-0, PREFIX-1, ...
    #[arg(long, default_value_t = 10)]
    pub topics: u32,
    /// Partitions per topic.
    #[arg(long, default_value_t = 10_000)]
    pub partitions: u32,
    /// Topic name prefix.
    #[arg(long, default_value = "many")]
    pub prefix: String,
    /// Records per partition (`produce` sends them, `verify` expects them).
    #[arg(long, default_value_t = 1)]
    pub records: u32,
    /// Steps to run, in order, comma separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "create,produce,verify")]
    pub steps: Vec<Step>,
    /// Records awaiting acks at once (`produce`).
    #[arg(long, default_value_t = 4096)]
    pub in_flight: usize,
    /// Topic config when the topics are created, KEY=VALUE (repeatable).
    #[arg(long = "config", value_parser = key_value)]
    pub configs: Vec<(String, String)>,
    /// Output format of each step's summary.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub broker: BrokerArg,
}

impl PartitionsBench {
    fn topic(&self, t: u32) -> String {
        format!("{}-{t}", self.prefix)
    }

    fn total(&self) -> u64 {
        u64::from(self.topics) * u64::from(self.partitions)
    }
}

/// The value of record `i` sent to a partition: it names where it was sent.
fn value(topic: &str, partition: u32, i: u32) -> Bytes {
    Bytes::from(format!("{topic}/{partition}/{i}"))
}

/// Runs the steps.
pub(crate) async fn run(b: PartitionsBench) -> anyhow::Result<()> {
    let client = b.broker.client()?;
    for step in b.steps.clone() {
        let start = Instant::now();
        let detail = match step {
            Step::Create => create(&b, &client).await?,
            Step::Produce => produce(&b, &client).await?,
            Step::Verify => verify(&b, &client).await?,
        };
        let secs = start.elapsed().as_secs_f64();
        let step_name = format!("{step:?}").to_lowercase();
        match b.format {
            Format::Json => {
                let mut summary = serde_json::json!({
                    "step": step_name,
                    "topics": b.topics,
                    "partitions": b.total(),
                    "seconds": secs,
                });
                if let (Some(obj), serde_json::Value::Object(more)) =
                    (summary.as_object_mut(), detail)
                {
                    obj.extend(more);
                }
                println!("{summary}");
            }
            Format::Text => println!(
                "{step_name}: {} partitions in {} topics, {secs:.1} s; {detail}",
                b.total(),
                b.topics
            ),
        }
    }
    Ok(())
}

async fn create(
    b: &PartitionsBench,
    client: &shale_client::Client,
) -> anyhow::Result<serde_json::Value> {
    let admin = client.admin();
    let configs: std::collections::BTreeMap<String, String> = b.configs.iter().cloned().collect();
    // A few creations in flight: the broker folds the metadata changes that arrive together
    // into one resync, where one at a time would pay a whole resync per topic.
    let waited: Vec<bool> = futures::stream::iter((0..b.topics).map(|t| {
        let (admin, configs) = (&admin, &configs);
        async move { create_one(admin, &b.topic(t), b.partitions, configs).await }
    }))
    .buffer_unordered(CREATE_CONCURRENCY)
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect::<anyhow::Result<_>>()?;
    let waited = waited.into_iter().filter(|w| *w).count();
    Ok(serde_json::json!({ "topics_waited_for": waited }))
}

/// Topic creations in flight at once.
const CREATE_CONCURRENCY: usize = 16;

/// Creates one topic (or finds it made by an earlier run that stopped part way); true when
/// it had to wait for its partitions' leaders.
async fn create_one(
    admin: &shale_client::Admin,
    name: &str,
    partitions: u32,
    configs: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<bool> {
    let mut waited = false;
    loop {
        match admin.create_topic(name, partitions, 0, configs.clone()).await {
            Ok(_) | Err(shale_core::error::Error { kind: ErrorKind::AlreadyExists, .. }) => {
                return Ok(waited);
            }
            // Created, its partitions still being placed or opened: wait for their
            // leaders; or not created after all (a busy broker dropped it): again.
            Err(e) if e.kind == ErrorKind::Unavailable => {
                eprintln!("{e}; waiting for every partition of {name} to have a leader");
                waited = true;
                if wait_led(admin, name, partitions).await? {
                    return Ok(waited);
                }
            }
            Err(e) => anyhow::bail!("creating topic {name}: {e}"),
        }
    }
}

/// Waits (up to 10 minutes) until every partition of `topic` has a leader: false when the
/// topic does not exist (its creation was dropped: create it again).
async fn wait_led(
    admin: &shale_client::Admin,
    topic: &str,
    partitions: u32,
) -> anyhow::Result<bool> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let described = match admin.describe_topic(topic).await {
            Ok(d) => d,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(false),
            // A broker busy placing thousands of partitions may drop a call: ask again.
            Err(e) if e.kind.is_retriable() && Instant::now() < deadline => {
                eprintln!("{topic}: {e}; asking again");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let led = described
            .partitions
            .iter()
            .filter(|p| p.metadata.as_ref().is_some_and(|m| m.leader_id >= 0))
            .count();
        if led == partitions as usize {
            return Ok(true);
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "{topic}: {led} of {partitions} partitions have a leader after 10 minutes"
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn produce(
    b: &PartitionsBench,
    client: &shale_client::Client,
) -> anyhow::Result<serde_json::Value> {
    let mut hist = report::micros_histogram(600);
    let mut waiting = FuturesUnordered::new();
    let mut errors = 0u64;
    let mut first_error = None;
    let mut note = |res: (Instant, Result<_, shale_core::error::Error>, String, u32)| {
        let (t, r, topic, p) = res;
        match r {
            Ok(_) => report::record(&mut hist, t.elapsed()),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(format!("{topic} partition {p}: {e}"));
            }
        }
    };
    // One producer per topic: each partition's lane keeps a produce stream to its leader
    // while the producer lives, and a broker holds state for each open stream.
    for i in 0..b.records {
        for t in 0..b.topics {
            let topic = b.topic(t);
            let producer = Producer::new(client.clone(), ProducerConfig::default());
            for p in 0..b.partitions {
                while waiting.len() >= b.in_flight {
                    if let Some(done) = waiting.next().await {
                        note(done);
                    }
                }
                let t0 = Instant::now();
                let record = ProducerRecord::new(topic.clone(), value(&topic, p, i)).partition(p);
                let delivery = producer.send(record).await?;
                let topic = topic.clone();
                waiting.push(async move { (t0, delivery.await, topic, p) });
            }
            while let Some(done) = waiting.next().await {
                note(done);
            }
            producer.flush().await?;
        }
    }
    if let Some(e) = first_error {
        anyhow::bail!("{errors} records failed; the first: {e}");
    }
    Ok(serde_json::json!({
        "records": hist.len(),
        "latency_ms": report::quantiles_ms(&hist),
    }))
}

async fn verify(
    b: &PartitionsBench,
    client: &shale_client::Client,
) -> anyhow::Result<serde_json::Value> {
    let mut checked = 0u64;
    let mut first_record = report::micros_histogram(600);
    for t in 0..b.topics {
        let topic = b.topic(t);
        let config = ConsumerConfig { stop_at_end: true, ..ConsumerConfig::default() };
        let mut consumer = Consumer::new(client.clone(), config);
        let start = Instant::now();
        for p in 0..b.partitions {
            consumer.seek(&topic, p, 0);
        }
        let mut seen: HashMap<u32, Vec<(i64, Bytes)>> = HashMap::new();
        loop {
            let polled = tokio::time::timeout(Duration::from_secs(120), consumer.poll())
                .await
                .map_err(|_| anyhow::anyhow!("reading {topic}: no records for 120 s"))?;
            let Some(records) = polled.map_err(|e| anyhow::anyhow!("reading {topic}: {e}"))? else {
                break;
            };
            for r in records {
                let got = seen.entry(r.partition).or_default();
                if got.is_empty() {
                    report::record(&mut first_record, start.elapsed());
                }
                got.push((r.offset, r.value.unwrap_or_default()));
            }
        }
        for p in 0..b.partitions {
            let got = seen.remove(&p).unwrap_or_default();
            let want: Vec<(i64, Bytes)> =
                (0..b.records).map(|i| (i64::from(i), value(&topic, p, i))).collect();
            if got != want {
                anyhow::bail!(
                    "{topic} partition {p} holds {} records, not the {} sent (lost or duplicated): {:?}",
                    got.len(),
                    want.len(),
                    got.iter().take(4).collect::<Vec<_>>()
                );
            }
            checked += 1;
        }
    }
    Ok(serde_json::json!({
        "partitions_checked": checked,
        "first_record_ms": report::quantiles_ms(&first_record),
    }))
}
