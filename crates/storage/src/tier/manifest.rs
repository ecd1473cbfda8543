//! What is in the bucket for one partition: the manifest (the list of remote segments), the
//! object layout, and the small etcd pointer that names the current manifest.
//!
//! Layout under the store's prefix:
//!
//! ```text
//! {cluster}/{topic}-{topic_id}/{partition}/{base_offset:020}-{epoch}-{uuid}.log    segment bytes
//! {cluster}/{topic}-{topic_id}/{partition}/{base_offset:020}-{epoch}-{uuid}.index  its index
//! {cluster}/{topic}-{topic_id}/{partition}/manifest-{seq:020}-{epoch}-{uuid}.json  a manifest
//! ```
//!
//! Every object key is unique (a UUID), so nothing is ever overwritten: a crashed or fenced
//! writer leaves orphans, never a damaged object. A manifest is immutable; the etcd key
//! `tier/{topic}/{p}` points at the current one and moves only by compare-and-swap, written by
//! the partition leader, never to a lower leader epoch. Order of writes: segment objects,
//! then a new manifest object, then the pointer; removal goes pointer (a manifest without the
//! entries) first, objects after. So a manifest never names a missing object.

use serde::{Deserialize, Serialize};

use shale_core::error::{Error, ErrorKind, Reason};

/// Manifest format version.
pub const MANIFEST_VERSION: u32 = 1;

/// One segment in the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteSegment {
    /// First offset in the segment.
    pub base_offset: i64,
    /// One past the last offset (the next segment's base offset).
    pub next_offset: i64,
    /// Bytes of the `.log` object.
    pub size_bytes: u64,
    /// Largest batch max timestamp in the segment (-1 if none).
    pub max_timestamp: i64,
    /// Leader epoch of the broker that uploaded it.
    pub upload_epoch: i32,
    /// Object name stem inside the partition folder: `{base:020}-{epoch}-{uuid}`.
    pub name: String,
}

/// The remote part of one partition's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version ([`MANIFEST_VERSION`]).
    pub version: u32,
    /// Topic name.
    pub topic: String,
    /// Topic id (a re-created topic has a new one, and a new folder).
    pub topic_id: String,
    /// Partition index.
    pub partition: u32,
    /// Increases with every manifest written for the partition.
    pub seq: u64,
    /// Leader epoch of the writer.
    pub leader_epoch: i32,
    /// Segments, oldest first, contiguous: each `next_offset` is the next one's base.
    pub segments: Vec<RemoteSegment>,
}

impl Manifest {
    /// An empty manifest (nothing tiered yet).
    pub fn empty(topic: &str, topic_id: &str, partition: u32) -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            topic: topic.to_string(),
            topic_id: topic_id.to_string(),
            partition,
            seq: 0,
            leader_epoch: -1,
            segments: Vec::new(),
        }
    }

    /// First offset in the bucket, if any.
    pub fn start_offset(&self) -> Option<i64> {
        self.segments.first().map(|s| s.base_offset)
    }

    /// One past the last tiered offset, if anything is tiered.
    pub fn end_offset(&self) -> Option<i64> {
        self.segments.last().map(|s| s.next_offset)
    }

    /// Bytes in the bucket.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size_bytes).sum()
    }

    /// The segment holding `offset`.
    pub fn find(&self, offset: i64) -> Option<&RemoteSegment> {
        let i = self.segments.partition_point(|s| s.next_offset <= offset);
        self.segments.get(i).filter(|s| s.base_offset <= offset)
    }

    /// The first segment whose newest record is at or after `timestamp`.
    pub fn first_at_or_after(&self, timestamp: i64) -> Option<&RemoteSegment> {
        self.segments.iter().find(|s| s.max_timestamp >= timestamp)
    }

    /// Checks the invariants a reader relies on: contiguous, non-empty segments.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |why: String| {
            Error::new(
                ErrorKind::Data,
                Reason::CorruptManifest,
                format!("manifest {} of {}-{}: {why}", self.seq, self.topic, self.partition),
            )
        };
        if self.version != MANIFEST_VERSION {
            return Err(bad(format!("unknown version {}", self.version)));
        }
        for w in self.segments.windows(2) {
            if w[0].next_offset != w[1].base_offset {
                return Err(bad(format!(
                    "segment {} ends at {} but the next starts at {}",
                    w[0].name, w[0].next_offset, w[1].base_offset
                )));
            }
        }
        if let Some(s) = self.segments.iter().find(|s| s.next_offset <= s.base_offset) {
            return Err(bad(format!("segment {} is empty", s.name)));
        }
        Ok(())
    }

    /// Encodes as JSON.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes and validates.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, Error> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| {
            Error::new(
                ErrorKind::Data,
                Reason::CorruptManifest,
                format!("manifest is not valid: {e}"),
            )
        })?;
        m.validate()?;
        Ok(m)
    }
}

/// The etcd pointer `tier/{topic}/{p}`: which manifest is current, with a summary so that
/// describe and followers need not read the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierPointer {
    /// Topic id the manifest belongs to.
    pub topic_id: String,
    /// Manifest object name inside the partition folder (`manifest-…json`).
    pub manifest: String,
    /// The manifest's sequence number.
    pub seq: u64,
    /// Leader epoch of the writer; the pointer never moves to a lower one.
    pub leader_epoch: i32,
    /// First offset in the bucket (-1: nothing tiered).
    pub start_offset: i64,
    /// One past the last tiered offset (-1: nothing tiered).
    pub end_offset: i64,
    /// Segments in the bucket.
    pub segments: u64,
    /// Bytes in the bucket.
    pub size_bytes: u64,
}

/// Object names inside a partition's folder.
pub mod names {
    /// `{base:020}-{epoch}-{uuid}`: a new segment's stem.
    pub fn segment_stem(base_offset: i64, epoch: i32) -> String {
        format!("{base_offset:020}-{epoch}-{}", uuid::Uuid::new_v4().simple())
    }

    /// `{stem}.log`.
    pub fn log(stem: &str) -> String {
        format!("{stem}.log")
    }

    /// `{stem}.index`.
    pub fn index(stem: &str) -> String {
        format!("{stem}.index")
    }

    /// `manifest-{seq:020}-{epoch}-{uuid}.json`.
    pub fn manifest(seq: u64, epoch: i32) -> String {
        format!("manifest-{seq:020}-{epoch}-{}.json", uuid::Uuid::new_v4().simple())
    }

    /// The sequence number a manifest object's name carries.
    pub fn manifest_seq(name: &str) -> Option<u64> {
        name.strip_prefix("manifest-")?.get(..20)?.parse().ok()
    }

    /// What an object in a partition folder is, by name.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Kind {
        /// A segment's data or index (its stem).
        Segment(String),
        /// A manifest.
        Manifest,
        /// Something Shale did not write.
        Other,
    }

    /// Classifies an object name.
    pub fn kind(name: &str) -> Kind {
        if name.starts_with("manifest-") && name.ends_with(".json") {
            return Kind::Manifest;
        }
        for suffix in [".log", ".index"] {
            if let Some(stem) = name.strip_suffix(suffix) {
                if stem.len() > 21 && stem.as_bytes()[..20].iter().all(u8::is_ascii_digit) {
                    return Kind::Segment(stem.to_string());
                }
            }
        }
        Kind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(base: i64, next: i64) -> RemoteSegment {
        RemoteSegment {
            base_offset: base,
            next_offset: next,
            size_bytes: 10,
            max_timestamp: base * 10,
            upload_epoch: 1,
            name: names::segment_stem(base, 1),
        }
    }

    #[test]
    fn lookups_and_invariants() {
        let mut m = Manifest::empty("t", "id", 0);
        assert_eq!((m.start_offset(), m.end_offset()), (None, None));
        m.segments = vec![seg(0, 100), seg(100, 250), seg(250, 300)];
        m.validate().unwrap();
        assert_eq!(m.find(0).unwrap().base_offset, 0);
        assert_eq!(m.find(99).unwrap().base_offset, 0);
        assert_eq!(m.find(100).unwrap().base_offset, 100);
        assert_eq!(m.find(299).unwrap().base_offset, 250);
        assert!(m.find(300).is_none());
        assert_eq!(m.first_at_or_after(1000).unwrap().base_offset, 100);
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
        m.segments[1].base_offset = 101;
        assert!(m.validate().unwrap_err().message.contains("ends at 100"));
    }

    #[test]
    fn names_classify() {
        let stem = names::segment_stem(42, 3);
        assert_eq!(names::kind(&names::log(&stem)), names::Kind::Segment(stem.clone()));
        assert_eq!(names::kind(&names::index(&stem)), names::Kind::Segment(stem));
        assert_eq!(names::kind(&names::manifest(7, 3)), names::Kind::Manifest);
        assert_eq!(names::manifest_seq(&names::manifest(7, 3)), Some(7));
        assert_eq!(names::manifest_seq("manifest-x.json"), None);
        assert_eq!(names::kind("README"), names::Kind::Other);
    }
}
