//! Shale's foundations, shared by every other crate: nothing here knows about the network,
//! the metadata store or the bucket.
//!
//! - `record`: Kafka RecordBatch v2 format: header, records codec, compression, validation.
//! - `error`: the public error kinds every layer maps onto.
//! - `acks`: produce acknowledgement levels.
//! - `names`: checks of topic and group names.
//! - `offsets`: what `ListOffsets` asks and finds.
//! - `topic_config`: per-topic configuration by Kafka names, validated.
//! - `clock`: injected time, and the one place that waits on it (`sleep`).
//! - `task`: spawning outside a broker's lifecycle: owned (stops on drop) or detached.
//! - `disk`: the file seam under the log, the embedded store and the `file://` bucket: the
//!   real file system, the simulated disk of the in-process power-loss suites, the
//!   test-only tracking disk of the process-level ones, and the crash-safe file patterns.
//! - `failpoint`: crash, hold and error points for fault tests, armed by environment.
//! - `rate`: the one rate limiter, a token bucket (quotas, upload throttle, cold-read
//!   pace, disk-tier admission).

pub mod acks;
pub mod clock;
pub mod disk;
pub mod error;
pub mod failpoint;
pub mod names;
pub mod offsets;
pub mod rate;
pub mod record;
pub mod task;
pub mod topic_config;

pub use error::{Error, ErrorKind, Result};
