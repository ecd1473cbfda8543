//! The partition log on local disk: segments, sparse indexes, group commit, recovery,
//! retention.

mod checkpoint;
mod config;
mod epoch;
mod error;
mod index;

pub use config::{FlushPolicy, LogConfig};
pub use epoch::EpochEntry;
pub use error::LogError;
