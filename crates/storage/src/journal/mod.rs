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
//! Not on the write path yet: the group-commit loop that writes rounds, checkpoints and replay come next (see
//! `docs/architecture.md`, "Planned").
// Until the writer uses them, the frame and ring code runs only in its tests.
#![cfg_attr(not(test), allow(dead_code))]

pub(crate) mod file;
pub(crate) mod frame;
pub(crate) mod ring;
pub(crate) mod round;

#[cfg(test)]
mod power_loss_tests;
