//! Retry with backoff and a timeout per attempt, for any object store.
//!
//! Requests that may succeed on a second try (server errors, throttling, connection
//! failures, timeouts: object_store's `Generic`) are retried with jittered exponential
//! backoff; answers that will not change (not found, precondition, permission) are not.
//! Every object Shale writes has a unique key, so a retried put cannot overwrite anything
//! but its own earlier attempt. Streams (`list`, a get's body) are not retried midway; their
//! callers retry the whole operation.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// How hard to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Longest one attempt may take before it counts as failed.
    pub timeout: Duration,
    /// Backoff before the second attempt; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            timeout: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Whether another attempt could succeed.
pub fn is_transient(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::Generic { .. } | object_store::Error::JoinError { .. })
}

#[derive(Debug)]
struct TimedOut(Duration);

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no answer within {} ms", self.0.as_millis())
    }
}

impl std::error::Error for TimedOut {}

/// An object store that retries its inner store's requests.
#[derive(Debug)]
pub struct RetryStore {
    inner: Arc<dyn ObjectStore>,
    policy: RetryPolicy,
}

impl RetryStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>, policy: RetryPolicy) -> Self {
        RetryStore { inner, policy }
    }

    async fn retry<T, F, Fut>(&self, op: &'static str, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        retry(self.policy, op, &mut attempt).await
    }
}

async fn retry<T, F, Fut>(policy: RetryPolicy, op: &'static str, attempt: &mut F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut backoff = policy.initial_backoff;
    let mut n = 1;
    loop {
        let result = match tokio::time::timeout(policy.timeout, attempt()).await {
            Ok(r) => r,
            Err(_) => Err(object_store::Error::Generic {
                store: "retry",
                source: Box::new(TimedOut(policy.timeout)),
            }),
        };
        match result {
            Err(e) if is_transient(&e) && n < policy.max_attempts => {
                tracing::debug!(op, attempt = n, error = %e, "object store request failed; retrying");
                let jitter = rand::random_range(0.5..1.0);
                tokio::time::sleep(backoff.mul_f64(jitter)).await;
                backoff = (backoff * 2).min(policy.max_backoff);
                n += 1;
            }
            other => return other,
        }
    }
}

impl fmt::Display for RetryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Retry({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for RetryStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.retry("put", || self.inner.put_opts(location, payload.clone(), opts.clone())).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.retry("put_multipart", || self.inner.put_multipart_opts(location, opts.clone())).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.retry("get", || self.inner.get_opts(location, options.clone())).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<Vec<Bytes>> {
        self.retry("get_ranges", || self.inner.get_ranges(location, ranges)).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let (inner, policy) = (self.inner.clone(), self.policy);
        locations
            .then(move |location| {
                let inner = inner.clone();
                async move {
                    let location = location?;
                    let mut attempt = || {
                        let one = futures::stream::iter([Ok(location.clone())]).boxed();
                        let mut deleted = inner.delete_stream(one);
                        async move { deleted.next().await.unwrap_or(Ok(Path::default())) }
                    };
                    retry(policy, "delete", &mut attempt).await?;
                    Ok(location)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.retry("list", || self.inner.list_with_delimiter(prefix)).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.retry("copy", || self.inner.copy_opts(from, to, options.clone())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tier::fault::{FaultControl, FaultStore};
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    fn store(faults: &Arc<FaultControl>, attempts: u32) -> RetryStore {
        let backend = Arc::new(FaultStore::new(Arc::new(InMemory::new()), faults.clone()));
        RetryStore::new(
            backend,
            RetryPolicy {
                max_attempts: attempts,
                initial_backoff: Duration::from_millis(1),
                ..RetryPolicy::default()
            },
        )
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_attempts_run_out() {
        let faults = Arc::new(FaultControl::default());
        let s = store(&faults, 3);
        let path = Path::from("a/b");
        faults.fail_next(2);
        s.put(&path, PutPayload::from_static(b"x")).await.unwrap();
        assert_eq!(s.get(&path).await.unwrap().bytes().await.unwrap().as_ref(), b"x");
        faults.fail_next(3);
        let e = s.get(&path).await.unwrap_err();
        assert!(is_transient(&e), "{e}");
        // Deletes are retried one by one; not-found is final.
        faults.fail_next(1);
        s.delete(&path).await.unwrap();
        assert!(matches!(s.head(&path).await, Err(object_store::Error::NotFound { .. })));
    }
}
