//! The scrubber: deletes objects no manifest lists and no upload claims (crashed uploads,
//! fenced writers), once they are older than `tier.orphan_grace_ms`, in the folders of the
//! partitions a broker leads; on the controller also the folders of topic incarnations that
//! no longer exist. A replaced checkpoint or delta is as old as the time it was replaced
//! (the creation of the first checkpoint after it), and a segment a compaction replaced
//! (listed in the manifest's `retired`) as old as the compaction's checkpoint, so a reader
//! holding the pointer of before has the whole grace to finish. Ages are judged by the store's clock: the
//! last-modified stamp of a small `.clock-{broker}` object each pass rewrites.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use bytes::Bytes;

use super::bucket::{Bucket, ObjectInfo};
use super::catalog::{Catalog, PartitionRef};
use super::manifest::names;
use shale_core::error::Error;

/// What the scrubber found and removed, since the broker started.
#[derive(Debug, Default)]
pub struct ScrubStats {
    /// Objects no manifest lists (or of deleted topics), seen by a pass.
    pub orphans_found: AtomicU64,
    /// Of those, removed (older than `tier.orphan_grace_ms`).
    pub orphans_deleted: AtomicU64,
    /// Completed passes.
    pub passes: AtomicU64,
    /// Orphans the last pass left in the bucket (inside the grace period, or failed to
    /// delete).
    pub orphans_pending: AtomicU64,
    /// Last-modified time (ms) of the oldest orphan the last pass left, or -1: the
    /// deletion lag is now minus this.
    pub oldest_pending_ms: AtomicI64,
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

/// One broker's scrubber.
#[derive(Debug)]
pub struct Scrubber {
    catalog: Arc<Catalog>,
    broker_id: i32,
    grace_ms: i64,
}

impl Scrubber {
    /// The scrubber of broker `broker_id` over `catalog`'s bucket, deleting orphans older
    /// than `grace_ms`.
    pub fn new(catalog: Arc<Catalog>, broker_id: i32, grace_ms: u64) -> Scrubber {
        let grace_ms = i64::try_from(grace_ms).unwrap_or(i64::MAX);
        Scrubber { catalog, broker_id, grace_ms }
    }

    /// One pass over the folders of the partitions in `led`, and, when `live_topics` is
    /// given (on the controller), over the folders of topics not among them (`(name, id)`).
    pub async fn pass(
        &self,
        stats: &ScrubStats,
        led: &[PartitionRef],
        live_topics: Option<&[(String, String)]>,
    ) -> Result<(), Error> {
        // Ages are judged by the store's clock, which stamped the objects: a broker clock
        // that runs ahead would otherwise make young objects look old.
        let now_ms = self.store_now_ms().await?;
        let mut pending = Pending::default();
        for pref in led {
            self.scrub_partition(stats, pref, now_ms, &mut pending).await?;
        }
        if let Some(live) = live_topics {
            self.scrub_deleted_topics(stats, live, now_ms, &mut pending).await?;
        }
        stats.orphans_pending.store(pending.count, Relaxed);
        stats.oldest_pending_ms.store(pending.oldest_ms.unwrap_or(-1), Relaxed);
        stats.passes.fetch_add(1, Relaxed);
        Ok(())
    }

    fn bucket(&self) -> &Bucket {
        self.catalog.bucket()
    }

    /// The object store's current time (ms): the last-modified stamp of a small object this
    /// broker rewrites once per pass.
    async fn store_now_ms(&self) -> Result<i64, Error> {
        let path = self.catalog.cluster_folder().join(format!(".clock-{}", self.broker_id));
        self.bucket().put(&path, Bytes::from_static(b"scrubber clock")).await?;
        Ok(self.bucket().head(&path).await?.last_modified_ms)
    }

    /// Orphans in the folder of a partition this broker leads.
    async fn scrub_partition(
        &self,
        stats: &ScrubStats,
        pref: &PartitionRef,
        now_ms: i64,
        pending: &mut Pending,
    ) -> Result<(), Error> {
        // List first, then read the manifest: whatever was committed before the read is
        // known to be referenced.
        let listed = self.bucket().list(&self.catalog.folder(pref)).await?;
        if listed.is_empty() {
            return Ok(());
        }
        // Claims after the listing, the manifest after the claims: a listed object that is
        // neither claimed by an upload in flight then nor in the manifest read after belongs
        // to no upload that can still commit (a commit removes its claim atomically).
        let claimed = self.catalog.uploads_in_flight(pref).await?;
        let current = self.catalog.current(pref).await?;
        let mut keep: HashSet<String> =
            current.manifest.segments.iter().map(|s| s.name.clone()).collect();
        if let Some(ptr) = &current.pointer {
            keep.insert(ptr.manifest.clone());
            keep.extend(ptr.deltas().map(|(_, name)| name));
        }
        // Each checkpoint's sequence number and creation time: a replaced checkpoint or
        // delta left the manifest when the first checkpoint after it was written, and its
        // grace runs from then, not from its own creation (a reader holding the old pointer
        // may still be reading it).
        let checkpoints: Vec<(u64, i64)> = listed
            .iter()
            .filter_map(|o| {
                let name = o.location.filename()?;
                Some((names::manifest_seq(name)?, o.last_modified_ms))
            })
            .collect();
        // Replaced at `seq` by a checkpoint (`inclusive`: the checkpoint of that seq, as a
        // compaction's, or a delta's; else the next).
        let replaced_ms = |object: &ObjectInfo, seq: u64, inclusive: bool| {
            let successor = checkpoints
                .iter()
                .filter(|(s, _)| *s > seq || (*s == seq && inclusive))
                .map(|(_, ms)| *ms)
                .min();
            successor.unwrap_or(object.last_modified_ms).max(object.last_modified_ms)
        };
        // Segments a compaction replaced: as old as the checkpoint that replaced them.
        let retired: std::collections::HashMap<&str, u64> =
            current.manifest.retired.iter().map(|r| (r.name.as_str(), r.seq)).collect();
        let mut doomed = Vec::new();
        for object in listed {
            let name = object.location.filename().unwrap_or_default().to_string();
            let referenced = match names::kind(&name) {
                names::Kind::Segment(stem) => keep.contains(&stem) || claimed.contains(&stem),
                // A checkpoint or delta newer than the current manifest may be a commit in
                // flight; older ones than the current checkpoint were replaced by it.
                names::Kind::Manifest => {
                    keep.contains(&name)
                        || names::manifest_seq(&name).is_none_or(|s| s > current.manifest.seq)
                }
                names::Kind::Delta => {
                    keep.contains(&name)
                        || names::delta_seq(&name).is_none_or(|s| s > current.manifest.seq)
                }
                names::Kind::Other => true,
            };
            if referenced {
                continue;
            }
            stats.orphans_found.fetch_add(1, Relaxed);
            let since = match (names::manifest_seq(&name), names::delta_seq(&name)) {
                (Some(seq), _) => replaced_ms(&object, seq, false),
                (_, Some(seq)) => replaced_ms(&object, seq, true),
                _ => match names::kind(&name) {
                    names::Kind::Segment(stem) => match retired.get(stem.as_str()) {
                        Some(seq) => replaced_ms(&object, *seq, true),
                        None => object.last_modified_ms,
                    },
                    _ => object.last_modified_ms,
                },
            };
            if now_ms - since >= self.grace_ms {
                doomed.push(object);
            } else {
                pending.add(&object);
            }
        }
        self.delete_orphans(stats, &doomed, &pref.topic, pending).await;
        Ok(())
    }

    /// Everything in the folders of topic incarnations not in `live` (`(name, id)`).
    async fn scrub_deleted_topics(
        &self,
        stats: &ScrubStats,
        live: &[(String, String)],
        now_ms: i64,
        pending: &mut Pending,
    ) -> Result<(), Error> {
        let known: HashSet<String> =
            live.iter().map(|(name, id)| Catalog::topic_folder_name(name, id)).collect();
        for folder in self.bucket().list_folders(&self.catalog.cluster_folder()).await? {
            let name = folder.filename().unwrap_or_default().to_string();
            if known.contains(&name) {
                continue;
            }
            let listed = self.bucket().list(&folder).await?;
            stats.orphans_found.fetch_add(listed.len() as u64, Relaxed);
            let (doomed, young): (Vec<_>, Vec<_>) =
                listed.into_iter().partition(|o| now_ms - o.last_modified_ms >= self.grace_ms);
            young.iter().for_each(|o| pending.add(o));
            self.delete_orphans(stats, &doomed, &name, pending).await;
        }
        Ok(())
    }

    async fn delete_orphans(
        &self,
        stats: &ScrubStats,
        doomed: &[ObjectInfo],
        what: &str,
        pending: &mut Pending,
    ) {
        if doomed.is_empty() {
            return;
        }
        let paths: Vec<_> = doomed.iter().map(|o| o.location.clone()).collect();
        let mut deleted = 0;
        for (object, result) in doomed.iter().zip(self.bucket().delete_many(&paths).await) {
            match result {
                Ok(()) => deleted += 1,
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    pending.add(object);
                    tracing::warn!(error = %e, "could not remove an orphan object");
                }
            }
        }
        stats.orphans_deleted.fetch_add(deleted, Relaxed);
        tracing::info!(folder = what, deleted, "scrubber removed orphan objects");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::tier::catalog::tests::{catalog, seg};

    /// A checkpoint replaced when it was already older than the grace stays for the grace
    /// after its replacement, then goes. Before, its age ran from its own creation, and the
    /// first pass after the replacement removed it under a reader holding the old pointer.
    #[tokio::test]
    async fn a_replaced_checkpoint_stays_for_the_grace_after_its_replacement() {
        let catalog = Arc::new(catalog());
        let p = PartitionRef { topic: "t".into(), topic_id: "id".into(), partition: 0 };
        let first = catalog.current(&p).await.unwrap();
        let first = catalog.commit(&p, &first, vec![seg(0, 10)], 1).await.unwrap();
        let old = first.pointer.clone().unwrap().manifest;
        let folder = catalog.folder(&p);
        let listed = |catalog: Arc<Catalog>, folder: object_store::path::Path| async move {
            let objects = catalog.bucket().list(&folder).await.unwrap();
            objects.iter().map(|o| o.location.filename().unwrap().to_string()).collect::<Vec<_>>()
        };
        let (scrubber, stats) = (Scrubber::new(catalog.clone(), 1, 1_000), ScrubStats::default());
        // Older than the grace, then replaced (a new epoch writes a checkpoint of its own).
        shale_core::clock::sleep(Duration::from_millis(1_200)).await;
        catalog.commit(&p, &first, vec![seg(0, 10), seg(10, 20)], 2).await.unwrap();
        scrubber.pass(&stats, std::slice::from_ref(&p), None).await.unwrap();
        assert!(
            listed(catalog.clone(), folder.clone()).await.contains(&old),
            "kept within the grace"
        );
        shale_core::clock::sleep(Duration::from_millis(1_200)).await;
        scrubber.pass(&stats, std::slice::from_ref(&p), None).await.unwrap();
        assert!(
            !listed(catalog.clone(), folder.clone()).await.contains(&old),
            "removed after the grace"
        );
    }
}
