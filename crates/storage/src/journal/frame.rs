//! One journal frame: a fixed header naming the partition's stream, its leader epoch and
//! base offset, then the appended RecordBatch bytes unchanged, padded to [`ALIGN`].
//!
//! ```text
//! 0   u32  CRC-32C of bytes 4 .. HEADER_LEN + len (the header's rest and the payload)
//! 4   u8   kind: 1 = batches, 2 = wrap (the rest of the lap is unused), 3 = truncate (the
//!          partition's log was cut at `base offset`), 4 = reset (it was emptied to start
//!          again at `base offset`)
//! 5   [3]  zero
//! 8   u64  lsn: the frame's journal position (bytes written since the journal began)
//! 16  u32  stream: the partition's number on this volume
//! 20  i32  leader epoch of the append
//! 24  i64  base offset of the first batch (of a truncate or reset: the offset it cut at)
//! 32  u32  len: payload bytes (0 for a wrap)
//! 36  u32  generation: how many times the journal had been opened when it was written
//! 40  len  payload: whole RecordBatch v2 batches, exactly as appended
//! ```
//!
//! All integers are big-endian, as in the segment and checkpoint formats. A frame is valid
//! only where it was written: its `lsn` must be the position it is read at, so the frames
//! a reused journal still holds from an earlier lap never pass for new ones. Its
//! `generation` must not be below the frame before it: after a crash the writer goes on
//! where the scan stopped, under a new generation, and a frame the crash left beyond that
//! point (written, never acknowledged, behind a torn one) is of an older generation, so it
//! never passes for the new frames' continuation.

use bytes::{BufMut, BytesMut};

/// Bytes of a frame before its payload.
pub(crate) const HEADER_LEN: usize = 40;
/// Every frame starts at a multiple of this (its size is rounded up to it).
pub(crate) const ALIGN: u64 = 8;

const KIND_BATCHES: u8 = 1;
const KIND_WRAP: u8 = 2;
const KIND_TRUNCATE: u8 = 3;
const KIND_RESET: u8 = 4;

/// What a frame of a partition records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Batches appended at the base offset (the payload).
    Append,
    /// The log was cut at the base offset: everything from it on was dropped.
    Truncate,
    /// The log was emptied and starts again at the base offset.
    Reset,
}

impl Op {
    fn kind(self) -> u8 {
        match self {
            Op::Append => KIND_BATCHES,
            Op::Truncate => KIND_TRUNCATE,
            Op::Reset => KIND_RESET,
        }
    }
}

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A change to one partition's log: batches appended, or a cut.
    Batches {
        /// What was done.
        op: Op,
        /// The partition's stream number on this volume.
        stream: u32,
        /// The leader epoch the batches were appended under.
        epoch: i32,
        /// Offset of the first record.
        base_offset: i64,
    },
    /// The writer went on at the start of the next lap: nothing follows in this one.
    Wrap,
}

/// A frame's header, as read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Where the frame was written.
    pub(crate) lsn: u64,
    /// The journal's generation when it was written.
    pub(crate) generation: u32,
    /// What it carries.
    pub(crate) kind: Kind,
    /// Payload bytes.
    pub(crate) len: u32,
}

impl Header {
    /// Bytes the frame takes in the journal, padding included.
    pub(crate) fn footprint(&self) -> u64 {
        footprint(self.len as usize)
    }
}

/// Bytes a frame with `payload_len` bytes of payload takes, padding included.
pub(crate) fn footprint(payload_len: usize) -> u64 {
    (HEADER_LEN as u64 + payload_len as u64).next_multiple_of(ALIGN)
}

/// Where and when a frame is written: its position and the journal's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct At {
    /// The frame's position.
    pub(crate) lsn: u64,
    /// The journal's generation.
    pub(crate) generation: u32,
}

/// Appends the frame of `payload` (whole batches) `at` its place to `out`, padded with
/// zeros.
#[cfg(test)]
pub(crate) fn put_batches(
    out: &mut BytesMut,
    at: At,
    stream: u32,
    epoch: i32,
    base_offset: i64,
    payload: &[u8],
) {
    put_op(out, at, Op::Append, stream, epoch, base_offset, payload);
}

/// Appends the frame of `op` on `stream` `at` its place to `out` (`payload`: the batches of
/// an append, empty for a cut), padded with zeros.
pub(crate) fn put_op(
    out: &mut BytesMut,
    at: At,
    op: Op,
    stream: u32,
    epoch: i32,
    base_offset: i64,
    payload: &[u8],
) {
    debug_assert!(op == Op::Append || payload.is_empty());
    let len = u32::try_from(payload.len()).expect("an append is far below 4 GiB");
    put(out, at, op.kind(), stream, epoch, base_offset, payload, len);
}

/// Appends a wrap frame `at` its place to `out`.
pub(crate) fn put_wrap(out: &mut BytesMut, at: At) {
    put(out, at, KIND_WRAP, 0, 0, 0, &[], 0);
}

#[allow(clippy::too_many_arguments)] // the header's fields, in their order
fn put(
    out: &mut BytesMut,
    at: At,
    kind: u8,
    stream: u32,
    epoch: i32,
    base_offset: i64,
    payload: &[u8],
    len: u32,
) {
    let start = out.len();
    out.put_u32(0); // the CRC, filled in below
    out.put_u8(kind);
    out.put_bytes(0, 3);
    out.put_u64(at.lsn);
    out.put_u32(stream);
    out.put_i32(epoch);
    out.put_i64(base_offset);
    out.put_u32(len);
    out.put_u32(at.generation);
    out.put_slice(payload);
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_be_bytes());
    let padded = start + footprint(payload.len()) as usize;
    out.resize(padded, 0);
}

/// Why the bytes at a position are not the frame expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Invalid {
    /// Fewer bytes than a header: the journal ends here.
    #[error("{0} bytes, fewer than a frame header")]
    Short(usize),
    /// The header says another position: a frame of an earlier lap, or bytes never written.
    #[error("a frame of position {found}, not {expected}")]
    Stale {
        /// The position the frame says it was written at.
        found: u64,
        /// The position it was read at.
        expected: u64,
    },
    /// A frame of an older generation than the one before it: written before a crash,
    /// beyond the point the writer went on from after it.
    #[error("a frame of generation {found}, after one of generation {floor}")]
    Superseded {
        /// The frame's generation.
        found: u32,
        /// The generation of the frame before it.
        floor: u32,
    },
    /// The kind or the reserved bytes are not any frame's.
    #[error("not a frame header (kind {0})")]
    NotAHeader(u8),
    /// The payload would run past what may hold it.
    #[error("a payload of {len} bytes, beyond the {room} bytes left")]
    TooLong {
        /// Payload length in the header.
        len: u32,
        /// Bytes that could hold it.
        room: u64,
    },
    /// The checksum does not match: a torn or corrupt write.
    #[error("checksum mismatch")]
    Checksum,
    /// A whole lap was read: the writer never holds more than a lap past the trim point.
    #[error("a whole lap read")]
    Lapped,
}

/// Parses and checks the header at the start of `bytes`, read at position `lsn`, whose
/// payload may take at most `room` bytes after the header. The CRC is checked separately
/// ([`check`]), once the payload is at hand.
pub(crate) fn header(bytes: &[u8], lsn: u64, room: u64) -> Result<Header, Invalid> {
    if bytes.len() < HEADER_LEN {
        return Err(Invalid::Short(bytes.len()));
    }
    let u32_at = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    let found = u64_at(8);
    if found != lsn {
        return Err(Invalid::Stale { found, expected: lsn });
    }
    let kind = bytes[4];
    if bytes[5..8] != [0; 3] {
        return Err(Invalid::NotAHeader(kind));
    }
    let len = u32_at(32);
    let op = match kind {
        KIND_BATCHES => Some(Op::Append),
        KIND_TRUNCATE if len == 0 => Some(Op::Truncate),
        KIND_RESET if len == 0 => Some(Op::Reset),
        _ => None,
    };
    let kind = match kind {
        _ if op.is_some() => Kind::Batches {
            op: op.expect("checked"),
            stream: u32_at(16),
            epoch: u32_at(20) as i32,
            base_offset: u64_at(24) as i64,
        },
        KIND_WRAP if len == 0 => Kind::Wrap,
        other => return Err(Invalid::NotAHeader(other)),
    };
    if u64::from(len) > room {
        return Err(Invalid::TooLong { len, room });
    }
    Ok(Header { lsn, generation: u32_at(36), kind, len })
}

/// Checks the CRC of a whole frame (`frame`: its header and payload, without padding).
pub(crate) fn check(frame: &[u8]) -> Result<(), Invalid> {
    let stored = u32::from_be_bytes(frame[..4].try_into().expect("a header is at hand"));
    if crc32c::crc32c(&frame[4..]) == stored { Ok(()) } else { Err(Invalid::Checksum) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batches(lsn: u64, payload: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        put_batches(&mut out, At { lsn, generation: 5 }, 7, 3, 1000, payload);
        out
    }

    /// The bytes of a frame, pinned: a format is a contract.
    #[test]
    fn a_frame_is_laid_out_as_documented() {
        let out = batches(64, b"abc");
        assert_eq!(out.len(), 48, "40 + 3, rounded up to 8");
        assert_eq!(&out[4..8], &[1, 0, 0, 0]);
        assert_eq!(&out[8..16], &64u64.to_be_bytes());
        assert_eq!(&out[16..20], &7u32.to_be_bytes());
        assert_eq!(&out[20..24], &3i32.to_be_bytes());
        assert_eq!(&out[24..32], &1000i64.to_be_bytes());
        assert_eq!(&out[32..36], &3u32.to_be_bytes());
        assert_eq!(&out[36..40], &5u32.to_be_bytes());
        assert_eq!(&out[40..43], b"abc");
        assert_eq!(&out[43..48], &[0; 5]);
        assert_eq!(&out[..4], &crc32c::crc32c(&out[4..43]).to_be_bytes());
    }

    #[test]
    fn a_frame_reads_back_where_it_was_written() {
        let out = batches(64, b"abc");
        let h = header(&out, 64, 1 << 20).unwrap();
        let kind = Kind::Batches { op: Op::Append, stream: 7, epoch: 3, base_offset: 1000 };
        assert_eq!(h, Header { lsn: 64, generation: 5, kind, len: 3 });
        assert_eq!(h.footprint(), 48);
        check(&out[..HEADER_LEN + 3]).unwrap();
    }

    #[test]
    fn a_frame_read_at_another_position_is_stale() {
        let out = batches(64, b"abc");
        let e = header(&out, 64 + (1 << 20), 1 << 20).unwrap_err();
        assert_eq!(e, Invalid::Stale { found: 64, expected: 64 + (1 << 20) });
    }

    #[test]
    fn zeros_are_no_frame() {
        assert!(matches!(header(&[0; 64], 8, 1 << 20), Err(Invalid::Stale { found: 0, .. })));
        assert_eq!(header(&[0; 64], 0, 1 << 20), Err(Invalid::NotAHeader(0)));
    }

    #[test]
    fn a_flipped_payload_byte_fails_the_checksum() {
        let mut out = batches(0, b"abcdef");
        out[HEADER_LEN + 2] ^= 1;
        assert_eq!(check(&out[..HEADER_LEN + 6]), Err(Invalid::Checksum));
    }

    #[test]
    fn a_payload_longer_than_the_room_left_is_refused_from_the_header() {
        let out = batches(0, &[9; 100]);
        assert_eq!(header(&out, 0, 99), Err(Invalid::TooLong { len: 100, room: 99 }));
    }

    #[test]
    fn a_cut_is_a_bare_header_naming_its_offset() {
        let mut out = BytesMut::new();
        put_op(&mut out, At { lsn: 8, generation: 2 }, Op::Truncate, 4, 1, 77, &[]);
        assert_eq!((out.len(), out[4]), (HEADER_LEN, 3));
        let h = header(&out, 8, 1 << 20).unwrap();
        let kind = Kind::Batches { op: Op::Truncate, stream: 4, epoch: 1, base_offset: 77 };
        assert_eq!(h.kind, kind);
        out.clear();
        put_op(&mut out, At { lsn: 8, generation: 2 }, Op::Reset, 4, 1, 90, &[]);
        assert_eq!(out[4], 4);
        assert!(matches!(header(&out, 8, 0).unwrap().kind, Kind::Batches { op: Op::Reset, .. }));
    }

    #[test]
    fn a_wrap_frame_is_a_bare_header() {
        let mut out = BytesMut::new();
        put_wrap(&mut out, At { lsn: 4096, generation: 1 });
        assert_eq!(out.len(), HEADER_LEN);
        let h = header(&out, 4096, 0).unwrap();
        assert_eq!(h.kind, Kind::Wrap);
        check(&out).unwrap();
    }
}
