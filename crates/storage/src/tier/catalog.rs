//! Reading a partition's current manifest and committing a new one.
//!
//! The current manifest is the checkpoint the etcd pointer `tier/{topic}/{p}` names with
//! the deltas after it up to the pointer's seq (see `manifest.rs`). A commit writes one new
//! object — a delta, or a checkpoint on a new leader epoch or every [`checkpoint_every`]
//! deltas — then moves the pointer with a compare-and-swap on the pointer's revision,
//! refusing to move it to a lower leader epoch. Two writers (a leader and a deposed one that
//! has not noticed yet) cannot both win: the loser's object is left unreferenced (and
//! deleted, or later scrubbed), and the winner's manifest is the only one readers see.
//! Nothing is deleted by a commit; the scrubber removes replaced checkpoints and deltas.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt};
use object_store::path::Path as ObjectPath;

use super::bucket::Bucket;
use super::error::StoreError;
use super::manifest::{Manifest, ManifestDelta, TierPointer, checkpoint_every, names};
use shale_core::error::{Error, ErrorKind, Reason};
use shale_meta::json::encode;
use shale_meta::{Compare, Keys, LeaseId, MetaStore, Revision, Txn, TxnOp, Versioned};

/// A partition incarnation, as the bucket layout names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionRef {
    /// Topic name.
    pub topic: String,
    /// Topic id.
    pub topic_id: String,
    /// Partition index.
    pub partition: u32,
}

/// An upload registered as in flight (see [`Catalog::claim_upload`]).
#[derive(Debug, Clone)]
pub struct UploadClaim {
    key: String,
    revision: Revision,
}

/// What a commit makes the manifest: its segments, its compaction marks and its retired
/// segments.
#[derive(Debug, Clone)]
pub struct Next {
    /// The segments, oldest first, contiguous.
    pub segments: Vec<super::RemoteSegment>,
    /// See [`Manifest::compacted`].
    pub compacted: Vec<(i64, i64)>,
    /// See [`Manifest::retired`].
    pub retired: Vec<super::manifest::Retired>,
}

impl Next {
    /// `segments`, with the compaction marks and retired segments of `current`.
    pub fn segments(current: &Current, segments: Vec<super::RemoteSegment>) -> Next {
        let m = &current.manifest;
        Next { segments, compacted: m.compacted.clone(), retired: m.retired.clone() }
    }
}

/// A partition's current manifest with the pointer revision it was read at.
#[derive(Debug, Clone)]
pub struct Current {
    /// The manifest (empty if nothing was tiered).
    pub manifest: Arc<Manifest>,
    /// The pointer, if one exists for this incarnation.
    pub pointer: Option<TierPointer>,
    /// Mod revision of the pointer key; 0 when absent.
    pub revision: Revision,
}

/// Access to the manifests and objects of every partition in one bucket.
#[derive(Debug)]
pub struct Catalog {
    bucket: Bucket,
    meta: Arc<dyn MetaStore>,
    keys: Keys,
    cluster: String,
    /// Checkpoints by object path (immutable, so safe to cache).
    manifests: moka::future::Cache<ObjectPath, Arc<Manifest>>,
    /// The latest manifest folded per partition, with the checkpoint it grew from: a
    /// pointer that moved on by a few deltas costs those deltas' GETs only.
    folded: moka::sync::Cache<PartitionRef, (String, Arc<Manifest>)>,
}

impl Catalog {
    /// A catalog over `bucket` for cluster `cluster`.
    pub fn new(bucket: Bucket, meta: Arc<dyn MetaStore>, keys: Keys, cluster: &str) -> Catalog {
        Catalog {
            bucket,
            meta,
            keys,
            cluster: cluster.to_string(),
            manifests: moka::future::Cache::new(10_000),
            folded: moka::sync::Cache::new(100_000),
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// `{prefix}/{cluster}/`: everything of this cluster.
    pub fn cluster_folder(&self) -> ObjectPath {
        self.bucket.prefix.clone().join(self.cluster.as_str())
    }

    /// `{topic}-{topic_id}`: the folder of a topic incarnation, under the cluster's.
    pub fn topic_folder_name(topic: &str, topic_id: &str) -> String {
        format!("{topic}-{topic_id}")
    }

    /// `{prefix}/{cluster}/{topic}-{topic_id}/{partition}/`.
    pub fn folder(&self, p: &PartitionRef) -> ObjectPath {
        self.cluster_folder()
            .join(Catalog::topic_folder_name(&p.topic, &p.topic_id))
            .join(p.partition.to_string())
    }

    /// An object inside a partition's folder.
    pub fn object(&self, p: &PartitionRef, name: &str) -> ObjectPath {
        self.folder(p).join(name)
    }

    /// The current manifest of `p` (empty when nothing is tiered, or the pointer belongs to
    /// an earlier incarnation of the topic).
    pub fn current<'a>(&'a self, p: &'a PartitionRef) -> BoxFuture<'a, Result<Current, Error>> {
        // Boxed here: a coroutine's body is compiled in each crate that polls it, and this
        // one carries the manifest cache's code into every crate above.
        self.current_inner(p).boxed()
    }

    /// [`current`](Self::current), unboxed.
    async fn current_inner(&self, p: &PartitionRef) -> Result<Current, Error> {
        let key = self.keys.tier(&p.topic, p.partition);
        let Some(kv) = self.meta.get(&key).await? else {
            let manifest = Arc::new(Manifest::empty(&p.topic, &p.topic_id, p.partition));
            return Ok(Current { manifest, pointer: None, revision: 0 });
        };
        let revision = kv.mod_revision;
        let pointer = Versioned::<TierPointer>::decode(kv)?.value;
        if pointer.topic_id != p.topic_id {
            let manifest = Arc::new(Manifest::empty(&p.topic, &p.topic_id, p.partition));
            return Ok(Current { manifest, pointer: None, revision });
        }
        let manifest = self.load(p, &pointer).await?;
        Ok(Current { manifest, pointer: Some(pointer), revision })
    }

    /// The manifest `pointer` names: its checkpoint and the deltas after it, starting from
    /// the manifest folded last time when the pointer only moved on since. `NOT_FOUND` when
    /// an object is gone (a newer checkpoint replaced it and the scrubber removed it): read
    /// the pointer again.
    pub fn load<'a>(
        &'a self,
        p: &'a PartitionRef,
        pointer: &'a TierPointer,
    ) -> BoxFuture<'a, Result<Arc<Manifest>, Error>> {
        self.load_inner(p, pointer).boxed()
    }

    /// [`load`](Self::load), unboxed.
    async fn load_inner(
        &self,
        p: &PartitionRef,
        pointer: &TierPointer,
    ) -> Result<Arc<Manifest>, Error> {
        let from_checkpoint = pointer.checkpoint_seq();
        let folded = self.folded.get(p).filter(|(checkpoint, m)| {
            *checkpoint == pointer.manifest && m.seq >= from_checkpoint && m.seq <= pointer.seq
        });
        let mut manifest = match folded {
            Some((_, m)) => m,
            None => self.load_checkpoint(p, &pointer.manifest).await?,
        };
        if manifest.seq == pointer.seq {
            return Ok(manifest);
        }
        let wanted: Vec<String> =
            pointer.deltas().filter(|(seq, _)| *seq > manifest.seq).map(|(_, name)| name).collect();
        let bucket = &self.bucket;
        let mut deltas = futures::stream::iter(wanted.into_iter().map(|name| {
            let path = self.object(p, &name);
            async move {
                let bytes = bucket.get(&path).await?;
                ManifestDelta::decode(&bytes)
            }
        }))
        .buffered(16);
        let mut next = (*manifest).clone();
        while let Some(delta) = deltas.next().await {
            next = delta?.apply(&next)?;
        }
        manifest = Arc::new(next);
        self.folded.insert(p.clone(), (pointer.manifest.clone(), manifest.clone()));
        Ok(manifest)
    }

    /// Reads (or takes from the cache) the checkpoint object `name` of `p`.
    async fn load_checkpoint(&self, p: &PartitionRef, name: &str) -> Result<Arc<Manifest>, Error> {
        let path = self.object(p, name);
        let bucket = self.bucket.clone();
        self.manifests
            .try_get_with(path.clone(), async move {
                let bytes = bucket.get(&path).await?;
                Manifest::decode(&bytes).map(Arc::new)
            })
            .await
            .map_err(|e: Arc<Error>| (*e).clone())
    }

    /// Registers an upload of segment `stem` as in flight, under the uploader's `lease`,
    /// before any of its objects is written. The scrubber never deletes a registered
    /// upload's objects, and the upload can commit only while its claim still stands: an
    /// uploader that lost its lease (frozen, cut off) cannot commit objects the scrubber may
    /// have judged orphaned meanwhile.
    pub async fn claim_upload(
        &self,
        p: &PartitionRef,
        stem: &str,
        lease: LeaseId,
    ) -> Result<UploadClaim, Error> {
        let key = self.keys.upload(&p.topic, p.partition, stem);
        let value = encode(&key, &stem.to_string())?;
        let revision = self.meta.put(&key, value, Some(lease)).await?;
        Ok(UploadClaim { key, revision })
    }

    /// Withdraws a claim whose upload failed (best effort: it also goes with the lease).
    pub async fn release_upload(&self, claim: &UploadClaim) {
        if let Err(e) = self.meta.delete(&claim.key).await {
            tracing::debug!(key = %claim.key, error = %e, "could not withdraw an upload claim");
        }
    }

    /// Segment stems with an upload in flight for partition `p`.
    pub async fn uploads_in_flight(&self, p: &PartitionRef) -> Result<HashSet<String>, Error> {
        let prefix = self.keys.uploads(&p.topic, p.partition);
        let found = self.meta.range(&prefix).await?;
        Ok(found
            .kvs
            .into_iter()
            .filter_map(|kv| kv.key.strip_prefix(&prefix).map(String::from))
            .collect())
    }

    /// [`Catalog::commit`] for an upload: the pointer moves only while `claim` stands, and
    /// the claim goes in the same transaction.
    pub async fn commit_upload(
        &self,
        p: &PartitionRef,
        current: &Current,
        segments: Vec<super::RemoteSegment>,
        epoch: i32,
        claim: &UploadClaim,
    ) -> Result<Current, Error> {
        let next = Next::segments(current, segments);
        self.commit_claimed(p, current, next, epoch, std::slice::from_ref(claim)).await
    }

    /// Makes `segments` the partition's remote log: writes a new manifest object, then moves
    /// the pointer from `current` to it at leader epoch `epoch`. Fails with `FENCED` when a
    /// higher epoch already wrote the pointer, and with a retriable `TIER_CONFLICT` when the
    /// pointer moved since `current` was read (re-read and decide again).
    pub async fn commit(
        &self,
        p: &PartitionRef,
        current: &Current,
        segments: Vec<super::RemoteSegment>,
        epoch: i32,
    ) -> Result<Current, Error> {
        self.commit_claimed(p, current, Next::segments(current, segments), epoch, &[]).await
    }

    /// [`Catalog::commit`] of a whole [`Next`] (segments, compaction marks and retired
    /// segments), moving the pointer only while every one of `claims` (the uploads of its new
    /// segments) stands; the claims go in the same transaction. A compaction commits this
    /// way: its replacements stand in the middle of the list, so the commit is a checkpoint
    /// (deltas only append and drop the oldest).
    pub async fn commit_claimed(
        &self,
        p: &PartitionRef,
        current: &Current,
        next: Next,
        epoch: i32,
        claims: &[UploadClaim],
    ) -> Result<Current, Error> {
        if let Some(ptr) = current.pointer.as_ref().filter(|ptr| ptr.leader_epoch > epoch) {
            return Err(Error::new(
                ErrorKind::Fenced,
                Reason::FencedLeaderEpoch,
                format!(
                    "{}-{}: the tier manifest was written at leader epoch {}, above this \
                     broker's {epoch}",
                    p.topic, p.partition, ptr.leader_epoch
                ),
            ));
        }
        let manifest = Manifest {
            seq: current.manifest.seq + 1,
            leader_epoch: epoch,
            segments: next.segments,
            compacted: next.compacted,
            retired: next.retired,
            ..Manifest::empty(&p.topic, &p.topic_id, p.partition)
        };
        manifest.validate()?;
        // A delta when this epoch wrote the pointer, the last checkpoint is recent enough and
        // only the segment list changed; a checkpoint otherwise (a new epoch starts its own,
        // so deltas are named by it).
        let same_marks = manifest.compacted == current.manifest.compacted
            && manifest.retired == current.manifest.retired;
        let delta = current.pointer.as_ref().and_then(|ptr| {
            let since = manifest.seq - ptr.checkpoint_seq();
            let due = checkpoint_every(current.manifest.segments.len());
            (ptr.leader_epoch == epoch && since <= due && same_marks)
                .then(|| ManifestDelta::between(&current.manifest, &manifest.segments, epoch))
                .flatten()
                .map(|d| (ptr, d))
        });
        let as_checkpoint = || {
            let name = names::manifest(manifest.seq, epoch);
            (name.clone(), manifest.encode(), name, manifest.seq)
        };
        let (mut name, bytes, mut checkpoint, mut checkpoint_seq) = match delta {
            Some((ptr, d)) => {
                let name = names::delta(manifest.seq, epoch);
                (name, d.encode(), ptr.manifest.clone(), ptr.checkpoint_seq())
            }
            None => as_checkpoint(),
        };
        let mut path = self.object(p, &name);
        match self.bucket.put_if_absent(&path, Bytes::from(bytes)).await {
            Ok(()) => {}
            // A delta of this seq and epoch is there already: an earlier attempt of this
            // broker that lost its compare-and-swap and could not remove it. It is not
            // referenced (the pointer is below its seq); write a checkpoint instead, under a
            // name of its own, and leave that one to the scrubber.
            Err(StoreError::AlreadyExists { .. }) if checkpoint_seq != manifest.seq => {
                let bytes;
                (name, bytes, checkpoint, checkpoint_seq) = as_checkpoint();
                path = self.object(p, &name);
                self.bucket.put_if_absent(&path, Bytes::from(bytes)).await?;
            }
            Err(e) => return Err(e.into()),
        }
        shale_core::failpoint::hit("tier.after_manifest_put");
        let pointer = TierPointer {
            topic_id: p.topic_id.clone(),
            manifest: checkpoint.clone(),
            seq: manifest.seq,
            checkpoint_seq: Some(checkpoint_seq),
            leader_epoch: epoch,
            start_offset: manifest.start_offset().unwrap_or(-1),
            end_offset: manifest.end_offset().unwrap_or(-1),
            segments: manifest.segments.len() as u64,
            size_bytes: manifest.size_bytes(),
            compacted: manifest.compacted.last().copied(),
        };
        let key = self.keys.tier(&p.topic, p.partition);
        let guard = match current.revision {
            0 => Compare::absent(key.clone()),
            r => Compare::mod_revision(key.clone(), r),
        };
        let mut txn =
            Txn::new().when(guard).and_then(TxnOp::put(key.clone(), encode(&key, &pointer)?));
        for claim in claims {
            txn = txn
                .when(Compare::mod_revision(claim.key.clone(), claim.revision))
                .and_then(TxnOp::delete(claim.key.clone()));
        }
        let outcome = self.meta.txn(txn).await?;
        if !outcome.succeeded {
            // Nobody will ever read it: remove now rather than leave it to the scrubber.
            let _ = self.bucket.delete(&path).await;
            return Err(Error::new(
                ErrorKind::Unavailable,
                Reason::TierConflict,
                format!(
                    "{}-{}: the tier pointer moved (or the upload's claim expired with its \
                     lease) while manifest {} was being written; re-read and retry",
                    p.topic, p.partition, manifest.seq
                ),
            ));
        }
        // A replaced checkpoint and its deltas stay until the scrubber removes them after
        // the grace period: a reader holding the old pointer can still finish its read.
        let manifest = Arc::new(manifest);
        if checkpoint_seq == manifest.seq {
            self.manifests.insert(path, manifest.clone()).await;
        }
        self.folded.insert(p.clone(), (checkpoint, manifest.clone()));
        Ok(Current { manifest, pointer: Some(pointer), revision: outcome.revision })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tier::RemoteSegment;
    use crate::tier::TierSettings;

    pub(crate) fn catalog() -> Catalog {
        let meta: Arc<dyn MetaStore> =
            shale_meta::EmbeddedStore::in_memory(shale_core::clock::system());
        let bucket = Bucket::open("memory://", &TierSettings::default()).unwrap();
        catalog_on(bucket, meta)
    }

    /// Another broker's catalog of the same bucket and metadata (its own caches and
    /// request counts).
    fn catalog_on(bucket: Bucket, meta: Arc<dyn MetaStore>) -> Catalog {
        let bucket = Bucket::wrap(
            bucket.backend.clone(),
            bucket.prefix.clone(),
            &TierSettings::default(),
            &bucket.url,
        );
        Catalog::new(bucket, meta, Keys::new("c").unwrap(), "c")
    }

    pub(crate) fn seg(base: i64, next: i64) -> RemoteSegment {
        RemoteSegment {
            base_offset: base,
            next_offset: next,
            size_bytes: 100,
            max_timestamp: 1,
            upload_epoch: 1,
            name: names::segment_stem(base, 1),
            index_bytes: 0,
            aborted: Vec::new(),
        }
    }

    #[tokio::test]
    async fn commits_move_forward_and_fence_lower_epochs_and_stale_reads() {
        let c = catalog();
        let p = PartitionRef { topic: "t".into(), topic_id: "id1".into(), partition: 0 };
        let empty = c.current(&p).await.unwrap();
        assert!(empty.manifest.segments.is_empty() && empty.pointer.is_none());

        let one = c.commit(&p, &empty, vec![seg(0, 10)], 1).await.unwrap();
        assert_eq!(c.current(&p).await.unwrap().manifest.segments.len(), 1);
        // A writer that read before `one` loses, and leaves no manifest behind.
        let e = c.commit(&p, &empty, vec![seg(0, 20)], 1).await.unwrap_err();
        assert_eq!(e.reason, "TIER_CONFLICT");
        let two = c.commit(&p, &one, vec![seg(0, 10), seg(10, 20)], 2).await.unwrap();
        assert_eq!(two.pointer.as_ref().unwrap().end_offset, 20);
        // A deposed leader (epoch 1) cannot write over epoch 2.
        let e = c.commit(&p, &two, vec![seg(0, 10)], 1).await.unwrap_err();
        assert_eq!(e.reason, "FENCED_LEADER_EPOCH");
        // Losers remove theirs; the first checkpoint (epoch 1) stays for the scrubber, the
        // second (epoch 2) is current.
        let listed = c.bucket().list(&c.folder(&p)).await.unwrap();
        assert_eq!(listed.len(), 2, "{listed:?}");
        // A re-created topic (new id) starts empty even though the old pointer exists.
        let q = PartitionRef { topic_id: "id2".into(), ..p };
        let fresh = c.current(&q).await.unwrap();
        assert!(fresh.manifest.segments.is_empty() && fresh.revision > 0);
        c.commit(&q, &fresh, vec![seg(0, 5)], 1).await.unwrap();
    }

    fn seg_sized(base: i64, next: i64) -> RemoteSegment {
        RemoteSegment { size_bytes: 1 << 30, index_bytes: 2 << 20, ..seg(base, next) }
    }

    /// Bytes PUT and DELETE requests made by `f`.
    async fn writes<T>(c: &Catalog, f: impl Future<Output = T>) -> (T, u64, u64) {
        use crate::tier::metrics::Op;
        let (puts, deletes) = (c.bucket().metrics.get(Op::Put), c.bucket().metrics.get(Op::Delete));
        let out = f.await;
        let put_bytes = c.bucket().metrics.get(Op::Put).bytes - puts.bytes;
        (out, put_bytes, c.bucket().metrics.get(Op::Delete).requests - deletes.requests)
    }

    /// An upload's commit writes one small delta, the same size at 10 and at 10,000
    /// segments, and deletes nothing; checkpoints spread over the commits stay below eight
    /// segment entries per commit. A fresh reader folds checkpoint and deltas into the same
    /// manifest the writer has, and a reader that saw the last one reads only the new delta.
    #[tokio::test]
    async fn commits_write_deltas_that_do_not_grow_with_the_segment_count() {
        let mut per_upload = Vec::new();
        for n in [10i64, 10_000] {
            let c = catalog();
            let p = PartitionRef { topic: "t".into(), topic_id: "id1".into(), partition: 0 };
            let empty = c.current(&p).await.unwrap();
            let all: Vec<_> = (0..n).map(|i| seg_sized(i * 100, (i + 1) * 100)).collect();
            let mut cur = c.commit(&p, &empty, all, 1).await.unwrap();
            // Uploads, each appending a segment: one delta each until a checkpoint is due,
            // up to and including that checkpoint.
            let (mut total, mut uploads, mut deltas, mut deletes) = (0, 0, Vec::new(), 0);
            for i in n..n + 3_000 {
                let mut segments = cur.manifest.segments.clone();
                segments.push(seg_sized(i * 100, (i + 1) * 100));
                let (next, bytes, deleted) = writes(&c, c.commit(&p, &cur, segments, 1)).await;
                cur = next.unwrap();
                total += bytes;
                uploads += 1;
                deletes += deleted;
                let ptr = cur.pointer.as_ref().unwrap();
                if ptr.checkpoint_seq() == ptr.seq {
                    break;
                }
                deltas.push(bytes);
            }
            let ptr = cur.pointer.as_ref().unwrap();
            assert_eq!(ptr.checkpoint_seq(), ptr.seq, "{n} segments: a checkpoint came due");
            assert_eq!(deletes, 0, "a commit deletes nothing");
            let entry = seg_sized(n * 100, n * 100 + 100);
            let entry_bytes = serde_json::to_vec(&entry).unwrap().len() as u64;
            assert!(
                total / uploads <= deltas[0] + 8 * entry_bytes,
                "{n} segments: {} bytes per upload on average, a delta is {}",
                total / uploads,
                deltas[0]
            );
            per_upload.push((deltas[0], total / uploads));
            println!(
                "{n} segments: a delta is {} bytes; {uploads} uploads up to and including the \
                 next checkpoint wrote {total} bytes, {} per upload",
                deltas[0],
                total / uploads
            );

            // Retention removes the oldest two segments: a delta too.
            let kept = cur.manifest.segments[2..].to_vec();
            cur = c.commit(&p, &cur, kept, 1).await.unwrap();
            let fresh = catalog_on(c.bucket().clone(), c.meta.clone());
            let read = fresh.current(&p).await.unwrap();
            assert_eq!(read.manifest, cur.manifest, "a fresh reader folds the same manifest");
            // One more delta: the reader that folded the last one GETs only the new one.
            let mut segments = cur.manifest.segments.clone();
            let end = cur.manifest.end_offset().unwrap();
            segments.push(seg_sized(end, end + 100));
            c.commit(&p, &cur, segments, 1).await.unwrap();
            let gets = fresh.bucket().metrics.get(crate::tier::metrics::Op::Get).requests;
            let again = fresh.current(&p).await.unwrap();
            assert_eq!(again.manifest.end_offset(), Some(end + 100));
            let got = fresh.bucket().metrics.get(crate::tier::metrics::Op::Get).requests - gets;
            assert_eq!(got, 1, "one delta GET");
        }
        let (small, large) = (per_upload[0].0, per_upload[1].0);
        assert!(large <= small + 16, "a delta at 10,000 segments ({large} B) vs 10 ({small} B)");
    }

    /// A delta left by an attempt that lost its compare-and-swap and could not remove it
    /// does not wedge the partition: the next commit of that seq writes a checkpoint.
    #[tokio::test]
    async fn a_leftover_delta_of_the_same_seq_turns_the_commit_into_a_checkpoint() {
        let c = catalog();
        let p = PartitionRef { topic: "t".into(), topic_id: "id1".into(), partition: 0 };
        let empty = c.current(&p).await.unwrap();
        let one = c.commit(&p, &empty, vec![seg(0, 10)], 1).await.unwrap();
        let leftover = c.object(&p, &names::delta(2, 1));
        c.bucket().put(&leftover, Bytes::from_static(b"a lost attempt")).await.unwrap();
        let mut segments = one.manifest.segments.clone();
        segments.push(seg(10, 20));
        let two = c.commit(&p, &one, segments, 1).await.unwrap();
        let ptr = two.pointer.as_ref().unwrap();
        assert_eq!((ptr.seq, ptr.checkpoint_seq()), (2, 2), "a checkpoint at seq 2");
        let fresh = catalog_on(c.bucket().clone(), c.meta.clone());
        assert_eq!(fresh.current(&p).await.unwrap().manifest.end_offset(), Some(20));
    }

    /// A manifest PUT the store applied but whose answer was lost (a timeout or a 5xx after
    /// the write) is retried, and the retry finds the object there: the commit goes on.
    #[tokio::test]
    async fn a_manifest_put_whose_answer_was_lost_still_commits() {
        let c = catalog();
        let p = PartitionRef { topic: "t".into(), topic_id: "id1".into(), partition: 0 };
        let empty = c.current(&p).await.unwrap();
        c.bucket().faults.lose_next_answers(1);
        let one = c.commit(&p, &empty, vec![seg(0, 10)], 1).await.unwrap();
        assert_eq!(c.bucket().faults.injected(), 1, "the manifest PUT's answer was lost");
        let now = c.current(&p).await.unwrap();
        assert_eq!(now.pointer, one.pointer, "the pointer names the manifest written");
        assert_eq!(now.manifest.end_offset(), Some(10));
    }

    #[tokio::test]
    async fn an_upload_commits_only_while_its_claim_stands() {
        let c = catalog();
        let p = PartitionRef { topic: "t".into(), topic_id: "id1".into(), partition: 0 };
        let lease = c.meta.grant_lease(std::time::Duration::from_secs(60)).await.unwrap();
        let empty = c.current(&p).await.unwrap();
        let stem = seg(0, 10).name;
        let claim = c.claim_upload(&p, &stem, lease).await.unwrap();
        assert_eq!(c.uploads_in_flight(&p).await.unwrap(), [stem.clone()].into());
        // The claim went (the uploader's lease expired while it was paused): no commit.
        c.meta.delete(&claim.key).await.unwrap();
        let e = c.commit_upload(&p, &empty, vec![seg(0, 10)], 1, &claim).await.unwrap_err();
        assert_eq!(e.reason, "TIER_CONFLICT");
        assert!(c.current(&p).await.unwrap().pointer.is_none(), "the pointer did not move");
        // A standing claim commits and goes with the commit.
        let claim = c.claim_upload(&p, &stem, lease).await.unwrap();
        c.commit_upload(&p, &empty, vec![seg(0, 10)], 1, &claim).await.unwrap();
        assert!(c.uploads_in_flight(&p).await.unwrap().is_empty());
    }
}
