//! `MetaError`: failures of the metadata store, and their public error kinds.

use std::path::PathBuf;

use super::{LeaseId, Revision};
use shale_core::error::{Error, ErrorKind, Reason};

/// Errors from any `MetaStore` backend.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The store cannot be reached or is shutting down. Retriable.
    #[error("metadata store unavailable: {0}; retry, and check that the store is running")]
    Unavailable(String),
    /// The lease expired, was revoked, or never existed.
    #[error("lease {0} not found or expired; grant a new lease and register its keys again")]
    LeaseNotFound(LeaseId),
    /// A watch start revision older than the store's history.
    #[error(
        "watch start revision is compacted; re-read with range and watch again from \
         revision {revision} or later"
    )]
    Compacted {
        /// The oldest revision a watch can start from now.
        revision: Revision,
    },
    /// A persisted metadata file is damaged beyond the torn tail that recovery repairs.
    #[error(
        "metadata file {} is corrupt at byte {offset}: {reason}; restore the metadata \
         directory from a backup, or move it away to start with empty metadata",
        path.display()
    )]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damage.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing a metadata file failed.
    #[error("metadata i/o on {} failed: {source}; check the disk and its permissions", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The request is malformed (empty key, too many ops, ...). Not retriable.
    #[error("invalid metadata request: {0}")]
    Invalid(String),
    /// A stored value could not be decoded as the expected type.
    #[error("metadata key {key:?} holds an undecodable value: {reason}")]
    BadValue {
        /// The key whose value is bad.
        key: String,
        /// The decoder's complaint.
        reason: String,
    },
}

impl MetaError {
    /// An `Io` error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        MetaError::Io { path: path.into(), source }
    }

    /// Whether the same call may succeed when retried.
    pub fn is_retriable(&self) -> bool {
        matches!(self, MetaError::Unavailable(_))
    }
}

impl From<shale_core::disk::FsError> for MetaError {
    fn from(e: shale_core::disk::FsError) -> Self {
        MetaError::Io { path: e.path, source: e.source }
    }
}

impl From<MetaError> for Error {
    fn from(e: MetaError) -> Self {
        let message = e.to_string();
        let error = match &e {
            MetaError::Unavailable(_) => {
                Error::new(ErrorKind::Unavailable, Reason::MetaUnavailable, message)
            }
            &MetaError::LeaseNotFound(lease) => {
                Error::new(ErrorKind::NotFound, Reason::MetaLeaseNotFound, message)
                    .with("lease", lease)
            }
            // Whoever watched re-reads and watches again, so a retry can succeed.
            &MetaError::Compacted { revision } => {
                Error::new(ErrorKind::Unavailable, Reason::MetaCompacted, message)
                    .with("revision", revision)
            }
            &MetaError::Corrupt { ref path, offset, .. } => {
                Error::new(ErrorKind::Data, Reason::MetaCorrupt, message)
                    .with("path", path.display())
                    .with("offset", offset)
            }
            MetaError::Io { path, .. } => Error::new(ErrorKind::Internal, Reason::MetaIo, message)
                .with("path", path.display()),
            MetaError::Invalid(_) => Error::new(ErrorKind::Invalid, Reason::MetaInvalid, message),
            MetaError::BadValue { key, .. } => {
                Error::new(ErrorKind::Data, Reason::MetaBadValue, message).with("key", key)
            }
        };
        error.with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_onto_public_kinds() {
        let e: Error = MetaError::Unavailable("etcd down".into()).into();
        assert_eq!((e.kind, e.reason.as_ref()), (ErrorKind::Unavailable, "META_UNAVAILABLE"));
        assert!(e.kind.is_retriable());
        let e: Error = MetaError::LeaseNotFound(7).into();
        assert_eq!(
            (e.kind, e.details.get("lease").map(String::as_str)),
            (ErrorKind::NotFound, Some("7"))
        );
        let e: Error =
            MetaError::Corrupt { path: "/d/meta.wal".into(), offset: 12, reason: "bad".into() }
                .into();
        assert_eq!(e.kind, ErrorKind::Data);
        assert!(e.message.contains("/d/meta.wal") && e.message.contains("12"));
        let e: Error = MetaError::Invalid("empty key".into()).into();
        assert_eq!(e.kind, ErrorKind::Invalid);
        let e: Error = MetaError::io("/d", std::io::Error::other("disk gone")).into();
        assert_eq!((e.kind, e.reason.as_ref()), (ErrorKind::Internal, "META_IO"));
    }
}
