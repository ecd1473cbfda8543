//! The upload throttle: uploads (and a compaction's replacement segments) spread over time
//! to stay under `tier.upload_bytes_per_sec`.

use shale_core::rate::TokenBucket;

/// Spreads uploads over time to stay under `tier.upload_bytes_per_sec` (0 = unlimited): an
/// upload starts once the ones before it are paid for, then charges its own bytes.
#[derive(Debug)]
pub(crate) struct Throttle {
    bucket: Option<std::sync::Mutex<TokenBucket>>,
}

impl Throttle {
    pub(crate) fn new(bytes_per_sec: u64) -> Throttle {
        let now = shale_core::clock::monotonic_now();
        let bucket = (bytes_per_sec > 0)
            .then(|| std::sync::Mutex::new(TokenBucket::new(bytes_per_sec, 0, 0, now)));
        Throttle { bucket }
    }

    /// Waits until `bytes` more may be sent.
    pub(crate) async fn take(&self, bytes: u64) {
        let Some(bucket) = &self.bucket else { return };
        let wait = {
            let mut bucket = bucket.lock().unwrap_or_else(|e| e.into_inner());
            let now = shale_core::clock::monotonic_now();
            // The debt of the uploads before this one, then this one's bytes.
            let wait = bucket.take(0, now);
            bucket.take(bytes, now);
            wait
        };
        shale_core::clock::sleep(wait).await;
    }
}
