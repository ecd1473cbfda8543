//! Kafka's framing: a request is a 4-byte big-endian size and that many bytes (header,
//! then body); so is a response. Sizes are checked against the limit before anything is
//! allocated for them, and a request's API key and version are read and judged before its
//! header is decoded (the header's own version depends on them).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a connection is closed while reading a request.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The peer closed the connection between requests.
    Closed,
    /// A socket error, or the peer closed it in the middle of a request.
    Io(std::io::Error),
    /// A size prefix outside `1..=max`.
    Size(i32, usize),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Closed => f.write_str("connection closed by the client"),
            FrameError::Io(e) => write!(f, "connection failed: {e}"),
            FrameError::Size(n, max) => {
                write!(f, "request size {n} is outside 1..={max} (kafka.max_request_bytes)")
            }
        }
    }
}

/// Reads one request frame: its size, checked against `max` before the body is allocated,
/// then the body.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    max: usize,
) -> Result<Bytes, FrameError> {
    let mut size = [0u8; 4];
    // The first byte tells a clean close between requests from one in the middle of one.
    match rd.read(&mut size[..1]).await {
        Ok(0) => return Err(FrameError::Closed),
        Ok(_) => {}
        Err(e) => return Err(FrameError::Io(e)),
    }
    rd.read_exact(&mut size[1..]).await.map_err(FrameError::Io)?;
    let n = i32::from_be_bytes(size);
    let len = match usize::try_from(n) {
        Ok(len) if (1..=max).contains(&len) => len,
        _ => return Err(FrameError::Size(n, max)),
    };
    let mut body = BytesMut::zeroed(len);
    rd.read_exact(&mut body).await.map_err(FrameError::Io)?;
    Ok(body.freeze())
}

/// The fixed start of every request header: enough to judge the request before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Prefix {
    /// The API key as sent (possibly unknown).
    pub key: i16,
    /// The API version as sent.
    pub version: i16,
    /// The correlation id the answer must carry.
    pub correlation_id: i32,
}

/// The first eight bytes of a request: API key, version, correlation id.
pub(crate) fn prefix(frame: &[u8]) -> Option<Prefix> {
    let mut b = frame.get(..8)?;
    Some(Prefix { key: b.get_i16(), version: b.get_i16(), correlation_id: b.get_i32() })
}

/// A request whose API and version this broker serves, split into header and body.
#[derive(Debug)]
pub(crate) struct Request {
    /// Its version.
    pub version: i16,
    /// The correlation id the answer must carry.
    pub correlation_id: i32,
    /// The client's id, if it sent one.
    pub client_id: Option<StrBytes>,
    /// The body, at `version`.
    pub body: Bytes,
}

/// Decodes a served request's header; the body stays encoded for the API's own decoder.
pub(crate) fn split(mut frame: Bytes, key: ApiKey, version: i16) -> Result<Request, String> {
    let header = RequestHeader::decode(&mut frame, key.request_header_version(version))
        .map_err(|e| format!("malformed {key:?} v{version} request header: {e}"))?;
    Ok(Request {
        version,
        correlation_id: header.correlation_id,
        client_id: header.client_id,
        body: frame,
    })
}

/// Encodes a response frame: size, header (at the version the API's response uses), body.
pub(crate) fn encode_response<R: Encodable>(
    correlation_id: i32,
    header_version: i16,
    version: i16,
    body: &R,
) -> Result<Bytes, String> {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| format!("cannot encode a response header: {e}"))?;
    body.encode(&mut buf, version)
        .map_err(|e| format!("cannot encode a v{version} response: {e}"))?;
    let size = i32::try_from(buf.len() - 4)
        .map_err(|_| format!("a response of {} bytes does not fit a frame", buf.len()))?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sizes_outside_the_limit_are_refused_before_reading_the_body() {
        for size in [0i32, -1, i32::MIN, 2_000_000_000, 1025] {
            let mut input: &[u8] = &size.to_be_bytes();
            match read_frame(&mut input, 1024).await {
                Err(FrameError::Size(n, 1024)) => assert_eq!(n, size),
                other => panic!("size {size}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_clean_close_differs_from_a_truncated_request() {
        let mut empty: &[u8] = &[];
        assert!(matches!(read_frame(&mut empty, 1024).await, Err(FrameError::Closed)));
        let mut truncated: &[u8] = &[0, 0, 0, 10, 1, 2, 3];
        assert!(matches!(read_frame(&mut truncated, 1024).await, Err(FrameError::Io(_))));
        let mut whole: &[u8] = &[0, 0, 0, 3, 7, 8, 9];
        assert_eq!(&read_frame(&mut whole, 1024).await.unwrap()[..], &[7, 8, 9]);
    }

    #[test]
    fn the_prefix_needs_eight_bytes() {
        assert_eq!(prefix(&[0, 18, 0, 3, 0, 0, 0]), None);
        let p = prefix(&[0, 18, 0, 3, 0, 0, 0, 42, 99]).unwrap();
        assert_eq!((p.key, p.version, p.correlation_id), (18, 3, 42));
    }
}
