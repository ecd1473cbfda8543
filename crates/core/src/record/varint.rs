//! Kafka's zigzag varints: `varint` for i32 (at most 5 bytes), `varlong` for i64 (at most 10).
//!
//! The encoding is protobuf's: zigzag maps signed to unsigned so small magnitudes stay short,
//! then 7 bits per byte, least significant group first, high bit set on all but the last byte.
//!
//! Decoding accepts non-minimal encodings (a redundant `0x80` continuation) as Kafka's own
//! decoder does, so every batch Kafka accepts is accepted here; it rejects encodings longer
//! than the type's maximum and a final byte that carries bits beyond the type's width, which
//! Kafka would silently drop.

/// Longest valid encoding of an i32.
pub const MAX_VARINT_LEN: usize = 5;
/// Longest valid encoding of an i64.
pub const MAX_VARLONG_LEN: usize = 10;

/// Why a varint could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The input ended before the last byte (one without the continuation bit).
    Truncated,
    /// More bytes than the type allows, or bits beyond its width.
    Overlong,
}

impl std::fmt::Display for VarintError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VarintError::Truncated => f.write_str("truncated varint"),
            VarintError::Overlong => f.write_str("over-long varint"),
        }
    }
}

/// Appends the zigzag varint encoding of `v`.
pub fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_unsigned(out, zigzag32(v) as u64);
}

/// Appends the zigzag varlong encoding of `v`.
pub fn put_varlong(out: &mut Vec<u8>, v: i64) {
    put_unsigned(out, zigzag64(v));
}

/// Bytes [`put_varint`] writes for `v`.
pub fn varint_len(v: i32) -> usize {
    unsigned_len(zigzag32(v) as u64)
}

/// Bytes [`put_varlong`] writes for `v`.
pub fn varlong_len(v: i64) -> usize {
    unsigned_len(zigzag64(v))
}

/// Decodes a varint at the start of `buf`: the value and the bytes it took.
pub fn get_varint(buf: &[u8]) -> Result<(i32, usize), VarintError> {
    // The fifth byte holds bits 28..31; anything above them does not fit an i32.
    let (raw, len) = get_unsigned(buf, MAX_VARINT_LEN, 0x0f)?;
    let raw = raw as u32;
    Ok((((raw >> 1) as i32) ^ -((raw & 1) as i32), len))
}

/// Decodes a varlong at the start of `buf`: the value and the bytes it took.
pub fn get_varlong(buf: &[u8]) -> Result<(i64, usize), VarintError> {
    // The tenth byte holds bit 63 only.
    let (raw, len) = get_unsigned(buf, MAX_VARLONG_LEN, 0x01)?;
    Ok((((raw >> 1) as i64) ^ -((raw & 1) as i64), len))
}

fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn put_unsigned(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn unsigned_len(v: u64) -> usize {
    // One byte per started group of 7 significant bits, at least one byte.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

fn get_unsigned(buf: &[u8], max_len: usize, last_mask: u8) -> Result<(u64, usize), VarintError> {
    let mut value = 0u64;
    for i in 0..max_len {
        let Some(&b) = buf.get(i) else {
            return Err(VarintError::Truncated);
        };
        if i == max_len - 1 && b & !last_mask != 0 {
            return Err(VarintError::Overlong);
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(VarintError::Overlong)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc32(v: i32) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        out
    }

    fn enc64(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varlong(&mut out, v);
        out
    }

    #[test]
    fn known_encodings() {
        // Values from Kafka's ByteUtilsTest / the protobuf zigzag table.
        assert_eq!(enc32(0), [0x00]);
        assert_eq!(enc32(-1), [0x01]);
        assert_eq!(enc32(1), [0x02]);
        assert_eq!(enc32(-64), [0x7f]);
        assert_eq!(enc32(64), [0x80, 0x01]);
        assert_eq!(enc32(i32::MAX), [0xfe, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(enc32(i32::MIN), [0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(enc64(i64::MAX), [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(enc64(i64::MIN), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    }

    #[test]
    fn extremes_round_trip() {
        for v in [0, 1, -1, 63, -64, 64, -65, i32::MAX, i32::MIN] {
            let b = enc32(v);
            assert_eq!(b.len(), varint_len(v));
            assert_eq!(get_varint(&b), Ok((v, b.len())));
        }
        for v in [0, 1, -1, i64::from(i32::MAX) + 1, i64::from(i32::MIN) - 1, i64::MAX, i64::MIN] {
            let b = enc64(v);
            assert_eq!(b.len(), varlong_len(v));
            assert_eq!(get_varlong(&b), Ok((v, b.len())));
        }
    }

    #[test]
    fn truncated_is_rejected() {
        assert_eq!(get_varint(&[]), Err(VarintError::Truncated));
        assert_eq!(get_varint(&[0x80]), Err(VarintError::Truncated));
        assert_eq!(get_varint(&[0xff, 0xff, 0xff, 0xff]), Err(VarintError::Truncated));
        assert_eq!(get_varlong(&[0xff; 9]), Err(VarintError::Truncated));
    }

    #[test]
    fn overlong_is_rejected() {
        // Six bytes for an i32, eleven for an i64.
        assert_eq!(get_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]), Err(VarintError::Overlong));
        assert_eq!(get_varlong(&[0x80; 11]), Err(VarintError::Overlong));
        // Fifth byte with bits above bit 31; tenth byte with bits above bit 63.
        assert_eq!(get_varint(&[0xff, 0xff, 0xff, 0xff, 0x1f]), Err(VarintError::Overlong));
        let mut b = [0xffu8; 10];
        b[9] = 0x02;
        assert_eq!(get_varlong(&b), Err(VarintError::Overlong));
    }

    #[test]
    fn non_minimal_is_accepted_like_kafka() {
        assert_eq!(get_varint(&[0x80, 0x00]), Ok((0, 2)));
        assert_eq!(get_varint(&[0x82, 0x80, 0x80, 0x80, 0x00]), Ok((1, 5)));
    }

    #[test]
    fn trailing_bytes_are_not_consumed() {
        assert_eq!(get_varint(&[0x02, 0xff, 0xff]), Ok((1, 1)));
    }

    proptest! {
        #[test]
        fn varint_round_trip(v: i32, tail: Vec<u8>) {
            let mut b = enc32(v);
            let n = b.len();
            b.extend_from_slice(&tail);
            prop_assert_eq!(get_varint(&b), Ok((v, n)));
        }

        #[test]
        fn varlong_round_trip(v: i64) {
            let b = enc64(v);
            prop_assert_eq!(get_varlong(&b), Ok((v, b.len())));
            prop_assert_eq!(b.len(), varlong_len(v));
        }

        #[test]
        fn random_bytes_never_panic(b: Vec<u8>) {
            let _ = get_varint(&b);
            let _ = get_varlong(&b);
        }
    }
}
