//! Fault injection for tests: an object store that fails requests on command, the way a
//! struggling S3 would (HTTP 500/503 surfaced as object_store's `Generic` error), or that
//! delays GETs like a distant one.
//!
//! Off by default. Tests flip it through [`FaultControl`]; a broker process picks up
//! `SHALE_OBJECT_STORE_FAULTS` at start (`error_rate=0.3`, `down`), for process tests.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// The switch behind a [`FaultStore`].
#[derive(Debug, Default)]
pub struct FaultControl {
    down: AtomicBool,
    /// Probability of failing a request, in millionths.
    rate_ppm: AtomicU64,
    fail_next: AtomicU64,
    injected: AtomicU64,
    /// Added to every GET before it reaches the store, in milliseconds.
    get_latency_ms: AtomicU64,
}

#[derive(Debug)]
struct Injected(&'static str);

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "injected fault: {} answered 503 Service Unavailable", self.0)
    }
}

impl std::error::Error for Injected {}

impl FaultControl {
    /// Reads `SHALE_OBJECT_STORE_FAULTS` (`down`, `error_rate=P`, `get_latency_ms=N`);
    /// inactive without it.
    pub fn from_env() -> FaultControl {
        let c = FaultControl::default();
        if let Ok(spec) = std::env::var("SHALE_OBJECT_STORE_FAULTS") {
            for part in spec.split(',').map(str::trim) {
                if part == "down" {
                    c.set_down(true);
                } else if let Some(rate) = part.strip_prefix("error_rate=") {
                    match rate.parse::<f64>() {
                        Ok(r) => c.set_error_rate(r),
                        Err(_) => tracing::warn!(value = rate, "bad error_rate; ignored"),
                    }
                } else if let Some(ms) = part.strip_prefix("get_latency_ms=") {
                    match ms.parse::<u64>() {
                        Ok(ms) => c.set_get_latency(Duration::from_millis(ms)),
                        Err(_) => tracing::warn!(value = ms, "bad get_latency_ms; ignored"),
                    }
                } else {
                    tracing::warn!(part, "unknown SHALE_OBJECT_STORE_FAULTS entry; ignored");
                }
            }
            tracing::warn!(spec, "object store fault injection is on");
        }
        c
    }

    /// Every request fails while set (the store is "stopped").
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Release);
    }

    /// Each request fails with probability `rate` (0..=1).
    pub fn set_error_rate(&self, rate: f64) {
        self.rate_ppm.store((rate.clamp(0.0, 1.0) * 1e6) as u64, Ordering::Release);
    }

    /// Every GET waits `latency` before it is sent: the first-byte latency of a remote
    /// bucket (tens of milliseconds on S3) on a local one, for benchmarks.
    pub fn set_get_latency(&self, latency: Duration) {
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        self.get_latency_ms.store(ms, Ordering::Release);
    }

    /// The next `n` requests fail.
    pub fn fail_next(&self, n: u64) {
        self.fail_next.store(n, Ordering::Release);
    }

    /// Requests failed on purpose so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Acquire)
    }

    fn check(&self, op: &'static str) -> Result<()> {
        let next = self
            .fail_next
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        let rate = self.rate_ppm.load(Ordering::Acquire);
        let fail = self.down.load(Ordering::Acquire)
            || next
            || (rate > 0 && rand::random_range(0..1_000_000) < rate);
        if fail {
            self.injected.fetch_add(1, Ordering::AcqRel);
            return Err(object_store::Error::Generic {
                store: "fault",
                source: Box::new(Injected(op)),
            });
        }
        Ok(())
    }
}

/// An object store that fails requests when its [`FaultControl`] says so.
#[derive(Debug)]
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    control: Arc<FaultControl>,
}

impl FaultStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>, control: Arc<FaultControl>) -> Self {
        FaultStore { inner, control }
    }
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faults({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.control.check("put")?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.control.check("put_multipart")?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.control.check("get")?;
        let latency = self.control.get_latency_ms.load(Ordering::Acquire);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let control = self.control.clone();
        let checked = locations
            .map(move |l| {
                control.check("delete")?;
                l
            })
            .boxed();
        self.inner.delete_stream(checked)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        match self.control.check("list") {
            Ok(()) => self.inner.list(prefix),
            Err(e) => futures::stream::iter([Err(e)]).boxed(),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.control.check("list")?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.control.check("copy")?;
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn gets_wait_the_configured_latency_and_puts_do_not() {
        let control = Arc::new(FaultControl::default());
        let store = FaultStore::new(Arc::new(InMemory::new()), control.clone());
        let path = Path::from("a");
        control.set_get_latency(Duration::from_millis(30));
        let t = shale_core::clock::monotonic_now();
        store.put(&path, PutPayload::from_static(b"x")).await.unwrap();
        assert_eq!(t.elapsed(), Duration::ZERO, "puts are not delayed");
        let bytes = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(&bytes[..], b"x");
        assert_eq!(t.elapsed(), Duration::from_millis(30), "the GET waited 30 ms");
        assert_eq!(control.injected(), 0, "latency is not a failure");
    }
}
