//! The bucket gateway: the object-store operations Shale uses, and nothing else — put a
//! segment with its index (one PUT, or multipart above `tier.multipart_threshold_bytes`),
//! put an object, put a
//! manifest only if absent, read a whole object or a byte range, read an object's metadata,
//! delete objects, list a prefix or its folders.
//!
//! Every request goes through one path (`Bucket::send`): fault injection ([`FaultControl`],
//! off unless a test or `SHALE_OBJECT_STORE_FAULTS` turns it on), a timeout per attempt
//! (`tier.request_timeout_ms`) that covers the answer's body too, retries of transient
//! failures with jittered exponential backoff (`tier.request_max_attempts`), then one count
//! in the [`StoreMetrics`]. The backend behind it is an `object_store::ObjectStore`: S3, the
//! durable `file://` directory ([`DurableLocal`](super::durable_local::DurableLocal)) or
//! memory.

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{
    GetOptions, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions,
    PutPayload,
};

use super::error::StoreError;
use super::fault::FaultControl;
use super::metrics::{Op, StoreMetrics};
use super::retry::{RetryPolicy, retry, timed_out};
use super::store::{StoreUrl, backend};
use crate::tier::TierSettings;
use shale_core::error::Error;

/// Multipart parts in flight per upload.
const PARTS_IN_FLIGHT: usize = 2;

/// Deletes in flight per [`Bucket::delete_many`].
const DELETES_IN_FLIGHT: usize = 4;

/// An object as a listing or a metadata read shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key.
    pub location: ObjectPath,
    /// Bytes.
    pub size: u64,
    /// When the store last wrote it, by the store's clock (ms since the epoch).
    pub last_modified_ms: i64,
}

impl From<ObjectMeta> for ObjectInfo {
    fn from(m: ObjectMeta) -> ObjectInfo {
        ObjectInfo {
            location: m.location,
            size: m.size,
            last_modified_ms: m.last_modified.timestamp_millis(),
        }
    }
}

/// The bucket a broker tiers to, with its metrics and (tests) fault switch.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub(crate) backend: Arc<dyn ObjectStore>,
    /// Key prefix of everything Shale writes (from the URL).
    pub prefix: ObjectPath,
    /// Request, error and byte counts per operation.
    pub metrics: Arc<StoreMetrics>,
    /// Fault injection around every request (inactive unless switched on).
    pub faults: Arc<FaultControl>,
    /// The URL it was built from, for messages.
    pub url: String,
    policy: RetryPolicy,
    upload: Arc<UploadLimits>,
}

/// How segments go up: part sizes and the memory their bodies may take at once.
#[derive(Debug)]
struct UploadLimits {
    /// Objects up to this go up in one PUT.
    threshold: u64,
    /// Parts of larger objects.
    part_bytes: u64,
    /// Bytes of upload bodies in memory, shared by every upload through this bucket.
    buffer: Arc<tokio::sync::Semaphore>,
    buffer_bytes: u64,
}

impl UploadLimits {
    fn new(tier: &TierSettings) -> UploadLimits {
        // Permits are bytes, counted as u32 per acquisition and usize in all.
        let buffer_bytes = tier.upload_buffer_bytes.clamp(1, u64::from(u32::MAX));
        UploadLimits {
            threshold: tier.multipart_threshold_bytes,
            part_bytes: tier.multipart_part_bytes.max(1),
            buffer: Arc::new(tokio::sync::Semaphore::new(buffer_bytes as usize)),
            buffer_bytes,
        }
    }

    /// Waits until `bytes` more of upload bodies fit in the buffer (a body larger than the
    /// whole buffer waits for all of it).
    async fn buffer(&self, bytes: u64) -> Result<tokio::sync::OwnedSemaphorePermit, Error> {
        let permits = u32::try_from(bytes.min(self.buffer_bytes)).unwrap_or(u32::MAX);
        self.buffer
            .clone()
            .acquire_many_owned(permits)
            .await
            .map_err(|_| Error::unavailable("the upload buffer is closed"))
    }
}

impl Bucket {
    /// The bucket at `url` (`s3://bucket/prefix`, `file:///path` or `memory://`) with the
    /// S3, retry and upload settings of `tier`.
    pub fn open(url: &str, tier: &TierSettings) -> Result<Bucket, Error> {
        let parsed = StoreUrl::parse(url)?;
        let backend = backend(&parsed, url, tier)?;
        Ok(Bucket::wrap(backend, parsed.prefix(), tier, url))
    }

    /// The gateway over `backend`, with the retry and upload settings of `tier` and faults
    /// from the environment (off without `SHALE_OBJECT_STORE_FAULTS`).
    pub fn wrap(
        backend: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
        tier: &TierSettings,
        url: &str,
    ) -> Bucket {
        let policy = RetryPolicy {
            max_attempts: tier.request_max_attempts.max(1),
            timeout: Duration::from_millis(tier.request_timeout_ms.max(1)),
            ..RetryPolicy::default()
        };
        Bucket {
            backend,
            prefix,
            metrics: Arc::default(),
            faults: Arc::new(FaultControl::from_env()),
            url: url.to_string(),
            policy,
            upload: Arc::new(UploadLimits::new(tier)),
        }
    }

    /// Writes `bytes` at `path` in one PUT, replacing any object there.
    pub async fn put(&self, path: &ObjectPath, bytes: Bytes) -> Result<(), StoreError> {
        self.put_payload(path, PutPayload::from(bytes)).await
    }

    /// Writes `payload` at `path` in one PUT, replacing any object there.
    async fn put_payload(&self, path: &ObjectPath, payload: PutPayload) -> Result<(), StoreError> {
        let len = payload.content_length() as u64;
        let sent =
            self.send(Op::Put, path, || self.backend.put_opts(path, payload.clone(), put_opts()));
        self.finish(Op::Put, path, len, sent.await).map(drop)
    }

    /// Writes `bytes` at `path` unless an object is there already (`AlreadyExists` then).
    ///
    /// A write that failed in a way that may have been applied (a timeout, a 5xx, a reset
    /// connection) is retried, and the retry then finds the first attempt's object: so a
    /// retry refused with `AlreadyExists` reads the object back, and it is this write's own
    /// when it holds the same bytes.
    pub async fn put_if_absent(&self, path: &ObjectPath, bytes: Bytes) -> Result<(), StoreError> {
        let len = bytes.len() as u64;
        let payload = PutPayload::from(bytes.clone());
        let create = || PutOptions::from(PutMode::Create);
        let sent =
            self.send(Op::Put, path, || self.backend.put_opts(path, payload.clone(), create()));
        let (result, attempts) = sent.await;
        let exists = matches!(
            result,
            Err(object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. })
        );
        // Only retries follow failures that may have been applied; a first attempt refused
        // is a real conflict.
        if !exists || attempts == 1 {
            return self.finish(Op::Put, path, len, (result, attempts)).map(drop);
        }
        let resolved = match self.get(path).await {
            Ok(found) if found == bytes => Ok(()),
            Ok(_) => Err(StoreError::AlreadyExists { op: Op::Put, path: path.clone() }),
            // Refused, yet not readable: an earlier attempt may still be in flight.
            Err(e) if e.is_not_found() => Err(StoreError::Failed {
                op: Op::Put,
                path: path.clone(),
                attempts,
                source: object_store::Error::Generic {
                    store: "bucket",
                    source: "a create-only put was refused, but the object is not there".into(),
                },
            }),
            Err(e) => Err(e),
        };
        tracing::debug!(%path, attempts, ours = resolved.is_ok(), "an ambiguous create-only put read back");
        self.metrics.record(Op::Put, resolved.is_ok(), len);
        resolved
    }

    /// Writes an object of `len` bytes read through `read(position, length)`, followed by
    /// `trailer` (a segment's index): one PUT up to `tier.multipart_threshold_bytes`, a
    /// multipart upload in parts of `tier.multipart_part_bytes` above it, the trailer in
    /// the last part. Every part, and a single PUT's body, is read only once it fits in the
    /// broker's upload buffer (`tier.upload_buffer_bytes`), so concurrent uploads of large
    /// parts cannot exhaust memory. A failed multipart upload is aborted; parts are not
    /// retried one by one (the caller uploads the object again).
    pub async fn put_segment<R, Fut>(
        &self,
        path: &ObjectPath,
        len: u64,
        trailer: Bytes,
        mut read: R,
    ) -> Result<(), Error>
    where
        R: FnMut(u64, u64) -> Fut,
        Fut: Future<Output = Result<Bytes, Error>>,
    {
        if len <= self.upload.threshold {
            let _buffer = self.upload.buffer(len + trailer.len() as u64).await?;
            let payload: PutPayload = [read(0, len).await?, trailer].into_iter().collect();
            return Ok(self.put_payload(path, payload).await?);
        }
        let sent = self.send(Op::PutMultipart, path, || self.backend.put_multipart(path));
        let mut upload = self.finish(Op::PutMultipart, path, 0, sent.await)?;
        let written = self.put_parts(path, &mut *upload, len, trailer, read).await;
        if written.is_err() {
            let aborted = self.once(Op::PutMultipart, path, 0, upload.abort()).await;
            if let Err(e) = aborted {
                tracing::debug!(%path, error = %e, "could not abort a multipart upload");
            }
        }
        written
    }

    /// How many requests [`Bucket::put_segment`] makes for a segment of `len` bytes (and
    /// its index): one PUT, or a multipart upload's start, parts and completion.
    pub fn put_requests(&self, len: u64) -> u64 {
        if len <= self.upload.threshold {
            return 1;
        }
        2 + len.div_ceil(self.upload.part_bytes).max(1)
    }

    async fn put_parts<R, Fut>(
        &self,
        path: &ObjectPath,
        upload: &mut dyn MultipartUpload,
        len: u64,
        trailer: Bytes,
        mut read: R,
    ) -> Result<(), Error>
    where
        R: FnMut(u64, u64) -> Fut,
        Fut: Future<Output = Result<Bytes, Error>>,
    {
        let mut in_flight = FuturesUnordered::new();
        let mut pos = 0;
        let mut trailer = Some(trailer);
        while pos < len || trailer.is_some() {
            let n = self.upload.part_bytes.min(len - pos);
            let last = pos + n == len;
            while in_flight.len() >= PARTS_IN_FLIGHT {
                if let Some(done) = in_flight.next().await {
                    done?;
                }
            }
            let tail = if last { trailer.take() } else { None };
            let size = n + tail.as_ref().map_or(0, |t| t.len() as u64);
            let buffer = self.upload.buffer(size).await?;
            let bytes = if n > 0 { read(pos, n).await? } else { Bytes::new() };
            let payload: PutPayload = std::iter::once(bytes).chain(tail).collect();
            let part = upload.put_part(payload);
            in_flight.push(async move {
                let done = self.once(Op::PutMultipart, path, size, part).await;
                drop(buffer);
                done
            });
            pos += n;
        }
        while let Some(done) = in_flight.next().await {
            done?;
        }
        self.once(Op::PutMultipart, path, 0, upload.complete()).await?;
        Ok(())
    }

    /// The whole object at `path`.
    pub async fn get(&self, path: &ObjectPath) -> Result<Bytes, StoreError> {
        self.read(path, GetOptions::default()).await
    }

    /// Bytes `range` of the object at `path`.
    pub async fn get_range(
        &self,
        path: &ObjectPath,
        range: Range<u64>,
    ) -> Result<Bytes, StoreError> {
        self.read(path, GetOptions::new().with_range(Some(range))).await
    }

    /// Reads the answer's body inside the attempt: its timeout and retries cover it.
    async fn read(&self, path: &ObjectPath, opts: GetOptions) -> Result<Bytes, StoreError> {
        let sent = self.send(Op::Get, path, || {
            let opts = opts.clone();
            async move {
                let answer = self.backend.get_opts(path, opts).await?;
                self.faults.body(Op::Get).await?;
                answer.bytes().await
            }
        });
        let (result, attempts) = sent.await;
        let len = result.as_ref().map_or(0, |b| b.len() as u64);
        self.finish(Op::Get, path, len, (result, attempts))
    }

    /// The size and last-modified time of the object at `path`.
    pub async fn head(&self, path: &ObjectPath) -> Result<ObjectInfo, StoreError> {
        let sent = self.send(Op::Get, path, || self.backend.head(path));
        self.finish(Op::Get, path, 0, sent.await).map(ObjectInfo::from)
    }

    /// Deletes the object at `path` (`NotFound` when there is none, on stores that say so).
    pub async fn delete(&self, path: &ObjectPath) -> Result<(), StoreError> {
        let sent = self.send(Op::Delete, path, || self.backend.delete(path));
        self.finish(Op::Delete, path, 0, sent.await)
    }

    /// Deletes every object of `paths`, a few at a time; one result per path, in order.
    pub async fn delete_many(&self, paths: &[ObjectPath]) -> Vec<Result<(), StoreError>> {
        let mut results = Vec::with_capacity(paths.len());
        for some in paths.chunks(DELETES_IN_FLIGHT) {
            results.extend(futures::future::join_all(some.iter().map(|p| self.delete(p))).await);
        }
        results
    }

    /// Best-effort removal of objects no manifest lists (the scrubber catches failures).
    pub(crate) async fn remove_quietly(&self, paths: &[ObjectPath]) {
        for result in self.delete_many(paths).await {
            match result {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => tracing::debug!(error = %e, "could not remove an unlisted object"),
            }
        }
    }

    /// Every object under `prefix`, at any depth.
    pub async fn list(&self, prefix: &ObjectPath) -> Result<Vec<ObjectInfo>, StoreError> {
        let sent = self.send(Op::List, prefix, || {
            self.backend.list(Some(prefix)).map_ok(ObjectInfo::from).try_collect::<Vec<_>>()
        });
        self.finish(Op::List, prefix, 0, sent.await)
    }

    /// The folders directly under `prefix`.
    pub async fn list_folders(&self, prefix: &ObjectPath) -> Result<Vec<ObjectPath>, StoreError> {
        let sent = self.send(Op::List, prefix, || self.backend.list_with_delimiter(Some(prefix)));
        self.finish(Op::List, prefix, 0, sent.await).map(|l| l.common_prefixes)
    }

    /// Sends a request (`attempt` makes one), with faults, a timeout per attempt and retries
    /// of transient failures; the last result and the attempts made.
    async fn send<T, F, Fut>(
        &self,
        op: Op,
        path: &ObjectPath,
        mut attempt: F,
    ) -> (object_store::Result<T>, u32)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = object_store::Result<T>>,
    {
        retry(&self.policy, op, path, || {
            let sent = attempt();
            async move {
                self.faults.before(op).await?;
                let answer = sent.await;
                self.faults.after(op, answer)
            }
        })
        .await
    }

    /// One attempt, not retried (a multipart part or completion): faults, a timeout, a count.
    async fn once<T>(
        &self,
        op: Op,
        path: &ObjectPath,
        bytes: u64,
        request: impl Future<Output = object_store::Result<T>>,
    ) -> Result<T, StoreError> {
        let attempt = async {
            self.faults.before(op).await?;
            let answer = request.await;
            self.faults.after(op, answer)
        };
        let result = match tokio::time::timeout(self.policy.timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(timed_out(self.policy.timeout)),
        };
        self.finish(op, path, bytes, (result, 1))
    }

    /// Counts a request's outcome (its `bytes` when it succeeded) and names its error.
    fn finish<T>(
        &self,
        op: Op,
        path: &ObjectPath,
        bytes: u64,
        (result, attempts): (object_store::Result<T>, u32),
    ) -> Result<T, StoreError> {
        self.metrics.record(op, result.is_ok(), bytes);
        result.map_err(|e| StoreError::new(op, path, attempts, e))
    }
}

fn put_opts() -> PutOptions {
    PutOptions::default()
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    fn bucket(attempts: u32, part_bytes: u64) -> Bucket {
        let tier = TierSettings {
            request_max_attempts: attempts,
            request_timeout_ms: 1_000,
            multipart_threshold_bytes: part_bytes,
            multipart_part_bytes: part_bytes,
            ..TierSettings::default()
        };
        Bucket::wrap(Arc::new(InMemory::new()), ObjectPath::default(), &tier, "memory://")
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_until_attempts_run_out() {
        let b = bucket(3, 1 << 20);
        let path = ObjectPath::from("a/b");
        b.faults.fail_next(2);
        b.put(&path, Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(b.get(&path).await.unwrap().as_ref(), b"x");
        b.faults.fail_next(3);
        let e = b.get(&path).await.unwrap_err();
        assert!(matches!(e, StoreError::Failed { attempts: 3, .. }), "{e}");
        assert!(e.to_string().contains("a/b"), "names the object: {e}");
        // Deletes are retried too; not-found is final.
        b.faults.fail_next(1);
        b.delete(&path).await.unwrap();
        assert!(b.head(&path).await.unwrap_err().is_not_found());
        let puts = b.metrics.get(Op::Put);
        assert_eq!((puts.requests, puts.errors, puts.bytes), (1, 0, 1), "one put, after retries");
        let gets = b.metrics.get(Op::Get);
        assert_eq!((gets.requests, gets.errors), (3, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn gets_wait_the_configured_latency_and_puts_do_not() {
        let b = bucket(1, 1 << 20);
        let path = ObjectPath::from("a");
        b.faults.set_get_latency(Duration::from_millis(30));
        let t = shale_core::clock::monotonic_now();
        b.put(&path, Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(t.elapsed(), Duration::ZERO, "puts are not delayed");
        assert_eq!(b.get(&path).await.unwrap().as_ref(), b"x");
        assert_eq!(t.elapsed(), Duration::from_millis(30), "the GET waited 30 ms");
        assert_eq!(b.faults.injected(), 0, "latency is not a failure");
    }

    /// Before: a create-only put whose first answer was lost after the store applied it was
    /// retried blindly, and the retry's "already exists" failed the write.
    #[tokio::test(start_paused = true)]
    async fn an_ambiguous_create_only_put_reads_back_to_tell_its_own_write_from_a_conflict() {
        let b = bucket(3, 1 << 20);
        let mine = ObjectPath::from("p/manifest-1.json");
        b.faults.lose_next_answers(1);
        b.put_if_absent(&mine, Bytes::from_static(b"mine")).await.unwrap();
        assert_eq!(b.faults.injected(), 1, "the first answer was lost");
        assert_eq!(b.get(&mine).await.unwrap().as_ref(), b"mine");
        let puts = b.metrics.get(Op::Put);
        assert_eq!((puts.requests, puts.errors, puts.bytes), (1, 0, 4));

        // Someone else's object: refused at once, or after a read-back that finds other bytes.
        let theirs = ObjectPath::from("p/manifest-2.json");
        b.put(&theirs, Bytes::from_static(b"theirs")).await.unwrap();
        let e = b.put_if_absent(&theirs, Bytes::from_static(b"mine")).await.unwrap_err();
        assert!(matches!(e, StoreError::AlreadyExists { .. }), "{e}");
        b.faults.fail_next(1);
        let e = b.put_if_absent(&theirs, Bytes::from_static(b"mine")).await.unwrap_err();
        assert!(matches!(e, StoreError::AlreadyExists { .. }), "after a retry: {e}");
        assert_eq!(b.get(&theirs).await.unwrap().as_ref(), b"theirs", "nothing overwritten");
        assert_eq!(b.metrics.get(Op::Put).errors, 2);
    }

    /// Before: a ranged GET's body was read after the retry and the per-attempt timeout had
    /// returned, so a body that broke off failed the read and one that stalled hung it.
    #[tokio::test(start_paused = true)]
    async fn a_body_that_breaks_off_or_stalls_is_retried_within_the_timeout() {
        let b = bucket(3, 1 << 20);
        let path = ObjectPath::from("seg.log");
        let data = Bytes::from((0..100u8).collect::<Vec<_>>());
        b.put(&path, data.clone()).await.unwrap();
        b.faults.break_next_bodies(1);
        assert_eq!(b.get_range(&path, 10..20).await.unwrap(), data.slice(10..20));
        let t = shale_core::clock::monotonic_now();
        b.faults.stall_next_bodies(1);
        assert_eq!(b.get_range(&path, 20..30).await.unwrap(), data.slice(20..30));
        assert!(t.elapsed() >= Duration::from_secs(1), "the stalled body timed out first");
        assert_eq!(b.faults.injected(), 2);
        let gets = b.metrics.get(Op::Get);
        assert_eq!((gets.requests, gets.errors, gets.bytes), (2, 0, 20));
    }

    #[tokio::test(start_paused = true)]
    async fn segments_above_the_part_size_go_up_in_parts_and_a_failed_part_aborts() {
        let b = bucket(3, 10);
        let data = Bytes::from((0..25u8).collect::<Vec<_>>());
        let read = |pos: u64, len: u64| {
            let part = data.slice(pos as usize..(pos + len) as usize);
            async move { Ok(part) }
        };
        let index = Bytes::from_static(b"index");
        let small = ObjectPath::from("small.log");
        b.put_segment(&small, 10, index.clone(), read).await.unwrap();
        assert_eq!(b.get(&small).await.unwrap(), [&data[..10], b"index"].concat());
        assert_eq!(b.metrics.get(Op::Put).requests, 1, "up to the threshold: one PUT");

        let big = ObjectPath::from("big.log");
        b.put_segment(&big, 25, index.clone(), read).await.unwrap();
        assert_eq!(b.get(&big).await.unwrap(), [&data[..], b"index"].concat());
        let parts = b.metrics.get(Op::PutMultipart);
        assert_eq!((parts.requests, parts.bytes), (5, 30), "start, three parts, completion");
        // A body that ends on a part boundary: the index goes in the last part all the same.
        let even = ObjectPath::from("even.log");
        b.put_segment(&even, 20, index.clone(), read).await.unwrap();
        assert_eq!(b.get(&even).await.unwrap(), [&data[..20], b"index"].concat());
        let parts = b.metrics.get(Op::PutMultipart);
        assert_eq!(parts.requests, 5 + 4, "start, two parts, completion");

        // The second part fails (parts are not retried): the upload is aborted.
        let failed = ObjectPath::from("failed.log");
        let faults = b.faults.clone();
        let failing = |pos: u64, len: u64| {
            if pos == 10 {
                faults.fail_next(1);
            }
            read(pos, len)
        };
        let e = b.put_segment(&failed, 25, index, failing).await.unwrap_err();
        assert!(e.message.contains("failed.log"), "{e}");
        assert!(b.get(&failed).await.unwrap_err().is_not_found(), "nothing was completed");
    }
}
