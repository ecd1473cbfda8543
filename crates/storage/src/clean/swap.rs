//! Swapping cleaned segments in for the sealed segments they replace, so that a crash or
//! power cut at any step leaves either the old segments or the new ones, never a mix.
//!
//! The commit point is a marker file, [`MARKER`], written atomically in the partition's
//! directory once the cleaned segments are durable beside their sources (`rewrite`): it
//! names the offsets replaced, `[from, to)`, and the cleaned segments' base offsets. Then
//! each cleaned file is renamed over its final name (replacing the source of the same base),
//! every other segment file of a base in `[from, to)` is removed, the directory is fsynced,
//! and the marker removed. At open, before any segment is read, [`recover`] finishes a swap
//! whose marker is there (every step is one it can redo: renames of files still named
//! `.cleaned`, removals of files still there) and removes the files of a clean that never
//! committed (`.cleaned` files with no marker).

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::rewrite::{CLEANED, Written, cleaned_path};
use crate::log::LogError;
use crate::log::checkpoint::{TMP_SUFFIX, read_optional, sync_dir, write_atomic};
use crate::log::segment::{
    INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, parse_file_name, segment_path,
};
use shale_core::disk::Disk;

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

/// Swaps `written` (durable beside their sources, see `rewrite`) in for the segments of
/// the log in `dir` whose bases are in `[from, to)`. Once this returns the new segments
/// are the log's; if it fails or the machine stops part way, [`recover`] decides at the
/// next open (the old segments if the marker is not durable, else the new).
pub(crate) fn swap_in(
    disk: &dyn Disk,
    dir: &Path,
    from: i64,
    to: i64,
    written: &[Written],
) -> Result<(), LogError> {
    let marker = Marker { from, to, bases: written.iter().map(|w| w.base).collect() };
    let bytes =
        serde_json::to_vec(&marker).map_err(|e| LogError::io(dir, std::io::Error::other(e)))?;
    write_atomic(disk, dir, MARKER, &bytes)?;
    complete(disk, dir, &marker)
}

/// At open, before any segment is read: finishes a committed swap, or removes the files of
/// a clean that never committed.
pub(crate) fn recover(disk: &dyn Disk, dir: &Path) -> Result<(), LogError> {
    let path = dir.join(MARKER);
    // A marker cut short before its rename never committed.
    let tmp = dir.join(format!("{MARKER}{TMP_SUFFIX}"));
    if disk.metadata(&tmp).is_ok() {
        disk.remove_file(&tmp).map_err(|e| LogError::io(&tmp, e))?;
    }
    match read_optional(disk, &path)? {
        Some(bytes) => {
            let marker: Marker = serde_json::from_slice(&bytes).map_err(|e| LogError::Corrupt {
                path: path.clone(),
                offset: -1,
                reason: format!("the clean's swap marker does not parse: {e}"),
            })?;
            tracing::info!(dir = %dir.display(), from = marker.from, to = marker.to,
                "finishing a cleaned segments' swap a stop interrupted");
            complete(disk, dir, &marker)
        }
        None => {
            let names = disk.read_dir(dir).map_err(|e| LogError::io(dir, e))?;
            let mut removed = false;
            // `.cleaned` files, and the temporary files of their indexes (`.cleaned.tmp`).
            for name in names.iter().filter(|n| n.contains(CLEANED)) {
                let file = dir.join(name);
                disk.remove_file(&file).map_err(|e| LogError::io(&file, e))?;
                removed = true;
            }
            if removed {
                sync_dir(disk, dir)?;
            }
            Ok(())
        }
    }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::clean::offset_map::OffsetMap;
    use crate::clean::rewrite::tests::{DIR, read, sources};
    use crate::clean::rewrite::{Layout, write_cleaned};
    use crate::clean::section::{Rules, map_section};
    use shale_core::disk::{SimDisk, SimOptions};
    use shale_core::record::Limits;

    /// The segment files of the log: name → bytes.
    fn files(disk: &SimDisk) -> BTreeMap<String, Vec<u8>> {
        let mut names = disk.read_dir(Path::new(DIR)).unwrap();
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let bytes = read(disk, &Path::new(DIR).join(&n));
                (n, bytes)
            })
            .collect()
    }

    /// A power cut at every step of a swap, then `recover`: the log's files are the old
    /// segments or the new, whole, and nothing of the clean is left over.
    #[test]
    fn a_power_cut_at_any_step_of_a_swap_leaves_the_old_segments_or_the_new() {
        let (mut saw_old, mut saw_new, mut steps) = (false, false, 0u64);
        loop {
            let disk = SimDisk::new(SimOptions {
                seed: steps,
                torn_tails: true,
                torn_dirs: true,
                ..Default::default()
            });
            let (sources, batches) = sources(&disk, 4, 5, 3);
            let mut map = OffsetMap::with_memory(1 << 20);
            let end = sources[3].next_offset;
            map_section(batches.iter().map(Vec::as_slice), &mut map, &Limits::default(), end)
                .unwrap();
            let layout = Layout { segment_bytes: 2 * sources[0].size, index_interval: 100 };
            let written = write_cleaned(
                &disk,
                Path::new(DIR),
                &sources[..3],
                &map,
                &Rules::default(),
                &layout,
            )
            .unwrap();
            let old: BTreeMap<_, _> =
                files(&disk).into_iter().filter(|(n, _)| !n.contains(CLEANED)).collect();
            // What the swap makes: the sources replaced by the cleaned files, the fourth kept.
            let to = sources[3].base;
            let start = disk.ops();
            disk.freeze_after(steps);
            let done = swap_in(&disk, Path::new(DIR), 0, to, &written).is_ok();
            let finished = done && !disk.is_frozen();
            let ops = disk.ops() - start;
            disk.crash();
            recover(&disk, Path::new(DIR)).unwrap();
            let after = files(&disk);
            assert!(
                after.keys().all(|n| !n.contains(CLEANED) && n != MARKER),
                "left over at step {steps}: {:?}",
                after.keys()
            );
            if after == old {
                saw_old = true;
            } else {
                // The new set: the cleaned segments under their final names, and the fourth.
                let bases: Vec<i64> = after
                    .keys()
                    .filter_map(|n| parse_file_name(n))
                    .filter(|(_, s)| *s == LOG_SUFFIX)
                    .map(|(b, _)| b)
                    .collect();
                let mut want: Vec<i64> = written.iter().map(|w| w.base).collect();
                want.push(sources[3].base);
                assert_eq!(bases, want, "a mix of old and new at step {steps}");
                for w in &written {
                    let name = crate::log::segment::file_name(w.base, LOG_SUFFIX);
                    assert_eq!(after[&name].len() as u64, w.size, "{name} at step {steps}");
                }
                saw_new = true;
            }
            if finished || ops < steps {
                break;
            }
            steps += 1;
        }
        assert!(saw_old && saw_new, "cuts before and after the commit point: {steps} steps");
    }

    #[test]
    fn an_uncommitted_clean_is_removed_at_open() {
        let disk = SimDisk::new(SimOptions::default());
        let (sources, batches) = sources(&disk, 2, 3, 2);
        let mut map = OffsetMap::with_memory(1 << 20);
        map_section(
            batches.iter().map(Vec::as_slice),
            &mut map,
            &Limits::default(),
            sources[1].next_offset,
        )
        .unwrap();
        let layout = Layout { segment_bytes: 1 << 20, index_interval: 100 };
        write_cleaned(&disk, Path::new(DIR), &sources[..1], &map, &Rules::default(), &layout)
            .unwrap();
        let before = files(&disk);
        assert!(before.keys().any(|n| n.ends_with(CLEANED)));
        recover(&disk, Path::new(DIR)).unwrap();
        let after = files(&disk);
        assert!(after.keys().all(|n| !n.contains(CLEANED)), "{:?}", after.keys());
        assert_eq!(after.len(), before.len() - 3, "the three cleaned files went");
    }
}
