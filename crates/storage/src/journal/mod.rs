//! The write-ahead journal a data volume's partitions share (issue 38, under way): the
//! appends of every partition on the volume, framed into one preallocated file that one
//! fsync per round makes durable for all of them, while their segment files are made
//! durable in bulk, off the acknowledgement path.
//!
//! # Files
//! - `frame`: one frame: the partition's stream, leader epoch and base offset, the
//!   RecordBatch bytes unchanged, a CRC-32C over both; its bytes pinned by a test.
//! - `file`: the journal file: two header slots (capacity, generation, trim point; the
//!   newest valid one wins, so a torn header write leaves the previous one), then the
//!   ring, all written with zeros at creation, under a temporary name renamed into place.
//! - `round`: the frames of one write and one fsync, laid out as they go into the ring
//!   (wrap frames and skipped space included), refused once they would pass the trim point.
//! - `ring`: the data area as a ring: where each frame goes (never across the end; a wrap
//!   frame says the writer went on at the next lap), and the scan that reads frames back
//!   from the trim point to the first one torn or never written in this lap.
//!
//! - `streams`: the stream table: which partition directory each stream number is.
//! - `writer`: the journal at work: pushes into the open round, the writer thread's group
//!   commit, and (`writer/checkpoint`) the checkpointer that trims the journal behind the
//!   segment files.
//!
//! Replay (the frames a restart finds, applied to the partitions' logs) is the log's
//! (`log/replay.rs`); [`recover`] reads them.

pub(crate) mod file;
pub(crate) mod frame;
pub(crate) mod kicks;
pub(crate) mod ring;
pub(crate) mod round;
pub(crate) mod streams;
pub(crate) mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use shale_core::disk::SharedDisk;

pub(crate) use file::{JournalError, JournalFile};
pub(crate) use frame::Op;
pub(crate) use ring::Found;
pub(crate) use writer::{Copied, Journal, Member, largest_copy};

/// What a journal holds when it is opened: the frames to replay, where the writer goes on,
/// and which partition directory each stream is.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// The journal, under a new generation.
    pub(crate) file: JournalFile,
    /// The frames from the trim point on, in journal order.
    pub(crate) frames: Vec<Found>,
    /// Where the scan stopped: the writer goes on here once the frames are replayed.
    pub(crate) next: u64,
    /// Why the scan stopped there.
    pub(crate) why: frame::Invalid,
    /// Directory names by stream.
    pub(crate) names: HashMap<u32, String>,
}

/// The stream table's path beside the journal at `path`.
pub(crate) fn streams_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".streams");
    PathBuf::from(name)
}

/// Opens (or creates) the journal at `path` and reads back every frame from its trim point.
pub(crate) fn recover(
    disk: &SharedDisk,
    path: &Path,
    capacity: u64,
) -> Result<Recovered, JournalError> {
    let file = JournalFile::open(disk, path, capacity)?;
    let mut frames = Vec::new();
    let io = |source| JournalError::Io { path: path.to_path_buf(), source };
    // The header in force before this open bumped the generation stored the trim point.
    let header = file.header();
    let floor = header.generation - 1;
    let ended = ring::scan_from(&file, header.trim, floor, |f| frames.push(f)).map_err(io)?;
    let table = streams_path(path);
    let names = streams::load(disk, &table)
        .map_err(|source| JournalError::Io { path: table.clone(), source })?;
    Ok(Recovered { file, frames, next: ended.next, why: ended.why, names })
}

#[cfg(test)]
mod power_loss_tests;
