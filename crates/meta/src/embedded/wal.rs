//! On-disk format of the embedded store: a write-ahead log of committed mutations plus a
//! snapshot that lets the log restart.
//!
//! Both files start with an 8-byte magic and a little-endian u32 format version. WAL
//! records are framed `[u32 len][u32 crc32c(payload)][payload]`; a payload is
//! `TAG_TXN, i64 revision, ops...` (ops run to the end of the payload; a put is
//! `OP_PUT, u32 key len, key, i64 create revision, i64 version, u32 value len, value`, a
//! delete `OP_DELETE, u32 key len, key`) or `TAG_OPEN, i64 generation`. The snapshot is
//! `i64 revision, i64 generation, u64 count, entries (key, value, create, mod, version),
//! u32 crc32c` of everything before it. All integers are little-endian.

use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::super::{MetaError, Revision};

/// The log of committed mutations since the snapshot.
pub(super) const WAL_FILE: &str = "meta.wal";
/// The last snapshot.
pub(super) const SNAPSHOT_FILE: &str = "meta.snapshot";
use shale_core::disk::{Disk, FileHandle, OpenMode, SharedDisk, TMP_SUFFIX};
const WAL_MAGIC: [u8; 8] = *b"SHALEWAL";
const SNAPSHOT_MAGIC: [u8; 8] = *b"SHALESNP";
const FORMAT_VERSION: u32 = 1;
const FILE_HEADER_LEN: usize = 12;
const FRAME_HEADER_LEN: usize = 8;
/// Larger frames are torn length fields, not records (etcd caps requests at 1.5 MiB and a
/// batch of them is bounded too).
const MAX_FRAME_LEN: usize = 256 << 20;

const TAG_TXN: u8 = 1;
const TAG_OPEN: u8 = 2;
const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;

/// One persisted change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RecordOp {
    /// The key now holds this value.
    Put { key: String, value: Bytes, create_revision: Revision, version: i64 },
    /// The key is gone (deleted, or bound to a lease, which does not survive a restart).
    Delete { key: String },
}

/// One WAL record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Record {
    /// A committed write transaction at `revision`.
    Txn { revision: Revision, ops: Vec<RecordOp> },
    /// The store was opened; lease ids of this run use `generation`.
    Open { generation: i64 },
}

/// A change to encode, borrowed from the in-memory state.
pub(super) enum OpRef<'a> {
    Put { key: &'a str, value: &'a [u8], create_revision: Revision, version: i64 },
    Delete { key: &'a str },
}

/// Appends one framed txn record to `buf`.
pub(super) fn encode_txn<'a>(
    buf: &mut Vec<u8>,
    revision: Revision,
    ops: impl IntoIterator<Item = OpRef<'a>>,
) {
    let start = begin_frame(buf);
    buf.push(TAG_TXN);
    buf.extend_from_slice(&revision.to_le_bytes());
    for op in ops {
        match op {
            OpRef::Put { key, value, create_revision, version } => {
                buf.push(OP_PUT);
                put_bytes(buf, key.as_bytes());
                buf.extend_from_slice(&create_revision.to_le_bytes());
                buf.extend_from_slice(&version.to_le_bytes());
                put_bytes(buf, value);
            }
            OpRef::Delete { key } => {
                buf.push(OP_DELETE);
                put_bytes(buf, key.as_bytes());
            }
        }
    }
    finish_frame(buf, start);
}

/// Appends one framed open record to `buf`.
pub(super) fn encode_open(buf: &mut Vec<u8>, generation: i64) {
    let start = begin_frame(buf);
    buf.push(TAG_OPEN);
    buf.extend_from_slice(&generation.to_le_bytes());
    finish_frame(buf, start);
}

fn begin_frame(buf: &mut Vec<u8>) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    start
}

fn finish_frame(buf: &mut [u8], start: usize) {
    let payload = &buf[start + FRAME_HEADER_LEN..];
    let len = payload.len() as u32;
    let crc = crc32c::crc32c(payload);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// A bounds-checked little-endian reader; `None` means malformed.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
    fn done(&self) -> bool {
        self.pos == self.buf.len()
    }
}

/// Decodes a record payload (after its frame was checked).
fn decode_record(payload: &[u8]) -> Option<Record> {
    let mut r = Reader { buf: payload, pos: 0 };
    match r.u8()? {
        TAG_TXN => {
            let revision = r.i64()?;
            let mut ops = Vec::new();
            while !r.done() {
                ops.push(match r.u8()? {
                    OP_PUT => {
                        let key = r.string()?;
                        let create_revision = r.i64()?;
                        let version = r.i64()?;
                        let value = Bytes::copy_from_slice(r.bytes()?);
                        RecordOp::Put { key, value, create_revision, version }
                    }
                    OP_DELETE => RecordOp::Delete { key: r.string()? },
                    _ => return None,
                });
            }
            Some(Record::Txn { revision, ops })
        }
        TAG_OPEN => {
            let generation = r.i64()?;
            r.done().then_some(Record::Open { generation })
        }
        _ => None,
    }
}

fn file_header(magic: [u8; 8]) -> [u8; FILE_HEADER_LEN] {
    let mut h = [0; FILE_HEADER_LEN];
    h[..8].copy_from_slice(&magic);
    h[8..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

fn check_header(path: &Path, data: &[u8], magic: [u8; 8]) -> Result<(), MetaError> {
    let corrupt =
        |reason: String| MetaError::Corrupt { path: path.to_path_buf(), offset: 0, reason };
    if data.len() < FILE_HEADER_LEN || data[..8] != magic {
        return Err(corrupt("missing file header; not a shale metadata file".into()));
    }
    let version = u32::from_le_bytes([data[8], data[9], data[10], data[11]]);
    if version != FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {version} is not supported (this build reads {FORMAT_VERSION})"
        )));
    }
    Ok(())
}

/// The append-only log file.
#[derive(Debug)]
pub(super) struct Wal {
    disk: SharedDisk,
    path: PathBuf,
    file: FileHandle,
    len: u64,
}

impl Wal {
    /// Opens (or creates) the WAL in `dir` and returns its records. A torn or corrupt tail
    /// (a write cut short by a crash) is truncated with a warning: nothing after it was
    /// acknowledged, because every acknowledged write was synced after all earlier ones.
    pub(super) fn open(disk: SharedDisk, dir: &Path) -> Result<(Wal, Vec<Record>), MetaError> {
        let path = dir.join(WAL_FILE);
        if disk.metadata(&path).is_err() {
            write_atomically(&*disk, dir, WAL_FILE, &file_header(WAL_MAGIC))?;
        }
        let data = disk.read(&path).map_err(|e| MetaError::io(&path, e))?;
        check_header(&path, &data, WAL_MAGIC)?;
        let mut records = Vec::new();
        let mut pos = FILE_HEADER_LEN;
        let mut damage = None;
        while pos < data.len() {
            match read_frame(&data, pos) {
                Ok((payload, next)) => match decode_record(payload) {
                    Some(record) => {
                        records.push(record);
                        pos = next;
                    }
                    // The checksum matched, so these bytes were written as they are: this
                    // is not a torn write but a format this build cannot read.
                    None => {
                        return Err(MetaError::Corrupt {
                            path,
                            offset: pos as u64,
                            reason: "a record with a valid checksum does not decode".into(),
                        });
                    }
                },
                Err(reason) => {
                    damage = Some(reason);
                    break;
                }
            }
        }
        let file =
            disk.open(&path, OpenMode::ReadWriteCreate).map_err(|e| MetaError::io(&path, e))?;
        if let Some(reason) = damage {
            tracing::warn!(
                path = %path.display(),
                offset = pos,
                dropped_bytes = data.len() - pos,
                reason,
                "truncating the torn tail of the metadata wal; writes before it are intact"
            );
            file.set_len(pos as u64).map_err(|e| MetaError::io(&path, e))?;
            file.sync_all().map_err(|e| MetaError::io(&path, e))?;
        }
        Ok((Wal { disk, path, file, len: pos as u64 }, records))
    }

    /// Appends framed records and syncs them to disk before returning.
    pub(super) fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, self.len)?;
        self.file.sync_data()?;
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Current size in bytes.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// The disk the WAL and snapshots live on.
    pub(super) fn disk(&self) -> &dyn Disk {
        &*self.disk
    }

    /// The WAL's path, for error messages.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the WAL with an empty one (after a snapshot made its records redundant).
    pub(super) fn reset(&mut self, dir: &Path) -> Result<(), MetaError> {
        write_atomically(&*self.disk, dir, WAL_FILE, &file_header(WAL_MAGIC))?;
        self.file = self
            .disk
            .open(&self.path, OpenMode::ReadWriteCreate)
            .map_err(|e| MetaError::io(&self.path, e))?;
        self.len = FILE_HEADER_LEN as u64;
        Ok(())
    }
}

/// The payload of the frame at `pos` and the position after it, or why it is unreadable.
fn read_frame(data: &[u8], pos: usize) -> Result<(&[u8], usize), &'static str> {
    let header = data.get(pos..pos + FRAME_HEADER_LEN).ok_or("partial frame header")?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_FRAME_LEN {
        return Err("implausible frame length");
    }
    // Every record has at least its type byte. A zero length with a zero checksum (the CRC
    // of nothing) is a zero-filled tail: a file size that reached the disk before its data.
    if len == 0 {
        return Err("empty frame (a zero-filled tail)");
    }
    let start = pos + FRAME_HEADER_LEN;
    let payload = data.get(start..start + len).ok_or("partial frame payload")?;
    if crc32c::crc32c(payload) != crc {
        return Err("frame checksum mismatch");
    }
    Ok((payload, start + len))
}

/// One key in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SnapshotEntry {
    pub key: String,
    pub value: Bytes,
    pub create_revision: Revision,
    pub mod_revision: Revision,
    pub version: i64,
}

/// A decoded snapshot.
#[derive(Debug, Default)]
pub(super) struct Snapshot {
    pub revision: Revision,
    pub generation: i64,
    pub entries: Vec<SnapshotEntry>,
}

/// Encodes a snapshot file's full contents into `buf`.
pub(super) fn encode_snapshot<'a>(
    buf: &mut Vec<u8>,
    revision: Revision,
    generation: i64,
    count: usize,
    entries: impl IntoIterator<Item = (&'a str, &'a [u8], Revision, Revision, i64)>,
) {
    buf.extend_from_slice(&file_header(SNAPSHOT_MAGIC));
    buf.extend_from_slice(&revision.to_le_bytes());
    buf.extend_from_slice(&generation.to_le_bytes());
    buf.extend_from_slice(&(count as u64).to_le_bytes());
    for (key, value, create_revision, mod_revision, version) in entries {
        put_bytes(buf, key.as_bytes());
        put_bytes(buf, value);
        buf.extend_from_slice(&create_revision.to_le_bytes());
        buf.extend_from_slice(&mod_revision.to_le_bytes());
        buf.extend_from_slice(&version.to_le_bytes());
    }
    let crc = crc32c::crc32c(buf);
    buf.extend_from_slice(&crc.to_le_bytes());
}

/// Reads the snapshot in `dir`, if any. Snapshots are written atomically, so any damage
/// is real corruption and fails the open rather than silently dropping metadata.
pub(super) fn read_snapshot(
    disk: &dyn Disk,
    dir: &Path,
) -> Result<Option<(Snapshot, u64)>, MetaError> {
    let path = dir.join(SNAPSHOT_FILE);
    let data = match disk.read(&path) {
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(MetaError::io(&path, e)),
    };
    check_header(&path, &data, SNAPSHOT_MAGIC)?;
    let corrupt = |offset: usize, reason: &str| MetaError::Corrupt {
        path: path.clone(),
        offset: offset as u64,
        reason: reason.to_string(),
    };
    let body_len = data.len().checked_sub(4).filter(|n| *n >= FILE_HEADER_LEN + 24);
    let body_len = body_len.ok_or_else(|| corrupt(data.len(), "snapshot is truncated"))?;
    let (body, crc) = data.split_at(body_len);
    if crc32c::crc32c(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err(corrupt(body_len, "snapshot checksum mismatch"));
    }
    let mut r = Reader { buf: body, pos: FILE_HEADER_LEN };
    let mut snap = Snapshot::default();
    let bad = |r: &Reader<'_>| corrupt(r.pos, "snapshot entry does not decode");
    snap.revision = r.i64().ok_or_else(|| bad(&r))?;
    snap.generation = r.i64().ok_or_else(|| bad(&r))?;
    let count = r.i64().ok_or_else(|| bad(&r))? as u64;
    for _ in 0..count {
        let entry = (|| {
            Some(SnapshotEntry {
                key: r.string()?,
                value: Bytes::copy_from_slice(r.bytes()?),
                create_revision: r.i64()?,
                mod_revision: r.i64()?,
                version: r.i64()?,
            })
        })();
        snap.entries.push(entry.ok_or_else(|| bad(&r))?);
    }
    if !r.done() {
        return Err(bad(&r));
    }
    Ok(Some((snap, data.len() as u64)))
}

/// Replaces `name` in `dir` atomically (see [`shale_core::disk::write_atomic`]).
pub(super) fn write_atomically(
    disk: &dyn Disk,
    dir: &Path,
    name: &str,
    data: &[u8],
) -> Result<(), MetaError> {
    Ok(shale_core::disk::write_atomic(disk, dir, name, data)?)
}

/// Removes temporary files a crash may have left behind.
pub(super) fn remove_leftovers(disk: &dyn Disk, dir: &Path) -> Result<(), MetaError> {
    for name in [WAL_FILE, SNAPSHOT_FILE] {
        let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
        match disk.remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(MetaError::io(&tmp, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_bytes_are_pinned() {
        let mut buf = Vec::new();
        encode_txn(&mut buf, 2, [OpRef::Delete { key: "k" }]);
        // len 15, crc, TAG_TXN, revision 2, OP_DELETE, key len 1, 'k'.
        let payload = [1, 2, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0, b'k'];
        assert_eq!(&buf[..4], &15u32.to_le_bytes());
        assert_eq!(&buf[4..8], &crc32c::crc32c(&payload).to_le_bytes());
        assert_eq!(&buf[8..], &payload);
        assert_eq!(&file_header(WAL_MAGIC), b"SHALEWAL\x01\x00\x00\x00");
    }

    #[test]
    fn records_round_trip() {
        let mut buf = Vec::new();
        encode_txn(
            &mut buf,
            7,
            [
                OpRef::Put { key: "/a", value: b"v", create_revision: 3, version: 2 },
                OpRef::Delete { key: "/b" },
            ],
        );
        encode_open(&mut buf, 4);
        let (p1, next) = read_frame(&buf, 0).unwrap();
        let (p2, end) = read_frame(&buf, next).unwrap();
        assert_eq!(end, buf.len());
        assert_eq!(
            decode_record(p1),
            Some(Record::Txn {
                revision: 7,
                ops: vec![
                    RecordOp::Put {
                        key: "/a".into(),
                        value: Bytes::from_static(b"v"),
                        create_revision: 3,
                        version: 2
                    },
                    RecordOp::Delete { key: "/b".into() },
                ],
            })
        );
        assert_eq!(decode_record(p2), Some(Record::Open { generation: 4 }));
        buf[next + 9] ^= 0xff;
        assert!(read_frame(&buf, next).is_err(), "flipped byte must fail the checksum");
        assert!(read_frame(&buf[..buf.len() - 1], next).is_err(), "short payload");
    }
}
