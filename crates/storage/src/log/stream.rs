//! A log's stream in its volume's journal: bound by the partition directory's name in the
//! journal's stream table when the log opens (what the log writes into the journal is in
//! `journaled`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::LogError;
use super::rounds::Volume;
use crate::journal::Journal;

/// A log's place in its volume's journal.
#[derive(Debug)]
pub(crate) struct Journaled {
    pub(super) journal: Arc<Journal>,
    pub(super) stream: u32,
    /// The journal position after the log's last frame (set under the log's lock).
    pub(super) pushed: AtomicU64,
}

impl Journaled {
    /// The stream of the log in `dir` in its volume's journal, if the volume has one. A
    /// `fresh` directory (created empty) gets a new stream even if its name had one.
    pub(super) fn bind(
        volume: &Volume,
        dir: &Path,
        fresh: bool,
    ) -> Result<Option<Journaled>, LogError> {
        let Some(journal) = &volume.journal else { return Ok(None) };
        let name = dir.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
            let e = std::io::Error::other("a partition directory needs a UTF-8 name");
            LogError::io(dir, e)
        })?;
        let stream = journal
            .streams()
            .bind(name, fresh)
            .map_err(|e| LogError::io(journal.streams().path(), e))?;
        Ok(Some(Journaled { journal: journal.clone(), stream, pushed: AtomicU64::new(0) }))
    }
}
