//! The partition log on local disk: segments, sparse indexes, group commit, recovery,
//! retention.

mod config;
mod error;

pub use config::{FlushPolicy, LogConfig};
pub use error::LogError;
