//! The stream table: which partition directory of the volume each stream number in the
//! journal's frames is.
//!
//! ```text
//! header   "SHJS", version 1, 3 zero bytes
//! entries  kind u8 (1 = bind, 2 = retire), stream u32, name length u16, the name
//!          (the partition directory's name in the data directory), CRC-32C u32 of the
//!          entry's bytes before it (all big-endian)
//! ```
//!
//! Entries are appended. A bind need not be durable before its frames are written, only
//! before any round holding one is synced: the journal's writer syncs the table first when
//! it holds new binds ([`StreamTable::sync`]). A retire (the partition's directory is
//! deleted, or a new directory of the same name takes over the name) is synced before it
//! returns, so the frames of a stream retired never go into a directory that is not theirs.
//! A torn entry at the end, and anything after it, is ignored: it was never synced, so no
//! frame synced names it. After each replay the journal holds nothing, and the table is
//! replaced by an empty one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use shale_core::disk::{FileHandle, OpenMode, SharedDisk};

/// The file's header: magic, version 1, 3 zero bytes.
const HEADER: &[u8; 8] = b"SHJS\x01\0\0\0";
const BIND: u8 = 1;
const RETIRE: u8 = 2;

/// The table's entries in memory, and where the next one goes.
#[derive(Debug, Default)]
struct Entries {
    /// Live streams by directory name.
    by_name: HashMap<String, u32>,
    /// Directory names by live stream.
    names: HashMap<u32, String>,
    /// The next stream number.
    next: u32,
    /// The file's length: where the next entry goes.
    len: u64,
}

/// The open stream table.
#[derive(Debug)]
pub(crate) struct StreamTable {
    path: PathBuf,
    file: FileHandle,
    entries: Mutex<Entries>,
    /// Entries were written since the last sync.
    dirty: AtomicBool,
}

/// The live streams a table file holds: stream number to directory name. A missing file
/// holds none; a torn or damaged entry ends the table.
pub(crate) fn load(disk: &SharedDisk, path: &Path) -> std::io::Result<HashMap<u32, String>> {
    let bytes = match disk.read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e),
    };
    let Some(mut rest) = bytes.strip_prefix(HEADER.as_slice()) else {
        tracing::warn!(path = %path.display(), "the journal's stream table has no valid header");
        return Ok(HashMap::new());
    };
    let mut names = HashMap::new();
    while let Some((kind, stream, name, len)) = parse(rest) {
        match kind {
            BIND => names.insert(stream, name),
            _ => names.remove(&stream),
        };
        rest = &rest[len..];
    }
    Ok(names)
}

/// The entry at the start of `b`: kind, stream, name and its length in bytes.
fn parse(b: &[u8]) -> Option<(u8, u32, String, usize)> {
    if b.len() < 7 {
        return None;
    }
    let name_len = u16::from_be_bytes([b[5], b[6]]) as usize;
    let len = 7 + name_len + 4;
    if b.len() < len {
        return None;
    }
    let crc = u32::from_be_bytes(b[len - 4..len].try_into().expect("4 bytes"));
    if crc32c::crc32c(&b[..len - 4]) != crc || !matches!(b[0], BIND | RETIRE) {
        return None;
    }
    let stream = u32::from_be_bytes(b[1..5].try_into().expect("4 bytes"));
    let name = String::from_utf8(b[7..7 + name_len].to_vec()).ok()?;
    Some((b[0], stream, name, len))
}

fn encode(kind: u8, stream: u32, name: &str) -> Vec<u8> {
    let name = &name.as_bytes()[..name.len().min(u16::MAX as usize)];
    let mut out = Vec::with_capacity(11 + name.len());
    out.push(kind);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(&(name.len() as u16).to_be_bytes());
    out.extend_from_slice(name);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

impl StreamTable {
    /// Replaces the table at `path` with an empty one (atomically) and opens it.
    pub(crate) fn create(disk: &SharedDisk, path: &Path) -> std::io::Result<StreamTable> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("journal.streams");
        shale_core::disk::write_atomic(&**disk, dir, name, HEADER).map_err(|e| e.source)?;
        let file = disk.open(path, OpenMode::ReadWrite)?;
        let entries = Entries { len: HEADER.len() as u64, ..Entries::default() };
        Ok(StreamTable {
            path: path.to_path_buf(),
            file,
            entries: Mutex::new(entries),
            dirty: AtomicBool::new(false),
        })
    }

    /// The stream of the partition directory `name`: the one it has, or a new one. A
    /// `fresh` directory (created empty since the stream was bound: a partition deleted and
    /// made again) never takes over a stream: the old one is retired first, durably.
    pub(crate) fn bind(&self, name: &str, fresh: bool) -> std::io::Result<u32> {
        let mut e = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&stream) = e.by_name.get(name) {
            if !fresh {
                return Ok(stream);
            }
            self.write(&mut e, RETIRE, stream, name)?;
            self.file.sync_data()?;
            e.by_name.remove(name);
            e.names.remove(&stream);
        }
        let stream = e.next;
        e.next += 1;
        self.write(&mut e, BIND, stream, name)?;
        self.dirty.store(true, Ordering::Release);
        e.by_name.insert(name.to_string(), stream);
        e.names.insert(stream, name.to_string());
        Ok(stream)
    }

    /// Retires `stream` durably: its frames are replayed nowhere from now on.
    pub(crate) fn retire(&self, stream: u32) -> std::io::Result<()> {
        let mut e = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(name) = e.names.remove(&stream) else { return Ok(()) };
        e.by_name.remove(&name);
        self.write(&mut e, RETIRE, stream, &name)?;
        self.file.sync_data()
    }

    /// Syncs the entries written since the last sync, if any.
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        if self.dirty.swap(false, Ordering::AcqRel)
            && let Err(e) = self.file.sync_data()
        {
            self.dirty.store(true, Ordering::Release);
            return Err(e);
        }
        Ok(())
    }

    /// The table's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn write(&self, e: &mut Entries, kind: u8, stream: u32, name: &str) -> std::io::Result<()> {
        let bytes = encode(kind, stream, name);
        self.file.write_all_at(&bytes, e.len)?;
        e.len += bytes.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use shale_core::disk::{Disk, SimDisk, SimOptions};

    use super::*;

    fn sim() -> (Arc<SimDisk>, SharedDisk) {
        let sim = Arc::new(SimDisk::new(SimOptions::default()));
        sim.create_dir_all(Path::new("/v")).unwrap();
        sim.sync_dir(Path::new("/")).unwrap();
        let disk: SharedDisk = sim.clone();
        (sim, disk)
    }

    #[test]
    fn binds_synced_survive_a_crash_and_retires_hide_their_streams() {
        let (sim, disk) = sim();
        let path = Path::new("/v/journal.streams");
        let t = StreamTable::create(&disk, path).unwrap();
        assert_eq!(t.bind("a-0", true).unwrap(), 0);
        assert_eq!(t.bind("b-0", true).unwrap(), 1);
        assert_eq!(t.bind("a-0", false).unwrap(), 0, "the same directory keeps its stream");
        t.sync().unwrap();
        assert_eq!(t.bind("a-0", true).unwrap(), 2, "a fresh directory gets a new stream");
        t.retire(1).unwrap();
        assert_eq!(t.bind("c-0", true).unwrap(), 3, "not synced: lost in the crash");
        sim.crash();
        let names = load(&disk, path).unwrap();
        let expected: HashMap<u32, String> = [(2, "a-0".to_string())].into();
        assert_eq!(names, expected);
    }

    #[test]
    fn a_torn_entry_ends_the_table() {
        let (_sim, disk) = sim();
        let path = Path::new("/v/journal.streams");
        let t = StreamTable::create(&disk, path).unwrap();
        t.bind("a-0", true).unwrap();
        t.bind("b-0", true).unwrap();
        let len = disk.metadata(path).unwrap().len;
        let f = disk.open(path, OpenMode::ReadWrite).unwrap();
        f.write_all_at(&[0xee], len - 3).unwrap();
        let names = load(&disk, path).unwrap();
        assert_eq!(names.into_iter().collect::<Vec<_>>(), [(0, "a-0".to_string())]);
    }
}
