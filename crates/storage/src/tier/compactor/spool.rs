//! One replacement segment being made: a group's batches, cleaned, written to a spool file
//! on local disk with an index of its own (a remote segment's, as an upload slice has), then
//! sent to the bucket from there. The spool is an unnamed temporary file: a crash leaves
//! nothing behind, and its bytes never sit in memory whole.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::clean::{Cleaned, Markers, OffsetMap, Rules, clean_batch};
use crate::log::encode_remote_index;
use crate::log::segment::{IndexBuilder, NO_TIMESTAMP};
use shale_core::error::Error;
use shale_core::record::{BatchHeader, Limits};

/// A replacement segment being written.
#[derive(Debug)]
pub(crate) struct Spool {
    file: Arc<std::fs::File>,
    base: i64,
    interval: u64,
    /// Bytes written.
    pub(crate) size: u64,
    index: IndexBuilder,
    /// Whether cleaning changed or removed a batch.
    pub(crate) changed: bool,
}

/// A replacement segment written: its bytes in the spool, its index, its newest record's
/// time (-1: none).
#[derive(Debug)]
pub(crate) struct Spooled {
    pub(crate) file: Arc<std::fs::File>,
    pub(crate) size: u64,
    pub(crate) index: Vec<u8>,
    pub(crate) max_timestamp: i64,
}

impl Spool {
    /// An empty replacement for a segment starting at `base`, spooled in `dir`, with an
    /// index entry every `interval` bytes.
    pub(crate) fn new(dir: &Path, base: i64, interval: u64) -> Result<Spool, Error> {
        let file = tempfile::tempfile_in(dir).map_err(|e| {
            Error::internal(format!(
                "cannot make a compaction spool file in {}: {e}",
                dir.display()
            ))
        })?;
        let index = IndexBuilder::new();
        Ok(Spool { file: Arc::new(file), base, interval, size: 0, index, changed: false })
    }

    /// Cleans `batches` (whole, in offset order, below the cleaning point) against `map`
    /// under `rules` and writes what is kept. A blocking call.
    pub(crate) fn add(
        &mut self,
        batches: &[Bytes],
        map: &OffsetMap,
        rules: &Rules,
    ) -> Result<(), Error> {
        let limits = Limits { max_batch_bytes: usize::MAX, ..Limits::default() };
        for batch in batches {
            let cleaned = clean_batch(batch, map, (rules, &mut Markers::keeping()), &limits)?;
            let bytes: &[u8] = match &cleaned {
                Cleaned::Whole => batch,
                Cleaned::Part(bytes) => bytes,
                Cleaned::Gone => {
                    self.changed = true;
                    continue;
                }
            };
            self.changed |= matches!(cleaned, Cleaned::Part(_));
            self.file.write_all_at(bytes, self.size).map_err(|e| {
                Error::internal(format!("cannot write a compaction spool file: {e}"))
            })?;
            let header = BatchHeader::parse(bytes)?;
            let rel = u32::try_from(header.base_offset - self.base).map_err(|_| {
                Error::internal(format!(
                    "batch {} is out of the relative range of a segment at {}",
                    header.base_offset, self.base
                ))
            })?;
            let len = bytes.len() as u64;
            self.index.add(rel, self.size, len, header.max_timestamp, self.interval);
            self.size += len;
        }
        Ok(())
    }

    /// The segment written, with its index.
    pub(crate) fn finish(mut self) -> Spooled {
        self.index.finish();
        let max_timestamp = match self.index.max_timestamp {
            NO_TIMESTAMP => -1,
            ts => ts.max(-1),
        };
        let index = encode_remote_index(&self.index.index);
        Spooled { file: self.file, size: self.size, index, max_timestamp }
    }
}

impl Spooled {
    /// `len` bytes at `pos` (a blocking call).
    pub(crate) fn read(&self, pos: u64, len: u64) -> Result<Bytes, Error> {
        let mut buf = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut buf, pos)
            .map_err(|e| Error::internal(format!("cannot read a compaction spool file: {e}")))?;
        Ok(Bytes::from(buf))
    }
}
