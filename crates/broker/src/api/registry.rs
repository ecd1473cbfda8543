//! The schema registry, as its front end calls it: each read answers from this broker's
//! copy of the registry's state, each change goes to the registry's one writer; every
//! call checks the caller's ACLs on the subject (Read, Write to register, Delete,
//! DescribeConfigs/AlterConfigs for its level and mode; the global level and mode are the
//! cluster's) and every change is audited.

use std::sync::Arc;

use super::{Api, Identity};
use crate::acl::{CLUSTER, Operation, ResourceType};
use crate::audit::{self, Resource};
use crate::registry::{Decision, Failure, Registry};
use shale_core::error::Error;
use shale_schema::SchemaType;
use shale_schema::registry::plan::Registration;
use shale_schema::registry::store::Stored;
use shale_schema::registry::{Config, Mode, Reference, SubjectVersion, VersionId};

pub use crate::registry::Failure as RegistryFailure;
pub use shale_schema::registry::RegistryError;

/// A schema to look up or check: its format, text and references.
#[derive(Debug, Clone)]
pub struct SchemaText {
    /// The format.
    pub schema_type: SchemaType,
    /// The text.
    pub schema: String,
    /// What it refers to.
    pub references: Vec<Reference>,
}

impl Api {
    /// The registry, to read from: only where this broker's copy is the registry's.
    fn registry(&self) -> Result<&Arc<Registry>, Failure> {
        let registry = self.broker.registry()?;
        registry.readable()?;
        Ok(registry)
    }

    fn check_subject(
        &self,
        who: &Identity,
        action: &str,
        op: Operation,
        subject: &str,
    ) -> Result<(), Failure> {
        Ok(self.broker.acl().check(who, action, op, ResourceType::Subject, subject)?)
    }

    fn may_read(&self, who: &Identity, subject: &str) -> bool {
        self.broker.acl().allows(who, Operation::Read, ResourceType::Subject, subject)
    }

    /// The schema with this ID: to a caller who may read a subject using it.
    pub fn schema_by_id(&self, who: &Identity, id: i32) -> Result<Arc<Stored>, Failure> {
        let (schema, uses) = self
            .registry()?
            .read(|s| Ok::<_, RegistryError>((s.schema(id)?, s.uses(id, true)?)))?;
        if !uses.iter().any(|(subject, _)| self.may_read(who, subject)) {
            let subject = uses.first().map_or("", |(s, _)| s.as_str());
            self.check_subject(who, "GetSchemaById", Operation::Read, subject)?;
        }
        Ok(schema)
    }

    /// A key or value in the registry's wire format decoded to JSON text with the schema
    /// its ID names (for a caller who may read a subject using that schema), with the ID;
    /// else why not, in words (not the wire format, an unknown or unreadable schema, bytes
    /// the schema does not read).
    pub fn decode_registered(&self, who: &Identity, bytes: &[u8]) -> Result<(i32, String), String> {
        let id = shale_schema::wire::schema_id(bytes).map_err(|e| e.to_string())?;
        let stored = self.schema_by_id(who, id).map_err(|e| format!("schema {id}: {e}"))?;
        let registry = self.registry().map_err(|e| e.to_string())?;
        let parsed =
            registry.read(|s| s.parsed(&stored)).map_err(|e| format!("schema {id}: {e}"))?;
        let data = &bytes[shale_schema::wire::PREFIX_LEN..];
        parsed.decode(data).map(|json| (id, json)).map_err(|e| format!("schema {id}: {e}"))
    }

    /// `schema`'s text in a request's `format` (`serialized`: a Protobuf schema's
    /// descriptor, base64), as `shale_schema::registry::Store::formatted` gives it.
    pub fn schema_text(&self, schema: &Stored, format: Option<&str>) -> Result<String, Failure> {
        let text = self.registry()?.read(|s| s.formatted(schema, format));
        text.map_err(|e| Failure::Failed(Error::internal(format!("a stored schema: {e}"))))
    }

    /// The registry listener of the registry's writer, when that is another broker: where
    /// a front end forwards what this broker cannot answer.
    pub fn registry_writer_address(&self) -> Option<String> {
        self.broker.registry_writer_address()
    }

    /// The highest schema ID registered (for `fetchMaxId`).
    pub fn schema_max_id(&self) -> Result<i32, Failure> {
        Ok(self.registry()?.read(|s| s.max_id()))
    }

    /// The (subject, version) pairs using a schema ID that the caller may read.
    pub fn schema_uses(
        &self,
        who: &Identity,
        id: i32,
        deleted: bool,
    ) -> Result<Vec<(String, i32)>, Failure> {
        let uses = self.registry()?.read(|s| s.uses(id, deleted))?;
        Ok(uses.into_iter().filter(|(subject, _)| self.may_read(who, subject)).collect())
    }

    /// The subjects the caller may read (with `deleted`, soft-deleted ones too).
    pub fn subjects(&self, who: &Identity, deleted: bool) -> Result<Vec<String>, Failure> {
        let all = self.registry()?.read(|s| s.subjects(deleted));
        Ok(all.into_iter().filter(|s| self.may_read(who, s)).collect())
    }

    /// A subject's versions.
    pub fn subject_versions(
        &self,
        who: &Identity,
        subject: &str,
        deleted: bool,
    ) -> Result<Vec<i32>, Failure> {
        self.check_subject(who, "ListVersions", Operation::Read, subject)?;
        Ok(self.registry()?.read(|s| s.versions(subject, deleted))?)
    }

    /// One version of a subject.
    pub fn subject_version(
        &self,
        who: &Identity,
        subject: &str,
        version: VersionId,
        deleted: bool,
    ) -> Result<SubjectVersion, Failure> {
        self.check_subject(who, "GetVersion", Operation::Read, subject)?;
        Ok(self.registry()?.read(|s| s.version(subject, version, deleted))?)
    }

    /// `schema` as `normalize=true` asks (`Store::normalized`): to look up, check or
    /// register in place of the schema sent.
    pub fn normalized_schema(&self, schema: &SchemaText) -> Result<SchemaText, Failure> {
        let (text, references) = self
            .registry()?
            .read(|s| s.normalized(schema.schema_type, &schema.schema, &schema.references))?;
        Ok(SchemaText { schema_type: schema.schema_type, schema: text, references })
    }

    /// The version of a subject holding this schema.
    pub fn lookup_schema(
        &self,
        who: &Identity,
        subject: &str,
        schema: &SchemaText,
        deleted: bool,
    ) -> Result<SubjectVersion, Failure> {
        self.check_subject(who, "LookUpSchema", Operation::Read, subject)?;
        Ok(self.registry()?.read(|s| {
            let parsed = s.parse(schema.schema_type, &schema.schema, &schema.references)?;
            s.lookup(subject, &parsed, &schema.references, deleted)
        })?)
    }

    /// The IDs of live schemas referring to a subject's version.
    pub fn referenced_by(
        &self,
        who: &Identity,
        subject: &str,
        version: VersionId,
    ) -> Result<Vec<i32>, Failure> {
        self.check_subject(who, "GetReferencedBy", Operation::Read, subject)?;
        Ok(self.registry()?.read(|s| {
            let v = s.version(subject, version, false)?;
            Ok::<_, RegistryError>(s.referenced_by(subject, v.version))
        })?)
    }

    /// Why `schema` may not follow the subject's versions (or one of them) at its level:
    /// Confluent's messages, empty when it may.
    pub fn check_compatibility(
        &self,
        who: &Identity,
        subject: &str,
        version: Option<VersionId>,
        schema: &SchemaText,
    ) -> Result<Vec<String>, Failure> {
        self.check_subject(who, "TestCompatibility", Operation::Read, subject)?;
        Ok(self.registry()?.read(|s| {
            let parsed = s.parse(schema.schema_type, &schema.schema, &schema.references)?;
            // `latest` of a subject with no live version: compatible (Confluent's rule).
            if version == Some(VersionId::Latest) && s.versions(subject, false).is_err() {
                return Ok(Vec::new());
            }
            s.compatibility(subject, &parsed, version)
        })?)
    }

    /// The settings of a subject (or the global ones: `None`) as set, and those that
    /// apply.
    pub fn registry_config(
        &self,
        who: &Identity,
        subject: Option<&str>,
    ) -> Result<(Option<Config>, Config), Failure> {
        if let Some(s) = subject {
            self.check_subject(who, "GetConfig", Operation::DescribeConfigs, s)?;
        }
        Ok(self.registry()?.read(|s| (s.settings(subject), s.effective_settings(subject))))
    }

    /// Whether `normalize` is set for a subject (or globally): its schemas are then
    /// normalized as with `normalize=true`.
    pub fn registry_normalizes(&self, subject: &str) -> Result<bool, Failure> {
        Ok(self.registry()?.read(|s| s.normalizes(subject)))
    }

    /// The mode set for a subject (or globally: `None`), and the one that applies.
    pub fn registry_mode(
        &self,
        who: &Identity,
        subject: Option<&str>,
    ) -> Result<(Option<Mode>, Mode), Failure> {
        if let Some(s) = subject {
            self.check_subject(who, "GetMode", Operation::DescribeConfigs, s)?;
        }
        Ok(self.registry()?.read(|s| match subject {
            Some(subject) => (s.mode(Some(subject)), s.effective_mode(subject)),
            None => (s.mode(None), s.mode(None).unwrap_or_default()),
        }))
    }

    /// Registers a schema under a subject: its ID.
    pub async fn register_schema(
        &self,
        who: &Identity,
        req: &Registration,
    ) -> Result<i32, Failure> {
        self.check_subject(who, "RegisterSchema", Operation::Write, &req.subject)?;
        let result = self.registry()?.register(req).await;
        audited(who, "RegisterSchema", &req.subject, &result);
        result
    }

    /// A change through the registry's writer, `decide` saying what to append and answer,
    /// audited under `action` on `subject` (`*`: the global settings).
    async fn change<T>(
        &self,
        who: &Identity,
        action: &str,
        subject: &str,
        decide: impl FnOnce(&shale_schema::registry::Store) -> Result<Decision<T>, Failure>,
    ) -> Result<T, Failure> {
        let result = self.registry()?.write(decide).await;
        audited(who, action, subject, &result);
        result
    }

    /// Deletes a subject's version (softly, or for good): the version deleted.
    pub async fn delete_schema_version(
        &self,
        who: &Identity,
        subject: &str,
        version: VersionId,
        permanent: bool,
    ) -> Result<i32, Failure> {
        self.check_subject(who, "DeleteSchemaVersion", Operation::Delete, subject)?;
        self.change(who, "DeleteSchemaVersion", subject, |s| {
            Ok(decided(s.plan_delete_version(subject, version, permanent)?))
        })
        .await
    }

    /// Deletes a subject (softly, or for good): the versions deleted.
    pub async fn delete_subject(
        &self,
        who: &Identity,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<i32>, Failure> {
        self.check_subject(who, "DeleteSubject", Operation::Delete, subject)?;
        self.change(who, "DeleteSubject", subject, |s| {
            Ok(decided(s.plan_delete_subject(subject, permanent)?))
        })
        .await
    }

    fn check_settings(
        &self,
        who: &Identity,
        action: &str,
        subject: Option<&str>,
    ) -> Result<(), Failure> {
        match subject {
            Some(s) => self.check_subject(who, action, Operation::AlterConfigs, s),
            None => Ok(self.broker.acl().check(
                who,
                action,
                Operation::AlterConfigs,
                ResourceType::Cluster,
                CLUSTER,
            )?),
        }
    }

    /// Sets a subject's settings (or the global ones): the fields `update` has, over those
    /// set; the settings then.
    pub async fn set_registry_config(
        &self,
        who: &Identity,
        subject: Option<&str>,
        update: Config,
    ) -> Result<Config, Failure> {
        self.check_settings(who, "UpdateConfig", subject)?;
        self.change(who, "UpdateConfig", subject.unwrap_or("*"), |s| {
            Ok(decided(s.plan_config(subject, update)?))
        })
        .await
    }

    /// Removes a subject's settings (or resets the global ones): those it had.
    pub async fn delete_registry_config(
        &self,
        who: &Identity,
        subject: Option<&str>,
    ) -> Result<Config, Failure> {
        self.check_settings(who, "DeleteConfig", subject)?;
        self.change(who, "DeleteConfig", subject.unwrap_or("*"), |s| {
            Ok(decided(s.plan_delete_config(subject)?))
        })
        .await
    }

    /// Sets the mode of a subject (or the global one); `force` into IMPORT with schemas.
    pub async fn set_registry_mode(
        &self,
        who: &Identity,
        subject: Option<&str>,
        mode: Mode,
        force: bool,
    ) -> Result<(), Failure> {
        self.check_settings(who, "UpdateMode", subject)?;
        self.change(who, "UpdateMode", subject.unwrap_or("*"), |s| {
            Ok(Decision { records: s.plan_mode(subject, mode, force)?, answer: () })
        })
        .await
    }

    /// Removes a subject's mode: the mode it had.
    pub async fn delete_registry_mode(
        &self,
        who: &Identity,
        subject: &str,
    ) -> Result<Mode, Failure> {
        self.check_settings(who, "DeleteMode", Some(subject))?;
        self.change(who, "DeleteMode", subject, |s| Ok(decided(s.plan_delete_mode(subject)?))).await
    }
}

/// A plan's answer and records as the writer takes them.
fn decided<T>((answer, records): (T, Vec<shale_schema::registry::plan::Record>)) -> Decision<T> {
    Decision { records, answer }
}

fn audited<T>(who: &Identity, action: &str, subject: &str, result: &Result<T, Failure>) {
    let outcome = match result {
        Ok(_) => "ok".to_string(),
        Err(Failure::Refused(e)) => format!("refused {}", e.code()),
        Err(Failure::Failed(e)) => e.reason.as_str().to_string(),
    };
    audit::mutation_ended(who, action, Resource::Subject(subject), &outcome);
}
