//! Exactly-once copy with Shale's Rust client on gRPC: a consume-transform-produce loop
//! that reads `in-<i>` records of SRC in a group (read_committed), writes `out-<i>` to DST
//! and commits its input offsets in the same transaction. Killed at any moment and started
//! again (same transactional id), it fences its old instance and goes on from the last
//! commit: every input record is in DST exactly once, as a read_committed reader sees it.
//!
//! ```text
//! cargo run --example eos_copy -- BROKERS SRC DST GROUP TRANSACTIONAL_ID N OUTDIR
//! ```
//!
//! It exits 0 once the group's committed offsets cover N input records, printing a JSON
//! line of what it did (commits, aborts, its producer's last epoch); a fenced instance
//! exits 1. Every fifth transaction is aborted on purpose and copied again, so aborted
//! copies are in DST for a reader to skip. `tests/transactions_cluster.rs` runs it under
//! broker and application kills.

use std::time::Duration;

use shale::client::{
    Client, ConsumerConfig, GroupAdmin, GroupConfig, GroupConsumer, Isolation, OffsetReset,
    ProducerRecord, TransactionalConfig, TransactionalProducer,
};
use shale::proto::pb::list_offsets_request::Spec;
use shale::{Error, ErrorKind};

#[derive(Default)]
struct Stats {
    commits: u64,
    aborts: u64,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [brokers, src, dst, group, txn_id, n, _outdir] = args.as_slice() else {
        eprintln!("usage: eos_copy BROKERS SRC DST GROUP TRANSACTIONAL_ID N OUTDIR");
        std::process::exit(2);
    };
    let n: i64 = n.parse().expect("N is a number");
    let mut stats = Stats::default();
    match copy(brokers, (src, dst), group, txn_id, n, &mut stats).await {
        Ok(epoch) => {
            let (commits, aborts) = (stats.commits, stats.aborts);
            println!(r#"{{"commits": {commits}, "aborts": {aborts}, "epoch": {epoch}}}"#);
        }
        Err(e) => {
            eprintln!("eos_copy: {e}");
            std::process::exit(1);
        }
    }
}

/// Copies until the group's committed offsets of `src` add up to `n`; the producer's last
/// epoch.
async fn copy(
    brokers: &str,
    (src, dst): (&str, &str),
    group: &str,
    txn_id: &str,
    n: i64,
    stats: &mut Stats,
) -> Result<i16, Error> {
    let client = Client::new(brokers)?;
    let mut config = GroupConfig::new(group, &[src]);
    config.auto_commit = false;
    config.auto_offset_reset = OffsetReset::Earliest;
    config.session_timeout = Duration::from_secs(10);
    config.consumer =
        ConsumerConfig { isolation: Isolation::ReadCommitted, ..ConsumerConfig::default() };
    let mut consumer = GroupConsumer::subscribe(client.clone(), config)?;
    let mut txn = TransactionalConfig::new(txn_id);
    txn.transaction_timeout = Duration::from_secs(10);
    let mut producer = TransactionalProducer::init(client.clone(), txn).await?;
    loop {
        let records = consumer.poll(Duration::from_secs(1)).await?;
        if records.is_empty() {
            if committed_total(&client, group, src).await? >= n {
                let epoch = producer.producer_id().map_or(-1, |p| p.1);
                consumer.close().await?;
                return Ok(epoch);
            }
            continue;
        }
        // At most BATCH records per transaction, as Kafka's max.poll.records bounds them.
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            let chunk: Vec<_> = records.by_ref().take(BATCH).collect();
            let done = copy_once(&mut consumer, &mut producer, dst, chunk, stats).await;
            match done {
                Ok(true) => continue,
                Ok(false) => rewind(&client, &mut consumer, group).await?,
                Err(e) if e.kind == ErrorKind::Fenced => return Err(e),
                Err(e) => {
                    eprintln!("eos_copy: {e}; aborting and going back to the committed offsets");
                    match producer.abort().await {
                        Ok(()) => stats.aborts += 1,
                        Err(e) if e.kind == ErrorKind::Fenced => return Err(e),
                        Err(e) => eprintln!("eos_copy: abort failed: {e}"),
                    }
                    rewind(&client, &mut consumer, group).await?;
                }
            }
            // Rewound: the rest of this poll is read again.
            break;
        }
    }
}

/// Records per transaction.
const BATCH: usize = 50;

/// One transaction: the records copied, the input positions sent, committed; whether it
/// committed (every fifth is aborted on purpose, and the input is read again).
async fn copy_once(
    consumer: &mut GroupConsumer,
    producer: &mut TransactionalProducer,
    dst: &str,
    records: Vec<shale::client::ConsumerRecord>,
    stats: &mut Stats,
) -> Result<bool, Error> {
    producer.begin()?;
    let mut deliveries = Vec::with_capacity(records.len());
    // Per input partition, the offset after the last record copied: what commits with
    // the copies (not the consumer's position, which may be past this chunk).
    let mut sources = std::collections::BTreeMap::new();
    for r in records {
        let value = r.value.as_deref().unwrap_or_default();
        let i = std::str::from_utf8(value).unwrap_or_default().trim_start_matches("in-");
        let mut out = ProducerRecord::new(dst, format!("out-{i}"));
        out.key = r.key.clone();
        deliveries.push(producer.send(out).await?);
        sources.insert((r.topic, r.partition), r.offset + 1);
    }
    for d in deliveries {
        d.await?;
    }
    shale::clock::sleep(Duration::from_millis(50)).await;
    if (stats.commits + stats.aborts) % 5 == 4 {
        producer.abort().await?;
        stats.aborts += 1;
        return Ok(false);
    }
    // Partitions taken away meanwhile: their records may be copied by their new owner.
    let owned = consumer.assignment();
    if let Some(lost) = sources.keys().find(|tp| !owned.contains(tp)) {
        return Err(Error::unavailable(format!(
            "{}-{} was revoked mid-transaction",
            lost.0, lost.1
        )));
    }
    let offsets: Vec<(String, u32, i64)> =
        sources.into_iter().map(|((topic, partition), next)| (topic, partition, next)).collect();
    producer.send_offsets(&consumer.group_metadata(), &offsets).await?;
    producer.commit().await?;
    stats.commits += 1;
    Ok(true)
}

/// Moves every owned partition back to the group's committed offset (its log start
/// without one).
async fn rewind(client: &Client, consumer: &mut GroupConsumer, group: &str) -> Result<(), Error> {
    let wait = shale::client::RetryPolicy { total: Duration::from_secs(60), ..Default::default() };
    let topics: Vec<String> = consumer.assignment().into_iter().map(|(t, _)| t).collect();
    let admin = GroupAdmin::new(client.clone());
    let committed = admin.fetch_stable_offsets(group, &topics, wait).await?;
    for (topic, partition) in consumer.assignment() {
        let at = committed.iter().find(|o| o.topic == topic && o.partition == partition);
        let offset = match at {
            Some(o) => o.offset,
            None => {
                client.admin().list_offsets(&topic, partition, Spec::Earliest(true)).await?.offset
            }
        };
        consumer.seek(&topic, partition, offset);
    }
    Ok(())
}

/// The group's committed offsets of `topic`, added up.
async fn committed_total(client: &Client, group: &str, topic: &str) -> Result<i64, Error> {
    let admin = GroupAdmin::new(client.clone());
    let offsets = admin.fetch_offsets(group, &[topic.to_string()]).await?;
    Ok(offsets.iter().map(|o| o.offset).sum())
}
