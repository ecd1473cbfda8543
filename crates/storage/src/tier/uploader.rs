//! The uploader: moves the sealed segments of the partitions a broker leads to the bucket.
//!
//! Per led partition with `remote.storage.enable`, one pass: read the current manifest;
//! while the sealed segment holding the manifest's end offset lies wholly below the high
//! watermark, upload it (sliced from that offset, with an index of its own), then commit a
//! manifest with it appended, fenced by leader epoch. A new leader resumes at the
//! manifest's end, so nothing is uploaded twice into the manifest and nothing is skipped,
//! unless DeleteRecords removed what lies between the manifest's end and the local log:
//! remote retention then empties the manifest and the next pass starts at the local log.
//! Then remote retention (`retention.rs`), then, for a compacted topic, remote compaction
//! (`compactor`). The order is always object,
//! then manifest, then local delete: local copies go only below the tiered end, which the
//! partition learns through [`TierPartition::set_tier_pointer`].

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;

use super::bucket::Bucket;
use super::catalog::{Current, PartitionRef};
use super::compactor::{Context, RemoteCompactor};
use super::manifest::{RemoteSegment, names};
use super::partition::TierPartition;
use super::reader::RemoteReader;
use super::throttle::Throttle;
use super::{TierSettings, retention};
use crate::log::UploadSlice;
use shale_core::clock::SharedClock;
use shale_core::error::Error;
use shale_core::record::control::AbortedTxn;
use shale_meta::membership::Membership;

/// What the next step of a partition's pass is.
enum Next {
    /// Upload this slice.
    Upload(Arc<UploadSlice>),
    /// Nothing (more) to upload now.
    Done,
    /// The remote log ends below the local log start: offsets between them are gone.
    Gap,
    /// The remote log ends below the local log, and everything in between (and in the
    /// bucket) is below the log start DeleteRecords set: deleted, not lost.
    Deleted,
}

/// Uploads sealed segments and applies remote retention, for the partitions a broker leads.
#[derive(Debug)]
pub struct Uploader {
    reader: RemoteReader,
    settings: TierSettings,
    throttle: Throttle,
    clock: SharedClock,
    membership: Membership,
    compactor: Option<Arc<RemoteCompactor>>,
}

impl Uploader {
    /// An uploader into `reader`'s catalog (whose reader caches each uploaded index), whose
    /// upload claims live under `membership`'s lease.
    pub fn new(
        reader: RemoteReader,
        settings: TierSettings,
        clock: SharedClock,
        membership: Membership,
    ) -> Uploader {
        let throttle = Throttle::new(settings.upload_bytes_per_sec);
        Uploader { reader, settings, throttle, clock, membership, compactor: None }
    }

    /// Compacts the remote logs of compacted topics with `compactor`, after each
    /// partition's uploads and remote retention.
    pub fn with_compactor(mut self, compactor: Arc<RemoteCompactor>) -> Uploader {
        self.compactor = Some(compactor);
        self
    }

    /// One pass over `led`, `tier.upload_concurrency` partitions at a time; a partition whose
    /// pass fails is tried again on the next one.
    pub async fn pass<P: TierPartition + ?Sized>(&self, led: Vec<Arc<P>>) {
        let concurrency = self.settings.upload_concurrency.max(1);
        futures::stream::iter(led)
            .for_each_concurrent(concurrency, |p| async move {
                if let Err(e) = self.tier_partition(&*p).await {
                    let pref = p.tier_ref();
                    tracing::warn!(
                        topic = %pref.topic,
                        partition = pref.partition,
                        error = %e,
                        "tiering pass failed; retrying on the next one"
                    );
                }
            })
            .await;
    }

    /// One pass over a partition this broker leads: uploads, then remote retention.
    pub async fn tier_partition<P: TierPartition + ?Sized>(&self, p: &P) -> Result<(), Error> {
        let Some(epoch) = p.leading_epoch() else { return Ok(()) };
        let pref = p.tier_ref();
        let config = p.topic_config();
        if !config.remote_storage_enable && p.tier_pointer().is_none() {
            return Ok(());
        }
        let catalog = self.reader.catalog();
        let mut current = catalog.current(&pref).await?;
        p.set_tier_pointer(current.pointer.clone());
        while config.remote_storage_enable && p.leading_epoch() == Some(epoch) {
            let slice = match self.next_slice(p, &pref, &current).await? {
                Next::Upload(slice) => slice,
                Next::Done => break,
                Next::Gap => return Ok(()),
                // Remote retention removes them; the next pass uploads from the local log.
                Next::Deleted => break,
            };
            let aborted = p.aborted_transactions();
            current = self.upload_one(&pref, &current, (slice, &aborted), epoch).await?;
            p.set_tier_pointer(current.pointer.clone());
        }
        if p.leading_epoch() == Some(epoch) && !current.manifest.segments.is_empty() {
            let now_ms = self.clock.now_ms();
            current = retention::expire(catalog, p, &pref, current, epoch, now_ms).await?;
        }
        if let Some(compactor) =
            self.compactor.as_ref().filter(|_| p.leading_epoch() == Some(epoch))
        {
            let cx = Context {
                reader: &self.reader,
                throttle: &self.throttle,
                lease: self.membership.lease(),
                now_ms: self.clock.now_ms(),
            };
            let next = compactor.compact(&cx, p, current, epoch).await?;
            p.set_tier_pointer(next.pointer.clone());
        }
        Ok(())
    }

    /// The sealed slice that continues the remote log, if it is wholly below the high
    /// watermark.
    async fn next_slice<P: TierPartition + ?Sized>(
        &self,
        p: &P,
        pref: &PartitionRef,
        current: &Current,
    ) -> Result<Next, Error> {
        let log = p.local_log().clone();
        // The first local segment's base: the log start may be inside it (DeleteRecords),
        // and a slice starts at a batch boundary.
        let local_start = log.local_base_offset();
        let from = current.manifest.end_offset().unwrap_or(local_start);
        if from < local_start && local_start <= log.start_floor() {
            return Ok(Next::Deleted);
        }
        if from < local_start {
            tracing::error!(
                topic = %pref.topic,
                partition = pref.partition,
                remote_end = from,
                local_start,
                "offsets between the remote log end and the local log start are gone; \
                 tiering of this partition stops"
            );
            return Ok(Next::Gap);
        }
        let slice = tokio::task::spawn_blocking(move || log.upload_slice(from))
            .await
            .map_err(|e| Error::internal(format!("upload slice task failed: {e}")))??;
        Ok(match slice {
            Some(slice) if slice.next_offset <= p.high_watermark() => Next::Upload(Arc::new(slice)),
            _ => Next::Done,
        })
    }

    /// Uploads one slice (data, then index) under a claim, and commits a manifest listing it.
    async fn upload_one(
        &self,
        pref: &PartitionRef,
        current: &Current,
        (slice, aborted): (Arc<UploadSlice>, &[AbortedTxn]),
        epoch: i32,
    ) -> Result<Current, Error> {
        let catalog = self.reader.catalog();
        let bucket = catalog.bucket();
        let stem = names::segment_stem(slice.base_offset, epoch);
        // The index travels at the end of the segment's object: one object, one PUT less.
        let paths = [catalog.object(pref, &names::log(&stem))];
        let started = shale_core::clock::monotonic_now();
        let claim = catalog.claim_upload(pref, &stem, self.membership.lease()).await?;
        if let Err(e) = self.put_slice(bucket, &paths[0], &slice).await {
            bucket.remove_quietly(&paths).await;
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
            index_bytes: slice.index.len() as u64,
            aborted: Vec::new(),
        };
        let segment = RemoteSegment { aborted: segment.aborted_of(aborted), ..segment };
        let mut segments = current.manifest.segments.clone();
        segments.push(segment.clone());
        match catalog.commit_upload(pref, current, segments, epoch, &claim).await {
            Ok(next) => {
                shale_core::failpoint::hit("tier.after_commit");
                self.reader.remember_index(pref, &segment, &slice.index).await;
                tracing::info!(
                    topic = %pref.topic,
                    partition = pref.partition,
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
                bucket.remove_quietly(&paths).await;
                catalog.release_upload(&claim).await;
                Err(e)
            }
        }
    }

    /// Writes the slice's bytes to `path`, read from the local segment as they are sent and
    /// paced by the upload throttle.
    async fn put_slice(
        &self,
        bucket: &Bucket,
        path: &ObjectPath,
        slice: &Arc<UploadSlice>,
    ) -> Result<(), Error> {
        let read = |pos: u64, len: u64| {
            let slice = slice.clone();
            async move {
                self.throttle.take(len).await;
                let bytes = tokio::task::spawn_blocking(move || slice.read(pos, len as usize))
                    .await
                    .map_err(|e| Error::internal(format!("segment read task failed: {e}")))??;
                Ok(Bytes::from(bytes))
            }
        };
        bucket.put_segment(path, slice.len, Bytes::from(slice.index.clone()), read).await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::log::{LogConfig, LogResources, PartitionLog};
    use crate::tier::{Bucket, Catalog, TierPointer};
    use shale_core::record::{BatchBuilder, Compression, Record};
    use shale_core::topic_config::TopicConfig;
    use shale_meta::topics::BrokerRecord;
    use shale_meta::{EmbeddedStore, Keys, MetaStore};

    /// A partition as the broker would offer it, with leadership and the high watermark set
    /// by the test.
    pub(crate) struct Fake {
        pub(crate) log: Arc<PartitionLog>,
        pub(crate) epoch: Mutex<Option<i32>>,
        pub(crate) hw: AtomicI64,
        pub(crate) config: Arc<TopicConfig>,
        pub(crate) pointer: Mutex<Option<TierPointer>>,
    }

    impl TierPartition for Fake {
        fn tier_ref(&self) -> PartitionRef {
            PartitionRef { topic: "t".into(), topic_id: "id".into(), partition: 0 }
        }
        fn leading_epoch(&self) -> Option<i32> {
            *self.epoch.lock().unwrap()
        }
        fn topic_config(&self) -> Arc<TopicConfig> {
            self.config.clone()
        }
        fn local_log(&self) -> &Arc<PartitionLog> {
            &self.log
        }
        fn high_watermark(&self) -> i64 {
            self.hw.load(Ordering::Acquire)
        }
        fn tier_pointer(&self) -> Option<TierPointer> {
            self.pointer.lock().unwrap().clone()
        }
        fn set_tier_pointer(&self, pointer: Option<TierPointer>) {
            *self.pointer.lock().unwrap() = pointer;
        }

        fn aborted_transactions(&self) -> Vec<shale_core::record::control::AbortedTxn> {
            Vec::new()
        }
    }

    /// A log of `batches` appends of 300-byte records, three per 1000-byte segment.
    fn log_of(dir: &std::path::Path, batches: u8, clock: &SharedClock) -> Arc<PartitionLog> {
        let config = LogConfig { segment_bytes: 1000, ..LogConfig::default() };
        let resources = Arc::new(LogResources::default());
        let log = PartitionLog::open(dir.join("t-0"), config, clock.clone(), resources);
        let log = Arc::new(log.unwrap());
        append(&log, batches, clock);
        log
    }

    fn append(log: &PartitionLog, batches: u8, clock: &SharedClock) {
        for i in 0..batches {
            let mut b = BatchBuilder::new(Compression::None);
            b.push(Record {
                key: None,
                value: Some(Bytes::from(vec![i; 300])),
                headers: vec![],
                // Recent: remote retention keeps everything.
                timestamp_ms: clock.now_ms(),
            });
            log.append(&mut b.build().to_vec(), 1).unwrap();
        }
    }

    /// An uploader into a memory bucket, with its catalog.
    pub(crate) async fn uploader(clock: &SharedClock) -> (Uploader, Arc<Catalog>) {
        let meta: Arc<dyn MetaStore> = EmbeddedStore::in_memory(clock.clone());
        let keys = Keys::new("c").unwrap();
        let record = BrokerRecord {
            id: 1,
            address: "127.0.0.1:1".into(),
            kafka_address: String::new(),
            registry_address: String::new(),
            rack: String::new(),
            started_ms: 0,
            incarnation: 1,
            draining: false,
        };
        let membership = Membership::join(
            meta.clone(),
            keys.clone(),
            record,
            Duration::from_secs(60),
            clock.clone(),
        )
        .await;
        let settings = TierSettings::default();
        let bucket = Bucket::open("memory://", &settings).unwrap();
        let catalog = Arc::new(Catalog::new(bucket, meta, keys, "c"));
        let reader = RemoteReader::open(catalog.clone(), &settings, None).await.unwrap();
        (Uploader::new(reader, settings, clock.clone(), membership.unwrap()), catalog)
    }

    fn tiered(log: Arc<PartitionLog>, epoch: Option<i32>, hw: i64) -> Fake {
        Fake {
            log,
            epoch: Mutex::new(epoch),
            hw: AtomicI64::new(hw),
            config: Arc::new(TopicConfig { remote_storage_enable: true, ..Default::default() }),
            pointer: Mutex::new(None),
        }
    }

    /// Uploads end where the high watermark is, only a leader uploads, and the partition
    /// learns each commit's pointer: all through `TierPartition`, without a broker.
    #[tokio::test]
    async fn a_leader_uploads_its_sealed_segments_below_the_high_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let clock = shale_core::clock::system();
        let log = log_of(dir.path(), 12, &clock);
        let sealed = log.sealed_ranges();
        assert!(sealed.len() >= 3, "{sealed:?}");
        let (uploader, catalog) = uploader(&clock).await;
        let p = tiered(log, None, sealed[1].next_offset);

        uploader.tier_partition(&p).await.unwrap();
        assert!(p.tier_pointer().is_none(), "a follower uploads nothing");

        *p.epoch.lock().unwrap() = Some(1);
        uploader.tier_partition(&p).await.unwrap();
        let pointer = p.tier_pointer().expect("the partition learnt the commit");
        assert_eq!((pointer.segments, pointer.end_offset), (2, sealed[1].next_offset));

        p.hw.store(p.log.log_end_offset(), Ordering::Release);
        uploader.tier_partition(&p).await.unwrap();
        let pointer = p.tier_pointer().unwrap();
        let last = sealed.last().unwrap();
        assert_eq!((pointer.segments, pointer.end_offset), (sealed.len() as u64, last.next_offset));
        let objects = catalog.bucket().list(&catalog.folder(&p.tier_ref())).await.unwrap();
        // One object per segment (its index inside); the first commit wrote a checkpoint,
        // each later one a delta.
        assert_eq!(objects.len(), 2 * sealed.len(), "segments, a checkpoint and deltas");
    }

    /// DeleteRecords past everything in the bucket and past the local segments that would
    /// continue it: the remote segments leave the manifest (the newest too) and the bucket,
    /// and tiering starts again from the local log, where it would otherwise stop at the gap.
    #[tokio::test]
    async fn remote_segments_wholly_below_the_log_start_leave_the_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let clock = shale_core::clock::system();
        let log = log_of(dir.path(), 6, &clock);
        let (uploader, catalog) = uploader(&clock).await;
        let p = tiered(log.clone(), Some(1), log.log_end_offset());
        uploader.tier_partition(&p).await.unwrap();
        let tiered_end = p.tier_pointer().unwrap().end_offset;
        assert_eq!(tiered_end, log.sealed_ranges().last().unwrap().next_offset);
        append(&log, 7, &clock);
        // Inside the second sealed segment after the tiered end: the first goes.
        let sealed = log.sealed_ranges();
        let later: Vec<_> = sealed.iter().filter(|s| s.base >= tiered_end).collect();
        assert!(later.len() >= 3, "{sealed:?}");
        let start = later[1].base + 1;
        log.advance_log_start(start).unwrap();
        assert_eq!(log.local_base_offset(), later[1].base);
        p.hw.store(log.log_end_offset(), Ordering::Release);

        uploader.tier_partition(&p).await.unwrap();
        let pointer = p.tier_pointer().unwrap();
        assert_eq!(pointer.segments, 0, "everything in the bucket was below {start}: {pointer:?}");
        let folder = catalog.folder(&p.tier_ref());
        let objects = catalog.bucket().list(&folder).await.unwrap();
        assert!(
            !objects.iter().any(|o| o.location.as_ref().ends_with(".log")),
            "segment objects deleted: {objects:?}"
        );
        uploader.tier_partition(&p).await.unwrap();
        let pointer = p.tier_pointer().unwrap();
        let last = log.sealed_ranges().last().unwrap().next_offset;
        assert_eq!(
            (pointer.start_offset, pointer.end_offset),
            (later[1].base, last),
            "tiering went on"
        );
    }
}
