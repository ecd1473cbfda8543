//! `kafka-bench`: load through Kafka's wire protocol with librdkafka, for the side by side
//! of `scripts/bench-kafka.sh`. Each subcommand mirrors a `shale-bench` one — same flags,
//! same JSON summary — so the Kafka listener and the gRPC path are offered the same load
//! and measured the same way:
//!
//! - `produce`: records as fast as librdkafka takes them (or at `--rate`), latency from
//!   each send to its delivery report (`shale-bench produce`);
//! - `consume`: a topic read from the beginning to its end (`shale-bench consume`);
//! - `latency`: fixed offered rates, open loop, each record timed from when it was due —
//!   paced and measured by Shale's own code (`crates/bench/src/open_loop.rs`, included by
//!   path, as `tools/nats-bench` does) (`shale-bench latency`);
//! - `e2e`: end-to-end latency at a fixed rate, from each record's send to a consumer
//!   (`read_committed` or `read_uncommitted`) reading it.
//!
//! `produce` and `e2e` produce in transactions with `--transactional-id` (a commit every
//! `--commit-interval-ms`), the load of `scripts/bench-txn.sh`.

// A load generator measures real elapsed time.
#![allow(clippy::disallowed_methods)]

#[path = "../../../crates/bench/src/open_loop.rs"]
mod open_loop;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use rand::RngCore;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, FutureProducer, FutureRecord, Producer, ProducerContext,
    ThreadedProducer,
};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use open_loop::Acked;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Load through a Kafka listener with librdkafka.
#[derive(Debug, Parser)]
#[command(name = "kafka-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Produce records as fast as possible (or at --rate): throughput and latency.
    Produce(ProduceArgs),
    /// Read a topic from the beginning to its end: throughput.
    Consume(ConsumeArgs),
    /// Produce at fixed offered rates, open loop: latency from each record's due time.
    Latency(LatencyArgs),
    /// Produce at a fixed rate while a consumer reads: latency from send to read.
    E2e(E2eArgs),
}

/// What every producing subcommand shares: the producer's settings.
#[derive(Debug, clap::Args)]
struct ProducerArgs {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Topic (must exist).
    #[arg(long, default_value = "bench")]
    topic: String,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// acks: 0, 1 or all.
    #[arg(long, default_value = "all")]
    acks: String,
    /// batch.size in bytes.
    #[arg(long, default_value_t = 256 * 1024)]
    batch_size: usize,
    /// linger.ms.
    #[arg(long, default_value_t = 0)]
    linger_ms: u64,
    /// max.in.flight.requests.per.connection.
    #[arg(long, default_value_t = 5)]
    max_in_flight: usize,
    /// compression.type: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// enable.idempotence. librdkafka's idempotent producer keeps one produce request in
    /// flight per partition, whatever max.in.flight says (confluentinc/librdkafka#4989).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    idempotence: bool,
    /// Any other librdkafka property, KEY=VALUE (repeatable).
    #[arg(long = "set", value_parser = key_value)]
    properties: Vec<(String, String)>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

impl ProducerArgs {
    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("acks", &self.acks)
            .set("enable.idempotence", self.idempotence.to_string())
            .set("batch.size", self.batch_size.to_string())
            .set("linger.ms", self.linger_ms.to_string())
            .set("max.in.flight.requests.per.connection", self.max_in_flight.to_string())
            .set("compression.type", &self.compression)
            .set("queue.buffering.max.messages", "2000000")
            .set("queue.buffering.max.kbytes", "2097151")
            .set("message.timeout.ms", "120000")
            // TCP_NODELAY, as Shale's gRPC client (tonic) and Kafka's Java client set it;
            // librdkafka alone leaves Nagle on by default.
            .set("socket.nagle.disable", "true");
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    fn value(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.record_size];
        rand::rng().fill_bytes(&mut v);
        v
    }
}

#[derive(Debug, clap::Args)]
struct ProduceArgs {
    #[command(flatten)]
    producer: ProducerArgs,
    /// Records to send.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Target records per second; 0 sends as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    #[command(flatten)]
    txn: TxnArgs,
}

/// Producing in transactions.
#[derive(Debug, Clone, clap::Args)]
struct TxnArgs {
    /// transactional.id: produce in transactions, committed every --commit-interval-ms.
    #[arg(long)]
    transactional_id: Option<String>,
    /// Milliseconds between commits (as Kafka Streams' commit.interval.ms).
    #[arg(long, default_value_t = 100)]
    commit_interval_ms: u64,
}

impl TxnArgs {
    /// `producer`'s config with this transactional id, if any.
    fn config(&self, producer: &ProducerArgs) -> ClientConfig {
        let mut c = producer.config();
        if let Some(id) = &self.transactional_id {
            // librdkafka wants message.timeout.ms (120 s here) within the transaction's.
            c.set("transactional.id", id).set("transaction.timeout.ms", "120000");
        }
        c
    }
}

/// A producer's transactions: begun at once, committed (and the next begun) once the
/// interval has passed.
struct Transactions {
    interval: Duration,
    since: Instant,
    commits: u64,
    commit_micros: Histogram<u64>,
}

impl Transactions {
    /// Starts `producer`'s first transaction, if `a` asks for transactions.
    fn start<P: Producer<C>, C: ProducerContext>(
        a: &TxnArgs,
        producer: &P,
    ) -> Result<Option<Transactions>, Error> {
        if a.transactional_id.is_none() {
            return Ok(None);
        }
        producer.init_transactions(Duration::from_secs(60))?;
        producer.begin_transaction()?;
        Ok(Some(Transactions {
            interval: Duration::from_millis(a.commit_interval_ms),
            since: Instant::now(),
            commits: 0,
            commit_micros: micros_histogram(),
        }))
    }

    /// Commits and begins the next one when the interval has passed (`last`: commits).
    fn tick<P: Producer<C>, C: ProducerContext>(
        &mut self,
        producer: &P,
        last: bool,
    ) -> Result<(), Error> {
        if !last && self.since.elapsed() < self.interval {
            return Ok(());
        }
        let started = Instant::now();
        // rust-rdkafka's commit flushes by polling for up to 100 ms at a time, while the
        // ThreadedProducer's thread takes the events: every commit would wait 100 ms. The
        // deliveries are awaited here first (the polling thread serves them), so the
        // commit's own flush finds nothing left.
        while producer.in_flight_count() > 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        producer.commit_transaction(Duration::from_secs(60))?;
        let _ = self.commit_micros.record(started.elapsed().as_micros().max(1) as u64);
        self.commits += 1;
        self.since = Instant::now();
        if !last {
            producer.begin_transaction()?;
        }
        Ok(())
    }

    fn json(this: &Option<Transactions>) -> serde_json::Value {
        match this {
            None => serde_json::Value::Null,
            Some(t) => serde_json::json!({
                "commits": t.commits,
                "commit_interval_ms": t.interval.as_millis() as u64,
                "commit_ms": quantiles_ms(&t.commit_micros),
            }),
        }
    }
}

#[derive(Debug, clap::Args)]
struct ConsumeArgs {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Topic to read from the beginning.
    #[arg(long, default_value = "bench")]
    topic: String,
    /// fetch.max.bytes (per fetch response).
    #[arg(long, default_value_t = 52_428_800)]
    fetch_max_bytes: u32,
    /// max.partition.fetch.bytes (per partition of a fetch response).
    #[arg(long, default_value_t = 1_048_576)]
    partition_fetch_bytes: u32,
}

#[derive(Debug, clap::Args)]
struct LatencyArgs {
    #[command(flatten)]
    producer: ProducerArgs,
    /// Partitions of the topic; records go round-robin over them.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    #[command(flatten)]
    schedule: open_loop::Schedule,
    /// Label of this run in the report.
    #[arg(long, default_value = "kafka")]
    label: String,
    /// One JSON object per round instead of a line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct E2eArgs {
    #[command(flatten)]
    producer: ProducerArgs,
    /// Records per second offered.
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    /// Seconds measured (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The consumer's isolation.level: read_committed or read_uncommitted.
    #[arg(long, default_value = "read_committed")]
    isolation: String,
    #[command(flatten)]
    txn: TxnArgs,
}

fn micros_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("static histogram bounds are valid")
}

fn quantiles_ms(hist: &Histogram<u64>) -> serde_json::Value {
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    serde_json::json!({"p50": ms(0.5), "p99": ms(0.99), "p999": ms(0.999), "max": hist.max() as f64 / 1000.0})
}

/// Delivery reports of the throughput producer: latency from send to report.
struct Deliveries {
    hist: Mutex<Histogram<u64>>,
    acked: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Instant>) {
        match result {
            Ok(_) => {
                let micros = sent.elapsed().as_micros().max(1) as u64;
                let _ = self.hist.lock().unwrap_or_else(|p| p.into_inner()).record(micros);
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

fn produce(a: ProduceArgs) -> Result<(), Error> {
    let context = Deliveries {
        hist: Mutex::new(micros_histogram()),
        acked: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
    };
    let producer: ThreadedProducer<Deliveries> =
        a.txn.config(&a.producer).create_with_context(context)?;
    let value = a.producer.value();
    let topic = a.producer.topic.as_str();
    let start = Instant::now();
    let mut txns = Transactions::start(&a.txn, &producer)?;
    for i in 0..a.records {
        if i % 64 == 0 {
            if let Some(t) = txns.as_mut() {
                t.tick(&producer, false)?;
            }
        }
        if a.rate > 0 && i % 64 == 0 {
            let due = Duration::from_secs_f64(i as f64 / a.rate as f64);
            let elapsed = start.elapsed();
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
        }
        let mut record =
            BaseRecord::<(), [u8], Box<Instant>>::with_opaque_to(topic, Box::new(Instant::now()))
                .payload(&value[..]);
        // librdkafka's queue is full: wait for deliveries to make room, as a producer's
        // `send` waits in Shale's client.
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    if let Some(t) = txns.as_mut() {
        t.tick(&producer, true)?;
    }
    let secs = start.elapsed().as_secs_f64();
    let context = producer.context();
    let ok = context.acked.load(Ordering::Relaxed);
    let errors = context.errors.load(Ordering::Relaxed);
    let hist = context.hist.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mib = ok as f64 * a.producer.record_size as f64 / (1024.0 * 1024.0);
    println!(
        "{}",
        serde_json::json!({
            "records": ok,
            "errors": errors,
            "seconds": secs,
            "records_per_sec": ok as f64 / secs,
            "mib_per_sec": mib / secs,
            "latency_ms": quantiles_ms(&hist),
            "record_size": a.producer.record_size,
            "acks": a.producer.acks,
            "batch_size": a.producer.batch_size,
            "rate": a.rate,
            "idempotence": a.producer.idempotence,
            "max_in_flight": a.producer.max_in_flight,
            "transactions": Transactions::json(&txns),
            "librdkafka": rdkafka::util::get_rdkafka_version().1,
        })
    );
    if let Some(e) = context.first_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(format!("{errors} records failed; first error: {e}").into());
    }
    Ok(())
}

fn consume(a: ConsumeArgs) -> Result<(), Error> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap)
        // Assigned, not subscribed: the group is never joined, but librdkafka wants one.
        .set("group.id", "kafka-bench")
        .set("enable.auto.commit", "false")
        .set("socket.nagle.disable", "true")
        .set("fetch.max.bytes", a.fetch_max_bytes.to_string())
        .set("max.partition.fetch.bytes", a.partition_fetch_bytes.to_string())
        .create()?;
    let within = Duration::from_secs(30);
    let metadata = consumer.fetch_metadata(Some(&a.topic), within)?;
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len() as i32)
        .ok_or_else(|| format!("topic {} not found", a.topic))?;
    let mut target = 0i64;
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        let (low, high) = consumer.fetch_watermarks(&a.topic, p, within)?;
        target += high - low;
        assignment.add_partition_offset(&a.topic, p, Offset::Beginning)?;
    }
    let start = Instant::now();
    consumer.assign(&assignment)?;
    let (mut count, mut bytes, mut first_record) = (0i64, 0u64, None);
    while count < target {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(m)) => {
                first_record.get_or_insert_with(|| start.elapsed());
                bytes += m.payload_len() as u64;
                count += 1;
            }
            Some(Err(e)) => return Err(e.into()),
            None => return Err(format!("no record for 10 s after {count} of {target}").into()),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "records": count,
            "bytes": bytes,
            "seconds": secs,
            "records_per_sec": count as f64 / secs,
            "mib_per_sec": bytes as f64 / (1024.0 * 1024.0) / secs,
            "first_record_ms": first_record.map_or(-1.0, |d| d.as_secs_f64() * 1000.0),
            "partitions": partitions,
            "librdkafka": rdkafka::util::get_rdkafka_version().1,
        })
    );
    Ok(())
}

fn latency(a: LatencyArgs) -> Result<(), Error> {
    let rt = tokio::runtime::Runtime::new()?;
    let handle = rt.handle().clone();
    let producer: FutureProducer = {
        let _guard = rt.enter();
        a.producer.config().create()?
    };
    let value = a.producer.value();
    let mut failed = None;
    for (round, rate, warmup, measure) in a.schedule.each() {
        let mut next = 0i32;
        let result = open_loop::offer(&handle, rate, warmup, measure, || {
            let partition = next;
            next = (next + 1) % a.partitions.max(1);
            let record = FutureRecord::<(), [u8]>::to(&a.producer.topic)
                .payload(&value[..])
                .partition(partition);
            // librdkafka copies the record into its queue: the future owns nothing
            // borrowed.
            let sent = producer.send_result(record).map_err(|(e, _)| e.to_string());
            Box::pin(async move {
                let delivery = sent?;
                Ok(Box::pin(async move {
                    match delivery.await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err((e, _))) => Err(e.to_string()),
                        Err(_) => Err("the delivery report was dropped".to_string()),
                    }
                }) as Acked)
            })
        });
        producer.flush(Duration::from_secs(120))?;
        if a.json {
            let mut json = result.json(&a.label, round);
            json["partitions"] = a.partitions.into();
            json["librdkafka"] = rdkafka::util::get_rdkafka_version().1.into();
            println!("{json}");
        } else {
            println!("{}", result.line(&format!("{} round {round}", a.label)));
        }
        if let Some(e) = result.first_error {
            failed
                .get_or_insert(format!("{} records failed at {rate}/s; first: {e}", result.errors));
        }
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Microseconds since `epoch` in the first 8 bytes of `value`.
fn stamp(value: &mut [u8], epoch: Instant) {
    let micros = epoch.elapsed().as_micros() as u64;
    value[..8].copy_from_slice(&micros.to_be_bytes());
}

/// End-to-end latency: records sent at `rate` (each stamped with its send time) while a
/// consumer of `isolation` reads the topic from its end; each record timed from its send
/// to its read, after a second of warm-up.
fn e2e(a: E2eArgs) -> Result<(), Error> {
    let epoch = Instant::now();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &a.producer.bootstrap)
        .set("group.id", "kafka-bench-e2e")
        .set("enable.auto.commit", "false")
        .set("socket.nagle.disable", "true")
        .set("isolation.level", &a.isolation)
        .set("fetch.wait.max.ms", "100")
        .create()?;
    let within = Duration::from_secs(30);
    let topic = a.producer.topic.clone();
    let metadata = consumer.fetch_metadata(Some(&topic), within)?;
    let partitions = metadata.topics().first().map_or(0, |t| t.partitions().len() as i32);
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(&topic, p, Offset::End)?;
    }
    consumer.assign(&assignment)?;
    let total = a.rate * (a.seconds + 1);
    // The consumer's assignment settles for SETTLE before the first send; the first second
    // of sending is not measured (an idempotent producer's first records wait for its
    // producer id: they measured its start, ~400 ms, as the p99 of the whole run).
    const SETTLE: Duration = Duration::from_secs(2);
    let warmup = SETTLE + Duration::from_secs(1);
    let reader = std::thread::spawn(move || -> Result<(Histogram<u64>, u64), String> {
        let mut hist = micros_histogram();
        let mut read = 0u64;
        let deadline = Instant::now() + Duration::from_secs(a.seconds + 60);
        while read < total && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(m)) => {
                    read += 1;
                    let Some(v) = rdkafka::Message::payload(&m) else { continue };
                    let sent =
                        Duration::from_micros(u64::from_be_bytes(v[..8].try_into().unwrap()));
                    if sent >= warmup {
                        let _ = hist.record((epoch.elapsed() - sent).as_micros().max(1) as u64);
                    }
                }
                Some(Err(e)) => return Err(e.to_string()),
                None => {}
            }
        }
        Ok((hist, read))
    });
    // Let the consumer's assignment settle at the end before records are sent.
    std::thread::sleep(SETTLE);
    let producer: ThreadedProducer<Deliveries> =
        a.txn.config(&a.producer).create_with_context(Deliveries {
            hist: Mutex::new(micros_histogram()),
            acked: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
        })?;
    let mut txns = Transactions::start(&a.txn, &producer)?;
    let mut value = a.producer.value();
    let start = Instant::now();
    for i in 0..total {
        let due = Duration::from_secs_f64(i as f64 / a.rate as f64);
        let elapsed = start.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
        if let Some(t) = txns.as_mut() {
            t.tick(&producer, false)?;
        }
        stamp(&mut value, epoch);
        let record =
            BaseRecord::<(), [u8], Box<Instant>>::with_opaque_to(&topic, Box::new(Instant::now()))
                .payload(&value[..])
                .partition((i % partitions.max(1) as u64) as i32);
        producer.send(record).map_err(|(e, _)| e)?;
    }
    producer.flush(Duration::from_secs(120))?;
    if let Some(t) = txns.as_mut() {
        t.tick(&producer, true)?;
    }
    let (hist, read) = reader.join().map_err(|_| "the reader panicked")??;
    println!(
        "{}",
        serde_json::json!({
            "isolation": a.isolation,
            "rate": a.rate,
            "seconds": a.seconds,
            "sent": total,
            "read": read,
            "e2e_ms": quantiles_ms(&hist),
            "transactions": Transactions::json(&txns),
            "partitions": partitions,
            "librdkafka": rdkafka::util::get_rdkafka_version().1,
        })
    );
    if read < total {
        return Err(format!("read {read} of {total} records").into());
    }
    Ok(())
}

/// librdkafka's log lines (its `debug` property's output among them), on stderr.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        eprintln!("{} {}: {}", record.level(), record.target(), record.args());
    }
    fn flush(&self) {}
}

fn main() {
    if log::set_logger(&StderrLog).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
    let outcome = match Cli::parse().command {
        Command::Produce(a) => produce(a),
        Command::Consume(a) => consume(a),
        Command::Latency(a) => latency(a),
        Command::E2e(a) => e2e(a),
    };
    if let Err(e) = outcome {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
