//! `shale-bench stalls`: how late this machine wakes a thread that sleeps 20 µs at a
//! time, with nothing else of Shale running in the process. A wake-up that is
//! milliseconds late is time the whole machine (or this thread's CPU) did not run: the
//! floor under any latency measured here. Run it beside a load (a broker under a
//! benchmark, or fio) to see what that load does to everything else on the machine.

use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;

/// `shale-bench stalls`.
#[derive(Debug, Args)]
pub(crate) struct StallsBench {
    /// How long to measure, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// A wake-up later than this (ms) is listed as a stall, with when it began.
    #[arg(long, default_value_t = 4.0)]
    pub threshold_ms: f64,
}

/// Sleeps 20 µs at a time for `seconds` on a thread of its own; prints the lateness
/// percentiles, then each stall (start in seconds from the beginning, length in ms) and
/// the median time between stalls (a fixed period points at a hypervisor's CPU quota).
pub(crate) async fn run(b: StallsBench) -> anyhow::Result<()> {
    if !(b.seconds > 0.0 && b.seconds <= 3600.0) {
        anyhow::bail!("--seconds {} is out of range: give 0 < seconds <= 3600", b.seconds);
    }
    let (seconds, threshold) =
        (Duration::from_secs_f64(b.seconds), Duration::from_secs_f64(b.threshold_ms / 1000.0));
    let measured = tokio::task::spawn_blocking(move || measure(seconds, threshold)).await?;
    let (hist, stalls) = measured?;
    let q = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "wake-ups {}  late p50 {:.3}  p99 {:.3}  p999 {:.3}  max {:.3} ms  stalls over {} ms: {}",
        hist.len(),
        q(0.5),
        q(0.99),
        q(0.999),
        hist.max() as f64 / 1000.0,
        b.threshold_ms,
        stalls.len()
    );
    if !stalls.is_empty() {
        let listed: Vec<String> = stalls
            .iter()
            .map(|(at, late)| format!("{:.3}s:{:.1}", at.as_secs_f64(), late.as_secs_f64() * 1e3))
            .collect();
        println!("stalls (start:ms) {}", listed.join(" "));
        let mut gaps: Vec<Duration> = stalls.windows(2).map(|w| w[1].0 - w[0].0).collect();
        gaps.sort();
        if let Some(median) = gaps.get(gaps.len() / 2) {
            println!("median time between stalls {:.1} ms", median.as_secs_f64() * 1e3);
        }
    }
    Ok(())
}

type Measured = (Histogram<u64>, Vec<(Duration, Duration)>);

fn measure(seconds: Duration, threshold: Duration) -> anyhow::Result<Measured> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut stalls = Vec::new();
    let nap = Duration::from_micros(20);
    let start = Instant::now();
    while start.elapsed() < seconds {
        let before = Instant::now();
        std::thread::sleep(nap);
        let late = before.elapsed().saturating_sub(nap);
        hist.record(u64::try_from(late.as_micros()).unwrap_or(u64::MAX).max(1))?;
        if late > threshold {
            stalls.push((before - start, late));
        }
    }
    Ok((hist, stalls))
}
