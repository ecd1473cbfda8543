//! `StoreError`, the bucket gateway's error, and its mapping onto the public error kinds.

use object_store::path::Path as ObjectPath;

use super::metrics::Op;
use super::retry::is_transient;
use shale_core::error::{Error, ErrorKind, Reason};

/// A bucket request that failed (after its retries, when the failure was transient).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No object at the path.
    #[error("object store {}: {path} does not exist", op.name())]
    NotFound {
        /// The operation.
        op: Op,
        /// The object.
        path: ObjectPath,
    },
    /// A create-only put found another object at the path.
    #[error(
        "object store {}: {path} exists already, and a create-only put does not replace it",
        op.name()
    )]
    AlreadyExists {
        /// The operation.
        op: Op,
        /// The object.
        path: ObjectPath,
    },
    /// Any other failure: the store's answer, or no answer within the timeout.
    #[error(
        "object store {} of {path} failed after {attempts} attempt(s): {source}; {}",
        op.name(),
        hint(source)
    )]
    Failed {
        /// The operation.
        op: Op,
        /// The object (or prefix).
        path: ObjectPath,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        #[source]
        source: object_store::Error,
    },
}

fn hint(e: &object_store::Error) -> &'static str {
    match e {
        e if is_transient(e) => "the bucket is unreachable or overloaded; retried later",
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => {
            "check the bucket's credentials and policy (tier.s3_* settings)"
        }
        _ => "check the bucket's settings",
    }
}

impl StoreError {
    /// Classifies the last error of `attempts` attempts of `op` on `path`.
    pub(crate) fn new(op: Op, path: &ObjectPath, attempts: u32, e: object_store::Error) -> Self {
        let path = path.clone();
        match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound { op, path },
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => StoreError::AlreadyExists { op, path },
            source => StoreError::Failed { op, path, attempts, source },
        }
    }

    /// Whether the object was missing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }

    /// The object (or prefix) of the failed request.
    pub fn path(&self) -> &ObjectPath {
        match self {
            StoreError::NotFound { path, .. }
            | StoreError::AlreadyExists { path, .. }
            | StoreError::Failed { path, .. } => path,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        let kind = match &e {
            StoreError::NotFound { .. } => ErrorKind::NotFound,
            StoreError::Failed {
                source:
                    object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. },
                ..
            } => ErrorKind::Internal,
            StoreError::AlreadyExists { .. } | StoreError::Failed { .. } => ErrorKind::Unavailable,
        };
        let path = e.path().to_string();
        Error::new(kind, Reason::ObjectStoreError, e.to_string())
            .with("object", path)
            .with_source(e)
    }
}
