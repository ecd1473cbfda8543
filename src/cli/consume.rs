//! `shale consume`: prints records, one value per line.

use std::io::Write;

use clap::Args;

use super::{BrokerArg, Format};
use crate::client::{Consumer, ConsumerConfig, ConsumerRecord, StartAt};

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
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub broker: BrokerArg,
}

pub async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let client = args.broker.client()?;
    let partitions: Vec<u32> = match args.partition {
        Some(p) => vec![p],
        None => (0..client.partition_count(&args.topic).await?).collect(),
    };
    // Without --follow, read up to the high watermark seen and exit.
    let stop_at_end = !args.follow;
    let config = ConsumerConfig { stop_at_end, ..ConsumerConfig::default() };
    let mut consumer = Consumer::new(client, config);
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
            print_record(&mut out, &r, &args)?;
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

fn text(b: &Option<bytes::Bytes>) -> String {
    b.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
}

fn print_record(
    out: &mut impl Write,
    r: &ConsumerRecord,
    args: &ConsumeArgs,
) -> std::io::Result<()> {
    match args.format {
        Format::Json => {
            let v = serde_json::json!({
                "topic": r.topic,
                "partition": r.partition,
                "offset": r.offset,
                "timestamp": r.timestamp_ms,
                "key": r.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()),
                "value": r.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()),
                "headers": r.headers.iter().map(|h| (h.key.clone(), text(&h.value))).collect::<std::collections::BTreeMap<_, _>>(),
            });
            writeln!(out, "{v}")
        }
        Format::Text => {
            if args.print_offset {
                write!(out, "{}\t{}\t", r.partition, r.offset)?;
            }
            if args.print_key {
                write!(out, "{}\t", text(&r.key))?;
            }
            writeln!(out, "{}", text(&r.value))
        }
    }
}
