//! The schema registry's state, pure: the log's records (`records`), the state they build
//! (`store`: subjects, versions, IDs, configs, modes, rebuilt by applying the log in
//! order) and the rules of every change (`plan`: what a registration or a delete writes,
//! or why it is refused). The broker feeds it the replicated log and appends what a plan
//! says; the REST front end maps its answers and errors to Confluent's.

pub mod plan;
pub mod records;
pub mod store;

pub use plan::Registration;
pub use records::{Config, Key, Mode, Reference, SchemaValue};
pub use store::{Store, SubjectVersion, VersionId};

/// Why a registry operation is refused; each maps to one of Confluent's error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// 40401.
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// 40402.
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    /// 40403.
    #[error("Schema {0} not found")]
    SchemaNotFound(String),
    /// 40404.
    #[error("Subject '{0}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    /// 40405.
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    /// 40406.
    #[error("Subject '{0}' Version {1} was soft deleted.Set permanent=true to delete permanently")]
    VersionSoftDeleted(String, i32),
    /// 40407.
    #[error("Subject '{0}' Version {1} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted(String, i32),
    /// 40408.
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectConfigNotFound(String),
    /// 40409.
    #[error("Subject '{0}' does not have subject-level mode configured")]
    SubjectModeNotFound(String),
    /// 409: the reasons, Confluent's messages.
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]", .reasons.join(", "))]
    Incompatible { subject: String, reasons: Vec<String> },
    /// 42201.
    #[error("{0}")]
    InvalidSchema(String),
    /// 42202.
    #[error(
        "The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
    )]
    InvalidVersion(String),
    /// 42205.
    #[error("{0}")]
    OperationNotPermitted(String),
    /// 42206.
    #[error(
        "One or more references exist to the schema {{magic=1,keytype=SCHEMA,subject={0},version={1}}}."
    )]
    ReferenceExists(String, i32),
    /// 42208.
    #[error("The specified subject '{0}' is not valid.")]
    InvalidSubject(String),
}

impl RegistryError {
    /// Confluent's `error_code` for it.
    pub fn code(&self) -> u32 {
        match self {
            RegistryError::SubjectNotFound(_) => 40401,
            RegistryError::VersionNotFound(_) => 40402,
            RegistryError::SchemaNotFound(_) => 40403,
            RegistryError::SubjectSoftDeleted(_) => 40404,
            RegistryError::SubjectNotSoftDeleted(_) => 40405,
            RegistryError::VersionSoftDeleted(..) => 40406,
            RegistryError::VersionNotSoftDeleted(..) => 40407,
            RegistryError::SubjectConfigNotFound(_) => 40408,
            RegistryError::SubjectModeNotFound(_) => 40409,
            RegistryError::Incompatible { .. } => 409,
            RegistryError::InvalidSchema(_) => 42201,
            RegistryError::InvalidVersion(_) => 42202,
            RegistryError::OperationNotPermitted(_) => 42205,
            RegistryError::ReferenceExists(..) => 42206,
            RegistryError::InvalidSubject(_) => 42208,
        }
    }
}

/// Confluent's subject rule: not empty, no control characters, not its reserved global
/// name.
pub fn check_subject(subject: &str) -> Result<(), RegistryError> {
    if subject.is_empty()
        || subject.chars().any(char::is_control)
        || subject == "__GLOBAL"
        || subject == "__EMPTY"
    {
        return Err(RegistryError::InvalidSubject(subject.to_string()));
    }
    Ok(())
}
