//! What is in the bucket for one partition: the manifest (the list of remote segments), the
//! object layout, and the small etcd pointer that names the current manifest.
//!
//! Layout under the store's prefix:
//!
//! ```text
//! {cluster}/{topic}-{topic_id}/{partition}/{base_offset:020}-{epoch}-{uuid}.log    segment bytes, then its index
//! {cluster}/{topic}-{topic_id}/{partition}/{base_offset:020}-{epoch}-{uuid}.index  its index (format 1 only)
//! {cluster}/{topic}-{topic_id}/{partition}/manifest-{seq:020}-{epoch}-{uuid}.json  a checkpoint: the whole list
//! {cluster}/{topic}-{topic_id}/{partition}/delta-{seq:020}-{epoch}.json            one commit after a checkpoint
//! ```
//!
//! The manifest is a log: a checkpoint (a whole [`Manifest`]) and the [`ManifestDelta`]s
//! committed after it, each an append of segments and/or the removal of the oldest ones, so
//! a commit writes a few hundred bytes however many segments the partition has. A writer
//! writes a checkpoint instead when it is the first commit of its leader epoch, or once the
//! deltas since the last checkpoint reach [`checkpoint_every`]; the scrubber removes what
//! the current checkpoint replaced, after the grace period (no commit deletes anything).
//!
//! Every object key is unique (a UUID; a delta's seq and epoch are unique because only one
//! leader writes per epoch, and it writes create-only), so nothing is ever overwritten: a
//! crashed or fenced writer leaves orphans, never a damaged object. The etcd key
//! `tier/{topic}/{p}` names the current checkpoint and the latest seq (the deltas between
//! are named by seq and the pointer's epoch, which a new epoch's checkpoint resets) and
//! moves only by compare-and-swap, written by the partition leader, never to a lower leader
//! epoch. Order of writes: segment objects, then a checkpoint or delta, then the pointer;
//! removal goes pointer (a delta without the entries) first, objects after. So a manifest
//! never names a missing object.

use serde::{Deserialize, Serialize};

use shale_core::error::{Error, ErrorKind, Reason};
use shale_core::record::control::AbortedTxn;

/// Manifest format version written: 2 puts each segment's index at the end of its `.log`
/// object (`index_bytes`); 1 (still read) kept it in a `.index` object of its own.
pub const MANIFEST_VERSION: u32 = 2;

/// The oldest manifest format still read.
pub const MANIFEST_VERSION_MIN: u32 = 1;

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
    /// Bytes of the segment's index after its `size_bytes` bytes of batches in the `.log`
    /// object; 0 (version 1) when the index is the `.index` object.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub index_bytes: u64,
    /// The aborted transactions whose abort marker is in the segment, as `[producer id,
    /// first offset, marker offset]` (Kafka keeps them in each segment's `.txnindex`): a
    /// replica that lacks the partition's history learns from them what `read_committed`
    /// readers skip in the bucket.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aborted: Vec<[i64; 3]>,
}

impl RemoteSegment {
    /// Of `txns`, those whose marker is in this segment, as stored.
    pub fn aborted_of(&self, txns: &[AbortedTxn]) -> Vec<[i64; 3]> {
        txns.iter()
            .filter(|t| (self.base_offset..self.next_offset).contains(&t.last_offset))
            .map(|t| [t.producer_id, t.first_offset, t.last_offset])
            .collect()
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
    /// A compacted topic's remote compactions, `(offset, time_ms)`, both increasing: the
    /// compaction at `time_ms` deduplicated every offset below `offset` (the last one's is
    /// where the dirty part of the remote log starts; the times are the tombstones'
    /// `delete.retention.ms` horizons, as a local log's cleaner checkpoint keeps them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compacted: Vec<(i64, i64)>,
    /// Segments a compaction replaced, whose objects stay for `tier.orphan_grace_ms` after
    /// the replacement (a reader holding the manifest of before may still read them); the
    /// scrubber removes them then, and a later compaction forgets those gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<Retired>,
}

/// A segment a compaction took out of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retired {
    /// Its object name stem.
    pub name: String,
    /// The sequence number of the manifest that replaced it: a checkpoint, whose creation
    /// is when the segment's grace starts.
    pub seq: u64,
}

impl Manifest {
    /// The aborted transactions the segments list.
    pub fn aborted_txns(&self) -> Vec<AbortedTxn> {
        self.segments
            .iter()
            .flat_map(|s| &s.aborted)
            .map(|[producer_id, first_offset, last_offset]| AbortedTxn {
                producer_id: *producer_id,
                first_offset: *first_offset,
                last_offset: *last_offset,
            })
            .collect()
    }

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
            compacted: Vec::new(),
            retired: Vec::new(),
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
        if !(MANIFEST_VERSION_MIN..=MANIFEST_VERSION).contains(&self.version) {
            return Err(bad(format!(
                "unknown version {} (this broker reads {MANIFEST_VERSION_MIN} to {MANIFEST_VERSION})",
                self.version
            )));
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

/// Format of manifest deltas.
pub const DELTA_VERSION: u32 = 1;

/// The fewest deltas between checkpoints.
pub const CHECKPOINT_EVERY_MIN: u64 = 64;

/// After how many deltas a writer checkpoints a manifest of `segments` segments: at least
/// [`CHECKPOINT_EVERY_MIN`], and an eighth of the segment count, so a checkpoint's bytes
/// spread over the commits before it stay below eight segment entries per commit however
/// long the list grows (a fresh reader then reads one checkpoint and at most that many
/// deltas).
pub fn checkpoint_every(segments: usize) -> u64 {
    CHECKPOINT_EVERY_MIN.max(segments as u64 / 8)
}

/// One commit after a checkpoint: the oldest segments below `remove_below` leave the
/// manifest (remote retention), `append` joins its end (uploads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestDelta {
    /// Format version ([`DELTA_VERSION`]).
    pub version: u32,
    /// The manifest's sequence number after this delta.
    pub seq: u64,
    /// Leader epoch of the writer.
    pub leader_epoch: i32,
    /// Segments that start below this offset are removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_below: Option<i64>,
    /// Segments appended, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub append: Vec<RemoteSegment>,
}

impl ManifestDelta {
    /// The delta that turns `before` into a manifest of `after`, when `after` is `before`
    /// without some of its oldest segments and with new ones at the end; `None` otherwise
    /// (the writer checkpoints).
    pub fn between(
        before: &Manifest,
        after: &[RemoteSegment],
        epoch: i32,
    ) -> Option<ManifestDelta> {
        let removed = match after.first() {
            None => before.segments.len(),
            Some(first) => before.segments.iter().position(|s| s.name == first.name).unwrap_or(0),
        };
        let kept = &before.segments[removed..];
        if after.len() < kept.len() || after[..kept.len()] != *kept {
            return None;
        }
        Some(ManifestDelta {
            version: DELTA_VERSION,
            seq: before.seq + 1,
            leader_epoch: epoch,
            remove_below: (removed > 0).then(|| {
                after.first().map_or_else(|| before.end_offset().unwrap_or(0), |s| s.base_offset)
            }),
            append: after[kept.len()..].to_vec(),
        })
    }

    /// `m` with this delta applied; it must be the next one.
    pub fn apply(&self, m: &Manifest) -> Result<Manifest, Error> {
        if self.version != DELTA_VERSION || self.seq != m.seq + 1 {
            return Err(Error::new(
                ErrorKind::Data,
                Reason::CorruptManifest,
                format!(
                    "manifest delta {} (version {}) of {}-{} does not follow manifest {}",
                    self.seq, self.version, m.topic, m.partition, m.seq
                ),
            ));
        }
        let below = self.remove_below.unwrap_or(i64::MIN);
        let mut segments: Vec<RemoteSegment> =
            m.segments.iter().filter(|s| s.base_offset >= below).cloned().collect();
        segments.extend(self.append.iter().cloned());
        let next =
            Manifest { seq: self.seq, leader_epoch: self.leader_epoch, segments, ..m.clone() };
        next.validate()?;
        Ok(next)
    }

    /// Encodes as JSON.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes.
    pub fn decode(bytes: &[u8]) -> Result<ManifestDelta, Error> {
        serde_json::from_slice(bytes).map_err(|e| {
            Error::new(
                ErrorKind::Data,
                Reason::CorruptManifest,
                format!("manifest delta is not valid: {e}"),
            )
        })
    }
}

/// The etcd pointer `tier/{topic}/{p}`: which manifest is current, with a summary so that
/// describe and followers need not read the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierPointer {
    /// Topic id the manifest belongs to.
    pub topic_id: String,
    /// The current checkpoint's object name inside the partition folder (`manifest-…json`).
    pub manifest: String,
    /// The manifest's sequence number: the checkpoint's, plus the deltas after it.
    pub seq: u64,
    /// The checkpoint's sequence number; the deltas `checkpoint_seq + 1 ..= seq` follow it,
    /// named by seq and `leader_epoch`. Absent (pointers written before deltas): `seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_seq: Option<u64>,
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
    /// A compacted topic's last remote compaction: its cleaning point (every key below it
    /// is in the bucket once) and when it ran (ms). Absent: none yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compacted: Option<(i64, i64)>,
}

impl TierPointer {
    /// The sequence number of the checkpoint the pointer names.
    pub fn checkpoint_seq(&self) -> u64 {
        self.checkpoint_seq.unwrap_or(self.seq)
    }

    /// The names of the deltas after the checkpoint, oldest first.
    pub fn deltas(&self) -> impl Iterator<Item = (u64, String)> + '_ {
        (self.checkpoint_seq() + 1..=self.seq).map(|s| (s, names::delta(s, self.leader_epoch)))
    }
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

    /// `delta-{seq:020}-{epoch}.json`: a manifest delta (unique: one writer per epoch).
    pub fn delta(seq: u64, epoch: i32) -> String {
        format!("delta-{seq:020}-{epoch}.json")
    }

    /// The sequence number a delta object's name carries.
    pub fn delta_seq(name: &str) -> Option<u64> {
        name.strip_prefix("delta-")?.get(..20)?.parse().ok()
    }

    /// What an object in a partition folder is, by name.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Kind {
        /// A segment's data or index (its stem).
        Segment(String),
        /// A manifest checkpoint.
        Manifest,
        /// A manifest delta.
        Delta,
        /// Something Shale did not write.
        Other,
    }

    /// Classifies an object name.
    pub fn kind(name: &str) -> Kind {
        if name.starts_with("manifest-") && name.ends_with(".json") {
            return Kind::Manifest;
        }
        if name.starts_with("delta-") && name.ends_with(".json") {
            return Kind::Delta;
        }
        for suffix in [".log", ".index"] {
            if let Some(stem) = name.strip_suffix(suffix)
                && stem.len() > 21
                && stem.as_bytes()[..20].iter().all(u8::is_ascii_digit)
            {
                return Kind::Segment(stem.to_string());
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
            index_bytes: 0,
            aborted: Vec::new(),
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

    /// The bytes a manifest is stored as, pinned: brokers of different versions read each
    /// other's manifests, so a change here is a format change (bump `MANIFEST_VERSION`).
    #[test]
    fn the_manifest_format_is_pinned() {
        let segment = |base, index_bytes| RemoteSegment {
            base_offset: base,
            next_offset: base + 10,
            size_bytes: 4096,
            max_timestamp: 7,
            upload_epoch: 2,
            name: format!("{base:020}-2-0123456789abcdef0123456789abcdef"),
            index_bytes,
            aborted: Vec::new(),
        };
        let m = Manifest {
            seq: 3,
            leader_epoch: 2,
            segments: vec![segment(0, 0), segment(10, 96)],
            ..Manifest::empty("orders", "0a1b", 1)
        };
        let pinned = concat!(
            r#"{"version":2,"topic":"orders","topic_id":"0a1b","partition":1,"seq":3,"#,
            r#""leader_epoch":2,"segments":["#,
            r#"{"base_offset":0,"next_offset":10,"size_bytes":4096,"max_timestamp":7,"#,
            r#""upload_epoch":2,"name":"00000000000000000000-2-0123456789abcdef0123456789abcdef"},"#,
            r#"{"base_offset":10,"next_offset":20,"size_bytes":4096,"max_timestamp":7,"#,
            r#""upload_epoch":2,"name":"00000000000000000010-2-0123456789abcdef0123456789abcdef","#,
            r#""index_bytes":96}]}"#
        );
        assert_eq!(String::from_utf8(m.encode()).unwrap(), pinned);
        assert_eq!(Manifest::decode(pinned.as_bytes()).unwrap(), m);
        // Version 1 (indexes in objects of their own) is still read; unknown ones are not.
        let v1 =
            pinned.replace(r#""version":2"#, r#""version":1"#).replace(r#","index_bytes":96"#, "");
        let old = Manifest::decode(v1.as_bytes()).unwrap();
        assert!(old.segments.iter().all(|s| s.index_bytes == 0));
        let v3 = pinned.replace(r#""version":2"#, r#""version":3"#);
        let e = Manifest::decode(v3.as_bytes()).unwrap_err();
        assert!(e.message.contains("unknown version 3"), "{e}");
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
