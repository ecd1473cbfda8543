//! `shale-bench groups`: many group members committing on a timer while a producer keeps
//! every partition moving; reports commit latency and, given the cluster's etcd, the etcd
//! write rate and the keys one group holds.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use shale_client::cli::{BrokerArg, Format};
use shale_client::{Client, GroupConfig, GroupConsumer, Producer, ProducerConfig, ProducerRecord};

use crate::etcd::Etcd;
use crate::report;

/// `shale-bench groups`.
#[derive(Debug, Args)]
pub(crate) struct GroupsBench {
    /// Topic (created with --partitions if missing).
    #[arg(long, default_value = "bench-groups")]
    pub topic: String,
    /// Group id.
    #[arg(long, default_value = "bench-groups")]
    pub group: String,
    /// Partitions when the topic is created.
    #[arg(long, default_value_t = 200)]
    pub partitions: u32,
    /// Members in the group (all in this process).
    #[arg(long, default_value_t = 100)]
    pub members: usize,
    /// Each member commits this often (when it read something since its last commit).
    #[arg(long, default_value_t = 1000)]
    pub commit_interval_ms: u64,
    /// Records per second produced, spread over the partitions.
    #[arg(long, default_value_t = 5000)]
    pub rate: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Seconds measured once every member owns partitions (after a 5 s warm-up).
    #[arg(long, default_value_t = 30)]
    pub duration_secs: u64,
    /// The cluster's etcd endpoints (comma-separated): measures the etcd write rate and
    /// counts the group's keys. Without it only commit latency is reported.
    #[arg(long)]
    pub etcd: Option<String>,
    /// Cluster name (the etcd key prefix), with --etcd.
    #[arg(long, default_value = "shale")]
    pub cluster: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub broker: BrokerArg,
}

/// What the member tasks share with the driver.
struct Shared {
    stop: AtomicBool,
    assigned: AtomicUsize,
    commits: AtomicU64,
    commit_errors: AtomicU64,
    records: AtomicU64,
    /// Commit latency (µs) while measuring.
    latency: Mutex<Histogram<u64>>,
    measuring: AtomicBool,
}

/// Runs the benchmark.
///
/// Long on purpose: it is the benchmark's script (start members and producer, warm up,
/// measure, report), read top to bottom; the phases share its counters and clocks.
pub(crate) async fn run(b: GroupsBench) -> anyhow::Result<()> {
    if b.members == 0 || b.partitions == 0 {
        anyhow::bail!("--members and --partitions must be at least 1");
    }
    let client = b.broker.client()?;
    if client.partition_count(&b.topic).await.is_err() {
        client.admin().create_topic(&b.topic, b.partitions, 0, Default::default()).await?;
    }
    let etcd = match &b.etcd {
        Some(endpoints) => Some(Etcd::connect(endpoints, &b.cluster).await?),
        None => None,
    };
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        assigned: AtomicUsize::new(0),
        commits: AtomicU64::new(0),
        commit_errors: AtomicU64::new(0),
        records: AtomicU64::new(0),
        latency: Mutex::new(report::micros_histogram(60)),
        measuring: AtomicBool::new(false),
    });

    let producer = tokio::spawn(produce(
        client.clone(),
        b.topic.clone(),
        client.partition_count(&b.topic).await?,
        b.rate,
        b.record_size,
        shared.clone(),
    ));
    let started = Instant::now();
    let mut members = Vec::with_capacity(b.members);
    for i in 0..b.members {
        let mut config = GroupConfig::new(b.group.clone(), &[b.topic.as_str()]);
        config.client_id = format!("bench-{i}");
        config.auto_commit = false;
        let interval = Duration::from_millis(b.commit_interval_ms);
        // Members' commit ticks are spread over the interval, as independent clients' are.
        let first = interval.mul_f64(i as f64 / b.members as f64);
        members.push(tokio::spawn(member(client.clone(), config, interval, first, shared.clone())));
    }
    let want = b.members.min(b.partitions as usize);
    let deadline = Instant::now() + Duration::from_secs(300);
    while shared.assigned.load(Ordering::Acquire) < want {
        if Instant::now() > deadline {
            anyhow::bail!(
                "only {} of {want} members own partitions after 300 s",
                shared.assigned.load(Ordering::Acquire)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settled = started.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;

    let rev0 = etcd_revision(&etcd).await?;
    let commits0 = shared.commits.load(Ordering::Acquire);
    let records0 = shared.records.load(Ordering::Acquire);
    shared.measuring.store(true, Ordering::Release);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(b.duration_secs)).await;
    shared.measuring.store(false, Ordering::Release);
    let secs = t0.elapsed().as_secs_f64();
    let rev1 = etcd_revision(&etcd).await?;
    let commits = shared.commits.load(Ordering::Acquire) - commits0;
    let records = shared.records.load(Ordering::Acquire) - records0;

    let keys = match &etcd {
        Some(etcd) => Some(etcd.group_keys(&b.group).await?),
        None => None,
    };
    shared.stop.store(true, Ordering::Release);
    for m in members {
        m.await?;
    }
    producer.await??;

    let hist = shared.latency.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let etcd_writes = rev0.zip(rev1).map(|(a, z)| (z - a) as f64 / secs);
    let summary = serde_json::json!({
        "members": b.members,
        "partitions": b.partitions,
        "commit_interval_ms": b.commit_interval_ms,
        "join_seconds": settled.as_secs_f64(),
        "seconds": secs,
        "records_consumed_per_sec": records as f64 / secs,
        "commits_per_sec": commits as f64 / secs,
        "commit_errors": shared.commit_errors.load(Ordering::Acquire),
        "commit_latency_ms": report::quantiles_ms(&hist),
        "etcd_writes_per_sec": etcd_writes,
        "etcd_keys_groups_prefix": keys.map(|k| k.0),
        "etcd_keys_offsets_prefix": keys.map(|k| k.1),
    });
    match b.format {
        Format::Json => println!("{summary}"),
        Format::Text => {
            println!(
                "{} members on {} partitions joined in {:.1}s; over {secs:.1}s: {:.0} commits/s, \
                 commit latency ms p50 {:.2} p99 {:.2} p999 {:.2} max {:.2}; {:.0} records/s consumed",
                b.members,
                b.partitions,
                settled.as_secs_f64(),
                commits as f64 / secs,
                report::ms(&hist, 0.5),
                report::ms(&hist, 0.99),
                report::ms(&hist, 0.999),
                report::max_ms(&hist),
                records as f64 / secs,
            );
            if let (Some(w), Some((g, o))) = (etcd_writes, keys) {
                println!(
                    "etcd: {w:.1} writes/s (revisions); group keys: {g} under groups/{}/ \
                     (state + members), {o} under offsets/{}/",
                    b.group, b.group
                );
            }
        }
    }
    Ok(())
}

/// The etcd store revision: every write moves it by one.
async fn etcd_revision(etcd: &Option<Etcd>) -> anyhow::Result<Option<i64>> {
    Ok(match etcd {
        Some(etcd) => Some(etcd.revision().await?),
        None => None,
    })
}

/// Keeps every partition moving at about `rate` records/s in total.
async fn produce(
    client: Client,
    topic: String,
    partitions: u32,
    rate: u64,
    size: usize,
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let producer = Producer::new(client, ProducerConfig::default());
    let value = Bytes::from(vec![b'x'; size]);
    let start = Instant::now();
    let mut sent = 0u64;
    while !shared.stop.load(Ordering::Acquire) {
        let due = start + Duration::from_secs_f64(sent as f64 / rate.max(1) as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        // Deliveries are not awaited one by one: the producer batches and pipelines.
        // Round-robin, so every partition (and so every member) has news each second.
        let partition = (sent % u64::from(partitions)) as u32;
        let record = ProducerRecord::new(topic.clone(), value.clone()).partition(partition);
        let _delivery = producer.send(record).await?;
        sent += 1;
    }
    producer.flush().await?;
    Ok(())
}

/// One member: polls, and commits every `interval` when it read something since.
async fn member(
    client: Client,
    config: GroupConfig,
    interval: Duration,
    first: Duration,
    shared: Arc<Shared>,
) {
    let mut consumer = match GroupConsumer::subscribe(client, config) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "member could not subscribe");
            return;
        }
    };
    let mut owns = false;
    let mut dirty = false;
    // Commits on a fixed tick (not "interval after the last one"), so the rate is exact.
    let mut next_commit = Instant::now() + first;
    while !shared.stop.load(Ordering::Acquire) {
        let wait =
            next_commit.saturating_duration_since(Instant::now()).min(Duration::from_millis(100));
        match consumer.poll(wait).await {
            Ok(records) if !records.is_empty() => {
                dirty = true;
                shared.records.fetch_add(records.len() as u64, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "poll failed"),
        }
        let now_owns = !consumer.assignment().is_empty();
        if now_owns != owns {
            owns = now_owns;
            if owns {
                shared.assigned.fetch_add(1, Ordering::AcqRel);
            } else {
                shared.assigned.fetch_sub(1, Ordering::AcqRel);
            }
        }
        if Instant::now() >= next_commit {
            while next_commit <= Instant::now() {
                next_commit += interval;
            }
            if !dirty {
                continue;
            }
            dirty = false;
            let t = Instant::now();
            match consumer.commit().await {
                Ok(()) => {
                    shared.commits.fetch_add(1, Ordering::Relaxed);
                    if shared.measuring.load(Ordering::Acquire) {
                        let mut h = shared
                            .latency
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        report::record(&mut h, t.elapsed());
                    }
                }
                Err(e) => {
                    shared.commit_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(reason = %e.reason, error = %e, "commit failed");
                }
            }
        }
    }
    if let Err(e) = consumer.close().await {
        tracing::debug!(error = %e, "leaving the group failed");
    }
}
