//! What remote reads did: counters kept as they happen, and their copy at a point in time.

use std::sync::atomic::AtomicU64;

/// What remote reads did since the broker started.
#[derive(Debug, Default)]
pub struct ReadStats {
    /// Chunk lookups of reads answered from the memory tier.
    pub chunk_hits: AtomicU64,
    /// Chunks loaded from the disk tier: for a read, or warmed ahead of a sequential reader.
    pub chunk_disk_hits: AtomicU64,
    /// Chunk lookups of reads that waited for a GET (theirs, or one already in flight).
    pub chunk_misses: AtomicU64,
    /// Chunks fetched ahead of a sequential reader.
    pub chunks_read_ahead: AtomicU64,
    /// Ranged GETs of chunks (each covers up to `get_max_bytes`).
    pub chunk_gets: AtomicU64,
    /// Bytes those GETs brought.
    pub chunk_get_bytes: AtomicU64,
    /// Sum over those GETs of bytes times milliseconds in flight: its growth over a period
    /// divided by the period's milliseconds is the bytes in flight on average.
    pub chunk_get_byte_ms: AtomicU64,
    /// Bytes of batches returned to fetches.
    pub bytes_served: AtomicU64,
    /// Milliseconds reads waited, paced while the partition logs were busy.
    pub paced_ms: AtomicU64,
    /// Remote index lookups answered from the cache (including indexes cached on upload).
    pub index_hits: AtomicU64,
    /// Remote index lookups that had to GET the index.
    pub index_misses: AtomicU64,
}

/// A point-in-time copy of [`ReadStats`] and the cache's size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCounts {
    /// See [`ReadStats::chunk_hits`].
    pub chunk_hits: u64,
    /// See [`ReadStats::chunk_disk_hits`].
    pub chunk_disk_hits: u64,
    /// See [`ReadStats::chunk_misses`].
    pub chunk_misses: u64,
    /// See [`ReadStats::chunks_read_ahead`].
    pub chunks_read_ahead: u64,
    /// See [`ReadStats::chunk_gets`].
    pub chunk_gets: u64,
    /// See [`ReadStats::chunk_get_bytes`].
    pub chunk_get_bytes: u64,
    /// See [`ReadStats::chunk_get_byte_ms`].
    pub chunk_get_byte_ms: u64,
    /// See [`ReadStats::bytes_served`].
    pub bytes_served: u64,
    /// See [`ReadStats::paced_ms`].
    pub paced_ms: u64,
    /// See [`ReadStats::index_hits`].
    pub index_hits: u64,
    /// See [`ReadStats::index_misses`].
    pub index_misses: u64,
    /// Bytes of chunks in the memory tier now.
    pub cache_bytes: u64,
    /// Bytes read ahead now, in flight or held until read.
    pub read_ahead_bytes: u64,
    /// Bytes written to the disk tier since the broker started.
    pub cache_disk_write_bytes: u64,
    /// Bytes read from the disk tier since the broker started.
    pub cache_disk_read_bytes: u64,
    /// Whether the disk tier is open (it opens in the background after start-up).
    pub cache_disk_open: bool,
}
