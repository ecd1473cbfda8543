//! An open file of the simulated disk: reads and writes go to the inode's current
//! (unsynced) contents; `sync_all`/`sync_data` make them the durable ones that survive a
//! simulated power cut. A handle from before a crash fails. A handle from
//! `Disk::open_direct` writes durably: each write's bytes are durable when it returns, and
//! a write not aligned to `DIRECT_ALIGN` fails with `EINVAL`, as Linux's `O_DIRECT` does.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use super::State;
use crate::disk::{DIRECT_ALIGN, DiskFile};

#[derive(Debug)]
pub(super) struct SimFile {
    pub(super) state: Arc<Mutex<State>>,
    pub(super) ino: u64,
    pub(super) generation: u64,
    pub(super) writable: bool,
    /// Opened by `open_direct`: writes aligned and durable at once.
    pub(super) direct: bool,
}

impl SimFile {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> io::Result<T>) -> io::Result<T> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.generation != self.generation {
            return Err(io::Error::other("stale handle: the simulated machine crashed"));
        }
        f(&mut st)
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::PermissionDenied, "file opened read-only"))
        }
    }
}

impl DiskFile for SimFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.with(|st| {
            let data = &st.inodes.get(&self.ino).ok_or_else(|| io::Error::other("inode gone"))?;
            let data = &data.current;
            let start = (pos as usize).min(data.len());
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
            Ok(n)
        })
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.check_writable()?;
        let align = DIRECT_ALIGN as u64;
        let aligned = |n: u64| n.is_multiple_of(align);
        if self.direct
            && !(aligned(pos) && aligned(buf.len() as u64) && aligned(buf.as_ptr() as u64))
        {
            return Err(io::Error::from_raw_os_error(22));
        }
        self.with(|st| {
            st.check_failing(self.ino)?;
            let len = st.inodes.get(&self.ino).map_or(0, |i| i.current.len() as u64);
            st.check_space((pos + buf.len() as u64).saturating_sub(len))?;
            st.mutate()?;
            let ticks = st.ticks;
            let inode =
                st.inodes.get_mut(&self.ino).ok_or_else(|| io::Error::other("inode gone"))?;
            let end = pos as usize + buf.len();
            if inode.current.len() < end {
                inode.current.resize(end, 0);
            }
            inode.current[pos as usize..end].copy_from_slice(buf);
            inode.modified_ms = ticks;
            match self.direct {
                true => st.write_through(self.ino, pos as usize, end),
                false => Ok(()),
            }
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with(|st| st.sync_inode(self.ino))
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check_writable()?;
        self.with(|st| {
            let cur = st.inodes.get(&self.ino).map_or(0, |i| i.current.len() as u64);
            st.check_space(len.saturating_sub(cur))?;
            st.mutate()?;
            let inode =
                st.inodes.get_mut(&self.ino).ok_or_else(|| io::Error::other("inode gone"))?;
            inode.current.resize(len as usize, 0);
            Ok(())
        })
    }

    fn size(&self) -> io::Result<u64> {
        self.with(|st| Ok(st.inodes.get(&self.ino).map_or(0, |i| i.current.len() as u64)))
    }
}

impl State {
    /// The bytes `start..end` a direct write put in `ino` reach the disk, as an
    /// `O_DSYNC` write's do before it returns: durable, unless the write fails as an fsync
    /// would (`SimDisk::fail_next_syncs`: they then never reach it) or fsyncs do nothing.
    pub(super) fn write_through(&mut self, ino: u64, start: usize, end: usize) -> io::Result<()> {
        let fail = self.take_failure();
        let noop = self.options.fsync_noop;
        let inode = self.inodes.get_mut(&ino).ok_or_else(|| io::Error::other("inode gone"))?;
        if fail {
            inode.dropped.push((start, end));
            return Err(io::Error::from_raw_os_error(5));
        }
        if !noop {
            if inode.durable.len() < end {
                inode.durable.resize(end, 0);
            }
            inode.durable[start..end].copy_from_slice(&inode.current[start..end]);
        }
        Ok(())
    }
}
