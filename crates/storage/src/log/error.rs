//! `LogError`, the log layer's error enum, and its mapping onto the public error kinds.

use std::path::PathBuf;

use shale_core::error::{Error, ErrorKind, RangeEnd, Reason, offset_out_of_range};
use shale_core::record::RecordError;

/// Errors from the partition log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The offset is outside `[log_start, log_end]`.
    #[error(
        "offset {offset} is out of range: the log holds offsets {log_start}..{log_end}; \
         fetch from an offset in that range"
    )]
    OffsetOutOfRange {
        /// The requested offset.
        offset: i64,
        /// First offset in the log.
        log_start: i64,
        /// Offset the next append gets.
        log_end: i64,
    },
    /// A file operation failed.
    #[error("i/o error on {path:?}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Stored data failed validation where recovery cannot repair it.
    #[error("corrupt log data in {path:?} at {offset}: {reason}")]
    Corrupt {
        /// The file involved.
        path: PathBuf,
        /// The offset or byte position of the problem.
        offset: i64,
        /// What is wrong.
        reason: String,
    },
    /// A batch handed to the log is malformed.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// An fsync of the log's data failed: what the disk holds past the durable offset is
    /// unknown (Linux may drop the dirty pages and report success next time), so the log
    /// takes no more writes and acknowledges nothing more until it is reopened.
    #[error(
        "partition log {path:?} stopped after a failed fsync ({reason}); nothing past offset \
         {durable} is acknowledged; produce to the partition's new leader, and restart this \
         broker once its disk is healthy"
    )]
    Failed {
        /// The partition directory.
        path: PathBuf,
        /// The fsync error.
        reason: String,
        /// Every offset below this was durable before the failure.
        durable: i64,
    },
    /// A log file could not be opened for want of file descriptors (`EMFILE`, `ENFILE`),
    /// even after the broker closed every segment file it had cached.
    #[error(
        "too many open files: cannot open {path:?}; the broker process may have {} files \
         open (ulimit -n); raise that limit, or lower log.fd_cache_capacity (the segment \
         files the broker keeps open)",
        limit.map_or("unlimited".to_string(), |l| l.to_string())
    )]
    OutOfFiles {
        /// The file that could not be opened.
        path: PathBuf,
        /// The process's open-file limit, if any.
        limit: Option<u64>,
    },
    /// Every place among the files the logs may keep open (`log.fd_cache_capacity`) stayed
    /// in use by operations in flight while this open waited.
    #[error(
        "too many open files: cannot open {path:?}; all {capacity} files the partition logs \
         may keep open (log.fd_cache_capacity) stayed in use by operations in flight; retry, \
         or raise log.fd_cache_capacity"
    )]
    FilesInUse {
        /// The file that could not be opened.
        path: PathBuf,
        /// The bound.
        capacity: u64,
    },
    /// The log was closed or deleted (or a previous operation panicked).
    #[error("partition log is closed; retry against the partition's current owner")]
    Closed,
}

impl LogError {
    /// Wraps an I/O error with the path it happened on.
    /// Running out of descriptors is [`LogError::OutOfFiles`], which names the limit.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        if let Some(full) =
            source.get_ref().and_then(|e| e.downcast_ref::<super::resources::BudgetExhausted>())
        {
            return LogError::FilesInUse { path: path.into(), capacity: full.capacity };
        }
        if super::resources::out_of_descriptors(&source) {
            let limit = super::resources::descriptor_limit();
            return LogError::OutOfFiles { path: path.into(), limit };
        }
        LogError::Io { path: path.into(), source }
    }
}

impl From<shale_core::disk::FsError> for LogError {
    fn from(e: shale_core::disk::FsError) -> Self {
        LogError::io(e.path, e.source)
    }
}

impl From<LogError> for Error {
    fn from(e: LogError) -> Self {
        let message = e.to_string();
        let error = match &e {
            &LogError::OffsetOutOfRange { offset, log_start, log_end } => {
                offset_out_of_range(offset, log_start, log_end, RangeEnd::LogEnd)
            }
            LogError::Io { path, .. } => {
                Error::new(ErrorKind::Internal, Reason::LogIoError, message)
                    .with("path", path.display())
            }
            &LogError::Corrupt { ref path, offset, .. } => {
                Error::new(ErrorKind::Data, Reason::CorruptLog, message)
                    .with("path", path.display())
                    .with("offset", offset)
            }
            LogError::Record(r) => return Error::from(r.clone()),
            LogError::OutOfFiles { path, .. } | LogError::FilesInUse { path, .. } => {
                Error::new(ErrorKind::Unavailable, Reason::TooManyOpenFiles, message)
                    .with("path", path.display())
            }
            LogError::Closed => Error::new(ErrorKind::Unavailable, Reason::LogClosed, message),
            &LogError::Failed { ref path, durable, .. } => {
                Error::new(ErrorKind::Unavailable, Reason::LogFailed, message)
                    .with("path", path.display())
                    .with("durable_offset", durable)
            }
        };
        error.with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_maps_with_range_details() {
        let e: Error = LogError::OffsetOutOfRange { offset: 3, log_start: 10, log_end: 20 }.into();
        assert_eq!(e.kind, ErrorKind::OutOfRange);
        assert_eq!(e.reason, "OFFSET_OUT_OF_RANGE");
        assert_eq!(e.details["log_start_offset"], "10");
        assert_eq!(e.details["log_end_offset"], "20");
        assert!(e.message.contains("offset 3"));
    }

    #[test]
    fn io_and_corrupt_map_to_internal_and_data() {
        let io = LogError::io("/x", std::io::Error::other("boom"));
        assert_eq!(Error::from(io).kind, ErrorKind::Internal);
        let c = LogError::Corrupt { path: "/y".into(), offset: 7, reason: "bad".into() };
        assert_eq!(Error::from(c).kind, ErrorKind::Data);
        assert_eq!(Error::from(LogError::Closed).kind, ErrorKind::Unavailable);
    }

    #[test]
    fn the_public_error_keeps_its_source_chain_down_to_the_io_error() {
        let e = Error::from(LogError::io("/x", std::io::Error::other("disk on fire")));
        let mut chain = Vec::new();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            chain.push(s.to_string());
            source = s.source();
        }
        assert_eq!(chain.last().map(String::as_str), Some("disk on fire"), "{chain:?}");
    }
}
