//! Tiering on a broker: the uploader and remote retention for the partitions it leads, and
//! the tier pointers every hosted replica learns (for local retention, cold reads and
//! where a replica with an empty disk starts).
//!
//! Per led partition with `remote.storage.enable`, one pass: read the current manifest;
//! while the sealed segment holding the manifest's end offset lies wholly below the high
//! watermark, upload it (sliced from that offset, with an index of its own), then commit a
//! manifest with it appended, fenced by leader epoch. A new leader resumes at the
//! manifest's end, so nothing is uploaded twice into the manifest and nothing is skipped.
//! Then remote retention: a manifest without the expired segments first, their objects
//! after. Local copies go only below the tiered end (`Partition::apply_retention`).

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use tokio::time::Instant;

use super::{Broker, Partition};
use shale_core::error::Error;
use shale_meta::{KeyValue, Versioned};
use shale_storage::log::UploadSlice;
use shale_storage::tier::catalog::Current;
use shale_storage::tier::manifest::names;
use shale_storage::tier::{Bucket, Catalog, ObjectInfo, PartitionRef, RemoteSegment, TierPointer};

pub(super) fn start(broker: &Arc<Broker>) {
    if broker.remote.is_none() {
        return;
    }
    let every = Duration::from_millis(broker.settings.tier.upload_interval_ms.max(10));
    let scrub_every = Duration::from_millis(broker.settings.tier.scrub_interval_ms.max(100));
    let handles = [
        tokio::spawn(upload_loop(Arc::downgrade(broker), every)),
        tokio::spawn(scrub_loop(Arc::downgrade(broker), scrub_every)),
    ];
    if let Ok(mut tasks) = broker.tasks.lock() {
        tasks.extend(handles);
    }
}

impl Broker {
    /// Applies a tier pointer from the store (`tier/{topic}/{p}`) to the hosted replica.
    pub(super) fn apply_tier_pointer(&self, kv: KeyValue) {
        let Some((topic, partition)) = self.topics.keys().parse_tier(&kv.key) else { return };
        let Some(p) = self.hosted_partition(&topic, partition) else { return };
        let Some(remote) = p.remote() else { return };
        match Versioned::<TierPointer>::decode(kv) {
            Ok(v) => remote.set_pointer(Some(v.value)),
            Err(e) => tracing::warn!(%topic, partition, error = %e, "invalid tier pointer"),
        }
    }

    /// Reads every tier pointer and applies those of hosted partitions.
    pub(super) async fn load_tier_pointers(&self) -> Result<(), Error> {
        if self.remote.is_none() {
            return Ok(());
        }
        let keys = self.topics.keys();
        for kv in self.topics.store().range(&keys.all_tiers()).await?.kvs {
            self.apply_tier_pointer(kv);
        }
        Ok(())
    }

    /// Whether `key` is a tier pointer (handled without a full metadata resync).
    pub(super) fn is_tier_key(&self, key: &str) -> bool {
        key.starts_with(&self.topics.keys().all_tiers())
    }
}

/// Spreads uploads over time to stay under `tier.upload_bytes_per_sec` (0 = unlimited).
#[derive(Debug)]
struct Throttle {
    bytes_per_sec: u64,
    next_free: tokio::sync::Mutex<Instant>,
}

impl Throttle {
    fn new(bytes_per_sec: u64) -> Throttle {
        Throttle { bytes_per_sec, next_free: tokio::sync::Mutex::new(Instant::now()) }
    }

    /// Waits until `bytes` more may be sent.
    async fn take(&self, bytes: u64) {
        if self.bytes_per_sec == 0 {
            return;
        }
        let at = {
            let mut next = self.next_free.lock().await;
            let now = Instant::now();
            let at = (*next).max(now);
            *next = at + Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

async fn upload_loop(broker: Weak<Broker>, every: Duration) {
    let throttle = {
        let Some(b) = broker.upgrade() else { return };
        Arc::new(Throttle::new(b.settings.tier.upload_bytes_per_sec))
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(b) = broker.upgrade() else { return };
        if b.check_serving().is_err() || b.is_draining() {
            continue;
        }
        // Held for the whole pass: a drain waits for it (uploads in flight finish).
        let _pass = b.upload_pass.clone().lock_owned().await;
        let Some(catalog) = b.catalog().cloned() else { return };
        let led: Vec<Arc<Partition>> =
            b.hosted().into_iter().filter(|p| p.is_leader() && p.remote().is_some()).collect();
        let concurrency = b.settings.tier.upload_concurrency.max(1);
        let clock = b.clock.clone();
        let membership = b.membership().clone();
        drop(b);
        futures::stream::iter(led)
            .for_each_concurrent(concurrency, |p| {
                let catalog = catalog.clone();
                let throttle = throttle.clone();
                let clock = clock.clone();
                let membership = membership.clone();
                async move {
                    let tiered = tier_partition(&catalog, &p, &throttle, &clock, &membership);
                    if let Err(e) = tiered.await {
                        tracing::warn!(
                            topic = p.topic(),
                            partition = p.index(),
                            error = %e,
                            "tiering pass failed; retrying on the next one"
                        );
                    }
                }
            })
            .await;
    }
}

/// One tiering pass over a led partition: uploads, then remote retention.
async fn tier_partition(
    catalog: &Arc<Catalog>,
    p: &Arc<Partition>,
    throttle: &Throttle,
    clock: &shale_core::clock::SharedClock,
    membership: &shale_meta::membership::Membership,
) -> Result<(), Error> {
    let Some(remote) = p.remote() else { return Ok(()) };
    let (leader, epoch) = p.leadership();
    let leads = |p: &Partition| p.leadership() == (leader, epoch) && p.is_leader();
    if !leads(p) {
        return Ok(());
    }
    let pref = remote.partition_ref().clone();
    let config = p.config();
    let pointer_known = remote.pointer().is_some();
    if !config.remote_storage_enable && !pointer_known {
        return Ok(());
    }
    let mut current = catalog.current(&pref).await?;
    remote.set_pointer(current.pointer.clone());
    while config.remote_storage_enable && leads(p) {
        let local_start = p.log().log_start_offset();
        let from = current.manifest.end_offset().unwrap_or(local_start);
        if from < local_start {
            tracing::error!(
                topic = p.topic(),
                partition = p.index(),
                remote_end = from,
                local_start,
                "offsets between the remote log end and the local log start are gone; \
                 tiering of this partition stops"
            );
            return Ok(());
        }
        let log = p.log().clone();
        let slice = tokio::task::spawn_blocking(move || log.upload_slice(from))
            .await
            .map_err(|e| Error::internal(format!("upload slice task failed: {e}")))??;
        let Some(slice) = slice else { break };
        if slice.next_offset > p.high_watermark() {
            break;
        }
        let slice = Arc::new(slice);
        current =
            upload_one(catalog, p, &pref, &current, slice, epoch, throttle, membership.lease())
                .await?;
        remote.set_pointer(current.pointer.clone());
    }
    if leads(p) && !current.manifest.segments.is_empty() {
        expire_remote(catalog, p, &pref, current, epoch, clock.now_ms()).await?;
    }
    Ok(())
}

/// Uploads one slice (data, then index) and commits a manifest listing it.
#[allow(clippy::too_many_arguments)]
async fn upload_one(
    catalog: &Arc<Catalog>,
    p: &Arc<Partition>,
    pref: &PartitionRef,
    current: &Current,
    slice: Arc<UploadSlice>,
    epoch: i32,
    throttle: &Throttle,
    lease: shale_meta::LeaseId,
) -> Result<Current, Error> {
    let stem = names::segment_stem(slice.base_offset, epoch);
    let log_path = catalog.object(pref, &names::log(&stem));
    let index_path = catalog.object(pref, &names::index(&stem));
    let bucket = catalog.bucket();
    let started = Instant::now();
    let claim = catalog.claim_upload(pref, &stem, lease).await?;
    let uploaded = async {
        put_slice(bucket, &log_path, &slice, throttle).await?;
        bucket.put(&index_path, Bytes::from(slice.index.clone())).await?;
        Ok::<_, Error>(())
    };
    if let Err(e) = uploaded.await {
        remove_quietly(bucket, &[log_path, index_path]).await;
        catalog.release_upload(&claim).await;
        return Err(e);
    }
    shale_core::failpoint::hit("tier.after_segment_put");
    // A slow or paused uploader, for the scrubber tests.
    shale_core::failpoint::hold("tier.hold_before_commit").await;
    let segment = RemoteSegment {
        base_offset: slice.base_offset,
        next_offset: slice.next_offset,
        size_bytes: slice.len,
        max_timestamp: slice.max_timestamp,
        upload_epoch: epoch,
        name: stem,
    };
    let mut segments = current.manifest.segments.clone();
    segments.push(segment.clone());
    match catalog.commit_upload(pref, current, segments, epoch, &claim).await {
        Ok(next) => {
            shale_core::failpoint::hit("tier.after_commit");
            if let Some(remote) = p.remote() {
                remote.reader().remember_index(pref, &segment, &slice.index).await;
            }
            tracing::info!(
                topic = p.topic(),
                partition = p.index(),
                base_offset = slice.base_offset,
                next_offset = slice.next_offset,
                bytes = slice.len,
                ms = started.elapsed().as_millis() as u64,
                "segment tiered"
            );
            Ok(next)
        }
        Err(e) => {
            // Not in any manifest: nobody reads them.
            remove_quietly(bucket, &[log_path, index_path]).await;
            catalog.release_upload(&claim).await;
            Err(e)
        }
    }
}

/// Writes the slice to `path` (one PUT, or multipart above the part size), read from the
/// local segment as it is sent and paced by the upload throttle.
async fn put_slice(
    bucket: &Bucket,
    path: &ObjectPath,
    slice: &Arc<UploadSlice>,
    throttle: &Throttle,
) -> Result<(), Error> {
    let read = |pos: u64, len: u64| {
        let slice = slice.clone();
        async move {
            throttle.take(len).await;
            let bytes = tokio::task::spawn_blocking(move || slice.read(pos, len as usize))
                .await
                .map_err(|e| Error::internal(format!("segment read task failed: {e}")))??;
            Ok(Bytes::from(bytes))
        }
    };
    bucket.put_segment(path, slice.len, read).await
}

/// Best-effort removal of objects no manifest lists (the scrubber catches failures).
async fn remove_quietly(bucket: &Bucket, paths: &[ObjectPath]) {
    for result in bucket.delete_many(paths).await {
        match result {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => tracing::debug!(error = %e, "could not remove an unlisted object"),
        }
    }
}

/// Remote retention: drops the oldest remote segments past `retention.ms`, or while the
/// partition stays at or above `retention.bytes` without them; the manifest first, the
/// objects after. The newest remote segment stays, so the remote log keeps its end offset.
async fn expire_remote(
    catalog: &Arc<Catalog>,
    p: &Arc<Partition>,
    pref: &PartitionRef,
    current: Current,
    epoch: i32,
    now_ms: i64,
) -> Result<(), Error> {
    let config = p.config();
    let segments = &current.manifest.segments;
    let tiered_end = current.manifest.end_offset().unwrap_or(0);
    // Local bytes not in the bucket (later sealed segments, the active one) count towards
    // the partition's size too.
    let sealed = p.log().sealed_ranges();
    let sealed_bytes: u64 = sealed.iter().map(|s| s.size).sum();
    let active_bytes = p.log().size_bytes().saturating_sub(sealed_bytes);
    let local_only =
        sealed.iter().filter(|s| s.base >= tiered_end).map(|s| s.size).sum::<u64>() + active_bytes;
    let mut total = current.manifest.size_bytes() + local_only;
    let mut expired = 0;
    for seg in &segments[..segments.len() - 1] {
        let by_size =
            config.retention_bytes >= 0 && total - seg.size_bytes >= config.retention_bytes as u64;
        let by_time = config.retention_ms >= 0
            && seg.max_timestamp >= 0
            && now_ms.saturating_sub(seg.max_timestamp) > config.retention_ms;
        if !by_size && !by_time {
            break;
        }
        total -= seg.size_bytes;
        expired += 1;
    }
    if expired == 0 {
        return Ok(());
    }
    let kept = segments[expired..].to_vec();
    let next = catalog.commit(pref, &current, kept, epoch).await?;
    if let Some(remote) = p.remote() {
        remote.set_pointer(next.pointer.clone());
    }
    let doomed: Vec<ObjectPath> = segments[..expired]
        .iter()
        .flat_map(|s| {
            [
                catalog.object(pref, &names::log(&s.name)),
                catalog.object(pref, &names::index(&s.name)),
            ]
        })
        .collect();
    remove_quietly(catalog.bucket(), &doomed).await;
    tracing::info!(
        topic = p.topic(),
        partition = p.index(),
        segments = expired,
        remote_start = next.manifest.start_offset().unwrap_or(-1),
        "remote retention deleted segments"
    );
    Ok(())
}

/// What the scrubber found and removed, since the broker started.
#[derive(Debug, Default)]
pub struct ScrubStats {
    /// Objects no manifest lists (or of deleted topics), seen by a pass.
    pub orphans_found: std::sync::atomic::AtomicU64,
    /// Of those, removed (older than `tier.orphan_grace_ms`).
    pub orphans_deleted: std::sync::atomic::AtomicU64,
    /// Completed passes.
    pub passes: std::sync::atomic::AtomicU64,
    /// Orphans the last pass left in the bucket (inside the grace period, or failed to
    /// delete).
    pub orphans_pending: std::sync::atomic::AtomicU64,
    /// Last-modified time (ms) of the oldest orphan the last pass left, or -1: the
    /// deletion lag is now minus this.
    pub oldest_pending_ms: std::sync::atomic::AtomicI64,
}

/// Orphans a pass left behind: how many, and the oldest one's last-modified time.
#[derive(Debug, Default)]
struct Pending {
    count: u64,
    oldest_ms: Option<i64>,
}

impl Pending {
    fn add(&mut self, object: &ObjectInfo) {
        self.count += 1;
        let ms = object.last_modified_ms;
        self.oldest_ms = Some(self.oldest_ms.map_or(ms, |o| o.min(ms)));
    }
}

async fn scrub_loop(broker: Weak<Broker>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(b) = broker.upgrade() else { return };
        if b.check_serving().is_err() {
            continue;
        }
        if let Err(e) = scrub(&b).await {
            tracing::warn!(error = %e, "bucket scrub failed; retrying on the next pass");
        }
    }
}

/// The object store's current time (ms): the last-modified stamp of a small object this
/// broker rewrites once per scrub pass.
async fn store_now_ms(catalog: &Catalog, broker: i32) -> Result<i64, Error> {
    let path = catalog.cluster_folder().join(format!(".clock-{broker}"));
    catalog.bucket().put(&path, Bytes::from_static(b"scrubber clock")).await?;
    Ok(catalog.bucket().head(&path).await?.last_modified_ms)
}

/// One scrubber pass: the folders of partitions this broker leads (objects no manifest
/// lists), and on the controller the folders of topics that no longer exist.
pub(super) async fn scrub(b: &Arc<Broker>) -> Result<(), Error> {
    let Some(catalog) = b.catalog().cloned() else { return Ok(()) };
    let grace_ms = b.settings.tier.orphan_grace_ms as i64;
    let stats = &b.scrub_stats;
    let bucket = catalog.bucket();
    // Ages are judged by the store's clock, which stamped the objects: a broker clock that
    // runs ahead would otherwise make young objects look old.
    let now_ms = store_now_ms(&catalog, b.id).await?;
    let mut pending = Pending::default();
    for p in b.hosted().into_iter().filter(|p| p.is_leader()) {
        let Some(remote) = p.remote() else { continue };
        let pref = remote.partition_ref().clone();
        // List first, then read the manifest: whatever was committed before the read is
        // known to be referenced.
        let listed = bucket.list(&catalog.folder(&pref)).await?;
        if listed.is_empty() {
            continue;
        }
        // Claims after the listing, the manifest after the claims: a listed object that is
        // neither claimed by an upload in flight then nor in the manifest read after belongs
        // to no upload that can still commit (a commit removes its claim atomically).
        let claimed = catalog.uploads_in_flight(&pref).await?;
        let current = catalog.current(&pref).await?;
        let mut keep: std::collections::HashSet<String> =
            current.manifest.segments.iter().map(|s| s.name.clone()).collect();
        if let Some(ptr) = &current.pointer {
            keep.insert(ptr.manifest.clone());
        }
        let mut doomed = Vec::new();
        for meta in listed {
            let name = meta.location.filename().unwrap_or_default().to_string();
            let referenced = match names::kind(&name) {
                names::Kind::Segment(stem) => keep.contains(&stem) || claimed.contains(&stem),
                // A manifest newer than the current one may be a commit in flight.
                names::Kind::Manifest => {
                    keep.contains(&name)
                        || names::manifest_seq(&name).is_none_or(|s| s > current.manifest.seq)
                }
                names::Kind::Other => true,
            };
            if referenced {
                continue;
            }
            stats.orphans_found.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if now_ms - meta.last_modified_ms >= grace_ms {
                doomed.push(meta);
            } else {
                pending.add(&meta);
            }
        }
        delete_orphans(bucket, &doomed, stats, p.topic(), &mut pending).await;
    }
    if b.controller_id() == b.id {
        let known: std::collections::HashSet<String> = match b.cache.read() {
            Ok(c) => {
                c.topics.values().map(|t| format!("{}-{}", t.record.name, t.record.id)).collect()
            }
            Err(_) => return Err(Error::internal("metadata cache poisoned")),
        };
        for folder in bucket.list_folders(&catalog.cluster_folder()).await? {
            let name = folder.filename().unwrap_or_default().to_string();
            if known.contains(&name) {
                continue;
            }
            let listed = bucket.list(&folder).await?;
            stats
                .orphans_found
                .fetch_add(listed.len() as u64, std::sync::atomic::Ordering::Relaxed);
            let (doomed, young): (Vec<_>, Vec<_>) =
                listed.into_iter().partition(|m| now_ms - m.last_modified_ms >= grace_ms);
            young.iter().for_each(|m| pending.add(m));
            delete_orphans(bucket, &doomed, stats, &name, &mut pending).await;
        }
    }
    use std::sync::atomic::Ordering::Relaxed;
    stats.orphans_pending.store(pending.count, Relaxed);
    stats.oldest_pending_ms.store(pending.oldest_ms.unwrap_or(-1), Relaxed);
    stats.passes.fetch_add(1, Relaxed);
    Ok(())
}

async fn delete_orphans(
    bucket: &Bucket,
    doomed: &[ObjectInfo],
    stats: &ScrubStats,
    what: &str,
    pending: &mut Pending,
) {
    if doomed.is_empty() {
        return;
    }
    let paths: Vec<ObjectPath> = doomed.iter().map(|o| o.location.clone()).collect();
    let mut deleted = 0;
    for (object, result) in doomed.iter().zip(bucket.delete_many(&paths).await) {
        match result {
            Ok(()) => deleted += 1,
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                pending.add(object);
                tracing::warn!(error = %e, "could not remove an orphan object");
            }
        }
    }
    stats.orphans_deleted.fetch_add(deleted, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(folder = what, deleted, "scrubber removed orphan objects");
}
