//! Reading a partition's current manifest and committing a new one.
//!
//! The current manifest is the one the etcd pointer `tier/{topic}/{p}` names. A commit
//! writes the new manifest as a new object, then moves the pointer with a compare-and-swap
//! on the pointer's revision, refusing to move it to a lower leader epoch. Two writers (a
//! leader and a deposed one that has not noticed yet) cannot both win: the loser's manifest
//! object is left unreferenced (and deleted, or later scrubbed), and the winner's manifest
//! is the only one readers see.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;

use super::bucket::Bucket;
use super::manifest::{Manifest, TierPointer, names};
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
    /// Manifests by object path (immutable, so safe to cache).
    manifests: moka::future::Cache<ObjectPath, Arc<Manifest>>,
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
    pub async fn current(&self, p: &PartitionRef) -> Result<Current, Error> {
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
        let manifest = self.load_manifest(p, &pointer.manifest).await?;
        Ok(Current { manifest, pointer: Some(pointer), revision })
    }

    /// Reads (or takes from the cache) the manifest object `name` of `p`.
    pub async fn load_manifest(
        &self,
        p: &PartitionRef,
        name: &str,
    ) -> Result<Arc<Manifest>, Error> {
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
        self.commit_claimed(p, current, segments, epoch, Some(claim)).await
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
        self.commit_claimed(p, current, segments, epoch, None).await
    }

    async fn commit_claimed(
        &self,
        p: &PartitionRef,
        current: &Current,
        segments: Vec<super::RemoteSegment>,
        epoch: i32,
        claim: Option<&UploadClaim>,
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
            segments,
            ..Manifest::empty(&p.topic, &p.topic_id, p.partition)
        };
        manifest.validate()?;
        let name = names::manifest(manifest.seq, epoch);
        let path = self.object(p, &name);
        self.bucket.put_if_absent(&path, Bytes::from(manifest.encode())).await?;
        shale_core::failpoint::hit("tier.after_manifest_put");
        let pointer = TierPointer {
            topic_id: p.topic_id.clone(),
            manifest: name,
            seq: manifest.seq,
            leader_epoch: epoch,
            start_offset: manifest.start_offset().unwrap_or(-1),
            end_offset: manifest.end_offset().unwrap_or(-1),
            segments: manifest.segments.len() as u64,
            size_bytes: manifest.size_bytes(),
        };
        let key = self.keys.tier(&p.topic, p.partition);
        let guard = match current.revision {
            0 => Compare::absent(key.clone()),
            r => Compare::mod_revision(key.clone(), r),
        };
        let mut txn =
            Txn::new().when(guard).and_then(TxnOp::put(key.clone(), encode(&key, &pointer)?));
        if let Some(claim) = claim {
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
        if let Some(previous) = &current.pointer {
            // Replaced: readers holding its name find the new one through the pointer.
            let old = self.object(p, &previous.manifest);
            if let Err(e) = self.bucket.delete(&old).await {
                tracing::debug!(path = %old, error = %e, "could not remove a replaced manifest");
            }
            self.manifests.invalidate(&old).await;
        }
        let manifest = Arc::new(manifest);
        self.manifests.insert(path, manifest.clone()).await;
        Ok(Current { manifest, pointer: Some(pointer), revision: outcome.revision })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tier::RemoteSegment;
    use crate::tier::TierSettings;

    fn catalog() -> Catalog {
        let meta: Arc<dyn MetaStore> =
            shale_meta::EmbeddedStore::in_memory(shale_core::clock::system());
        let bucket = Bucket::open("memory://", &TierSettings::default()).unwrap();
        Catalog::new(bucket, meta, Keys::new("c").unwrap(), "c")
    }

    fn seg(base: i64, next: i64) -> RemoteSegment {
        RemoteSegment {
            base_offset: base,
            next_offset: next,
            size_bytes: 100,
            max_timestamp: 1,
            upload_epoch: 1,
            name: names::segment_stem(base, 1),
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
        // Manifests never leak: losers remove theirs, replaced ones are removed.
        let listed = c.bucket().list(&c.folder(&p)).await.unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        // A re-created topic (new id) starts empty even though the old pointer exists.
        let q = PartitionRef { topic_id: "id2".into(), ..p };
        let fresh = c.current(&q).await.unwrap();
        assert!(fresh.manifest.segments.is_empty() && fresh.revision > 0);
        c.commit(&q, &fresh, vec![seg(0, 5)], 1).await.unwrap();
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
