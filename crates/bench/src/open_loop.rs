//! Open-loop load: sends offered on a fixed schedule, whatever the system under test does,
//! and latency measured from when each send was *due*, not from when it went out, so that
//! a stall counts against every send it held back (coordinated omission corrected, as
//! wrk2 and HdrHistogram's own tools do it).
//!
//! Shared, by path, with the NATS JetStream peer tool in `tools/nats-bench`, so that both
//! sides of a comparison are paced and measured by the same code. It depends only on std,
//! tokio, futures, hdrhistogram, serde_json and clap for that reason.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

/// Resolves when a send is acknowledged (or failed, with the error as text).
pub(crate) type Acked = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// One round at one offered rate.
#[derive(Debug)]
pub(crate) struct Round {
    /// Offered sends per second.
    pub(crate) rate: u64,
    /// Sends in the measured window.
    pub(crate) offered: u64,
    /// Of those, acknowledged.
    pub(crate) acked: u64,
    /// Of those, failed.
    pub(crate) errors: u64,
    /// The first failure, if any.
    pub(crate) first_error: Option<String>,
    /// Microseconds from due to acknowledged, for the measured window.
    pub(crate) hist: Histogram<u64>,
    /// How far behind its schedule the pacer fell at most (a pacer that cannot keep up
    /// makes the offered rate a lie; the report says so).
    pub(crate) max_lag: Duration,
    /// Wall time of the measured window, from its first due send to its last ack.
    pub(crate) seconds: f64,
}

impl Round {
    /// p50/p99/p999/max in milliseconds.
    pub(crate) fn quantile_ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    /// Acknowledged sends per second over the measured window.
    pub(crate) fn acked_per_sec(&self) -> f64 {
        if self.seconds > 0.0 { self.acked as f64 / self.seconds } else { 0.0 }
    }

    /// One JSON object: the round's label, rate, counts and percentiles.
    pub(crate) fn json(&self, label: &str, round: u32) -> serde_json::Value {
        serde_json::json!({
            "label": label,
            "round": round,
            "rate": self.rate,
            "offered": self.offered,
            "acked": self.acked,
            "acked_per_sec": self.acked_per_sec(),
            "errors": self.errors,
            "p50_ms": self.quantile_ms(0.5),
            "p99_ms": self.quantile_ms(0.99),
            "p999_ms": self.quantile_ms(0.999),
            "max_ms": self.hist.max() as f64 / 1000.0,
            "pacer_lag_max_ms": self.max_lag.as_secs_f64() * 1000.0,
        })
    }

    /// One line: rate, count, percentiles, errors.
    pub(crate) fn line(&self, name: &str) -> String {
        format!(
            "{name:<28} {:>8}/s offered {:>8} acked ({:.0}/s)  p50 {:>7.3}  p99 {:>7.3}  p999 {:>7.3}  \
             max {:>8.3} ms  errors {}  pacer lag max {:.2} ms",
            self.rate,
            self.acked,
            self.acked_per_sec(),
            self.quantile_ms(0.5),
            self.quantile_ms(0.99),
            self.quantile_ms(0.999),
            self.hist.max() as f64 / 1000.0,
            self.errors,
            self.max_lag.as_secs_f64() * 1000.0,
        )
    }
}

/// Offers `rate` sends per second for `warmup` then `measure`, calling `send` for each on
/// this (non-runtime) thread at its due time and timing its [`Acked`] from that due time.
/// Only sends due in the measured window are recorded. `send` may wait (a full queue): that
/// wait counts, and later sends go out late but are still timed from their due times.
///
/// Paced by a dedicated thread's sleeps (Linux's timer slack, ~50 µs) rather than tokio's
/// 1 ms timer wheel, so that pacing adds tens of microseconds, not a millisecond. The
/// sends made between two sleeps (at most 16) reach the collecting task in one message:
/// one wake-up of a runtime thread per sleep rather than per send, load-generator CPU
/// that would otherwise compete with the system under test for the same cores.
pub(crate) fn offer<F>(
    handle: &Handle,
    rate: u64,
    warmup: Duration,
    measure: Duration,
    mut send: F,
) -> Round
where
    F: FnMut() -> Pin<Box<dyn Future<Output = Result<Acked, String>> + Send>>,
{
    let rate = rate.max(1);
    let total = ((warmup + measure).as_secs_f64() * rate as f64) as u64;
    let first_measured = (warmup.as_secs_f64() * rate as f64) as u64;
    let (tx, rx) = mpsc::unbounded_channel::<Vec<(Instant, bool, Acked)>>();
    let collector = handle.spawn(collect(rx));
    let start = Instant::now() + Duration::from_millis(10);
    let mut max_lag = Duration::ZERO;
    let mut measured_from = None;
    let mut sent = Vec::new();
    for i in 0..total {
        let due = start + Duration::from_nanos((i as u128 * 1_000_000_000 / rate as u128) as u64);
        let now = Instant::now();
        if due > now {
            if !sent.is_empty() && tx.send(std::mem::take(&mut sent)).is_err() {
                break;
            }
            std::thread::sleep(due - now);
        } else {
            max_lag = max_lag.max(now - due);
        }
        let measured = i >= first_measured;
        if measured && measured_from.is_none() {
            measured_from = Some(due);
        }
        let acked = match handle.block_on(send()) {
            Ok(acked) => acked,
            Err(e) => Box::pin(std::future::ready(Err(e))) as Acked,
        };
        sent.push((due, measured, acked));
        // A pacer behind its schedule never sleeps: hand over at least every few sends,
        // so that no ack waits long to be timed (it would only be timed later, not
        // earlier, than it happened).
        if sent.len() >= 16 && tx.send(std::mem::take(&mut sent)).is_err() {
            break;
        }
    }
    let _ = tx.send(sent);
    drop(tx);
    let (hist, acked, errors, first_error, last) =
        handle.block_on(collector).expect("the latency collector does not panic");
    let seconds = match (measured_from, last) {
        (Some(from), Some(last)) => last.saturating_duration_since(from).as_secs_f64(),
        _ => 0.0,
    };
    Round {
        rate,
        offered: total - first_measured,
        acked,
        errors,
        first_error,
        hist,
        max_lag,
        seconds,
    }
}

type Collected = (Histogram<u64>, u64, u64, Option<String>, Option<Instant>);

/// Awaits every send's ack as it comes and records due-to-ack for the measured ones.
async fn collect(mut rx: mpsc::UnboundedReceiver<Vec<(Instant, bool, Acked)>>) -> Collected {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)
        .expect("static histogram bounds are valid");
    let (mut acked, mut errors, mut first_error, mut last) = (0u64, 0u64, None, None);
    let mut waiting = FuturesUnordered::new();
    let mut open = true;
    loop {
        tokio::select! {
            next = rx.recv(), if open => match next {
                Some(sent) => {
                    for (due, measured, ack) in sent {
                        waiting.push(async move { (due, measured, ack.await) });
                    }
                }
                None => open = false,
            },
            Some((due, measured, result)) = waiting.next(), if !waiting.is_empty() => {
                let now = Instant::now();
                if !measured {
                    continue;
                }
                last = Some(now);
                match result {
                    Ok(()) => {
                        acked += 1;
                        let micros = now.saturating_duration_since(due).as_micros().max(1);
                        let _ = hist.record(u64::try_from(micros).unwrap_or(u64::MAX));
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            else => break,
        }
    }
    (hist, acked, errors, first_error, last)
}

/// Which rounds an open-loop run offers: the options every latency tool takes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Schedule {
    /// Offered rates in sends/s, one round each: 50000,100000 or 50k,100k.
    #[arg(long, default_value = "50k,100k", value_parser = parse_rates)]
    pub(crate) rates: std::vec::Vec<u64>,
    /// Rounds at each rate.
    #[arg(long, default_value_t = 1)]
    pub(crate) rounds: u32,
    /// Seconds sent before each round's measured window (not recorded).
    #[arg(long, default_value_t = 2.0)]
    pub(crate) warmup: f64,
    /// Seconds measured per round.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) seconds: f64,
}

impl Schedule {
    /// Every round in order: its number (from 1), its rate, its warm-up and measured time.
    pub(crate) fn each(&self) -> impl Iterator<Item = (u32, u64, Duration, Duration)> + '_ {
        let (warmup, measure) =
            (Duration::from_secs_f64(self.warmup), Duration::from_secs_f64(self.seconds));
        (1..=self.rounds).flat_map(move |round| {
            self.rates.iter().map(move |&rate| (round, rate, warmup, measure))
        })
    }
}

/// Parses `50000,100000` or `50k,100k` into rates per second.
pub(crate) fn parse_rates(s: &str) -> Result<Vec<u64>, String> {
    s.split(',')
        .map(|r| {
            let r = r.trim();
            let (digits, scale) = match r.strip_suffix(['k', 'K']) {
                Some(d) => (d, 1000),
                None => (r, 1),
            };
            digits.parse::<u64>().ok().filter(|&n| n > 0).map(|n| n * scale).ok_or_else(|| {
                format!("bad rate {r:?}: expected a positive count per second, like 50000 or 50k")
            })
        })
        .collect()
}
