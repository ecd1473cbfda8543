//! `shale consume`: prints records, one per line: values (escaped), a template of
//! their fields, or JSON that keeps every byte (`record_format`).

use std::io::Write;

use clap::Args;

use super::record_format::{Template, escape, to_json};
use super::{BrokerArg, Format};
use crate::client::{Consumer, ConsumerConfig, ConsumerRecord, Isolation, StartAt};

/// `shale consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to read.
    #[arg(long)]
    pub topic: String,
    /// Only this partition (default: all).
    #[arg(long)]
    pub partition: Option<u32>,
    /// Start at the earliest offset (default: only new records).
    #[arg(long, conflicts_with = "offset")]
    pub from_beginning: bool,
    /// Start at this offset (needs --partition or applies to every partition).
    #[arg(long)]
    pub offset: Option<i64>,
    /// Stop after this many records.
    #[arg(long)]
    pub max_records: Option<u64>,
    /// Keep waiting for new records instead of stopping at the end.
    #[arg(long)]
    pub follow: bool,
    /// Print the key before the value (tab-separated).
    #[arg(long)]
    pub print_key: bool,
    /// Print partition and offset before the value (tab-separated).
    #[arg(long)]
    pub print_offset: bool,
    /// Output format: text (the value, escaped to one line), or json (one object per
    /// line that keeps every byte: `shale produce --format json` reads it back).
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Print each record as this template says, like kcat's -f: %t topic, %p partition,
    /// %o offset, %T timestamp, %k key, %s value, %h headers, %K and %S key and value
    /// lengths, %%, and \n, \t, \\ (e.g. '%p %o %k=%s\n').
    #[arg(long, conflicts_with_all = ["format", "print_key", "print_offset"])]
    pub template: Option<String>,
    /// Consume as a member of this group: partitions are shared with the other members,
    /// and what was printed is committed (every --commit-interval-ms and on exit), so the
    /// next run resumes after it. Without a committed offset a partition starts at the
    /// earliest offset with --from-beginning, else at the end.
    #[arg(long, conflicts_with_all = ["partition", "offset"])]
    pub group: Option<String>,
    /// Group session timeout (ms); 0 means the broker default.
    #[arg(long, default_value_t = 0, requires = "group")]
    pub session_timeout_ms: u32,
    /// How often a group member commits what it printed (ms).
    #[arg(long, default_value_t = 1000, requires = "group")]
    pub commit_interval_ms: u64,
    /// Group assignor: cooperative-sticky or range.
    #[arg(long, default_value = "", requires = "group")]
    pub assignor: String,
    /// Give up when a partition's leader stays unreachable this long (ms).
    ///
    /// At start, or after the leader went away, the consumer retries with exponential
    /// backoff (50 ms to 2 s), asking the brokers for the partition's leader each time, and
    /// resumes at the next offset it has not printed.
    #[arg(long, default_value_t = 30_000)]
    pub leader_wait_ms: u64,
    /// Print only committed records of transactions (Kafka's isolation.level=
    /// read_committed): reads end at the last stable offset, aborted records are skipped.
    #[arg(long)]
    pub read_committed: bool,
    #[command(flatten)]
    pub broker: BrokerArg,
}

pub(super) async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let template = args.template.as_deref().map(Template::parse).transpose();
    let template = template.map_err(anyhow::Error::msg)?;
    let print = Printer { args: &args, template };
    if let Some(group) = args.group.clone() {
        return run_group(&args, &group, &print).await;
    }
    let client = args.broker.client()?;
    // Without --follow, read up to the high watermark seen and exit.
    let stop_at_end = !args.follow;
    let config = ConsumerConfig { stop_at_end, ..consumer_config(&args) };
    let mut consumer = Consumer::new(client, config);
    let partitions: Vec<u32> = match args.partition {
        Some(p) => vec![p],
        None => (0..consumer.partition_count(&args.topic).await?).collect(),
    };
    let start = match (args.offset, args.from_beginning) {
        (Some(o), _) => StartAt::Offset(o),
        (None, true) => StartAt::Earliest,
        (None, false) => StartAt::Latest,
    };
    for p in &partitions {
        consumer.assign(&args.topic, *p, start).await?;
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed = 0u64;
    let limit = args.max_records.unwrap_or(u64::MAX);
    'outer: while let Some(records) = consumer.poll().await? {
        for r in records {
            if printed >= limit {
                break 'outer;
            }
            print.record(&mut out, &r)?;
            printed += 1;
        }
        out.flush()?;
        if printed >= limit {
            break;
        }
    }
    out.flush()?;
    Ok(())
}

/// `consume --group`: a group member until --max-records, the end (without --follow, once
/// nothing arrived for a while) or SIGINT/SIGTERM; commits exactly what it printed.
async fn run_group(args: &ConsumeArgs, group: &str, print: &Printer<'_>) -> anyhow::Result<()> {
    use std::time::Duration;

    use crate::client::{GroupConfig, GroupConsumer, OffsetReset};
    use tokio::signal::unix::{SignalKind, signal};
    let client = args.broker.client()?;
    let mut config = GroupConfig::new(group, &[args.topic.as_str()]);
    config.auto_commit_interval = Duration::from_millis(args.commit_interval_ms);
    config.session_timeout = Duration::from_millis(u64::from(args.session_timeout_ms));
    config.assignor = args.assignor.clone();
    config.auto_offset_reset =
        if args.from_beginning { OffsetReset::Earliest } else { OffsetReset::Latest };
    config.consumer = consumer_config(args);
    let mut consumer = GroupConsumer::subscribe(client, config)?;
    let mut term = signal(SignalKind::terminate())?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let limit = args.max_records.unwrap_or(u64::MAX);
    let mut printed = 0u64;
    let mut idle = Duration::ZERO;
    // Without --follow, stop after this long with nothing new once something was assigned.
    let idle_limit = Duration::from_secs(3);
    let result: anyhow::Result<()> = loop {
        let poll = tokio::select! {
            r = consumer.poll(Duration::from_millis(500)) => r,
            _ = tokio::signal::ctrl_c() => break Ok(()),
            _ = term.recv() => break Ok(()),
        };
        let records = match poll {
            Ok(r) => r,
            Err(e) => break Err(e.into()),
        };
        if records.is_empty() {
            if !consumer.assignment().is_empty() {
                idle += Duration::from_millis(500);
            }
            if !args.follow && idle >= idle_limit {
                break Ok(());
            }
            continue;
        }
        idle = Duration::ZERO;
        // `poll` moved positions past the whole batch; rewind each partition to its first
        // record and advance record by record as they are printed.
        let mut seen = std::collections::BTreeSet::new();
        for r in &records {
            if seen.insert((r.topic.clone(), r.partition)) {
                consumer.set_position(&r.topic, r.partition, r.offset);
            }
        }
        for r in &records {
            if printed >= limit {
                break;
            }
            print.record(&mut out, r)?;
            printed += 1;
            // Commit what was printed, not what was fetched.
            consumer.set_position(&r.topic, r.partition, r.offset + 1);
        }
        out.flush()?;
        if printed >= limit {
            break Ok(());
        }
    };
    out.flush()?;
    drop(out);
    // Positions of records fetched but not printed were never set past the last printed.
    consumer.close().await?;
    result
}

fn consumer_config(args: &ConsumeArgs) -> ConsumerConfig {
    let leader_wait = std::time::Duration::from_millis(args.leader_wait_ms);
    let isolation = match args.read_committed {
        true => Isolation::ReadCommitted,
        false => Isolation::ReadUncommitted,
    };
    ConsumerConfig { leader_wait, isolation, ..ConsumerConfig::default() }
}

fn escaped(b: &Option<bytes::Bytes>) -> String {
    b.as_deref().map(escape).unwrap_or_default()
}

/// How records are printed.
struct Printer<'a> {
    args: &'a ConsumeArgs,
    template: Option<Template>,
}

impl Printer<'_> {
    fn record(&self, out: &mut impl Write, r: &ConsumerRecord) -> std::io::Result<()> {
        if let Some(t) = &self.template {
            return write!(out, "{}", t.render(r));
        }
        match self.args.format {
            Format::Json => writeln!(out, "{}", to_json(r)),
            Format::Text => {
                if self.args.print_offset {
                    write!(out, "{}\t{}\t", r.partition, r.offset)?;
                }
                if self.args.print_key {
                    write!(out, "{}\t", escaped(&r.key))?;
                }
                writeln!(out, "{}", escaped(&r.value))
            }
        }
    }
}
