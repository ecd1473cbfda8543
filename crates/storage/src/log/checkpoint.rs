//! Small metadata files: the shared file header, atomic replace, the recovery point, and
//! the log start file (`log-start-offset`: header `SHLS` 1, the offset (i64 BE), CRC-32C
//! (u32 BE) of everything before it; no file: the floor is 0; see `start`).

use std::path::Path;

use super::LogError;
use shale_core::disk::Disk;

/// Name of the recovery point file in a partition directory.
pub(crate) const RECOVERY_POINT_FILE: &str = "recovery-point";
/// `recovery-point` file header: magic `SHRP`, version 1.
pub(crate) const RECOVERY_POINT_HEADER: FileHeader = FileHeader { magic: *b"SHRP", version: 1 };
/// Suffix of files being written before an atomic rename; leftovers are removed on open.
pub(crate) use shale_core::disk::TMP_SUFFIX;

/// The 8-byte header every Shale metadata file starts with: 4 magic bytes, a version byte,
/// 3 zero bytes (so fixed-size entries after it stay 8-byte aligned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// Identifies the file kind.
    pub magic: [u8; 4],
    /// Format version of the body.
    pub version: u8,
}

impl FileHeader {
    /// Encoded length.
    pub const LEN: usize = 8;

    /// Appends the header to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.magic);
        out.extend_from_slice(&[self.version, 0, 0, 0]);
    }

    /// The header as bytes.
    pub fn to_vec(self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::LEN);
        self.write(&mut v);
        v
    }

    /// Checks that `bytes` starts with this header and returns the body after it.
    pub fn check(self, bytes: &[u8]) -> Result<&[u8], String> {
        if bytes.len() < Self::LEN {
            return Err(format!("file of {} bytes is shorter than its header", bytes.len()));
        }
        if bytes[0..4] != self.magic {
            return Err(format!("bad magic {:?}, expected {:?}", &bytes[0..4], self.magic));
        }
        if bytes[4] != self.version {
            return Err(format!("unsupported version {}, expected {}", bytes[4], self.version));
        }
        Ok(&bytes[Self::LEN..])
    }
}

/// Replaces `dir/name` atomically (see [`shale_core::disk::write_atomic`]).
pub(crate) fn write_atomic(
    disk: &dyn Disk,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<(), LogError> {
    Ok(shale_core::disk::write_atomic(disk, dir, name, bytes)?)
}

/// Fsyncs a directory so that created, renamed and removed entries survive a crash.
pub(crate) fn sync_dir(disk: &dyn Disk, dir: &Path) -> Result<(), LogError> {
    Ok(shale_core::disk::sync_dir(disk, dir)?)
}

/// Reads a whole file, or `None` if it does not exist.
pub(crate) fn read_optional(disk: &dyn Disk, path: &Path) -> Result<Option<Vec<u8>>, LogError> {
    Ok(shale_core::disk::read_optional(disk, path)?)
}

/// Everything below `offset` is fsynced and valid; recovery re-validates only after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecoveryPoint {
    /// First offset not known to be durable and valid.
    pub offset: i64,
    /// Base offset of the segment holding `offset`.
    pub segment_base: i64,
    /// Byte position of `offset` in that segment.
    pub position: u64,
    /// Largest batch max timestamp in that segment below `position` (`i64::MIN` if none).
    pub max_timestamp: i64,
}

impl RecoveryPoint {
    /// Body length: four 8-byte fields and a CRC-32C.
    const BODY_LEN: usize = 36;

    /// The file bytes: header, offset i64, segment base i64, position u64, max timestamp
    /// i64 (all big-endian), CRC-32C (u32 BE) of everything before it.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = RECOVERY_POINT_HEADER.to_vec();
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(&self.segment_base.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.to_be_bytes());
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses the file bytes.
    pub(super) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let body = RECOVERY_POINT_HEADER.check(bytes)?;
        if body.len() != Self::BODY_LEN {
            return Err(format!("recovery point body is {} bytes, expected 36", body.len()));
        }
        let field = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&body[i * 8..i * 8 + 8]);
            a
        };
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&body[32..36]);
        if crc32c::crc32c(&bytes[..bytes.len() - 4]) != u32::from_be_bytes(crc) {
            return Err("recovery point crc mismatch".to_string());
        }
        Ok(RecoveryPoint {
            offset: i64::from_be_bytes(field(0)),
            segment_base: i64::from_be_bytes(field(1)),
            position: u64::from_be_bytes(field(2)),
            max_timestamp: i64::from_be_bytes(field(3)),
        })
    }

    /// Reads the recovery point of a partition directory; `None` if missing or unreadable
    /// (recovery then re-validates the whole log).
    pub(super) fn load(disk: &dyn Disk, dir: &Path) -> Result<Option<Self>, LogError> {
        let path = dir.join(RECOVERY_POINT_FILE);
        let Some(bytes) = read_optional(disk, &path)? else { return Ok(None) };
        match Self::decode(&bytes) {
            Ok(rp) => Ok(Some(rp)),
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "ignoring invalid recovery point");
                Ok(None)
            }
        }
    }

    /// Writes the recovery point atomically.
    pub(super) fn store(&self, disk: &dyn Disk, dir: &Path) -> Result<(), LogError> {
        write_atomic(disk, dir, RECOVERY_POINT_FILE, &self.encode())
    }
}

/// Name of the log start file in a partition directory.
pub(crate) const START_FILE: &str = "log-start-offset";
/// `log-start-offset` header: magic `SHLS`, version 1.
pub(crate) const START_HEADER: FileHeader = FileHeader { magic: *b"SHLS", version: 1 };

/// The file bytes for a floor at `offset`.
fn encode(offset: i64) -> Vec<u8> {
    let mut out = START_HEADER.to_vec();
    out.extend_from_slice(&offset.to_be_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Parses the file bytes.
fn decode(bytes: &[u8]) -> Result<i64, String> {
    let body = START_HEADER.check(bytes)?;
    if body.len() != 12 {
        return Err(format!("log start body is {} bytes, expected 12", body.len()));
    }
    let (data, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(data) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err("log start crc mismatch".to_string());
    }
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&body[..8]);
    Ok(i64::from_be_bytes(offset))
}

/// The floor stored in `dir` (0 without a file). An unreadable file fails the open: ignoring
/// it would serve records a client deleted.
pub(crate) fn load_start(disk: &dyn Disk, dir: &Path) -> Result<i64, LogError> {
    let path = dir.join(START_FILE);
    let Some(bytes) = read_optional(disk, &path)? else { return Ok(0) };
    decode(&bytes).map_err(|reason| LogError::Corrupt {
        path,
        offset: -1,
        reason: format!(
            "{reason}; this file holds the log start that DeleteRecords set: restore it, or \
             remove it to serve the records below that start again"
        ),
    })
}

/// Stores the floor atomically (temporary file, fsync, rename, directory fsync).
pub(super) fn store_start(disk: &dyn Disk, dir: &Path, offset: i64) -> Result<(), LogError> {
    write_atomic(disk, dir, START_FILE, &encode(offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_point_format_is_pinned() {
        let rp = RecoveryPoint { offset: 5, segment_base: 2, position: 300, max_timestamp: -1 };
        let bytes = rp.encode();
        let mut expected = b"SHRP\x01\0\0\0".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 5]);
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 2]);
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 44]);
        expected.extend_from_slice(&[0xff; 8]);
        expected.extend_from_slice(&crc32c::crc32c(&expected).to_be_bytes());
        assert_eq!(bytes, expected);
        assert_eq!(RecoveryPoint::decode(&bytes), Ok(rp));
    }

    #[test]
    fn recovery_point_rejects_corruption() {
        let mut bytes =
            RecoveryPoint { offset: 5, segment_base: 2, position: 3, max_timestamp: 4 }.encode();
        bytes[10] ^= 1;
        assert!(RecoveryPoint::decode(&bytes).is_err());
        assert!(RecoveryPoint::decode(b"SHRP\x02\0\0\0").is_err());
    }

    #[test]
    fn the_log_start_file_format_is_pinned() {
        let mut expected = b"SHLS\x01\0\0\0".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 44]);
        expected.extend_from_slice(&crc32c::crc32c(&expected).to_be_bytes());
        assert_eq!(encode(300), expected);
        assert_eq!(decode(&expected), Ok(300));
        let mut bad = expected.clone();
        bad[12] ^= 1;
        assert!(decode(&bad).unwrap_err().contains("crc"));
        assert!(decode(b"SHLS\x02\0\0\0").is_err());
    }
}
