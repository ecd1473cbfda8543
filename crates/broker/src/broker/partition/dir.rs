//! A partition's directory on disk and its `partition.metadata` file, which ties the
//! directory to one topic id so that a deleted topic's leftovers are never mistaken for
//! the data of a new topic of the same name.

use std::path::Path;

use super::METADATA_FILE;
use shale_core::disk::Disk;
use shale_core::error::{Error, ErrorKind, Reason};
use shale_storage::log::LogError;

#[derive(serde::Serialize, serde::Deserialize)]
struct PartitionMetadata {
    version: u32,
    topic: String,
    topic_id: String,
    partition: u32,
}

/// Makes sure `dir` belongs to this topic id: a directory left by a deleted topic of the same
/// name (its `partition.metadata` names another topic id) is removed first. A directory whose
/// metadata cannot be read or parsed, or that holds segments without metadata, is never
/// touched: the partition fails to open with `CORRUPT_PARTITION_METADATA` naming the file,
/// because deleting it could delete acknowledged data.
pub(super) fn claim_dir(
    disk: &dyn Disk,
    dir: &Path,
    topic: &str,
    topic_id: &str,
    index: u32,
) -> Result<(), Error> {
    // Out of descriptors is said as such (retriable, `TOO_MANY_OPEN_FILES`), as in the log.
    let io = |what: &str, e: std::io::Error| match LogError::io(dir, e) {
        LogError::Io { source, .. } => {
            Error::internal(format!("{what} {}: {source}", dir.display()))
                .with("path", dir.display())
        }
        other => Error::from(other),
    };
    let meta_path = dir.join(METADATA_FILE);
    let corrupt = |why: String| {
        let e = Error::new(
            ErrorKind::Data,
            Reason::CorruptPartitionMetadata,
            format!(
                "{}: {why}; partition {topic}-{index} is not opened and its directory is left \
                 as it is: restore the file (it names topic id {topic_id}) or move the \
                 directory away",
                meta_path.display()
            ),
        )
        .with("path", meta_path.display())
        .with("topic", topic)
        .with("partition", index);
        tracing::error!(path = %meta_path.display(), topic, partition = index, reason = %why,
            "partition metadata unreadable; refusing to open or delete the partition");
        e
    };
    if disk.metadata(dir).is_ok() {
        match disk.read(&meta_path) {
            Ok(bytes) => match serde_json::from_slice::<PartitionMetadata>(&bytes) {
                Ok(m) if m.topic_id == topic_id => return Ok(()),
                Ok(m) => {
                    tracing::warn!(path = %dir.display(), found_topic_id = m.topic_id, topic_id,
                        "partition directory belongs to another topic incarnation; removing it");
                    disk.remove_dir_all(dir).map_err(|e| io("cannot remove stale", e))?;
                }
                Err(e) => return Err(corrupt(format!("not valid partition metadata ({e})"))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let names = disk.read_dir(dir).map_err(|e| io("cannot list", e))?;
                if names.iter().any(|n| n.ends_with(".log")) {
                    return Err(corrupt("missing, but the directory holds log segments".into()));
                }
            }
            Err(e) if shale_storage::log::out_of_descriptors(&e) => {
                return Err(LogError::io(&meta_path, e).into());
            }
            Err(e) => return Err(corrupt(format!("cannot be read ({e})"))),
        }
    }
    shale_core::disk::create_dir_durable(disk, dir).map_err(|e| io("cannot create", e.source))?;
    let meta = PartitionMetadata {
        version: 1,
        topic: topic.to_string(),
        topic_id: topic_id.to_string(),
        partition: index,
    };
    let bytes = serde_json::to_vec(&meta).map_err(|e| Error::internal(e.to_string()))?;
    shale_core::disk::write_atomic(disk, dir, METADATA_FILE, &bytes)
        .map_err(|e| io("cannot write partition metadata in", e.source))?;
    Ok(())
}
