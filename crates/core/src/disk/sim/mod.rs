//! A simulated disk for power-loss tests: each file's durable bytes and each directory's
//! durable entries are kept apart from what was only written, and [`SimDisk::crash`]
//! keeps exactly what fsync made durable, as a power cut does.
//!
//! The model is Linux's, taken strictly:
//! - `sync_data`/`sync_all` of a file make its bytes and size durable, not its name;
//! - a create, rename or remove is durable only after `sync_dir` of its directory (and a new
//!   directory only after `sync_dir` of its parent);
//! - a failed fsync drops the dirty bytes it covered, so a later fsync that succeeds does
//!   not bring them back ("fsyncgate"): the file reads them until the crash, the disk never
//!   had them.
//!
//! Besides crashes it can stop taking writes after a given number of mutating operations
//! (a power cut in the middle of a multi-step change), fail fsyncs on demand, hold a
//! bounded number of bytes (a full disk), and, as a test-only switch, make every fsync a
//! no-op to show that a test catches a missing one.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Disk, FileHandle, FileMeta, FsHandle, FsSync, OpenMode};

mod file;
mod options;
use file::SimFile;
pub use options::{SECTOR, SimOptions};

/// What a name points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    File(u64),
    Dir,
}

#[derive(Debug, Default)]
struct Inode {
    current: Vec<u8>,
    durable: Vec<u8>,
    /// Byte ranges whose dirty data a failed fsync dropped: they never reach the disk.
    dropped: Vec<(usize, usize)>,
    modified_ms: u64,
}

#[derive(Debug)]
struct State {
    options: SimOptions,
    rng: StdRng,
    /// Bumped by every crash; handles from an older generation are dead.
    generation: u64,
    next_ino: u64,
    inodes: HashMap<u64, Inode>,
    entries: BTreeMap<PathBuf, Entry>,
    durable_entries: BTreeMap<PathBuf, Entry>,
    /// Directory changes not yet made durable by an fsync of their directory, in order:
    /// the name and what it points at afterwards (`None`: removed).
    unsynced: Vec<(PathBuf, Option<Entry>)>,
    /// Mutating operations done so far.
    ops: u64,
    /// After this many mutating operations, nothing more reaches the disk.
    freeze_at: Option<u64>,
    /// fsyncs still to fail.
    fail_syncs: u32,
    /// Writes to files under this directory fail with `EIO` (a failing file).
    failing_dir: Option<PathBuf>,
    /// A logical clock for modification times.
    ticks: u64,
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory", path.display()),
    )
}

fn frozen() -> io::Error {
    io::Error::other("simulated power loss: the disk takes no more writes")
}

impl State {
    /// Counts a mutating operation; fails once the disk is frozen.
    fn mutate(&mut self) -> io::Result<()> {
        if self.freeze_at.is_some_and(|at| self.ops >= at) {
            return Err(frozen());
        }
        self.ops += 1;
        self.ticks += 1;
        Ok(())
    }

    fn parent_is_dir(&self, path: &Path) -> bool {
        match path.parent() {
            None => true,
            Some(p) if p == Path::new("/") || p.as_os_str().is_empty() => true,
            Some(p) => self.entries.get(p) == Some(&Entry::Dir),
        }
    }

    fn used_bytes(&self) -> u64 {
        self.inodes.values().map(|i| i.current.len() as u64).sum()
    }

    /// Fails a write to the file `ino` if it is under the failing directory.
    fn check_failing(&self, ino: u64) -> io::Result<()> {
        let Some(dir) = &self.failing_dir else { return Ok(()) };
        let failing = self
            .entries
            .range(dir.clone()..)
            .take_while(|(path, _)| path.starts_with(dir))
            .any(|(_, entry)| *entry == Entry::File(ino));
        match failing {
            true => Err(io::Error::from_raw_os_error(5)),
            false => Ok(()),
        }
    }

    /// Notes a directory change, for a crash to tear (`SimOptions::torn_dirs`): `path` now
    /// points at `entry` (`None`: removed).
    fn changed(&mut self, path: &Path, entry: Option<Entry>) {
        if self.options.torn_dirs {
            self.unsynced.push((path.to_path_buf(), entry));
        }
    }

    fn check_space(&self, grow: u64) -> io::Result<()> {
        match self.options.capacity {
            Some(cap) if self.used_bytes() + grow > cap => Err(io::Error::from_raw_os_error(28)),
            _ => Ok(()),
        }
    }

    fn sync_inode(&mut self, ino: u64) -> io::Result<()> {
        self.mutate()?;
        let fail = self.take_failure();
        let inode = self.inodes.get_mut(&ino).ok_or_else(|| io::Error::other("inode gone"))?;
        if fail {
            inode.drop_dirty();
            return Err(io::Error::from_raw_os_error(5));
        }
        if !self.options.fsync_noop {
            inode.make_durable();
        }
        Ok(())
    }

    /// Syncs every file, as `syncfs(2)` does (names still need their directory synced:
    /// the model stays strict where a real file system may do more). A failure drops the
    /// dirty bytes of the first file written since its last sync, and syncs the others.
    fn sync_all_inodes(&mut self) -> io::Result<()> {
        self.mutate()?;
        let failing = self.take_failure();
        let mut inos: Vec<u64> = self.inodes.keys().copied().collect();
        inos.sort_unstable();
        let mut to_fail = failing;
        for ino in inos {
            let inode = self.inodes.get_mut(&ino).expect("listed above");
            if to_fail && inode.current != inode.durable {
                inode.drop_dirty();
                to_fail = false;
            } else if !self.options.fsync_noop {
                inode.make_durable();
            }
        }
        match failing {
            true => Err(io::Error::from_raw_os_error(5)),
            false => Ok(()),
        }
    }

    /// Whether the next fsync is to fail (see [`SimDisk::fail_next_syncs`]).
    fn take_failure(&mut self) -> bool {
        let fail = self.fail_syncs > 0;
        if fail {
            self.fail_syncs -= 1;
        }
        fail
    }
}

impl Inode {
    /// A failed fsync: the bytes written since the last sync never reach the disk.
    fn drop_dirty(&mut self) {
        let start = common_prefix(&self.current, &self.durable);
        if start < self.current.len() {
            self.dropped.push((start, self.current.len()));
        }
    }

    /// A successful fsync: the current bytes become the durable ones, except those a
    /// failed fsync dropped.
    fn make_durable(&mut self) {
        let mut durable = self.current.clone();
        for &(s, e) in &self.dropped {
            let e = e.min(durable.len());
            for (i, b) in durable.iter_mut().enumerate().take(e).skip(s) {
                *b = self.durable.get(i).copied().unwrap_or(0);
            }
        }
        self.durable = durable;
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Normalises a path to an absolute one without `.`/`..` (the simulation has no cwd).
fn norm(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The simulated disk's [`FsSync`]: every file synced at once. A handle from before a
/// crash fails.
#[derive(Debug)]
struct SimFs {
    state: Arc<Mutex<State>>,
    generation: u64,
}

impl FsSync for SimFs {
    fn sync(&self) -> io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.generation != self.generation {
            return Err(io::Error::other("stale handle: the simulated machine crashed"));
        }
        st.sync_all_inodes()
    }
}

/// An in-memory disk that loses what was not made durable when it [`crash`](Self::crash)es.
#[derive(Debug, Clone)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

impl SimDisk {
    /// An empty disk.
    pub fn new(options: SimOptions) -> Self {
        let rng = StdRng::seed_from_u64(options.seed);
        SimDisk {
            state: Arc::new(Mutex::new(State {
                options,
                rng,
                generation: 0,
                next_ino: 1,
                inodes: HashMap::new(),
                entries: BTreeMap::new(),
                durable_entries: BTreeMap::new(),
                unsynced: Vec::new(),
                ops: 0,
                freeze_at: None,
                fail_syncs: 0,
                failing_dir: None,
                ticks: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Power loss: every name and byte not made durable is gone, torn tails are cut at
    /// random (if enabled), open handles die, and the disk takes writes again.
    pub fn crash(&self) {
        let mut st = self.lock();
        let st = &mut *st;
        st.generation += 1;
        st.freeze_at = None;
        st.fail_syncs = 0;
        let unsynced = std::mem::take(&mut st.unsynced);
        if st.options.torn_dirs {
            let keep = st.rng.random_range(0..=unsynced.len());
            for (path, entry) in unsynced.into_iter().take(keep) {
                match entry {
                    Some(e) => st.durable_entries.insert(path, e),
                    None => st.durable_entries.remove(&path),
                };
            }
        }
        // Keep durable entries whose parent directory is durable too (parents sort first).
        let mut kept: BTreeMap<PathBuf, Entry> = BTreeMap::new();
        for (path, entry) in &st.durable_entries {
            let parent_ok = match path.parent() {
                None => true,
                Some(p) if p == Path::new("/") => true,
                Some(p) => kept.get(p) == Some(&Entry::Dir),
            };
            if parent_ok {
                kept.insert(path.clone(), *entry);
            }
        }
        let live: std::collections::HashSet<u64> = kept
            .values()
            .filter_map(|e| match e {
                Entry::File(ino) => Some(*ino),
                Entry::Dir => None,
            })
            .collect();
        st.inodes.retain(|ino, _| live.contains(ino));
        let torn = st.options.torn_tails;
        let torn_over = st.options.torn_overwrites;
        let mut inos: Vec<u64> = st.inodes.keys().copied().collect();
        inos.sort_unstable();
        for ino in inos {
            let inode = st.inodes.get_mut(&ino).expect("listed above");
            let mut after = inode.durable.clone();
            let dl = after.len();
            let mut extends = inode.current.len() > dl && inode.current[..dl] == after[..];
            if torn_over && inode.dropped.is_empty() {
                let common = dl.min(inode.current.len());
                for start in (0..common).step_by(SECTOR) {
                    let end = (start + SECTOR).min(common);
                    if after[start..end] != inode.current[start..end] && st.rng.random_bool(0.5) {
                        after[start..end].copy_from_slice(&inode.current[start..end]);
                    }
                }
                extends = inode.current.len() > dl;
            }
            if torn && extends && inode.dropped.is_empty() {
                let extra = inode.current.len() - dl;
                let keep = st.rng.random_range(0..=extra);
                let data = st.rng.random_range(0..=keep);
                after.extend_from_slice(&inode.current[dl..dl + data]);
                after.resize(dl + keep, 0);
            }
            inode.current = after.clone();
            inode.durable = after;
            inode.dropped.clear();
        }
        st.entries = kept.clone();
        st.durable_entries = kept;
    }

    /// After `ops` more mutating operations (writes, fsyncs, creates, renames, removes)
    /// the disk takes nothing more, as if the power went out there; [`crash`](Self::crash)
    /// then loses what was not durable.
    pub fn freeze_after(&self, ops: u64) {
        let mut st = self.lock();
        st.freeze_at = Some(st.ops + ops);
    }

    /// Whether a [`freeze_after`](Self::freeze_after) point has been reached.
    pub fn is_frozen(&self) -> bool {
        let st = self.lock();
        st.freeze_at.is_some_and(|at| st.ops >= at)
    }

    /// Mutating operations so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// The next `count` fsyncs (of files, or of the whole disk through [`Disk::open_fs`])
    /// fail with `EIO`, dropping the data they covered (a whole-disk sync drops one file's).
    pub fn fail_next_syncs(&self, count: u32) {
        self.lock().fail_syncs = count;
    }

    /// Writes to files under `dir` fail with `EIO` from now on (`None`: none do), as on a
    /// file whose blocks went bad; the rest of the disk works.
    pub fn fail_writes_under(&self, dir: Option<&Path>) {
        self.lock().failing_dir = dir.map(norm);
    }

    /// Changes the capacity (`None`: unbounded), e.g. to free space again.
    pub fn set_capacity(&self, capacity: Option<u64>) {
        self.lock().options.capacity = capacity;
    }

    /// Bytes held by all files.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used_bytes()
    }
}

impl Disk for SimDisk {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<FileHandle> {
        let path = norm(path);
        let mut st = self.lock();
        let ino = match (st.entries.get(&path).copied(), mode) {
            (Some(Entry::Dir), _) => {
                return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"));
            }
            (Some(Entry::File(ino)), OpenMode::CreateTruncate) => {
                st.mutate()?;
                if let Some(i) = st.inodes.get_mut(&ino) {
                    i.current.clear();
                }
                ino
            }
            (Some(Entry::File(ino)), _) => ino,
            (None, OpenMode::Read | OpenMode::ReadWrite) => return Err(not_found(&path)),
            (None, _) => {
                if !st.parent_is_dir(&path) {
                    return Err(not_found(&path));
                }
                st.mutate()?;
                let ino = st.next_ino;
                st.next_ino += 1;
                let modified_ms = st.ticks;
                st.inodes.insert(ino, Inode { modified_ms, ..Default::default() });
                st.changed(&path, Some(Entry::File(ino)));
                st.entries.insert(path, Entry::File(ino));
                ino
            }
        };
        Ok(Arc::new(SimFile {
            state: self.state.clone(),
            ino,
            generation: st.generation,
            writable: mode != OpenMode::Read,
            direct: false,
        }))
    }

    fn open_direct(&self, path: &Path) -> io::Result<FileHandle> {
        let path = norm(path);
        let st = self.lock();
        if st.options.no_direct {
            return Err(io::Error::from_raw_os_error(22));
        }
        let Some(Entry::File(ino)) = st.entries.get(&path).copied() else {
            return Err(not_found(&path));
        };
        let generation = st.generation;
        Ok(Arc::new(SimFile {
            state: self.state.clone(),
            ino,
            generation,
            writable: true,
            direct: true,
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let path = norm(path);
        let mut st = self.lock();
        let mut cur = PathBuf::from("/");
        for c in path.components().skip(1) {
            cur.push(c);
            match st.entries.get(&cur) {
                Some(Entry::Dir) => {}
                Some(Entry::File(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "a file is in the way",
                    ));
                }
                None => {
                    st.mutate()?;
                    st.changed(&cur.clone(), Some(Entry::Dir));
                    st.entries.insert(cur.clone(), Entry::Dir);
                }
            }
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (norm(from), norm(to));
        let mut st = self.lock();
        let Some(Entry::File(ino)) = st.entries.get(&from).copied() else {
            return Err(not_found(&from));
        };
        if !st.parent_is_dir(&to) {
            return Err(not_found(&to));
        }
        st.mutate()?;
        st.changed(&from, None);
        st.changed(&to, Some(Entry::File(ino)));
        st.entries.remove(&from);
        st.entries.insert(to, Entry::File(ino));
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let path = norm(path);
        let mut st = self.lock();
        match st.entries.get(&path) {
            Some(Entry::File(_)) => {
                st.mutate()?;
                st.changed(&path, None);
                st.entries.remove(&path);
                Ok(())
            }
            Some(Entry::Dir) => Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory")),
            None => Err(not_found(&path)),
        }
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let path = norm(path);
        let mut st = self.lock();
        if st.entries.get(&path) != Some(&Entry::Dir) {
            return Err(not_found(&path));
        }
        st.mutate()?;
        if st.options.torn_dirs {
            let gone: Vec<PathBuf> =
                st.entries.keys().filter(|p| p.starts_with(&path)).cloned().collect();
            for p in gone.iter().rev() {
                st.changed(p, None);
            }
        }
        st.entries.retain(|p, _| !p.starts_with(&path));
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let path = norm(path);
        let mut st = self.lock();
        if path != Path::new("/") && st.entries.get(&path) != Some(&Entry::Dir) {
            return Err(not_found(&path));
        }
        st.mutate()?;
        if st.options.fsync_noop {
            return Ok(());
        }
        let st = &mut *st;
        st.unsynced.retain(|(p, _)| p.parent() != Some(&path));
        st.durable_entries.retain(|p, _| p.parent() != Some(&path));
        for (p, e) in &st.entries {
            if p.parent() == Some(&path) {
                st.durable_entries.insert(p.clone(), *e);
            }
        }
        Ok(())
    }

    fn open_fs(&self, dir: &Path) -> io::Result<FsHandle> {
        let (dir, st) = (norm(dir), self.lock());
        if st.options.no_syncfs {
            return Err(super::no_syncfs(&dir, "the simulated disk is set to refuse it"));
        }
        if dir != Path::new("/") && st.entries.get(&dir) != Some(&Entry::Dir) {
            return Err(not_found(&dir));
        }
        Ok(Arc::new(SimFs { state: self.state.clone(), generation: st.generation }))
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let path = norm(path);
        let st = self.lock();
        if path != Path::new("/") && st.entries.get(&path) != Some(&Entry::Dir) {
            return Err(not_found(&path));
        }
        Ok(st
            .entries
            .keys()
            .filter(|p| p.parent() == Some(&path))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect())
    }

    fn metadata(&self, path: &Path) -> io::Result<FileMeta> {
        let path = norm(path);
        let st = self.lock();
        let (len, ticks) = match st.entries.get(&path) {
            Some(Entry::File(ino)) => {
                let i = st.inodes.get(ino).ok_or_else(|| not_found(&path))?;
                (i.current.len() as u64, i.modified_ms)
            }
            Some(Entry::Dir) => (0, 0),
            None if path == Path::new("/") => (0, 0),
            None => return Err(not_found(&path)),
        };
        Ok(FileMeta { len, modified: SystemTime::UNIX_EPOCH + Duration::from_millis(ticks) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::DIRECT_ALIGN;

    fn disk(options: SimOptions) -> SimDisk {
        let d = SimDisk::new(options);
        d.create_dir_all(Path::new("/d")).expect("mkdir");
        d.sync_dir(Path::new("/")).expect("sync root");
        d
    }

    /// With torn directories a crash keeps a prefix of the unsynced directory changes, in
    /// order: some seeds keep none, some all, some the first only, none the second alone;
    /// a synced directory keeps everything.
    #[test]
    fn torn_directories_keep_a_prefix_of_the_unsynced_changes() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let d = disk(SimOptions { seed, torn_dirs: true, ..Default::default() });
            d.open(Path::new("/d/a"), OpenMode::ReadWriteCreate).expect("a");
            d.rename(Path::new("/d/a"), Path::new("/d/b")).expect("a to b");
            d.open(Path::new("/d/c"), OpenMode::ReadWriteCreate).expect("c");
            d.crash();
            let mut names = d.read_dir(Path::new("/d")).expect("list");
            names.sort();
            seen.insert(names);
        }
        let states: Vec<Vec<&str>> = vec![vec![], vec!["a"], vec![], vec!["b"], vec!["b", "c"]];
        for names in &seen {
            assert!(states.iter().any(|s| s == names), "not a prefix of the changes: {names:?}");
        }
        assert!(seen.len() >= 3, "prefixes of several lengths: {seen:?}");
        let d = disk(SimOptions { seed: 1, torn_dirs: true, ..Default::default() });
        d.open(Path::new("/d/a"), OpenMode::ReadWriteCreate).expect("a");
        d.sync_dir(Path::new("/d")).expect("sync");
        d.crash();
        assert_eq!(d.read_dir(Path::new("/d")).expect("list"), ["a"]);
    }

    #[test]
    fn a_crash_keeps_synced_bytes_and_drops_the_rest() {
        let d = disk(SimOptions::default());
        let f = d.open(Path::new("/d/f"), OpenMode::ReadWriteCreate).expect("create");
        f.write_all_at(b"abc", 0).expect("write");
        f.sync_data().expect("sync");
        d.sync_dir(Path::new("/d")).expect("sync dir");
        f.write_all_at(b"def", 3).expect("write");
        d.crash();
        assert_eq!(d.read(Path::new("/d/f")).expect("read"), b"abc");
        assert!(f.size().is_err(), "a handle from before the crash is dead");
    }

    /// A direct write is durable when it returns, with no sync; a misaligned one is
    /// refused; one that fails (as an fsync would) or under `fsync_noop` does not last.
    #[test]
    fn direct_writes_are_aligned_and_durable_when_they_return() {
        let page = DIRECT_ALIGN;
        let mut buf = vec![0u8; 3 * page];
        let off = buf.as_ptr().align_offset(page);
        let aligned = &mut buf[off..off + page];
        aligned.fill(7);
        for (options, fail, lasts) in [
            (SimOptions::default(), false, true),
            (SimOptions::default(), true, false),
            (SimOptions { fsync_noop: true, ..Default::default() }, false, false),
        ] {
            let d = disk(options);
            let f = d.open(Path::new("/d/f"), OpenMode::ReadWriteCreate).expect("create");
            f.write_all_at(&vec![0; 2 * page], 0).expect("preallocate");
            f.sync_data().expect("sync");
            d.sync_dir(Path::new("/d")).expect("sync dir");
            let direct = d.open_direct(Path::new("/d/f")).expect("direct");
            let e = direct.write_all_at(&buf[off + 1..off + 1 + page], 0).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(22), "a misaligned buffer");
            let e = direct.write_all_at(&buf[off..off + page], 512).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(22), "a misaligned position");
            if fail {
                d.fail_next_syncs(1);
                direct.write_all_at(&buf[off..off + page], page as u64).unwrap_err();
            } else {
                direct.write_all_at(&buf[off..off + page], page as u64).expect("direct write");
            }
            d.crash();
            // Under `fsync_noop` the file's name does not last either.
            let after = d.read(Path::new("/d/f")).unwrap_or_default();
            assert_eq!(after.get(page..) == Some(&[7; DIRECT_ALIGN][..]), lasts, "fail {fail}");
        }
        let d = disk(SimOptions { no_direct: true, ..Default::default() });
        d.open(Path::new("/d/f"), OpenMode::ReadWriteCreate).expect("create");
        assert_eq!(d.open_direct(Path::new("/d/f")).unwrap_err().raw_os_error(), Some(22));
    }

    /// Overwrites of durable bytes a crash tears sector by sector: each sector is either
    /// all old or all new, and across seeds both happen.
    #[test]
    fn a_crash_tears_unsynced_overwrites_by_sector() {
        let (mut old_kept, mut new_kept) = (0, 0);
        for seed in 0..20 {
            let d = disk(SimOptions { seed, torn_overwrites: true, ..Default::default() });
            let f = d.open(Path::new("/d/f"), OpenMode::ReadWriteCreate).expect("create");
            f.write_all_at(&[0; 4 * SECTOR], 0).expect("preallocate");
            f.sync_data().expect("sync");
            d.sync_dir(Path::new("/d")).expect("sync dir");
            f.write_all_at(&[7; 4 * SECTOR], 0).expect("overwrite");
            d.crash();
            let after = d.read(Path::new("/d/f")).expect("read");
            assert_eq!(after.len(), 4 * SECTOR);
            for sector in after.chunks(SECTOR) {
                match sector[0] {
                    0 => old_kept += 1,
                    _ => new_kept += 1,
                }
                assert!(sector.iter().all(|b| *b == sector[0]), "a sector is not split");
            }
        }
        assert!(old_kept > 0 && new_kept > 0, "old {old_kept}, new {new_kept}");
    }

    #[test]
    fn a_name_needs_its_directory_synced() {
        let d = disk(SimOptions::default());
        let f = d.open(Path::new("/d/f"), OpenMode::ReadWriteCreate).expect("create");
        f.write_all_at(b"abc", 0).expect("write");
        f.sync_data().expect("sync");
        d.crash();
        assert!(d.read_dir(Path::new("/d")).expect("list").is_empty(), "create not durable");

        let f = d.open(Path::new("/d/g"), OpenMode::ReadWriteCreate).expect("create");
        f.sync_data().expect("sync");
        d.sync_dir(Path::new("/d")).expect("sync dir");
        d.remove_file(Path::new("/d/g")).expect("remove");
        d.crash();
        assert_eq!(d.read_dir(Path::new("/d")).expect("list"), vec!["g"], "remove not durable");

        d.create_dir_all(Path::new("/d/sub")).expect("mkdir");
        let f = d.open(Path::new("/d/sub/h"), OpenMode::ReadWriteCreate).expect("create");
        f.sync_data().expect("sync");
        d.sync_dir(Path::new("/d/sub")).expect("sync sub");
        d.crash();
        assert!(d.metadata(Path::new("/d/sub/h")).is_err(), "parent directory not durable");
    }

    #[test]
    fn a_failed_fsync_loses_its_data_for_good() {
        let d = disk(SimOptions::default());
        let f = d.open(Path::new("/d/f"), OpenMode::ReadWriteCreate).expect("create");
        d.sync_dir(Path::new("/d")).expect("sync dir");
        f.write_all_at(b"abc", 0).expect("write");
        d.fail_next_syncs(1);
        assert!(f.sync_data().is_err());
        f.write_all_at(b"def", 3).expect("write");
        f.sync_data().expect("a later fsync succeeds");
        assert_eq!(d.read(Path::new("/d/f")).expect("read"), b"abcdef", "the cache still has it");
        d.crash();
        assert_eq!(d.read(Path::new("/d/f")).expect("read"), b"\0\0\0def");
    }

    /// A disk with `/d/f` and `/d/g` (names durable) holding `abc` and `xyz` unsynced, and a
    /// handle on its file system.
    fn two_files_written() -> (SimDisk, FsHandle) {
        let d = disk(SimOptions::default());
        let fs = d.open_fs(Path::new("/d")).expect("open fs");
        for (name, bytes) in [("/d/f", b"abc"), ("/d/g", b"xyz")] {
            let f = d.open(Path::new(name), OpenMode::ReadWriteCreate).expect("create");
            f.write_all_at(bytes, 0).expect("write");
        }
        d.sync_dir(Path::new("/d")).expect("sync dir");
        (d, fs)
    }

    #[test]
    fn a_file_system_sync_makes_every_file_durable_but_no_name() {
        let (d, fs) = two_files_written();
        fs.sync().expect("sync fs");
        let h = d.open(Path::new("/d/h"), OpenMode::ReadWriteCreate).expect("create");
        h.write_all_at(b"new", 0).expect("write");
        fs.sync().expect("sync fs");
        d.crash();
        assert_eq!(d.read(Path::new("/d/f")).expect("read f"), b"abc");
        assert_eq!(d.read(Path::new("/d/g")).expect("read g"), b"xyz");
        assert!(d.metadata(Path::new("/d/h")).is_err(), "a create needs its directory synced");
        assert!(fs.sync().is_err(), "a handle from before the crash is dead");
    }

    #[test]
    fn a_failed_file_system_sync_loses_one_files_data_and_says_so() {
        let (d, fs) = two_files_written();
        d.fail_next_syncs(1);
        assert!(fs.sync().is_err(), "the failure is reported");
        fs.sync().expect("a later sync succeeds");
        d.crash();
        assert_eq!(d.read(Path::new("/d/f")).expect("read f"), b"\0\0\0", "f's bytes were lost");
        assert_eq!(d.read(Path::new("/d/g")).expect("read g"), b"xyz");
    }

    #[test]
    fn freezing_stops_writes_and_noop_fsync_keeps_nothing() {
        let d = disk(SimOptions { fsync_noop: true, ..Default::default() });
        let f = d.open(Path::new("/d/f"), OpenMode::ReadWriteCreate).expect("create");
        f.write_all_at(b"abc", 0).expect("write");
        f.sync_data().expect("sync");
        d.sync_dir(Path::new("/d")).expect("sync dir");
        d.freeze_after(0);
        assert!(f.write_all_at(b"x", 0).is_err());
        d.crash();
        assert!(d.metadata(Path::new("/d/f")).is_err());
    }

    #[test]
    fn torn_tails_keep_a_prefix_of_unsynced_bytes() {
        for seed in 0..20 {
            let d = disk(SimOptions { seed, torn_tails: true, ..Default::default() });
            let f = d.open(Path::new("/d/f"), OpenMode::ReadWriteCreate).expect("create");
            f.write_all_at(b"abc", 0).expect("write");
            f.sync_data().expect("sync");
            d.sync_dir(Path::new("/d")).expect("sync dir");
            f.write_all_at(b"defgh", 3).expect("write");
            d.crash();
            let got = d.read(Path::new("/d/f")).expect("read");
            assert!(got.len() >= 3 && got.len() <= 8 && got.starts_with(b"abc"), "{got:?}");
            for (i, b) in got.iter().enumerate().skip(3) {
                assert!(*b == 0 || *b == b"abcdefgh"[i], "byte {i} of {got:?}");
            }
        }
    }

    #[test]
    fn a_full_disk_refuses_growth() {
        let d = disk(SimOptions { capacity: Some(4), ..Default::default() });
        let f = d.open(Path::new("/d/f"), OpenMode::ReadWriteCreate).expect("create");
        f.write_all_at(b"abcd", 0).expect("write");
        let e = f.write_all_at(b"e", 4).expect_err("full");
        assert_eq!(e.raw_os_error(), Some(28));
        d.set_capacity(None);
        f.write_all_at(b"e", 4).expect("space again");
    }
}
