//! The remote compactor: a compacted topic's segments in the bucket, compacted by the
//! rules of the local cleaner (`crate::clean`), by the partition's leader after its upload
//! pass (so no upload or remote retention runs beside it).
//!
//! One compaction: map the keys of the dirty remote segments (from the last compaction's
//! cleaning point to the remote end, or until the offset map is full: the cleaning point),
//! reading them in bounded ranged GETs (`batches`); clean every segment from the remote
//! start through the one holding the point against the map, consecutive ones together
//! while their cleaned bytes and the next one's stay within `segment.bytes` (so small ones
//! merge), each group into a replacement segment spooled on local disk
//! (`spool`) and uploaded under a new name (a name is never reused) and an upload claim;
//! then one commit swaps them into the manifest: a checkpoint listing the replacements,
//! the cleaning point and its time (`Manifest::compacted`, for `delete.retention.ms`), and
//! the replaced segments as `retired`, fenced by the pointer's compare-and-swap and the
//! claims. Before the commit nothing a reader sees changed (a crash leaves unclaimed
//! objects the scrubber removes); after it, a reader holding the manifest of before still
//! finds the replaced objects for `tier.orphan_grace_ms`, after which the scrubber deletes
//! them. A group of one segment that cleaning left unchanged keeps its object.
//!
//! Local segments are not read: the local cleaner of a tiered topic cleans only what is
//! already in the bucket, so every record, tombstones included, reaches the bucket as it
//! was produced, and the remote compactor removes what later records replaced once they
//! are uploaded too.

mod batches;
mod plan;
mod spool;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use bytes::Bytes;

use self::batches::Batches;
use self::spool::{Spool, Spooled};
use super::catalog::{Current, Next, PartitionRef, UploadClaim};
use super::manifest::{RemoteSegment, Retired, names};
use super::partition::TierPartition;
use super::reader::RemoteReader;
use super::throttle::Throttle;
use crate::clean::{OffsetMap, Rules, map_batch};
use crate::log::marks::{add_horizon, tombstones_below};
use shale_core::error::Error;
use shale_core::record::control::{AbortedSet, AbortedTxn};
use shale_core::record::{BatchHeader, Limits};
use shale_meta::LeaseId;

pub(crate) use plan::{Plan, plan};

/// Bytes of one ranged GET of a segment being compacted.
pub const RANGE_BYTES: u64 = 8 << 20;

/// The most replacements one compaction commits: each claim is a compare and a delete in
/// the commit's metadata transaction, which takes at most [`shale_meta::MAX_TXN_OPS`] of
/// each. A compaction that reaches it stops there, at a source boundary (its cleaning
/// point); the next goes on.
pub const MAX_REPLACEMENTS: usize = shale_meta::MAX_TXN_OPS / 2;

/// What remote compaction did, since the broker started.
#[derive(Debug, Default)]
pub struct CompactionStats {
    /// Compactions committed.
    pub compactions: AtomicU64,
    /// Compactions that failed (tried again at the next pass).
    pub failures: AtomicU64,
    /// Bytes read from the bucket.
    pub bytes_read: AtomicU64,
    /// Bytes of replacement segments written.
    pub bytes_written: AtomicU64,
    /// Bytes the committed compactions removed from the remote log.
    pub bytes_removed: AtomicU64,
    /// Bucket requests made (GETs, PUTs and multipart parts, LISTs).
    pub requests: AtomicU64,
    /// When the last compaction was committed (ms), or 0.
    pub last_ms: AtomicI64,
}

/// One broker's remote compactor: one compaction at a time, with one offset map.
#[derive(Debug)]
pub struct RemoteCompactor {
    spool_dir: PathBuf,
    map_bytes: usize,
    /// Allocated at the first compaction, kept after.
    map: Arc<std::sync::Mutex<Option<OffsetMap>>>,
    /// Held by the compaction running; another partition's waits for a later pass.
    busy: tokio::sync::Mutex<()>,
    /// [`MAX_REPLACEMENTS`], lower in tests.
    max_replacements: usize,
    /// What it did.
    pub stats: Arc<CompactionStats>,
}

/// What a compaction needs from the uploader that runs it.
pub(crate) struct Context<'a> {
    pub(crate) reader: &'a RemoteReader,
    pub(crate) throttle: &'a Throttle,
    pub(crate) lease: LeaseId,
    pub(crate) now_ms: i64,
}

impl RemoteCompactor {
    /// A compactor spooling replacement segments in `spool_dir` (emptied of any a crash
    /// left), with an offset map of `map_bytes`, counting in `stats`.
    pub fn new(
        spool_dir: PathBuf,
        map_bytes: usize,
        stats: Arc<CompactionStats>,
    ) -> Result<RemoteCompactor, Error> {
        let _ = std::fs::remove_dir_all(&spool_dir);
        std::fs::create_dir_all(&spool_dir)
            .map_err(|e| Error::internal(format!("cannot create {}: {e}", spool_dir.display())))?;
        Ok(RemoteCompactor {
            spool_dir,
            map_bytes,
            map: Arc::new(std::sync::Mutex::new(None)),
            busy: tokio::sync::Mutex::new(()),
            max_replacements: MAX_REPLACEMENTS,
            stats,
        })
    }

    /// Compacts the remote log of `p` (led at `epoch`, whose manifest is `current`) if it
    /// is a compacted topic and a compaction is due; returns the manifest after.
    pub(crate) async fn compact<P: TierPartition + ?Sized>(
        &self,
        cx: &Context<'_>,
        p: &P,
        current: Current,
        epoch: i32,
    ) -> Result<Current, Error> {
        let config = p.topic_config();
        if !config.cleanup_policy.compacts() {
            return Ok(current);
        }
        let plan = plan(&current.manifest, &config, cx.now_ms);
        if !plan.due {
            return Ok(current);
        }
        let Ok(_busy) = self.busy.try_lock() else { return Ok(current) };
        let pref = p.tier_ref();
        let leading = || p.leading_epoch() == Some(epoch);
        // What this replica knows, and what the bucket lists (its history may be shorter).
        let mut known = p.aborted_transactions();
        known.extend(current.manifest.aborted_txns());
        known.sort_unstable_by_key(|t| t.last_offset);
        known.dedup();
        let aborted = Arc::new(AbortedSet::new(known.iter().copied()));
        let mut run = Run {
            compactor: self,
            cx,
            pref: &pref,
            leading: &leading,
            aborted,
            known,
            requests: 0,
            read: 0,
        };
        let started = shale_core::clock::monotonic_now();
        let before = current.manifest.size_bytes();
        match run.compact(&current, &config, plan, epoch).await {
            Ok(next) => {
                let s = &self.stats;
                let after = next.manifest.size_bytes();
                s.compactions.fetch_add(1, Relaxed);
                s.bytes_read.fetch_add(run.read, Relaxed);
                s.bytes_removed.fetch_add(before.saturating_sub(after), Relaxed);
                s.requests.fetch_add(run.requests, Relaxed);
                s.last_ms.store(cx.now_ms, Relaxed);
                let gib = run.read as f64 / f64::from(1u32 << 30);
                tracing::info!(
                    topic = %pref.topic,
                    partition = pref.partition,
                    bytes_before = before,
                    bytes_after = after,
                    bytes_read = run.read,
                    requests = run.requests,
                    requests_per_gib = (run.requests as f64 / gib.max(f64::MIN_POSITIVE)) as u64,
                    ms = started.elapsed().as_millis() as u64,
                    "remote log compacted"
                );
                Ok(next)
            }
            Err(e) => {
                // Leadership moving away stops a compaction; that is no failure.
                if leading() {
                    self.stats.failures.fetch_add(1, Relaxed);
                }
                self.stats.requests.fetch_add(run.requests, Relaxed);
                self.stats.bytes_read.fetch_add(run.read, Relaxed);
                Err(e)
            }
        }
    }
}

/// One compaction in progress, counting its requests and bytes read.
struct Run<'a> {
    compactor: &'a RemoteCompactor,
    cx: &'a Context<'a>,
    pref: &'a PartitionRef,
    /// Whether this broker still leads the partition at the compaction's epoch: it stops
    /// between segments once not (a drain waits for the upload pass it runs in).
    leading: &'a (dyn Fn() -> bool + Sync),
    /// The aborted transactions: their records are removed and shadow nothing.
    aborted: Arc<AbortedSet>,
    /// The same as a list: replacement segments list those whose marker they hold.
    known: Vec<AbortedTxn>,
    requests: u64,
    read: u64,
}

/// A replacement uploaded but not yet committed.
struct Uploaded {
    segment: RemoteSegment,
    index: Vec<u8>,
    claim: UploadClaim,
}

impl Run<'_> {
    async fn compact(
        &mut self,
        current: &Current,
        config: &shale_core::topic_config::TopicConfig,
        plan: Plan,
        epoch: i32,
    ) -> Result<Current, Error> {
        let m = &current.manifest;
        let cleanable = &m.segments[..plan.cleanable];
        let point = self.map_dirty(cleanable, plan.first_dirty).await?;
        let sources: Vec<&RemoteSegment> =
            cleanable.iter().take_while(|s| s.base_offset < point).collect();
        let rules = Arc::new(Rules {
            tombstones_below: tombstones_below(
                &m.compacted,
                self.cx.now_ms,
                config.delete_retention_ms,
            )
            .min(point),
            last_batches: HashSet::new(),
            aborted: (*self.aborted).clone(),
            abort_markers: false,
        });
        let mut replaced = Vec::new();
        let mut uploaded: Vec<Uploaded> = Vec::new();
        let mut segments = Vec::new();
        // Where the rewrite stopped: the cleaning point, or the first source left as it was
        // once this compaction has as many replacements as one commit can claim.
        let (mut at, mut done) = (0, point);
        while at < sources.len() {
            if !(self.leading)() {
                self.abandon(&uploaded).await;
                return Err(self.not_leading());
            }
            if uploaded.len() >= self.compactor.max_replacements {
                done = sources[at].base_offset;
                break;
            }
            let rest = &sources[at..];
            let written = match self.rewrite(rest, &rules, config.segment_bytes, epoch).await {
                Ok(written) => written,
                Err(e) => {
                    self.abandon(&uploaded).await;
                    return Err(e);
                }
            };
            let (taken, written) = written;
            match written {
                None => segments.push(rest[0].clone()),
                Some(up) => {
                    segments.push(up.segment.clone());
                    replaced.extend(rest[..taken].iter().map(|s| s.name.clone()));
                    uploaded.push(up);
                }
            }
            at += taken;
        }
        segments.extend(m.segments[at..].iter().cloned());
        let mut compacted = m.compacted.clone();
        add_horizon(&mut compacted, done, self.cx.now_ms);
        let retired = match self.retired(current, replaced).await {
            Ok(retired) => retired,
            Err(e) => {
                self.abandon(&uploaded).await;
                return Err(e);
            }
        };
        let claims: Vec<UploadClaim> = uploaded.iter().map(|u| u.claim.clone()).collect();
        let next = Next { segments, compacted, retired };
        let catalog = self.cx.reader.catalog();
        // Crash tests: the replacements are uploaded, the swap not committed; and after.
        shale_core::failpoint::hit("tier.compaction_before_commit");
        match catalog.commit_claimed(self.pref, current, next, epoch, &claims).await {
            Ok(next) => {
                shale_core::failpoint::hit("tier.compaction_after_commit");
                for up in &uploaded {
                    self.cx.reader.remember_index(self.pref, &up.segment, &up.index).await;
                }
                Ok(next)
            }
            Err(e) => {
                self.abandon(&uploaded).await;
                Err(e)
            }
        }
    }

    /// Maps the keys of the dirty part of `cleanable` (from `first_dirty`); returns the
    /// cleaning point.
    async fn map_dirty(
        &mut self,
        cleanable: &[RemoteSegment],
        first_dirty: i64,
    ) -> Result<i64, Error> {
        let map = self.compactor.map.clone();
        let map_bytes = self.compactor.map_bytes;
        blocking({
            let map = map.clone();
            move || {
                let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
                map.get_or_insert_with(|| OffsetMap::with_memory(map_bytes)).clear();
                Ok(())
            }
        })
        .await?;
        let mut point = first_dirty;
        for s in cleanable.iter().filter(|s| s.next_offset > first_dirty) {
            if !(self.leading)() {
                return Err(self.not_leading());
            }
            let mut batches = batches_of(self.cx, self.pref, s);
            let mut full_at = None;
            loop {
                let chunk = batches.next().await;
                self.requests += std::mem::take(&mut batches.gets);
                let Some(chunk) = chunk? else { break };
                self.read += chunk.iter().map(|b| b.len() as u64).sum::<u64>();
                let (map, aborted) = (map.clone(), self.aborted.clone());
                full_at = blocking(move || {
                    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
                    let Some(map) = map.as_mut() else {
                        return Err(Error::internal("no offset map"));
                    };
                    let limits = Limits { max_batch_bytes: usize::MAX, ..Limits::default() };
                    for batch in &chunk {
                        let header = BatchHeader::parse(batch)?;
                        if header.next_offset() > first_dirty
                            && !map_batch(batch, map, &limits, &aborted)?
                        {
                            return Ok(Some(header.base_offset));
                        }
                    }
                    Ok(None)
                })
                .await?;
                if full_at.is_some() {
                    break;
                }
            }
            point = full_at.unwrap_or(s.next_offset);
            if full_at.is_some() {
                break;
            }
        }
        if point <= first_dirty {
            let capacity =
                map.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(0, |m| m.capacity());
            return Err(Error::internal(format!(
                "{}-{}: the offset map ({capacity} keys) cannot hold the keys of the remote \
                 batch at offset {first_dirty}: raise log.cleaner_dedupe_buffer_bytes",
                self.pref.topic, self.pref.partition
            )));
        }
        Ok(point)
    }

    /// Cleans the first of `sources` and as many after it as fit, cleaned, in one segment
    /// of `segment_bytes` (counting each next source whole, so a replacement never grows
    /// past it) into one replacement, and uploads it under a claim. Returns how many
    /// sources it took, and the replacement: `None` when it took one that cleaning left as
    /// it was.
    async fn rewrite(
        &mut self,
        sources: &[&RemoteSegment],
        rules: &Arc<Rules>,
        segment_bytes: u64,
        epoch: i32,
    ) -> Result<(usize, Option<Uploaded>), Error> {
        let base = sources[0].base_offset;
        let interval = crate::log::LogConfig::default().index_interval_bytes as u64;
        let mut spool = Spool::new(&self.compactor.spool_dir, base, interval)?;
        let mut taken = 0;
        for s in sources {
            let fits = spool.size + s.size_bytes <= segment_bytes
                && s.next_offset - base <= i64::from(i32::MAX);
            if taken > 0 && !fits {
                break;
            }
            taken += 1;
            let mut batches = batches_of(self.cx, self.pref, s);
            loop {
                let chunk = batches.next().await;
                self.requests += std::mem::take(&mut batches.gets);
                let Some(chunk) = chunk? else { break };
                self.read += chunk.iter().map(|b| b.len() as u64).sum::<u64>();
                let (map, rules) = (self.compactor.map.clone(), rules.clone());
                spool = blocking(move || {
                    let map = map.lock().unwrap_or_else(|e| e.into_inner());
                    let Some(map) = map.as_ref() else {
                        return Err(Error::internal("no offset map"));
                    };
                    spool.add(&chunk, map, &rules)?;
                    Ok(spool)
                })
                .await?;
            }
        }
        if taken == 1 && !spool.changed {
            return Ok((1, None));
        }
        let spooled = Arc::new(spool.finish());
        let next_offset = sources[taken - 1].next_offset;
        let uploaded = self.upload(base, next_offset, spooled, epoch).await?;
        Ok((taken, Some(uploaded)))
    }

    /// Uploads a replacement under a new name and a claim.
    async fn upload(
        &mut self,
        base: i64,
        next_offset: i64,
        spooled: Arc<Spooled>,
        epoch: i32,
    ) -> Result<Uploaded, Error> {
        let catalog = self.cx.reader.catalog();
        let bucket = catalog.bucket();
        let stem = names::segment_stem(base, epoch);
        let path = catalog.object(self.pref, &names::log(&stem));
        let claim = catalog.claim_upload(self.pref, &stem, self.cx.lease).await?;
        let throttle = self.cx.throttle;
        let read = |pos: u64, len: u64| {
            let spooled = spooled.clone();
            async move {
                throttle.take(len).await;
                blocking(move || spooled.read(pos, len)).await
            }
        };
        let index = Bytes::from(spooled.index.clone());
        self.requests += bucket.put_requests(spooled.size);
        if let Err(e) = bucket.put_segment(&path, spooled.size, index, read).await {
            bucket.remove_quietly(std::slice::from_ref(&path)).await;
            catalog.release_upload(&claim).await;
            return Err(e);
        }
        self.compactor.stats.bytes_written.fetch_add(spooled.size, Relaxed);
        let segment = RemoteSegment {
            base_offset: base,
            next_offset,
            size_bytes: spooled.size,
            max_timestamp: spooled.max_timestamp,
            upload_epoch: epoch,
            name: stem,
            index_bytes: spooled.index.len() as u64,
            aborted: Vec::new(),
        };
        let segment = RemoteSegment { aborted: segment.aborted_of(&self.known), ..segment };
        Ok(Uploaded { segment, index: spooled.index.clone(), claim })
    }

    /// The retired list after this compaction: the earlier entries whose objects are still
    /// in the bucket (the scrubber removed the others), and the segments it replaced.
    async fn retired(
        &mut self,
        current: &Current,
        replaced: Vec<String>,
    ) -> Result<Vec<Retired>, Error> {
        let catalog = self.cx.reader.catalog();
        let mut retired = Vec::new();
        if !current.manifest.retired.is_empty() {
            let listed = catalog.bucket().list(&catalog.folder(self.pref)).await?;
            self.requests += 1;
            let present: HashSet<String> = listed
                .iter()
                .filter_map(|o| match names::kind(o.location.filename()?) {
                    names::Kind::Segment(stem) => Some(stem),
                    _ => None,
                })
                .collect();
            retired.extend(
                current.manifest.retired.iter().filter(|r| present.contains(&r.name)).cloned(),
            );
        }
        let seq = current.manifest.seq + 1;
        retired.extend(replaced.into_iter().map(|name| Retired { name, seq }));
        Ok(retired)
    }

    fn not_leading(&self) -> Error {
        Error::unavailable(format!(
            "{}-{}: leadership moved during a remote compaction; it stopped",
            self.pref.topic, self.pref.partition
        ))
    }

    /// Removes uploaded replacements that will not be committed, and their claims.
    async fn abandon(&self, uploaded: &[Uploaded]) {
        let catalog = self.cx.reader.catalog();
        for up in uploaded {
            let path = catalog.object(self.pref, &names::log(&up.segment.name));
            catalog.bucket().remove_quietly(std::slice::from_ref(&path)).await;
            catalog.release_upload(&up.claim).await;
        }
    }
}

/// The batches of remote segment `s`, a ranged GET at a time.
fn batches_of<'a>(cx: &'a Context<'a>, pref: &PartitionRef, s: &RemoteSegment) -> Batches<'a> {
    let catalog = cx.reader.catalog();
    let path = catalog.object(pref, &names::log(&s.name));
    Batches::new(catalog.bucket(), path, s.size_bytes, RANGE_BYTES)
}

/// Runs `f` on a blocking thread.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, Error> + Send + 'static,
) -> Result<R, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("a remote compaction task failed: {e}")))?
}
