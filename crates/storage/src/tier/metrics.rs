//! Request, error and byte counts per object store operation.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// Operations counted separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Single-request put.
    Put,
    /// Multipart upload: its start, each part and its completion are one request each.
    PutMultipart,
    /// Get (whole or ranged).
    Get,
    /// Delete of one object.
    Delete,
    /// List (streamed or with delimiter).
    List,
    /// Server-side copy.
    Copy,
}

impl Op {
    /// Every operation, in display order.
    pub const ALL: [Op; 6] = [Op::Put, Op::PutMultipart, Op::Get, Op::Delete, Op::List, Op::Copy];

    /// Lowercase name (a metrics label).
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::PutMultipart => "put_multipart",
            Op::Get => "get",
            Op::Delete => "delete",
            Op::List => "list",
            Op::Copy => "copy",
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
}

/// Counts of one operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// Requests made (after retries: one per attempt the caller saw end).
    pub requests: u64,
    /// Requests that ended in an error.
    pub errors: u64,
    /// Payload bytes sent (puts) or received (gets).
    pub bytes: u64,
}

/// The counters of one store.
#[derive(Debug, Default)]
pub struct StoreMetrics {
    ops: [Counters; Op::ALL.len()],
}

impl StoreMetrics {
    fn counters(&self, op: Op) -> &Counters {
        &self.ops[op as usize]
    }

    fn record<T>(&self, op: Op, result: &Result<T>, bytes: u64) {
        let c = self.counters(op);
        c.requests.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(_) => {
                c.bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            Err(_) => {
                c.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Adds bytes received after the request finished (a get's streamed body).
    fn add_bytes(&self, op: Op, bytes: u64) {
        self.counters(op).bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A snapshot of one operation's counts.
    pub fn get(&self, op: Op) -> OpCounts {
        let c = self.counters(op);
        OpCounts {
            requests: c.requests.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
        }
    }
}

/// An object store that counts what goes through it.
#[derive(Debug)]
pub struct MetricsStore {
    inner: Arc<dyn ObjectStore>,
    metrics: Arc<StoreMetrics>,
}

impl MetricsStore {
    /// Wraps `inner`, counting into `metrics`.
    pub fn new(inner: Arc<dyn ObjectStore>, metrics: Arc<StoreMetrics>) -> Self {
        MetricsStore { inner, metrics }
    }
}

impl fmt::Display for MetricsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Metrics({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for MetricsStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let len = payload.content_length() as u64;
        let r = self.inner.put_opts(location, payload, opts).await;
        self.metrics.record(Op::Put, &r, len);
        r
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let r = self.inner.put_multipart_opts(location, opts).await;
        self.metrics.record(Op::PutMultipart, &r, 0);
        let upload = r?;
        Ok(Box::new(CountedUpload { inner: upload, metrics: self.metrics.clone() }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let r = self.inner.get_opts(location, options).await;
        self.metrics.record(Op::Get, &r, 0);
        let mut result = r?;
        // Count body bytes as they stream by.
        let metrics = self.metrics.clone();
        let payload = std::mem::replace(
            &mut result.payload,
            object_store::GetResultPayload::Stream(futures::stream::empty().boxed()),
        );
        result.payload = match payload {
            object_store::GetResultPayload::Stream(s) => object_store::GetResultPayload::Stream(
                s.inspect(move |chunk| {
                    if let Ok(b) = chunk {
                        metrics.add_bytes(Op::Get, b.len() as u64);
                    }
                })
                .boxed(),
            ),
            #[allow(unreachable_patterns)]
            other => {
                let len = result.range.end - result.range.start;
                metrics.add_bytes(Op::Get, len);
                other
            }
        };
        Ok(result)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let metrics = self.metrics.clone();
        self.inner
            .delete_stream(locations)
            .inspect(move |r| metrics.record(Op::Delete, r, 0))
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let c = self.metrics.counters(Op::List);
        c.requests.fetch_add(1, Ordering::Relaxed);
        let metrics = self.metrics.clone();
        self.inner
            .list(prefix)
            .inspect(move |r| {
                if r.is_err() {
                    metrics.counters(Op::List).errors.fetch_add(1, Ordering::Relaxed);
                }
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let r = self.inner.list_with_delimiter(prefix).await;
        self.metrics.record(Op::List, &r, 0);
        r
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let r = self.inner.copy_opts(from, to, options).await;
        self.metrics.record(Op::Copy, &r, 0);
        r
    }
}

/// A multipart upload whose parts and completion are counted as requests.
#[derive(Debug)]
struct CountedUpload {
    inner: Box<dyn MultipartUpload>,
    metrics: Arc<StoreMetrics>,
}

#[async_trait]
impl MultipartUpload for CountedUpload {
    fn put_part(&mut self, data: PutPayload) -> object_store::UploadPart {
        let len = data.content_length() as u64;
        let metrics = self.metrics.clone();
        let part = self.inner.put_part(data);
        async move {
            let r = part.await;
            metrics.record(Op::PutMultipart, &r, len);
            r
        }
        .boxed()
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let r = self.inner.complete().await;
        self.metrics.record(Op::PutMultipart, &r, 0);
        r
    }

    async fn abort(&mut self) -> Result<()> {
        let r = self.inner.abort().await;
        self.metrics.record(Op::PutMultipart, &r, 0);
        r
    }
}
