//! Compression of a batch's records area: gzip, snappy (xerial framing), lz4 (frame), zstd.
//!
//! Decompression never trusts a size written by the sender: output grows only as bytes are
//! actually produced and stops one byte past the limit, and sizes a codec declares up front
//! (snappy's block lengths, zstd's window) are checked against the limit before allocation.

use std::io::{Read, Write};

use super::RecordError;
use super::batch::Compression;

/// xerial snappy-java's stream magic, written by Kafka's Java client.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic plus the version and compatible-version int32s.
const XERIAL_HEADER_LEN: usize = 16;
/// snappy-java's default block size, so our output looks like the Java client's.
const XERIAL_BLOCK_LEN: usize = 32 * 1024;
/// Kafka's default zstd level (`compression.zstd.level`).
const ZSTD_LEVEL: i32 = 3;
/// zstd's default decoder window limit; larger windows need an explicit opt-in on both sides.
const ZSTD_MAX_WINDOW_LOG: u32 = 27;
/// Windows up to 8 MiB are allowed whatever the limit: level-19 encoders use them even for
/// small payloads when streaming without a pledged size.
const ZSTD_MIN_WINDOW_LOG: u32 = 23;

/// Compresses `data` with `codec`, in the framing Kafka's clients write.
pub fn compress(codec: Compression, data: &[u8]) -> Vec<u8> {
    match codec {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 2),
                flate2::Compression::default(),
            );
            enc.write_all(data).expect("writing to a Vec cannot fail");
            enc.finish().expect("writing to a Vec cannot fail")
        }
        Compression::Snappy => snappy_compress(data),
        Compression::Lz4 => {
            let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::with_capacity(data.len() / 2));
            enc.write_all(data).expect("writing to a Vec cannot fail");
            enc.finish().expect("writing to a Vec cannot fail")
        }
        Compression::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL)
            .expect("zstd at a valid level into a buffer of compress_bound bytes cannot fail"),
    }
}

/// Decompresses `data`, failing with [`RecordError::DecompressedTooLarge`] as soon as the
/// output would exceed `max` bytes.
pub fn decompress(codec: Compression, data: &[u8], max: usize) -> Result<Vec<u8>, RecordError> {
    match codec {
        Compression::None => {
            if data.len() > max {
                return Err(RecordError::DecompressedTooLarge { codec: codec.name(), max });
            }
            Ok(data.to_vec())
        }
        Compression::Gzip => {
            // Kafka's GZIPInputStream reads concatenated members, so MultiGzDecoder.
            read_bounded(codec, flate2::read::MultiGzDecoder::new(data), data.len(), max)
        }
        Compression::Snappy => snappy_decompress(data, max),
        Compression::Lz4 => {
            read_bounded(codec, lz4_flex::frame::FrameDecoder::new(data), data.len(), max)
        }
        Compression::Zstd => {
            let bad = |e: std::io::Error| decode_error(codec, e.to_string());
            let mut dec = zstd::stream::read::Decoder::with_buffer(data).map_err(bad)?;
            dec.window_log_max(zstd_window_log(max)).map_err(bad)?;
            read_bounded(codec, dec, data.len(), max)
        }
    }
}

fn decode_error(codec: Compression, detail: impl Into<String>) -> RecordError {
    RecordError::Decompress { codec: codec.name(), detail: detail.into() }
}

fn too_large(codec: Compression, max: usize) -> RecordError {
    RecordError::DecompressedTooLarge { codec: codec.name(), max }
}

/// Reads a decoder to the end, but never more than `max + 1` bytes.
fn read_bounded(
    codec: Compression,
    reader: impl Read,
    compressed_len: usize,
    max: usize,
) -> Result<Vec<u8>, RecordError> {
    // A modest first guess; the Vec grows with real output only.
    let mut out = Vec::with_capacity(compressed_len.saturating_mul(2).min(max));
    let cap = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(cap).read_to_end(&mut out).map_err(|e| decode_error(codec, e.to_string()))?;
    if out.len() > max {
        return Err(too_large(codec, max));
    }
    Ok(out)
}

/// The largest zstd window we let a frame ask for: enough for `max` bytes of output.
fn zstd_window_log(max: usize) -> u32 {
    let needed = usize::BITS - max.saturating_sub(1).leading_zeros();
    needed.clamp(ZSTD_MIN_WINDOW_LOG, ZSTD_MAX_WINDOW_LOG)
}

fn snappy_compress(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + data.len() / 2 + 64);
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes()); // version
    out.extend_from_slice(&1i32.to_be_bytes()); // compatible version
    let mut enc = snap::raw::Encoder::new();
    for block in data.chunks(XERIAL_BLOCK_LEN) {
        let len_at = out.len();
        let body_at = len_at + 4;
        out.resize(body_at + snap::raw::max_compress_len(block.len()), 0);
        let n = enc
            .compress(block, &mut out[body_at..])
            .expect("a 32 KiB block fits a buffer of max_compress_len bytes");
        out.truncate(body_at + n);
        let n = i32::try_from(n).expect("a compressed 32 KiB block is far below 2 GiB");
        out[len_at..body_at].copy_from_slice(&n.to_be_bytes());
    }
    out
}

fn snappy_decompress(data: &[u8], max: usize) -> Result<Vec<u8>, RecordError> {
    let codec = Compression::Snappy;
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    if !data.starts_with(&XERIAL_MAGIC) {
        // Raw snappy, as librdkafka writes it and Kafka accepts.
        snappy_block(data, &mut out, max)?;
        return Ok(out);
    }
    if data.len() < XERIAL_HEADER_LEN {
        return Err(decode_error(
            codec,
            format!("xerial header needs {XERIAL_HEADER_LEN} bytes, only {} present", data.len()),
        ));
    }
    let mut pos = XERIAL_HEADER_LEN;
    while pos < data.len() {
        let rest = &data[pos..];
        // snappy-java allows concatenated streams; a negative block length cannot start
        // with 0x82, so a repeated magic is unambiguous.
        if rest.len() >= XERIAL_HEADER_LEN && rest.starts_with(&XERIAL_MAGIC) {
            pos += XERIAL_HEADER_LEN;
            continue;
        }
        let Some(len_bytes) = rest.get(..4) else {
            return Err(decode_error(
                codec,
                format!("truncated xerial block length at byte {pos}: {} bytes left", rest.len()),
            ));
        };
        let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        let block =
            usize::try_from(len).ok().and_then(|n| rest.get(4..4 + n)).ok_or_else(|| {
                decode_error(
                    codec,
                    format!(
                        "xerial block at byte {pos} has length {len}, but {} bytes follow",
                        rest.len() - 4
                    ),
                )
            })?;
        snappy_block(block, &mut out, max)?;
        pos += 4 + block.len();
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, checking its declared length against the limit
/// before allocating for it.
fn snappy_block(block: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), RecordError> {
    let codec = Compression::Snappy;
    let bad = |e: snap::Error| decode_error(codec, e.to_string());
    let n = snap::raw::decompress_len(block).map_err(bad)?;
    let start = out.len();
    if n > max.saturating_sub(start) {
        return Err(too_large(codec, max));
    }
    out.resize(start + n, 0);
    let written = snap::raw::Decoder::new().decompress(block, &mut out[start..]).map_err(bad)?;
    out.truncate(start + written);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ (i / 1000) as u8).collect()
    }

    #[test]
    fn round_trip_every_codec() {
        for codec in ALL {
            for len in [0, 1, 100, XERIAL_BLOCK_LEN, XERIAL_BLOCK_LEN * 3 + 7] {
                let data = sample(len);
                let packed = compress(codec, &data);
                assert_eq!(decompress(codec, &packed, len).unwrap(), data, "{codec:?} {len}");
            }
        }
    }

    #[test]
    fn exactly_at_limit_passes_one_over_fails() {
        for codec in ALL {
            let data = sample(10_000);
            let packed = compress(codec, &data);
            assert!(decompress(codec, &packed, 10_000).is_ok(), "{codec:?}");
            let err = decompress(codec, &packed, 9_999).unwrap_err();
            assert_eq!(
                err,
                RecordError::DecompressedTooLarge { codec: codec.name(), max: 9_999 },
                "{codec:?}"
            );
        }
    }

    #[test]
    fn bombs_are_rejected_without_inflating() {
        // 64 MiB of zeros compresses to at most a few MiB; the limit is 1 MiB.
        let zeros = vec![0u8; 64 << 20];
        for codec in [Compression::Gzip, Compression::Lz4, Compression::Zstd, Compression::Snappy] {
            let bomb = compress(codec, &zeros);
            assert!(bomb.len() < 16 << 20, "{codec:?} bomb is {} bytes", bomb.len());
            let err = decompress(codec, &bomb, 1 << 20).unwrap_err();
            assert_eq!(err.reason(), "BATCH_TOO_LARGE");
            assert!(err.to_string().contains("beyond the limit of 1048576 bytes"), "{err}");
        }
    }

    #[test]
    fn snappy_declared_length_is_checked_before_allocation() {
        // A raw snappy block whose preamble claims 4 GiB - 1 of output.
        let block = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        let err = decompress(Compression::Snappy, &block, 1 << 20).unwrap_err();
        assert!(matches!(err, RecordError::DecompressedTooLarge { .. }), "{err}");
    }

    #[test]
    fn snappy_accepts_raw_and_concatenated_xerial() {
        let data = sample(1000);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress(Compression::Snappy, &raw, 1000).unwrap(), data);

        let one = compress(Compression::Snappy, &data);
        let mut two = one.clone();
        two.extend_from_slice(&one);
        let mut both = data.clone();
        both.extend_from_slice(&data);
        assert_eq!(decompress(Compression::Snappy, &two, 2000).unwrap(), both);
    }

    #[test]
    fn snappy_xerial_layout_is_pinned() {
        let packed = compress(Compression::Snappy, b"hello");
        assert_eq!(&packed[..8], b"\x82SNAPPY\x00");
        assert_eq!(&packed[8..16], &[0, 0, 0, 1, 0, 0, 0, 1]);
        let len = i32::from_be_bytes(packed[16..20].try_into().unwrap()) as usize;
        assert_eq!(packed.len(), 20 + len);
        assert_eq!(snap::raw::Decoder::new().decompress_vec(&packed[20..]).unwrap(), b"hello");
    }

    #[test]
    fn corrupt_payloads_are_errors() {
        let data = sample(5000);
        for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let packed = compress(codec, &data);
            let truncated = &packed[..packed.len() / 2];
            assert!(decompress(codec, truncated, 1 << 20).is_err(), "{codec:?} truncated");
            assert!(decompress(codec, b"definitely not compressed", 1 << 20).is_err());
        }
        let mut xerial = compress(Compression::Snappy, &data);
        xerial[16] = 0x7f; // block length now far beyond the buffer
        let err = decompress(Compression::Snappy, &xerial, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("xerial block at byte 16 has length"), "{err}");
    }

    #[test]
    fn zstd_window_tracks_limit() {
        assert_eq!(zstd_window_log(1), ZSTD_MIN_WINDOW_LOG);
        assert_eq!(zstd_window_log(64 << 20), 26);
        assert_eq!(zstd_window_log((64 << 20) + 1), 27);
        assert_eq!(zstd_window_log(usize::MAX), ZSTD_MAX_WINDOW_LOG);
    }
}
