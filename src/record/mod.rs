//! Kafka RecordBatch v2: header, records codec, compression, validation.
//!
//! - `batch`: the fixed header, CRC-32C, in-place stamping, framing of back-to-back batches.
//! - `varint`: Kafka's zigzag varint (i32) and varlong (i64), bounds-checked.

pub mod batch;
pub mod varint;

pub use batch::{BatchFrames, BatchHeader, Compression, HEADER_LEN};

use crate::error::{Error, ErrorKind};

/// Errors from decoding or validating record batches.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Fewer bytes than the format requires.
    #[error("truncated batch: needed {needed} bytes, only {available} available")]
    Truncated {
        /// Bytes required.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// Magic byte other than 2.
    #[error("unsupported batch magic {0}: only RecordBatch v2 (magic 2) is accepted")]
    BadMagic(i8),
    /// Length field too small to hold a header.
    #[error("invalid batch length field {0}: must be at least 49")]
    BadLength(i32),
    /// Stored and computed CRC differ.
    #[error("batch crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC in the header.
        stored: u32,
        /// CRC computed over the bytes.
        computed: u32,
    },
    /// A batch over the size limit.
    #[error("batch of {size} bytes exceeds the limit of {max} bytes (max.message.bytes)")]
    BatchTooLarge {
        /// Batch size.
        size: usize,
        /// Limit.
        max: usize,
    },
    /// Compression id 5..7.
    #[error("unknown compression codec id {0} in batch attributes")]
    UnknownCompression(u8),
    /// Compression name not known.
    #[error("unknown compression {0:?}: expected none, gzip, snappy, lz4 or zstd")]
    UnknownCompressionName(String),
    /// Any other malformed content, described.
    #[error("corrupt batch: {0}")]
    Corrupt(String),
}

impl RecordError {
    /// Machine-readable reason for the status details.
    pub fn reason(&self) -> &'static str {
        match self {
            RecordError::CrcMismatch { .. } => "CORRUPT_BATCH",
            RecordError::BatchTooLarge { .. } => "BATCH_TOO_LARGE",
            RecordError::UnknownCompression(_) | RecordError::UnknownCompressionName(_) => {
                "UNSUPPORTED_COMPRESSION"
            }
            _ => "INVALID_BATCH",
        }
    }
}

impl From<RecordError> for Error {
    fn from(e: RecordError) -> Self {
        Error::new(ErrorKind::Invalid, e.reason(), e.to_string())
    }
}
