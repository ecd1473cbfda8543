//! The Kafka RecordBatch v2 (magic 2) header: parsing, CRC-32C, and stamping.
//!
//! Layout (big-endian), as published in Kafka's protocol documentation:
//!
//! ```text
//! 0  baseOffset: int64          8  batchLength: int32 (bytes after this field)
//! 12 partitionLeaderEpoch: int32 16 magic: int8 (= 2)
//! 17 crc: uint32 (CRC-32C over attributes .. end of batch)
//! 21 attributes: int16          23 lastOffsetDelta: int32
//! 27 baseTimestamp: int64       35 maxTimestamp: int64
//! 43 producerId: int64          51 producerEpoch: int16
//! 53 baseSequence: int32        57 recordCount: int32
//! 61 records...
//! ```
//!
//! Base offset and leader epoch sit outside the CRC, so a broker stamps them in place
//! without re-encoding or re-checksumming.

use super::RecordError;

/// Size of the fixed batch header.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batchLength` counts: base offset (8) + length (4).
pub const LOG_OVERHEAD: usize = 12;
/// The only batch format Shale stores.
pub const MAGIC_V2: i8 = 2;
/// Where the CRC-covered region starts (the attributes field).
pub const CRC_START: usize = 21;

const OFF_LENGTH: usize = 8;
const OFF_LEADER_EPOCH: usize = 12;
const OFF_MAGIC: usize = 16;
const OFF_CRC: usize = 17;

/// Compression codec, from attribute bits 0-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// No compression.
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// Snappy with the xerial framing used by Kafka clients.
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// The attribute bits for this codec.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec for attribute bits 0-2.
    pub fn from_id(id: u8) -> Result<Self, RecordError> {
        Ok(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(RecordError::UnknownCompression(other)),
        })
    }

    /// Parses a codec name as used in configs and flags (`none`, `gzip`, `lz4`, `zstd`, `snappy`).
    pub fn parse(name: &str) -> Result<Self, RecordError> {
        Ok(match name {
            "none" | "uncompressed" => Compression::None,
            "gzip" => Compression::Gzip,
            "snappy" => Compression::Snappy,
            "lz4" => Compression::Lz4,
            "zstd" => Compression::Zstd,
            other => return Err(RecordError::UnknownCompressionName(other.to_string())),
        })
    }

    /// The codec's config name.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Attribute bit: timestamps are LogAppendTime (else CreateTime).
pub const ATTR_LOG_APPEND_TIME: i16 = 1 << 3;
/// Attribute bit: part of a transaction.
pub const ATTR_TRANSACTIONAL: i16 = 1 << 4;
/// Attribute bit: a control batch (transaction markers).
pub const ATTR_CONTROL: i16 = 1 << 5;

/// The parsed fixed header of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the length field (total size is this plus [`LOG_OVERHEAD`]).
    pub batch_length: i32,
    /// Epoch of the leader that appended the batch.
    pub partition_leader_epoch: i32,
    /// Format version; always 2 here.
    pub magic: i8,
    /// CRC-32C over attributes .. end.
    pub crc: u32,
    /// Compression, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// Offset of the last record minus the base offset.
    pub last_offset_delta: i32,
    /// Timestamp of the first record (ms).
    pub base_timestamp: i64,
    /// Largest record timestamp in the batch (ms).
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub records_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Parses the 61-byte header at the start of `buf`. Checks magic and that the length
    /// field is at least a header; does not check the CRC or that the whole batch is present.
    pub fn parse(buf: &[u8]) -> Result<Self, RecordError> {
        if buf.len() < HEADER_LEN {
            return Err(RecordError::Truncated { needed: HEADER_LEN, available: buf.len() });
        }
        let magic = buf[OFF_MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(RecordError::BadMagic(magic));
        }
        let batch_length = be_i32(buf, OFF_LENGTH);
        if batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(RecordError::BadLength(batch_length));
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length,
            partition_leader_epoch: be_i32(buf, OFF_LEADER_EPOCH),
            magic,
            crc: be_i32(buf, OFF_CRC) as u32,
            attributes: be_i16(buf, 21),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            records_count: be_i32(buf, 57),
        })
    }

    /// Total bytes of the batch including base offset and length fields.
    pub fn total_len(&self) -> usize {
        // `parse` guarantees a length >= 49; saturate anyway for hand-built headers.
        (self.batch_length.max(0) as usize).saturating_add(LOG_OVERHEAD)
    }

    /// Offset of the last record (saturating: a hostile base offset cannot overflow).
    pub fn last_offset(&self) -> i64 {
        self.base_offset.saturating_add(self.last_offset_delta as i64)
    }

    /// The offset after this batch (saturating).
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// The compression codec named by the attributes.
    pub fn compression(&self) -> Result<Compression, RecordError> {
        Compression::from_id((self.attributes & 0x07) as u8)
    }

    /// Whether timestamps are LogAppendTime.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }

    /// Whether this is a control batch.
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
}

/// CRC-32C of a whole batch's covered region (attributes .. end).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_START..])
}

/// Checks the stored CRC of a whole batch (`batch` must be exactly one batch).
pub fn verify_crc(header: &BatchHeader, batch: &[u8]) -> Result<(), RecordError> {
    let actual = compute_crc(batch);
    if actual != header.crc {
        return Err(RecordError::CrcMismatch { stored: header.crc, computed: actual });
    }
    Ok(())
}

/// Writes the base offset and partition leader epoch into a batch, in place. Both are
/// outside the CRC, so the checksum stays valid.
pub fn stamp(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[OFF_LEADER_EPOCH..OFF_LEADER_EPOCH + 4].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Writes the CRC field of a batch whose other bytes are final.
pub fn write_crc(batch: &mut [u8]) {
    let crc = compute_crc(batch);
    batch[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Splits a buffer of back-to-back batches by their length fields, checking only framing
/// (header, magic, and that each batch fits in the buffer and under `max_batch_bytes`).
#[derive(Debug)]
pub struct BatchFrames<'a> {
    buf: &'a [u8],
    pos: usize,
    max_batch_bytes: usize,
}

impl<'a> BatchFrames<'a> {
    /// Iterates over `buf`, refusing any batch larger than `max_batch_bytes`.
    pub fn new(buf: &'a [u8], max_batch_bytes: usize) -> Self {
        BatchFrames { buf, pos: 0, max_batch_bytes }
    }

    /// Byte position of the next batch in the buffer.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for BatchFrames<'a> {
    /// The header, the batch's byte range in the buffer, or a framing error.
    type Item = Result<(BatchHeader, std::ops::Range<usize>), RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let header = match BatchHeader::parse(rest) {
            Ok(h) => h,
            Err(e) => {
                self.pos = self.buf.len();
                return Some(Err(e));
            }
        };
        let total = header.total_len();
        if total > self.max_batch_bytes {
            self.pos = self.buf.len();
            return Some(Err(RecordError::BatchTooLarge {
                size: total,
                max: self.max_batch_bytes,
            }));
        }
        if total > rest.len() {
            self.pos = self.buf.len();
            return Some(Err(RecordError::Truncated { needed: total, available: rest.len() }));
        }
        let range = self.pos..self.pos + total;
        self.pos += total;
        Some(Ok((header, range)))
    }
}
