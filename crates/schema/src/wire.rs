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

#[cfg(test)]
mod tests {
    use super::*;

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
