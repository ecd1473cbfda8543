//! An open file of the simulated disk: reads and writes go to the inode's current
//! (unsynced) contents; `sync_all`/`sync_data` make them the durable ones that survive a
//! simulated power cut. A handle from before a crash fails.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use super::State;
use crate::disk::DiskFile;

#[derive(Debug)]
pub(super) struct SimFile {
    pub(super) state: Arc<Mutex<State>>,
    pub(super) ino: u64,
    pub(super) generation: u64,
    pub(super) writable: bool,
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
            Ok(())
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
