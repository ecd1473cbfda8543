//! HTTP/2 settings the client and the broker agree on.

/// HTTP/2 connection flow-control window (bytes).
pub const CONNECTION_WINDOW: u32 = 64 * 1024 * 1024;
/// HTTP/2 per-stream flow-control window (bytes).
pub const STREAM_WINDOW: u32 = 4 * 1024 * 1024;

/// Concurrent HTTP/2 streams one client connection may open.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 1 << 20;
