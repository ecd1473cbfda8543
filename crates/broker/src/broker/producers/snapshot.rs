//! Producer-state snapshot files: `{offset:020}.snapshot` in a partition directory holds
//! every producer's state as of `offset` (what its batches and markers below it left), as
//! Kafka's `.snapshot` files. Written when the log rolls; on open the newest one is loaded
//! and the log replayed from its offset, so the state survives restarts however long ago a
//! producer last wrote.
//!
//! Layout (big-endian): the shared file header, the offset, the producer count, then per
//! producer its id, epoch, coordinator epoch, last batch's largest timestamp, open
//! transaction's first offset (-1: none) and batches; then the unstable transactions (first
//! offset, producer, marker offset or -1); then the aborted transactions (last offset,
//! producer, first offset); then a CRC-32C of everything before it. Version 2 files (no
//! aborted index) and version 1 files (no transactions) load too.

use std::collections::{BTreeMap, VecDeque};

use hashbrown::HashMap;

use super::{BatchMeta, Entry, ProducerStates, State, Unstable};
use shale_storage::log::FileHeader;

/// The suffix of snapshot files.
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";
/// Version 3: with the aborted transactions.
const SNAPSHOT_HEADER: FileHeader = FileHeader { magic: *b"SHPS", version: 3 };
/// Version 2: with transactions.
const SNAPSHOT_HEADER_V2: FileHeader = FileHeader { magic: *b"SHPS", version: 2 };
/// Version 1: idempotence only.
const SNAPSHOT_HEADER_V1: FileHeader = FileHeader { magic: *b"SHPS", version: 1 };

/// The file name of the snapshot at `offset`.
pub fn snapshot_name(offset: i64) -> String {
    format!("{offset:020}{SNAPSHOT_SUFFIX}")
}

/// The offset a snapshot file name carries.
pub fn snapshot_offset(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

impl ProducerStates {
    /// The state as of `offset` (batches that end below it, markers below it), as snapshot
    /// file bytes.
    pub fn encode_snapshot(&self, offset: i64) -> Vec<u8> {
        let mut state = self.lock().clone();
        super::forget_from(&mut state, offset);
        encode(&state, offset)
    }

    /// Replaces the state with a snapshot's; returns the snapshot's offset.
    pub fn load_snapshot(&self, bytes: &[u8]) -> Result<i64, String> {
        let (offset, state) = decode(bytes)?;
        *self.lock() = state;
        Ok(offset)
    }
}

/// The snapshot `bytes` without the aborted transactions whose markers are at `markers`
/// (the cleaner removed them), in the current version; `None` when it names none of them.
pub fn snapshot_without_aborted(bytes: &[u8], markers: &[i64]) -> Result<Option<Vec<u8>>, String> {
    let (offset, mut state) = decode(bytes)?;
    let before = state.aborted.len();
    for m in markers {
        state.aborted.remove(m);
    }
    Ok((state.aborted.len() != before).then(|| encode(&state, offset)))
}

/// `state` as the bytes of the snapshot at `offset`.
fn encode(state: &State, offset: i64) -> Vec<u8> {
    let mut producers: Vec<(&i64, &Entry)> = state.producers.iter().collect();
    producers.sort_by_key(|(id, _)| **id);
    let mut out = SNAPSHOT_HEADER.to_vec();
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(&(producers.len() as u32).to_be_bytes());
    for (id, e) in producers {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&e.epoch.to_be_bytes());
        out.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
        out.extend_from_slice(&e.last_timestamp.to_be_bytes());
        out.extend_from_slice(&e.txn_first.unwrap_or(-1).to_be_bytes());
        out.push(e.batches.len() as u8);
        for b in &e.batches {
            out.extend_from_slice(&b.first_seq.to_be_bytes());
            out.extend_from_slice(&b.last_seq.to_be_bytes());
            out.extend_from_slice(&b.base_offset.to_be_bytes());
            out.extend_from_slice(&b.last_offset.to_be_bytes());
        }
    }
    out.extend_from_slice(&(state.unstable.len() as u32).to_be_bytes());
    for (first, u) in &state.unstable {
        out.extend_from_slice(&first.to_be_bytes());
        out.extend_from_slice(&u.producer_id.to_be_bytes());
        out.extend_from_slice(&u.marker.unwrap_or(-1).to_be_bytes());
    }
    out.extend_from_slice(&(state.aborted.len() as u32).to_be_bytes());
    for (last, (producer_id, first)) in &state.aborted {
        for v in [last, producer_id, first] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// A snapshot's offset and state.
fn decode(bytes: &[u8]) -> Result<(i64, State), String> {
    let (body, crc) = bytes.split_at_checked(bytes.len().saturating_sub(4)).ok_or("too short")?;
    let crc = u32::from_be_bytes(crc.try_into().map_err(|_| "too short")?);
    if crc32c::crc32c(body) != crc {
        return Err("checksum mismatch".into());
    }
    let (mut r, version) = match SNAPSHOT_HEADER.check(body) {
        Ok(rest) => (Reader(rest), 3),
        Err(e) => match (SNAPSHOT_HEADER_V2.check(body), SNAPSHOT_HEADER_V1.check(body)) {
            (Ok(rest), _) => (Reader(rest), 2),
            (_, Ok(rest)) => (Reader(rest), 1),
            _ => return Err(e),
        },
    };
    let v2 = version >= 2;
    let offset = r.i64()?;
    let mut producers = HashMap::new();
    for _ in 0..r.u32()? {
        let id = r.i64()?;
        let epoch = r.i16()?;
        let (coordinator_epoch, last_timestamp, txn_first) = match v2 {
            true => (r.i32()?, r.i64()?, Some(r.i64()?).filter(|f| *f >= 0)),
            false => (-1, -1, None),
        };
        let mut batches = VecDeque::new();
        for _ in 0..r.u8()? {
            batches.push_back(BatchMeta {
                first_seq: r.i32()?,
                last_seq: r.i32()?,
                base_offset: r.i64()?,
                last_offset: r.i64()?,
            });
        }
        let entry = Entry { epoch, batches, txn_first, coordinator_epoch, last_timestamp };
        producers.insert(id, entry);
    }
    let mut unstable = BTreeMap::new();
    if v2 {
        for _ in 0..r.u32()? {
            let first = r.i64()?;
            let producer_id = r.i64()?;
            let marker = Some(r.i64()?).filter(|m| *m >= 0);
            unstable.insert(first, Unstable { producer_id, marker });
        }
    }
    let mut aborted = BTreeMap::new();
    if version >= 3 {
        for _ in 0..r.u32()? {
            let last = r.i64()?;
            aborted.insert(last, (r.i64()?, r.i64()?));
        }
    }
    if !r.0.is_empty() {
        return Err("trailing bytes".into());
    }
    Ok((offset, State { producers, unstable, aborted }))
}

/// Big-endian fields off the front of a snapshot.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let (head, rest) = self.0.split_at_checked(N).ok_or("truncated")?;
        self.0 = rest;
        head.try_into().map_err(|_| "truncated".to_string())
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }

    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.take()?))
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take()?))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take()?))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.take()?))
    }
}
