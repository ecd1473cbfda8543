//! The partition log on local disk: segments, sparse indexes, group commit, recovery,
//! retention.

mod checkpoint;
mod config;
mod epoch;
mod error;
mod index;
mod resources;
mod scan;
mod segment;

pub use config::{FlushPolicy, LogConfig};
pub use epoch::EpochEntry;
pub use error::LogError;
pub use resources::{DEFAULT_MAX_INDEX_BYTES, DEFAULT_MAX_OPEN_SEGMENTS, LogResources};
