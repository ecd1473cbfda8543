//! What the benchmarks report with: latency histograms in microseconds, their quantiles in
//! milliseconds, and a progress bar on standard error.

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

/// A histogram of microseconds up to `max_secs` seconds, 3 significant digits.
pub(crate) fn micros_histogram(max_secs: u64) -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, max_secs * 1_000_000, 3)
        .expect("static histogram bounds are valid")
}

/// Records `elapsed` (at least 1 µs); a value above the histogram's bound is dropped.
pub(crate) fn record(hist: &mut Histogram<u64>, elapsed: std::time::Duration) {
    let _ = hist.record(elapsed.as_micros().max(1) as u64);
}

/// A quantile of a microsecond histogram, in milliseconds.
pub(crate) fn ms(hist: &Histogram<u64>, quantile: f64) -> f64 {
    hist.value_at_quantile(quantile) as f64 / 1000.0
}

/// The largest value of a microsecond histogram, in milliseconds.
pub(crate) fn max_ms(hist: &Histogram<u64>) -> f64 {
    hist.max() as f64 / 1000.0
}

/// `{"p50", "p99", "p999", "max"}` in milliseconds, for the JSON summaries.
pub(crate) fn quantiles_ms(hist: &Histogram<u64>) -> serde_json::Value {
    serde_json::json!({
        "p50": ms(hist, 0.5),
        "p99": ms(hist, 0.99),
        "p999": ms(hist, 0.999),
        "max": max_ms(hist),
    })
}

/// A bar counting records towards `total`, with the rate and the time left.
pub(crate) fn progress(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} records {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// This process's peak resident memory (MiB, `VmHWM` in `/proc/self/status`); -1 where
/// unknown.
pub(crate) fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(-1.0, |kib| kib / 1024.0)
}
