//! Kafka RecordBatch v2: header, records codec, compression, validation.
//!
//! - `batch`: the fixed header, CRC-32C, in-place stamping, framing of back-to-back batches.
//! - `varint`: Kafka's zigzag varint (i32) and varlong (i64), bounds-checked.
//! - `reader`: the v2 records area read one record at a time, bounds-checked.
//! - `limits`: `Limits`, and the checks (CRC, count, bounded inflation) before any read.
//! - `codec`: the v2 record format: encoding records, decoding whole batches into records.
//! - `compression`: gzip, snappy (xerial), lz4 (frame), zstd; bounded decompression.
//! - `builder`: `BatchBuilder`, encoding records into one batch as a producer does.
//! - `control`: transaction markers (commit and abort control batches).
//! - `compact`: keeping some of a batch's records (a log cleaner's rebuilt batches).
//! - `validate`: `validate_batches`, the broker's checks on producer input.

pub mod batch;
pub mod builder;
pub mod codec;
pub mod compact;
pub mod compression;
pub mod control;
mod limits;
mod reader;
pub mod validate;
pub mod varint;

pub use batch::{BatchFrames, BatchHeader, Compression, HEADER_LEN};
pub use builder::BatchBuilder;
pub use codec::{
    DecodedRecord, Header, Record, decode_batch, decode_batches, decode_batches_except,
};
pub use limits::Limits;
pub use validate::{RecordCheck, validate_batches, validate_batches_with};

use crate::error::{Error, ErrorKind, Reason};

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
    /// Produce input without a single batch.
    #[error("empty input: expected at least one record batch")]
    Empty,
    /// An error inside one of several back-to-back batches.
    #[error("batch {index} (at byte {position}): {error}")]
    InBatch {
        /// Zero-based index of the batch in the input.
        index: usize,
        /// Byte position of the batch in the input.
        position: usize,
        /// What is wrong with it (shown in the message, so not exposed as `source`).
        error: Box<RecordError>,
    },
    /// A header field with a value the format or the broker does not allow.
    #[error("invalid {field} {value}: expected {expected}")]
    InvalidField {
        /// Header field name, as in Kafka's format description.
        field: &'static str,
        /// The value found.
        value: i64,
        /// What would have been valid.
        expected: String,
    },
    /// More records in one batch than allowed.
    #[error("batch claims {count} records, more than the limit of {max}")]
    TooManyRecords {
        /// recordCount from the header.
        count: i64,
        /// Limit.
        max: usize,
    },
    /// A control batch (transaction marker) where only data batches are allowed.
    #[error("control batches (transaction markers) cannot be produced: clear attribute bit 5")]
    ControlBatch,
    /// One record inside a batch is malformed.
    #[error("record {index}: {detail}")]
    BadRecord {
        /// Zero-based position of the record in the batch.
        index: usize,
        /// What is wrong with it, naming the field and value.
        detail: String,
    },
    /// Bytes left in the records area after the last record.
    #[error(
        "{extra} trailing bytes after the last of {count} records: recordCount or a record length is wrong"
    )]
    TrailingBytes {
        /// Unconsumed bytes.
        extra: usize,
        /// Records decoded.
        count: usize,
    },
    /// A single batch was expected but the buffer length differs from the batch's.
    #[error(
        "buffer of {actual} bytes holds a batch of {declared} bytes: expected exactly one batch"
    )]
    BatchLengthMismatch {
        /// Size from the header's length field.
        declared: usize,
        /// Size of the buffer.
        actual: usize,
    },
    /// Decompressing the records would exceed the uncompressed limit.
    #[error(
        "{codec} records inflate beyond the limit of {max} bytes (max uncompressed bytes): send smaller batches"
    )]
    DecompressedTooLarge {
        /// Codec name.
        codec: &'static str,
        /// Limit.
        max: usize,
    },
    /// The compressed payload is not valid for its codec.
    #[error("invalid {codec} payload: {detail}")]
    Decompress {
        /// Codec name.
        codec: &'static str,
        /// Decoder's description.
        detail: String,
    },
    /// A record too large for the format's i32 lengths.
    #[error("{field} of {size} bytes does not fit the format's 2 GiB limit")]
    RecordTooLarge {
        /// Which part (key, value, header, batch).
        field: &'static str,
        /// Its size.
        size: usize,
    },
}

impl RecordError {
    /// Machine-readable reason for the status details.
    pub fn reason(&self) -> Reason {
        match self {
            RecordError::InBatch { error, .. } => error.reason(),
            RecordError::CrcMismatch { .. } => Reason::CorruptBatch,
            RecordError::BatchTooLarge { .. }
            | RecordError::DecompressedTooLarge { .. }
            | RecordError::RecordTooLarge { .. } => Reason::BatchTooLarge,
            RecordError::TooManyRecords { .. } => Reason::TooManyRecords,
            RecordError::UnknownCompression(_) | RecordError::UnknownCompressionName(_) => {
                Reason::UnsupportedCompression
            }
            _ => Reason::InvalidBatch,
        }
    }
}

impl From<RecordError> for Error {
    fn from(e: RecordError) -> Self {
        Error::new(ErrorKind::Invalid, e.reason(), e.to_string()).with_source(e)
    }
}
