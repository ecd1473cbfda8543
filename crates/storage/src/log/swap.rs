//! Swapping cleaned segments (the log cleaner's, `crate::clean`) in for the sealed segments
//! they replace, so that a crash or power cut at any step leaves either the old segments or
//! the new ones, never a mix. Here, in the log, because finishing or undoing a swap is part
//! of opening a log (`recovery` calls [`settle`] with the listing it makes of the segments).
//!
//! The commit point is a marker file, [`MARKER`], written atomically in the partition's
//! directory once the cleaned segments are durable beside their sources, each named after
//! its base offset with the suffix [`CLEANED`] (`clean::rewrite`): it
//! names the offsets replaced, `[from, to)`, and the cleaned segments' base offsets. Then
//! each cleaned file is renamed over its final name (replacing the source of the same base),
//! every other segment file of a base in `[from, to)` is removed, the directory is fsynced,
//! and the marker removed. At open, before any segment is read, [`settle`] finishes a swap
//! whose marker is there (every step is one it can redo: renames of files still named
//! `.cleaned`, removals of files still there) and removes the files of a clean that never
//! committed (`.cleaned` files with no marker).

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::LogError;
use super::checkpoint::{TMP_SUFFIX, read_optional, sync_dir, write_atomic};
use super::segment::{
    INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, file_name, parse_file_name, segment_path,
};
use shale_core::disk::Disk;

/// The suffix of a cleaned segment's files until they are swapped in.
pub(crate) const CLEANED: &str = ".cleaned";

/// The path of a cleaned segment's file with the given suffix.
pub(crate) fn cleaned_path(dir: &Path, base: i64, suffix: &str) -> std::path::PathBuf {
    dir.join(format!("{}{CLEANED}", file_name(base, suffix)))
}

/// Removes every cleaned file in `dir`: those of a clean that failed before its swap (a
/// log is cleaned by one clean at a time, so they are all its files). Once a swap's
/// marker is there, nothing is removed: its files are the swap's to finish (at the next
/// open, if not before).
pub(crate) fn discard_cleaned(disk: &dyn Disk, dir: &Path) -> Result<(), LogError> {
    let names = disk.read_dir(dir).map_err(|e| LogError::io(dir, e))?;
    if names.iter().any(|n| n == MARKER) {
        return Ok(());
    }
    for name in names.iter().filter(|n| n.contains(CLEANED)) {
        let file = dir.join(name);
        match disk.remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(LogError::io(&file, e));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The swap marker's file name in a partition's directory.
pub(crate) const MARKER: &str = "clean.swap";

/// What a committed swap replaces and with what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Marker {
    /// The first offset replaced: the first source's base.
    from: i64,
    /// The offset after the last replaced: the next segment's base.
    to: i64,
    /// The cleaned segments' base offsets.
    bases: Vec<i64>,
}

/// Swaps the cleaned segments of base offsets `bases` (durable beside their sources) in
/// for the segments of the log in `dir` whose bases are in `[from, to)`. Once this returns
/// the new segments are the log's; if it fails or the machine stops part way, [`settle`]
/// decides at the next open (the old segments if the marker is not durable, else the new).
pub(crate) fn swap_in(
    disk: &dyn Disk,
    dir: &Path,
    from: i64,
    to: i64,
    bases: &[i64],
) -> Result<(), LogError> {
    let marker = Marker { from, to, bases: bases.to_vec() };
    let bytes =
        serde_json::to_vec(&marker).map_err(|e| LogError::io(dir, std::io::Error::other(e)))?;
    write_atomic(disk, dir, MARKER, &bytes)?;
    complete(disk, dir, &marker)
}

/// At open, before any segment is read (`names`: the directory's entries, as the caller
/// listed them): finishes a committed swap, or removes the files of a clean that never
/// committed, and a marker cut short before its rename. Says whether the directory changed
/// (the caller lists it again). A directory with no clean in it costs nothing more than
/// the listing.
pub(crate) fn settle(disk: &dyn Disk, dir: &Path, names: &[String]) -> Result<bool, LogError> {
    let path = dir.join(MARKER);
    let found = match names.iter().any(|n| n == MARKER) {
        true => read_optional(disk, &path)?,
        false => None,
    };
    if let Some(bytes) = found {
        let marker: Marker = serde_json::from_slice(&bytes).map_err(|e| LogError::Corrupt {
            path: path.clone(),
            offset: -1,
            reason: format!("the clean's swap marker does not parse: {e}"),
        })?;
        tracing::info!(dir = %dir.display(), from = marker.from, to = marker.to,
            "finishing a cleaned segments' swap a stop interrupted");
        complete(disk, dir, &marker)?;
        return Ok(true);
    }
    let marker_tmp = format!("{MARKER}{TMP_SUFFIX}");
    let mut removed = false;
    // `.cleaned` files, the temporary files of their indexes (`.cleaned.tmp`), a marker
    // cut short.
    for name in names.iter().filter(|n| n.contains(CLEANED) || **n == marker_tmp) {
        let file = dir.join(name);
        disk.remove_file(&file).map_err(|e| LogError::io(&file, e))?;
        removed = true;
    }
    if removed {
        sync_dir(disk, dir)?;
    }
    Ok(removed)
}

/// [`settle`] with the directory listed here (tests).
#[cfg(test)]
pub(crate) fn recover(disk: &dyn Disk, dir: &Path) -> Result<(), LogError> {
    let names = disk.read_dir(dir).map_err(|e| LogError::io(dir, e))?;
    settle(disk, dir, &names).map(|_| ())
}

/// The steps after the commit point, each one redone safely.
fn complete(disk: &dyn Disk, dir: &Path, marker: &Marker) -> Result<(), LogError> {
    for &base in &marker.bases {
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let cleaned = cleaned_path(dir, base, suffix);
            if disk.metadata(&cleaned).is_ok() {
                let target = segment_path(dir, base, suffix);
                disk.rename(&cleaned, &target).map_err(|e| LogError::io(&target, e))?;
            }
        }
    }
    let keep: HashSet<i64> = marker.bases.iter().copied().collect();
    let names = disk.read_dir(dir).map_err(|e| LogError::io(dir, e))?;
    for name in names {
        let Some((base, _)) = parse_file_name(&name) else { continue };
        if base >= marker.from && base < marker.to && !keep.contains(&base) {
            let file = dir.join(&name);
            disk.remove_file(&file).map_err(|e| LogError::io(&file, e))?;
        }
    }
    sync_dir(disk, dir)?;
    let path = dir.join(MARKER);
    disk.remove_file(&path).map_err(|e| LogError::io(&path, e))?;
    sync_dir(disk, dir)
}
