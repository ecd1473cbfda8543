//! `[tier]` settings: the bucket, uploads, cold reads and the scrubber.

use serde::{Deserialize, Serialize};

/// `[tier]`: where sealed segments go and how they are uploaded and read back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TierSettings {
    /// `s3://bucket/prefix`, `file:///path` or `memory://`; empty means none (`shale
    /// standalone` then uses `file://{data_dir}/bucket`). Topics can enable
    /// `remote.storage.enable` only with a store.
    pub object_store: String,
    /// S3 endpoint for S3-compatible servers (`http://127.0.0.1:9000`); empty means AWS.
    pub s3_endpoint: String,
    /// S3 region; empty means `AWS_REGION` or `us-east-1`.
    pub s3_region: String,
    /// S3 access key id; empty means the environment or instance / web identity.
    pub s3_access_key_id: String,
    /// S3 secret access key (with `s3_access_key_id`).
    pub s3_secret_access_key: String,
    /// Virtual-hosted-style requests (`bucket.host`) instead of path-style.
    pub s3_virtual_hosted: bool,
    /// Longest one object store request may take before it is retried (ms).
    pub request_timeout_ms: u64,
    /// Attempts per object store request, the first included.
    pub request_max_attempts: u32,
    /// How often each leader looks for sealed segments to upload (ms).
    pub upload_interval_ms: u64,
    /// Segment uploads in flight per broker.
    pub upload_concurrency: usize,
    /// Upload bandwidth per broker (bytes/s); 0 = unlimited.
    pub upload_bytes_per_sec: u64,
    /// Segments up to this go up in one PUT (bytes).
    pub multipart_threshold_bytes: u64,
    /// Larger segments go up in parts of this size (bytes, at least 5 MiB).
    pub multipart_part_bytes: u64,
    /// Upload bodies in memory at once, all uploads together (bytes): a part, or a single
    /// PUT's body, is read from disk only once it fits.
    pub upload_buffer_bytes: u64,
    /// Unit of cold reads and of the chunk cache (bytes): a random read fetches one chunk.
    pub chunk_bytes: u64,
    /// Largest ranged GET (bytes): adjacent missing chunks are fetched together up to this,
    /// so a sequential reader costs `1 GiB / get_max_bytes` GETs per GiB.
    pub get_max_bytes: u64,
    /// Most bytes read ahead of one sequential cold reader; the window starts at one GET
    /// and doubles while the reader waits on the bucket (bytes).
    pub read_ahead_max_bytes: u64,
    /// Memory tier of the chunk cache, shared by all partitions (bytes).
    pub cache_bytes: u64,
    /// Disk tier of the chunk cache, under `cache_dir` (bytes); 0 = memory only.
    pub cache_disk_bytes: u64,
    /// Where the disk tier lives; empty means `{data_dir}/cold-cache`.
    pub cache_dir: String,
    /// Writes to the disk tier per second (bytes), so that caching cold reads never
    /// competes with appends for the disk; chunks beyond it stay in memory only. 0 =
    /// unlimited.
    pub cache_disk_write_bytes_per_sec: u64,
    /// Cold-read requests to the object store in flight per broker.
    pub remote_read_concurrency: usize,
    /// Worker threads of the cold-read runtime, apart from the one serving produce and
    /// local fetches.
    pub cold_read_threads: usize,
    /// Cold-read bytes served per second while the partition logs are fsyncing (produce or
    /// replication within the last second), so that a catch-up reader leaves producers
    /// their share of the cores and the disk; 0 = no limit.
    pub cold_read_busy_bytes_per_sec: u64,
    /// Nice value of the cold-read threads (Linux; 0 to 19): under CPU contention they get
    /// a smaller share than the threads serving produce and local fetches (nice 0).
    pub cold_read_nice: i32,
    /// Local log bytes across all partitions above which produce is refused (retriable)
    /// until uploads and local retention free space; 0 = no budget.
    pub local_disk_budget_bytes: u64,
    /// How often the scrubber compares the bucket with the manifests (ms).
    pub scrub_interval_ms: u64,
    /// Age before an unreferenced object counts as an orphan and is deleted (ms).
    pub orphan_grace_ms: u64,
}

impl Default for TierSettings {
    fn default() -> Self {
        TierSettings {
            object_store: String::new(),
            s3_endpoint: String::new(),
            s3_region: String::new(),
            s3_access_key_id: String::new(),
            s3_secret_access_key: String::new(),
            s3_virtual_hosted: false,
            request_timeout_ms: 30_000,
            request_max_attempts: 5,
            upload_interval_ms: 1_000,
            upload_concurrency: 4,
            upload_bytes_per_sec: 0,
            multipart_threshold_bytes: 256 * 1024 * 1024,
            multipart_part_bytes: 256 * 1024 * 1024,
            upload_buffer_bytes: 1024 * 1024 * 1024,
            chunk_bytes: 4 * 1024 * 1024,
            get_max_bytes: 16 * 1024 * 1024,
            read_ahead_max_bytes: 128 * 1024 * 1024,
            cache_bytes: 256 * 1024 * 1024,
            cache_disk_bytes: 4 * 1024 * 1024 * 1024,
            cache_dir: String::new(),
            cache_disk_write_bytes_per_sec: 64 * 1024 * 1024,
            remote_read_concurrency: 16,
            cold_read_threads: 1,
            cold_read_nice: 10,
            cold_read_busy_bytes_per_sec: 64 * 1024 * 1024,
            local_disk_budget_bytes: 0,
            scrub_interval_ms: 600_000,
            orphan_grace_ms: 3_600_000,
        }
    }
}
