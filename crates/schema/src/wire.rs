//! Confluent's wire format of a serialized key or value, as every Confluent serializer
//! writes it: magic byte 0, the schema's ID as a 4-byte big-endian integer, then the
//! encoded data (Protobuf puts its message indexes first). What a broker checks when a
//! topic validates schema IDs: the bytes say which schema wrote them, nothing more.

use std::fmt;

/// The first byte of every record in the wire format.
pub const MAGIC: u8 = 0;

/// Bytes before the data: the magic byte and the schema ID.
pub const PREFIX_LEN: usize = 5;

/// Why bytes are not in the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the magic byte and the ID take.
    Short(usize),
    /// A first byte other than [`MAGIC`].
    Magic(u8),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Short(n) => write!(
                f,
                "{n} bytes, too short for the schema registry's wire format (magic byte 0 and a \
                 4-byte schema ID)"
            ),
            WireError::Magic(b) => write!(
                f,
                "first byte {b:#04x}, not the schema registry's magic byte 0x00 (not serialized \
                 with a registered schema)"
            ),
        }
    }
}

/// The schema ID `bytes` were serialized with.
pub fn schema_id(bytes: &[u8]) -> Result<i32, WireError> {
    match bytes {
        [MAGIC, a, b, c, d, ..] => Ok(i32::from_be_bytes([*a, *b, *c, *d])),
        [m, _, _, _, _, ..] => Err(WireError::Magic(*m)),
        short => Err(WireError::Short(short.len())),
    }
}

/// A Protobuf value's message indexes, which follow the prefix (Confluent's
/// `MessageIndexes.readFrom`): which message of the schema wrote `data` (the bytes after
/// [`PREFIX_LEN`]), as a path for [`crate::ParsedSchema::message_name_at`], and how many
/// bytes they took. A count, then each index, as zigzag varints (Kafka's `readVarint`);
/// a count of 0 stands for `[0]`, the first message. None when malformed.
pub fn message_indexes(data: &[u8]) -> Option<(Vec<i32>, usize)> {
    let mut pos = 0;
    let count = read_varint(data, &mut pos)?;
    if count == 0 {
        return Some((vec![0], pos));
    }
    // Each index takes a byte at least.
    let count = usize::try_from(count).ok().filter(|&n| n <= data.len() - pos)?;
    let mut indexes = Vec::with_capacity(count);
    for _ in 0..count {
        indexes.push(read_varint(data, &mut pos)?);
    }
    Some((indexes, pos))
}

/// Kafka's `ByteUtils.readVarint`: a zigzag-encoded varint of at most 5 bytes.
fn read_varint(data: &[u8], pos: &mut usize) -> Option<i32> {
    let mut value: u32 = 0;
    for i in 0..5 {
        let b = *data.get(*pos)?;
        *pos += 1;
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value >> 1) as i32 ^ -((value & 1) as i32));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_message_indexes_are_zigzag_varints() {
        assert_eq!(message_indexes(&[0, 0x0a]), Some((vec![0], 1)), "0: the first message");
        assert_eq!(message_indexes(&[4, 2, 4, 0x0a]), Some((vec![1, 2], 3)), "count 2: [1, 2]");
        assert_eq!(message_indexes(&[2, 0x80, 0x01, 0]), Some((vec![64], 3)));
        assert_eq!(message_indexes(&[]), None);
        assert_eq!(message_indexes(&[8, 2]), None, "fewer indexes than the count");
        assert_eq!(message_indexes(&[2]), None);
        assert_eq!(message_indexes(&[2, 0xff, 0xff, 0xff, 0xff, 0xff]), None, "varint too long");
        assert_eq!(message_indexes(&[3]), None, "negative count");
        assert_eq!(message_indexes(&[1]), None, "negative count");
    }

    #[test]
    fn the_id_follows_the_magic_byte_big_endian() {
        assert_eq!(schema_id(&[0, 0, 0, 1, 2, 0xaa]), Ok(258));
        assert_eq!(schema_id(&[0, 0x7f, 0xff, 0xff, 0xff]), Ok(i32::MAX));
        assert_eq!(schema_id(&[0, 0, 0, 0, 1]), Ok(1), "exactly the prefix: empty data");
    }

    #[test]
    fn other_bytes_are_refused_naming_what_was_found() {
        assert_eq!(schema_id(b"{\"a\":1}"), Err(WireError::Magic(b'{')));
        assert_eq!(schema_id(&[0, 0, 0, 1]), Err(WireError::Short(4)));
        assert_eq!(schema_id(&[]), Err(WireError::Short(0)));
        assert!(WireError::Magic(b'{').to_string().contains("0x7b"));
        assert!(WireError::Short(4).to_string().starts_with("4 bytes"));
    }
}
