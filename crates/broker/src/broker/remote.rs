//! A hosted partition's view of its remote log: the tier pointer last seen (from the
//! metadata watch, or from this broker's own commits) and reads through the broker's
//! [`RemoteReader`].

use std::sync::{Arc, RwLock};

use shale_core::error::{Error, ErrorKind};
use shale_storage::log::ReadChunk;
use shale_storage::tier::reader::RemoteReader;
use shale_storage::tier::{Manifest, PartitionRef, TierPointer};

/// The remote side of one partition.
#[derive(Debug)]
pub struct RemoteLog {
    reader: RemoteReader,
    pref: PartitionRef,
    pointer: RwLock<Option<TierPointer>>,
}

impl RemoteLog {
    /// The remote log of `pref`, read through `reader`.
    pub fn new(reader: RemoteReader, pref: PartitionRef) -> RemoteLog {
        RemoteLog { reader, pref, pointer: RwLock::new(None) }
    }

    /// Which partition (and topic incarnation) this is.
    pub fn partition_ref(&self) -> &PartitionRef {
        &self.pref
    }

    /// The reader (and through it the catalog).
    pub fn reader(&self) -> &RemoteReader {
        &self.reader
    }

    /// The pointer last seen, if it belongs to this topic incarnation and lists segments.
    pub fn pointer(&self) -> Option<TierPointer> {
        self.pointer.read().ok()?.clone()
    }

    /// Applies a pointer read from the store (or written here). Only moves to a newer
    /// manifest; a pointer of another topic incarnation is ignored.
    pub fn set_pointer(&self, pointer: Option<TierPointer>) {
        let Some(pointer) = pointer.filter(|p| p.topic_id == self.pref.topic_id) else { return };
        if let Ok(mut current) = self.pointer.write()
            && current.as_ref().is_none_or(|c| pointer.seq > c.seq)
        {
            *current = Some(pointer);
        }
    }

    /// `[start, end)` of the remote log, if it holds anything.
    pub fn range(&self) -> Option<(i64, i64)> {
        self.pointer().filter(|p| p.segments > 0).map(|p| (p.start_offset, p.end_offset))
    }

    /// Offsets below this are safely in the bucket (what local retention may delete).
    pub fn tiered_end(&self) -> Option<i64> {
        self.range().map(|(_, end)| end)
    }

    /// The current manifest, or `None` when nothing is tiered. A manifest object replaced
    /// meanwhile (a newer commit deleted it) is found again through the store's pointer.
    pub async fn manifest(&self) -> Result<Option<Arc<Manifest>>, Error> {
        let Some(pointer) = self.pointer() else { return Ok(None) };
        let catalog = self.reader.catalog();
        match catalog.load(&self.pref, &pointer).await {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind == ErrorKind::NotFound => {
                let current = catalog.current(&self.pref).await?;
                self.set_pointer(current.pointer.clone());
                Ok(current.pointer.is_some().then_some(current.manifest))
            }
            Err(e) => Err(e),
        }
    }

    /// Reads batches at `offset` from the bucket; `None` when the remote log does not hold
    /// `offset`.
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_bound: i64,
    ) -> Result<Option<ReadChunk>, Error> {
        let mut looked_again = false;
        loop {
            match self.range() {
                Some((start, end)) if offset >= start && offset < end => {}
                _ => return Ok(None),
            }
            let Some(manifest) = self.manifest().await? else { return Ok(None) };
            if manifest.find(offset).is_none() {
                return Ok(None);
            }
            match self.reader.read(&self.pref, &manifest, offset, max_bytes, upper_bound).await {
                // Remote retention removed the segment after this broker last saw the
                // pointer (manifest first, objects after): look at the store's pointer once
                // more. The offset is then below the remote start (out of range, as a
                // consumer expects) or, if the object is missing for another reason, the
                // same error comes back.
                Err(e) if e.kind == ErrorKind::NotFound && !looked_again => {
                    looked_again = true;
                    let current = self.reader.catalog().current(&self.pref).await?;
                    self.set_pointer(current.pointer);
                }
                other => return other.map(Some),
            }
        }
    }

    /// The first batch ending after `from` with a timestamp at or after `ts` in the remote
    /// log, as (its base offset, its max timestamp).
    pub async fn offset_for_timestamp(
        &self,
        ts: i64,
        from: i64,
    ) -> Result<Option<(i64, i64)>, Error> {
        let Some(manifest) = self.manifest().await? else { return Ok(None) };
        self.reader.offset_for_timestamp(&self.pref, &manifest, ts, from).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::TierSettings;
    use shale_meta::{Keys, MetaStore};
    use shale_storage::tier::manifest::names;
    use shale_storage::tier::{Bucket, Catalog, RemoteSegment};

    fn seg(base: i64, next: i64) -> RemoteSegment {
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
    async fn a_segment_removed_by_retention_mid_read_is_out_of_range_not_an_error() {
        let meta: Arc<dyn MetaStore> =
            shale_meta::EmbeddedStore::in_memory(shale_core::clock::system());
        let bucket = Bucket::open("memory://", &TierSettings::default()).unwrap();
        let catalog = Arc::new(Catalog::new(bucket, meta, Keys::new("c").unwrap(), "c"));
        let pref = PartitionRef { topic: "t".into(), topic_id: "id".into(), partition: 0 };
        let empty = catalog.current(&pref).await.unwrap();
        let both = catalog.commit(&pref, &empty, vec![seg(0, 10), seg(10, 20)], 1).await.unwrap();
        let remote = RemoteLog::new(
            RemoteReader::open(catalog.clone(), &TierSettings::default(), None).await.unwrap(),
            pref.clone(),
        );
        remote.set_pointer(both.pointer.clone());
        // Retention moves the remote start to 10 (the first segment's objects are gone, and
        // were never written here); this broker has not seen the new pointer yet.
        catalog.commit(&pref, &both, vec![seg(10, 20)], 1).await.unwrap();
        assert_eq!(remote.range(), Some((0, 20)));
        let read = remote.read(5, 1024, 20).await.unwrap();
        assert!(read.is_none(), "offset 5 is below the remote start now");
        assert_eq!(remote.range(), Some((10, 20)), "the pointer moved on");
        // An object missing for another reason is still an error, not silence.
        let e = remote.read(15, 1024, 20).await.unwrap_err();
        assert_eq!((e.kind, &*e.reason), (ErrorKind::NotFound, "OBJECT_STORE_ERROR"));
    }
}
