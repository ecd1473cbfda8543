//! The journal file: two header slots, then the ring. The whole file is written once, with
//! zeros, when the journal is created, so that every later write lands on blocks the file
//! system has already allocated and an `fdatasync` of the journal commits no metadata.
//!
//! ```text
//! 0        slot 0 (one sector)   magic "SHJL", version 1, 3 zero bytes, capacity u64,
//! 512      slot 1 (one sector)   sequence u64, generation u32, 4 zero bytes, trim u64,
//!                                CRC-32C u32 of the 40 bytes before it (all big-endian)
//! 4096     the ring: `capacity` bytes (a multiple of 4096)
//! ```
//!
//! Where the file system takes them (`Disk::open_direct`: `O_DIRECT | O_DSYNC`), the ring is
//! written with direct, durable writes of whole pages: one call a round, durable when it
//! returns, no page-cache copy, no writeback, and no page cache held (`docs/benchmarks.md`,
//! "Direct writes of the journal"). A round's first page begins with the previous round's last bytes,
//! written again as they are (as the page cache writes back a whole page too); its last
//! page goes on past the round's end with a frame header of zeros (where a scan stops) and
//! then whatever the write buffer held, over bytes of the ring's previous lap, which the
//! journal keeps clear of positions it still needs ([`JournalFile::overwrite_margin`]). Elsewhere
//! (tmpfs before Linux 6.6, FUSE file systems that refuse it) the ring is written through
//! the page cache and synced.
//!
//! A header is written over the slot the newest valid one is not in, then synced; an
//! open takes the valid slot with the higher sequence. So a header write that a crash tore
//! leaves the previous one in force. Each open writes a header with the generation bumped,
//! before any frame is written (see `frame`). A journal is created under a temporary name
//! and renamed into place once whole and synced: a journal file whose headers are both
//! invalid is damaged, never a creation cut short, and opening it fails.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use shale_core::disk::{DIRECT_ALIGN, FileHandle, OpenMode, SharedDisk, TMP_SUFFIX, read_full_at};

use super::frame::HEADER_LEN as FRAME_HEADER_LEN;
use super::ring::RingRead;

/// Where the ring starts in the file.
pub(crate) const RING_START: u64 = 4096;
/// Bytes of one header slot (a sector, so a device writes it whole or not at all).
const SLOT: u64 = 512;
const MAGIC: &[u8; 4] = b"SHJL";
const VERSION: u8 = 1;
/// Header bytes before the CRC.
const HEADER_LEN: usize = 44;
/// Zeros written at a time while a journal is created.
const FILL_CHUNK: usize = 1 << 20;

/// Why the journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JournalError {
    /// An I/O operation on the journal failed.
    #[error("i/o error on the journal {path:?}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The journal's headers are unreadable, or not a journal's.
    #[error("the journal {path:?} is damaged: {reason}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// What a header holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Bytes of the ring.
    pub(crate) capacity: u64,
    /// Bumped by every header write; the newest valid slot wins.
    pub(crate) sequence: u64,
    /// Bumped by every open.
    pub(crate) generation: u32,
    /// The oldest position a partition still needs.
    pub(crate) trim: u64,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN + 4] {
        let mut b = [0u8; HEADER_LEN + 4];
        b[..4].copy_from_slice(MAGIC);
        b[4] = VERSION;
        b[8..16].copy_from_slice(&self.capacity.to_be_bytes());
        b[16..24].copy_from_slice(&self.sequence.to_be_bytes());
        b[24..28].copy_from_slice(&self.generation.to_be_bytes());
        b[32..40].copy_from_slice(&self.trim.to_be_bytes());
        let crc = crc32c::crc32c(&b[..HEADER_LEN - 4]);
        b[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// The header in `b` (a slot's bytes), if it is a valid one.
    fn decode(b: &[u8]) -> Option<Header> {
        let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let stored = u32::from_be_bytes(b[HEADER_LEN - 4..HEADER_LEN].try_into().expect("4"));
        if &b[..4] != MAGIC || b[4] != VERSION || crc32c::crc32c(&b[..HEADER_LEN - 4]) != stored {
            return None;
        }
        Some(Header {
            capacity: u64_at(8),
            sequence: u64_at(16),
            generation: u32::from_be_bytes(b[24..28].try_into().expect("4 bytes")),
            trim: u64_at(32),
        })
    }
}

/// An open journal file.
#[derive(Debug)]
pub(crate) struct JournalFile {
    path: PathBuf,
    file: FileHandle,
    /// The ring's bytes (fixed for the file's life).
    capacity: u64,
    /// The header in force; locked while a new one is written.
    header: Mutex<Header>,
    /// The ring's direct, durable writes, where the file system takes them.
    direct: Option<Direct>,
}

/// The ring written in whole pages through a handle from `Disk::open_direct`.
#[derive(Debug)]
struct Direct {
    file: FileHandle,
    /// Only the writer thread writes rounds: never contended.
    pages: Mutex<Pages>,
}

/// The pages of the write in progress, and the last page written.
#[derive(Debug, Default)]
struct Pages {
    /// Room for a write's pages, and for aligning them to a page.
    buf: Vec<u8>,
    /// The ring position of the last page written, and where its bytes still are in
    /// `buf`: where the next write starts on that page, its first bytes.
    last: Option<(u64, usize)>,
}

impl JournalFile {
    /// Opens the journal at `path`, creating it with a ring of `capacity` bytes (a multiple
    /// of 4096) if it does not exist, and starts a new generation. An existing journal keeps
    /// its own capacity.
    pub(crate) fn open(
        disk: &SharedDisk,
        path: &Path,
        capacity: u64,
    ) -> Result<JournalFile, JournalError> {
        let io = |source| JournalError::Io { path: path.to_path_buf(), source };
        if disk.metadata(path).is_err() {
            create(disk, path, capacity)?;
        }
        let file = disk.open(path, OpenMode::ReadWrite).map_err(io)?;
        let mut slots = [0u8; 2 * SLOT as usize];
        read_full_at(&*file, &mut slots, 0).map_err(io)?;
        let newest = [&slots[..SLOT as usize], &slots[SLOT as usize..]]
            .into_iter()
            .filter_map(Header::decode)
            .max_by_key(|h| h.sequence)
            .ok_or_else(|| JournalError::Damaged {
                path: path.to_path_buf(),
                reason: "neither header slot holds a valid header".into(),
            })?;
        let size = file.size().map_err(io)?;
        if size < RING_START + newest.capacity {
            return Err(JournalError::Damaged {
                path: path.to_path_buf(),
                reason: format!(
                    "{size} bytes, fewer than the {} its header says",
                    RING_START + newest.capacity
                ),
            });
        }
        let mut journal = JournalFile {
            path: path.to_path_buf(),
            file,
            capacity: newest.capacity,
            header: Mutex::new(newest),
            direct: None,
        };
        journal.write_header(|h| Header { generation: h.generation + 1, ..h })?;
        journal.direct = journal.open_direct(disk)?;
        Ok(journal)
    }

    /// The ring's direct writes, if the file system takes them: a handle from
    /// `Disk::open_direct` and a first write that succeeds (the ring's first page written
    /// again as it is; a device whose blocks are larger than a page refuses it).
    fn open_direct(&self, disk: &SharedDisk) -> Result<Option<Direct>, JournalError> {
        use std::io::ErrorKind::{InvalidInput, Unsupported};
        let file = match disk.open_direct(&self.path) {
            Ok(file) => file,
            Err(e) if matches!(e.kind(), Unsupported | InvalidInput) => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        let direct = Direct { file, pages: Mutex::default() };
        let mut first = vec![0; DIRECT_ALIGN];
        self.read_at(0, &mut first).map_err(|e| self.io(e))?;
        match direct.write(self, 0, &first) {
            Ok(()) => Ok(Some(direct)),
            Err(JournalError::Io { source, .. }) if source.kind() == InvalidInput => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether the ring is written with direct, durable writes.
    pub(crate) fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Bytes past the end of a write that it may overwrite: the rest of its last page with
    /// direct writes. The journal keeps that much of the ring clear ahead
    /// of its end, so they are always bytes of a lap it no longer needs.
    pub(crate) fn overwrite_margin(&self) -> u64 {
        if self.is_direct() { DIRECT_ALIGN as u64 } else { 0 }
    }

    /// The header in force.
    pub(crate) fn header(&self) -> Header {
        *self.header.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Records `trim` as the oldest position still needed, durably.
    pub(crate) fn set_trim(&self, trim: u64) -> Result<(), JournalError> {
        self.write_header(|h| Header { trim, ..h })
    }

    /// Writes `bytes` (frames, wrap frames and the zeros that skip to a lap's start) at
    /// ring position `lsn`, in two writes where they run past the ring's end. Not durable
    /// until [`sync`](Self::sync).
    pub(crate) fn write_at(&self, lsn: u64, bytes: &[u8]) -> Result<(), JournalError> {
        let capacity = self.capacity;
        let pos = lsn % capacity;
        let first = bytes.len().min((capacity - pos) as usize);
        let (before_end, after) = bytes.split_at(first);
        let write = |pos: u64, bytes: &[u8]| match &self.direct {
            Some(direct) => direct.write(self, pos, bytes),
            None => self.file.write_all_at(bytes, RING_START + pos).map_err(|e| self.io(e)),
        };
        write(pos, before_end)?;
        if !after.is_empty() {
            write(0, after)?;
        }
        Ok(())
    }

    /// Makes every write so far durable (direct writes already are).
    pub(crate) fn sync(&self) -> Result<(), JournalError> {
        match self.direct {
            Some(_) => Ok(()),
            None => self.file.sync_data().map_err(|e| self.io(e)),
        }
    }

    /// Writes the header `change` makes of the one in force into the other slot, and syncs
    /// it; it is in force once durable.
    fn write_header(&self, change: impl FnOnce(Header) -> Header) -> Result<(), JournalError> {
        let mut header = self.header.lock().unwrap_or_else(PoisonError::into_inner);
        let next = Header { sequence: header.sequence + 1, ..change(*header) };
        let slot = next.sequence % 2 * SLOT;
        self.file.write_all_at(&next.encode(), slot).map_err(|e| self.io(e))?;
        self.file.sync_data().map_err(|e| self.io(e))?;
        *header = next;
        Ok(())
    }

    fn io(&self, source: std::io::Error) -> JournalError {
        JournalError::Io { path: self.path.clone(), source }
    }
}

impl Direct {
    /// Writes `bytes` at ring position `pos` (not past the ring's end), durably, as the
    /// whole pages that hold them: the first begins with the ring's bytes before `pos`
    /// (the last page written, or read back); after `bytes`, a frame header of zeros.
    fn write(&self, j: &JournalFile, pos: u64, bytes: &[u8]) -> Result<(), JournalError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let page = DIRECT_ALIGN as u64;
        let start = pos / page * page;
        let head = (pos - start) as usize;
        let end = (pos + bytes.len() as u64).div_ceil(page) * page;
        let len = (end - start) as usize;
        let mut pages = self.pages.lock().unwrap_or_else(PoisonError::into_inner);
        let Pages { buf, last } = &mut *pages;
        if buf.len() < len + DIRECT_ALIGN {
            buf.resize(len + DIRECT_ALIGN, 0);
        }
        // `buf` keeps its bytes when it grows (its indexes, not its address).
        let align = buf.as_ptr().align_offset(DIRECT_ALIGN);
        match *last {
            Some((at, from)) if at == start => buf.copy_within(from..from + head, align),
            _ => j.read_at(start, &mut buf[align..align + head]).map_err(|e| j.io(e))?,
        }
        let out = &mut buf[align..align + len];
        out[head..head + bytes.len()].copy_from_slice(bytes);
        // A frame header of zeros ends the journal where this write does; the rest of the
        // page is a lap the journal no longer needs (whatever the buffer held before).
        let tail = head + bytes.len();
        out[tail..(tail + FRAME_HEADER_LEN).min(len)].fill(0);
        self.file.write_all_at(out, RING_START + start).map_err(|e| j.io(e))?;
        *last = Some((end - page, align + len - DIRECT_ALIGN));
        Ok(())
    }
}

impl RingRead for JournalFile {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let n = read_full_at(&*self.file, buf, RING_START + pos)?;
        if n < buf.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the journal {:?} ends at ring byte {}", self.path, pos + n as u64),
            ));
        }
        Ok(())
    }
}

/// Creates a journal of `capacity` ring bytes at `path`: written whole (a header, zeros)
/// under a temporary name, synced, renamed into place, and the directory synced.
fn create(disk: &SharedDisk, path: &Path, capacity: u64) -> Result<(), JournalError> {
    assert!(capacity > 0 && capacity.is_multiple_of(RING_START), "ring capacity {capacity}");
    let mut name = path.as_os_str().to_owned();
    name.push(TMP_SUFFIX);
    let tmp = PathBuf::from(name);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| JournalError::Io { path: p, source }
    };
    let file = disk.open(&tmp, OpenMode::CreateTruncate).map_err(io(&tmp))?;
    let zeros = vec![0u8; FILL_CHUNK];
    let total = RING_START + capacity;
    let mut at = 0;
    while at < total {
        let n = (total - at).min(FILL_CHUNK as u64) as usize;
        file.write_all_at(&zeros[..n], at).map_err(io(&tmp))?;
        at += n as u64;
    }
    let first = Header { capacity, sequence: 0, generation: 0, trim: 0 };
    file.write_all_at(&first.encode(), 0).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    disk.rename(&tmp, path).map_err(io(path))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    disk.sync_dir(dir).map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use shale_core::disk::{Disk, SimDisk, SimOptions};

    use super::*;

    fn sim(options: SimOptions) -> (Arc<SimDisk>, SharedDisk) {
        let sim = Arc::new(SimDisk::new(options));
        sim.create_dir_all(Path::new("/v")).unwrap();
        sim.sync_dir(Path::new("/")).unwrap();
        let disk: SharedDisk = sim.clone();
        (sim, disk)
    }

    const PATH: &str = "/v/journal";

    /// The header's bytes, pinned: a format is a contract.
    #[test]
    fn a_header_is_laid_out_as_documented() {
        let h = Header { capacity: 8192, sequence: 3, generation: 2, trim: 640 };
        let b = h.encode();
        assert_eq!(&b[..8], b"SHJL\x01\0\0\0");
        assert_eq!(&b[8..16], &8192u64.to_be_bytes());
        assert_eq!(&b[16..24], &3u64.to_be_bytes());
        assert_eq!(&b[24..32], &[0, 0, 0, 2, 0, 0, 0, 0]);
        assert_eq!(&b[32..40], &640u64.to_be_bytes());
        assert_eq!(&b[40..44], &crc32c::crc32c(&b[..40]).to_be_bytes());
        assert_eq!(Header::decode(&b), Some(h));
    }

    #[test]
    fn each_open_starts_a_new_generation_and_keeps_the_trim_point() {
        let (_sim, disk) = sim(SimOptions::default());
        let path = Path::new(PATH);
        let j = JournalFile::open(&disk, path, 8192).unwrap();
        assert_eq!(j.header().generation, 1);
        assert_eq!(disk.metadata(path).unwrap().len, RING_START + 8192);
        j.set_trim(4096).unwrap();
        drop(j);
        let j = JournalFile::open(&disk, path, 1 << 20).unwrap();
        let h = j.header();
        assert_eq!((h.generation, h.trim, h.capacity), (2, 4096, 8192), "its own capacity");
    }

    /// A header write torn by a crash leaves the previous header in force.
    #[test]
    fn a_torn_header_write_leaves_the_previous_header() {
        for seed in 0..16 {
            let (sim, disk) = sim(SimOptions { seed, torn_overwrites: true, ..Default::default() });
            let path = Path::new(PATH);
            let j = JournalFile::open(&disk, path, 4096).unwrap();
            j.set_trim(800).unwrap();
            let before = j.header();
            sim.freeze_after(1); // the header's write lands, its sync does not
            assert!(j.set_trim(1600).is_err() || sim.is_frozen());
            sim.crash();
            let h = JournalFile::open(&disk, path, 4096).unwrap().header();
            assert!(h.trim == 800 || h.trim == 1600, "seed {seed}: {h:?}");
            assert!(h.generation > before.generation, "seed {seed}: a new generation");
        }
    }

    #[test]
    fn a_journal_whose_headers_are_both_damaged_is_refused() {
        let (_sim, disk) = sim(SimOptions::default());
        let path = Path::new(PATH);
        drop(JournalFile::open(&disk, path, 4096).unwrap());
        let f = disk.open(path, OpenMode::ReadWrite).unwrap();
        f.write_all_at(&[0xff; 2 * SLOT as usize], 0).unwrap();
        let e = JournalFile::open(&disk, path, 4096).unwrap_err();
        assert!(e.to_string().contains("neither header slot"), "{e}");
    }

    /// A creation cut short leaves no journal under its name (at most a temporary file,
    /// which the next creation overwrites), so an open creates it anew rather than
    /// trusting zeros.
    #[test]
    fn a_creation_cut_short_leaves_no_journal() {
        for ops in 0..6 {
            let (sim, disk) = sim(SimOptions::default());
            let path = Path::new(PATH);
            sim.freeze_after(ops);
            let _ = JournalFile::open(&disk, path, 4096);
            sim.crash();
            if disk.metadata(path).is_ok() {
                // The rename and the directory sync landed: the journal is whole.
                JournalFile::open(&disk, path, 4096).unwrap();
                continue;
            }
            let j = JournalFile::open(&disk, path, 4096).unwrap();
            assert_eq!(j.header().generation, 1, "created anew after {ops} operations");
        }
    }

    #[test]
    fn writes_past_the_ring_end_go_on_at_its_start() {
        for no_direct in [true, false] {
            let (_sim, disk) = sim(SimOptions { no_direct, ..Default::default() });
            let j = JournalFile::open(&disk, Path::new(PATH), 3 * 4096).unwrap();
            assert_eq!(j.is_direct(), !no_direct);
            j.write_at(4096 * 9 + 2 * 4096 + 4090, b"0123456789").unwrap();
            let mut tail = [0u8; 6];
            j.read_at(2 * 4096 + 4090, &mut tail).unwrap();
            let mut head = [0u8; 4];
            j.read_at(0, &mut head).unwrap();
            assert_eq!((&tail, &head), (b"012345", b"6789"), "no_direct {no_direct}");
        }
    }

    /// Direct writes of rounds that start and end inside pages: each is durable when it
    /// returns (no sync), keeps the bytes before it on its first page (from the last page
    /// written, or read back after an open), and ends in a frame header of zeros.
    #[test]
    fn direct_writes_keep_the_bytes_before_them_and_last_without_a_sync() {
        let (sim, disk) = sim(SimOptions::default());
        let path = Path::new(PATH);
        let mut expected = vec![0u8; 4 * 4096];
        let mut at = 100;
        let mut write = |j: &JournalFile, len: usize| {
            let bytes: Vec<u8> = (0..len).map(|b| (b + at) as u8 | 1).collect();
            j.write_at(at as u64, &bytes).unwrap();
            expected[at..at + len].copy_from_slice(&bytes);
            at += len;
            expected.clone()
        };
        // The ring up to where the writes end, and a frame header's length after it.
        let ring = |j: &JournalFile, written: &[u8]| {
            let mut ring = vec![0u8; 4 * 4096];
            j.read_at(0, &mut ring).unwrap();
            let end = written.iter().rposition(|&b| b != 0).unwrap() + 1;
            ring[..end + FRAME_HEADER_LEN] == written[..end + FRAME_HEADER_LEN]
        };
        let j = JournalFile::open(&disk, path, 4 * 4096).unwrap();
        assert!(j.is_direct() && j.overwrite_margin() == 4096);
        for len in [10, 4000, 5000] {
            write(&j, len);
        }
        let written = write(&j, 1);
        drop(j);
        sim.crash();
        let j = JournalFile::open(&disk, path, 4 * 4096).unwrap();
        assert!(ring(&j, &written), "after a crash with no sync");
        let written = write(&j, 300);
        drop(j);
        sim.crash();
        let j = JournalFile::open(&disk, path, 4 * 4096).unwrap();
        assert!(ring(&j, &written), "the first page read back, then written whole");
    }
}
