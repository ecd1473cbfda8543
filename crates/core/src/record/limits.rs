//! What one batch may cost to accept or decode, and the checks every reader of a stored
//! batch applies before it allocates: the CRC, the record count against its limit, and
//! decompression within the inflated-size limit.

use super::RecordError;
use super::batch::{BatchHeader, HEADER_LEN, verify_crc};
use super::compression::decompress;

/// Bounds on what one batch may cost to accept or decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest batch on the wire, including base offset and length fields (`max.message.bytes`).
    pub max_batch_bytes: usize,
    /// Most records in one batch.
    pub max_records: usize,
    /// Largest records area after decompression.
    pub max_uncompressed_bytes: usize,
    /// Every record must have a key (a compacted topic's, `cleanup.policy=compact`:
    /// Kafka refuses keyless records there).
    pub keys_required: bool,
}

impl Default for Limits {
    /// Kafka's default `message.max.bytes` (1 MiB + 12), a million records, 64 MiB inflated.
    fn default() -> Self {
        Limits {
            max_batch_bytes: 1_048_588,
            max_records: 1_000_000,
            max_uncompressed_bytes: 64 << 20,
            keys_required: false,
        }
    }
}

/// Checks that hold for any stored batch: the CRC, and a record count that is not negative
/// and within the limit. Returns the record count.
pub(crate) fn check_batch(
    header: &BatchHeader,
    batch: &[u8],
    limits: &Limits,
) -> Result<usize, RecordError> {
    verify_crc(header, batch)?;
    let count = usize::try_from(header.records_count).map_err(|_| RecordError::InvalidField {
        field: "recordCount",
        value: header.records_count.into(),
        expected: "a count >= 0".into(),
    })?;
    if count > limits.max_records {
        return Err(RecordError::TooManyRecords {
            count: header.records_count.into(),
            max: limits.max_records,
        });
    }
    Ok(count)
}

/// The decompressed records area, or `None` when the batch is uncompressed and the area is
/// `batch[HEADER_LEN..]` as is.
pub(crate) fn records_area(
    header: &BatchHeader,
    batch: &[u8],
    limits: &Limits,
) -> Result<Option<Vec<u8>>, RecordError> {
    let codec = header.compression()?;
    if codec == super::Compression::None {
        return Ok(None);
    }
    decompress(codec, &batch[HEADER_LEN..], limits.max_uncompressed_bytes).map(Some)
}
