//! The rules of every change to the registry, as Confluent's `KafkaSchemaRegistry` applies
//! them: what records a registration, a delete or a config change writes to `_schemas`,
//! or why it is refused. Decided against the state of the log the write will follow, so
//! a writer that appends only where its state ends never writes on a stale view.

use super::RegistryError;
use super::records::{self, Config, Key, Mode, Reference, SchemaValue};
use super::store::{Store, VersionId};
use crate::{ParsedSchema, Previous, SchemaType};

/// A record to append: its key and value (`None`: a tombstone).
pub type Record = (Vec<u8>, Option<Vec<u8>>);

/// A registration request (`POST /subjects/{s}/versions`).
#[derive(Debug, Clone)]
pub struct Registration {
    /// The subject.
    pub subject: String,
    /// The format.
    pub schema_type: SchemaType,
    /// The schema's text as sent.
    pub schema: String,
    /// What it refers to.
    pub references: Vec<Reference>,
    /// The ID to register it under (IMPORT mode).
    pub id: Option<i32>,
    /// The version to register it as.
    pub version: Option<i32>,
}

/// Where a new schema's ID comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSource {
    /// The same schema already has this ID (under any subject, or a deleted version).
    Existing(i32),
    /// The request gave it (IMPORT).
    Given(i32),
    /// A new one: above every ID ever handed out.
    New,
}

/// What a registration does.
#[derive(Debug, Clone)]
pub enum RegisterPlan {
    /// Already registered under the subject: its ID; nothing to write.
    Registered(i32),
    /// A new version: write `records(id)` once the ID is known.
    Write(NewVersion),
}

/// A new version to write.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// Where its ID comes from.
    pub id: IdSource,
    subject: String,
    version: i32,
    schema_type: SchemaType,
    canonical: String,
    references: Vec<Reference>,
    /// Older soft-deleted versions with the same schema, tombstoned (Confluent's rule).
    superseded: Vec<i32>,
}

impl NewVersion {
    /// The version it becomes.
    pub fn version(&self) -> i32 {
        self.version
    }

    /// The records to append, with the schema's ID.
    pub fn records(&self, id: i32) -> Vec<Record> {
        let mut out: Vec<Record> = self
            .superseded
            .iter()
            .map(|&v| (Key::Schema { subject: self.subject.clone(), version: v }.encode(), None))
            .collect();
        let value = SchemaValue {
            subject: self.subject.clone(),
            version: self.version,
            id,
            schema_type: self.schema_type,
            references: self.references.clone(),
            schema: self.canonical.clone(),
            deleted: false,
        };
        out.push((
            Key::Schema { subject: self.subject.clone(), version: self.version }.encode(),
            Some(value.encode()),
        ));
        out
    }
}

impl Store {
    /// Confluent's fast path, taken on any broker before a write is forwarded: the ID
    /// when the subject already holds this schema as a live version (and the request asks
    /// for no other ID or version).
    pub fn already_registered(&self, req: &Registration, parsed: &ParsedSchema) -> Option<i32> {
        if req.version.is_some_and(|v| v != -1) {
            return None;
        }
        let (_, e) = self.find(&req.subject, parsed.canonical(), &req.references, false)?;
        (req.id.is_none_or(|id| id == e.id)).then_some(e.id)
    }

    /// Decides a registration.
    pub fn plan_register(&self, req: &Registration) -> Result<RegisterPlan, RegistryError> {
        super::check_subject(&req.subject)?;
        let parsed = self.parse(req.schema_type, &req.schema, &req.references)?;
        if let Some(id) = self.already_registered(req, &parsed) {
            return Ok(RegisterPlan::Registered(id));
        }
        let subject = &req.subject;
        let mode = self.effective_mode(subject);
        match (mode, req.id) {
            (Mode::ReadOnly | Mode::ReadOnlyOverride, _) => {
                return Err(RegistryError::OperationNotPermitted(format!(
                    "Subject {subject} is in read-only mode"
                )));
            }
            (Mode::ReadWrite, Some(_)) => {
                return Err(RegistryError::OperationNotPermitted(format!(
                    "Subject {subject} is not in import mode"
                )));
            }
            (Mode::Import, None) => {
                return Err(RegistryError::OperationNotPermitted(format!(
                    "Subject {subject} is not in read-write mode"
                )));
            }
            _ => {}
        }
        let all = self.entries(subject, true);
        let next = all.last().map_or(1, |(v, _)| v + 1);
        let canonical = parsed.canonical().to_string();
        let existing_id = self.id_of(&canonical, &req.references);
        let id = match (req.id, existing_id) {
            (Some(given), Some(existing)) if given != existing => {
                return Err(RegistryError::OperationNotPermitted(format!(
                    "Overwrite new schema with id {given} is not permitted."
                )));
            }
            (Some(given), _) => {
                if self
                    .schema(given)
                    .is_ok_and(|s| s.schema != canonical || s.references != req.references)
                {
                    return Err(RegistryError::OperationNotPermitted(format!(
                        "Overwrite new schema with id {given} is not permitted."
                    )));
                }
                IdSource::Given(given)
            }
            (None, Some(existing)) => IdSource::Existing(existing),
            (None, None) => IdSource::New,
        };
        let version = match (mode, req.version) {
            (_, None | Some(-1)) => next,
            (Mode::Import, Some(v)) if v >= 1 => v,
            (_, Some(v)) if v == next => v,
            (Mode::Import, Some(v)) => return Err(RegistryError::InvalidVersion(v.to_string())),
            (_, Some(_)) => {
                return Err(RegistryError::InvalidSchema(
                    "Version is not one more than previous version".into(),
                ));
            }
        };
        if mode != Mode::Import {
            self.check_against_live(subject, &parsed)?;
        }
        let superseded = match id {
            IdSource::Existing(id) => {
                all.iter().filter(|(_, e)| e.deleted && e.id == id).map(|(v, _)| *v).collect()
            }
            _ => Vec::new(),
        };
        Ok(RegisterPlan::Write(NewVersion {
            id,
            subject: subject.clone(),
            version,
            schema_type: req.schema_type,
            canonical,
            references: req.references.clone(),
            superseded,
        }))
    }

    fn check_against_live(
        &self,
        subject: &str,
        parsed: &ParsedSchema,
    ) -> Result<(), RegistryError> {
        let reasons = self.compatibility(subject, parsed, None)?;
        if reasons.is_empty() {
            return Ok(());
        }
        Err(RegistryError::Incompatible { subject: subject.to_string(), reasons })
    }

    /// Why `parsed` may not follow the subject's live versions at its level (or, with
    /// `only`, that one version), with Confluent's trailing `{validateFields, compatibility}`
    /// note; empty when it may.
    pub fn compatibility(
        &self,
        subject: &str,
        parsed: &ParsedSchema,
        only: Option<VersionId>,
    ) -> Result<Vec<String>, RegistryError> {
        let level = self.effective_level(subject);
        let mut versions = Vec::new();
        match only {
            None => versions.extend(self.entries(subject, false).into_iter().map(|(v, _)| v)),
            Some(VersionId::Latest) => {
                versions.extend(self.entries(subject, false).last().map(|(v, _)| *v))
            }
            Some(VersionId::Number(n)) => {
                versions.push(self.version(subject, VersionId::Number(n), false)?.version)
            }
        }
        let mut stored = Vec::new();
        for v in versions {
            stored.push((v, self.version(subject, VersionId::Number(v), false)?.schema));
        }
        let mut parsed_previous = Vec::new();
        for (v, s) in &stored {
            let p = self.parsed(s).map_err(|e| {
                RegistryError::InvalidSchema(format!(
                    "version {v} of subject {subject} cannot be read: {e}"
                ))
            })?;
            parsed_previous.push(Previous { version: *v, schema: p });
        }
        let mut reasons = crate::check(level, parsed, &parsed_previous);
        if !reasons.is_empty() {
            reasons.push(format!("{{validateFields: 'false', compatibility: '{level}'}}"));
        }
        Ok(reasons)
    }

    fn check_not_referenced(&self, subject: &str, version: i32) -> Result<(), RegistryError> {
        match self.referenced_by(subject, version).is_empty() {
            true => Ok(()),
            false => Err(RegistryError::ReferenceExists(subject.to_string(), version)),
        }
    }

    fn check_writable(&self, subject: &str) -> Result<(), RegistryError> {
        match self.effective_mode(subject) {
            Mode::ReadOnly | Mode::ReadOnlyOverride => Err(RegistryError::OperationNotPermitted(
                format!("Subject {subject} is in read-only mode"),
            )),
            _ => Ok(()),
        }
    }

    /// The tombstones of a subject's own config and mode (written when its last live
    /// version goes).
    fn subject_settings_tombstones(&self, subject: &str) -> Vec<Record> {
        let mut out = Vec::new();
        if self.config(Some(subject)).is_some() {
            out.push((Key::Config { subject: Some(subject.to_string()) }.encode(), None));
        }
        if self.mode(Some(subject)).is_some() {
            out.push((Key::Mode { subject: Some(subject.to_string()) }.encode(), None));
        }
        out
    }

    /// Decides `DELETE /subjects/{s}/versions/{v}`: the version deleted and the records.
    pub fn plan_delete_version(
        &self,
        subject: &str,
        id: VersionId,
        permanent: bool,
    ) -> Result<(i32, Vec<Record>), RegistryError> {
        self.check_writable(subject)?;
        // A numbered version is found soft-deleted or not (to say which); `latest` is the
        // newest live one, or the newest of all for a permanent delete.
        let target = self.version(subject, id, permanent || matches!(id, VersionId::Number(_)))?;
        let v = target.version;
        self.check_not_referenced(subject, v)?;
        let key = Key::Schema { subject: subject.to_string(), version: v }.encode();
        if permanent {
            if !target.deleted {
                return Err(RegistryError::VersionNotSoftDeleted(subject.to_string(), v));
            }
            return Ok((v, vec![(key, None)]));
        }
        if target.deleted {
            return Err(RegistryError::VersionSoftDeleted(subject.to_string(), v));
        }
        let value = SchemaValue {
            subject: subject.to_string(),
            version: v,
            id: target.schema.id,
            schema_type: target.schema.schema_type,
            references: target.schema.references.clone(),
            schema: target.schema.schema.clone(),
            deleted: true,
        };
        let mut records = vec![(key, Some(value.encode()))];
        if self.entries(subject, false).len() == 1 {
            records.extend(self.subject_settings_tombstones(subject));
        }
        Ok((v, records))
    }

    /// Decides `DELETE /subjects/{s}`: the versions deleted and the records.
    pub fn plan_delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<(Vec<i32>, Vec<Record>), RegistryError> {
        self.check_writable(subject)?;
        let all = self.entries(subject, true);
        if all.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        let live: Vec<i32> = all.iter().filter(|(_, e)| !e.deleted).map(|(v, _)| *v).collect();
        if permanent {
            if !live.is_empty() {
                return Err(RegistryError::SubjectNotSoftDeleted(subject.to_string()));
            }
            let mut records = Vec::new();
            let mut versions = Vec::new();
            for (v, _) in &all {
                self.check_not_referenced(subject, *v)?;
                versions.push(*v);
                records.push((
                    Key::Schema { subject: subject.to_string(), version: *v }.encode(),
                    None,
                ));
            }
            return Ok((versions, records));
        }
        if live.is_empty() {
            return Err(RegistryError::SubjectSoftDeleted(subject.to_string()));
        }
        for v in &live {
            self.check_not_referenced(subject, *v)?;
        }
        let max = *live.last().unwrap_or(&0);
        let mut records = vec![(
            Key::DeleteSubject { subject: subject.to_string() }.encode(),
            Some(records::encode_delete_subject(subject, max)),
        )];
        records.extend(self.subject_settings_tombstones(subject));
        Ok((live, records))
    }

    /// Decides `PUT /config[/{s}]`: `update`'s fields over what is set; the settings then.
    pub fn plan_config(
        &self,
        subject: Option<&str>,
        update: Config,
    ) -> Result<(Config, Vec<Record>), RegistryError> {
        if let Some(s) = subject {
            super::check_subject(s)?;
            self.check_writable(s)?;
        }
        let config = update.over(self.settings(subject).unwrap_or_default());
        let key = Key::Config { subject: subject.map(str::to_string) }.encode();
        Ok((config, vec![(key, Some(records::encode_config(subject, config)))]))
    }

    /// Decides `DELETE /config[/{s}]`: the settings it had and the record.
    pub fn plan_delete_config(
        &self,
        subject: Option<&str>,
    ) -> Result<(Config, Vec<Record>), RegistryError> {
        let previous = match subject {
            Some(s) => {
                self.check_writable(s)?;
                self.settings(Some(s))
                    .ok_or_else(|| RegistryError::SubjectNotFound(s.to_string()))?
            }
            None => self.effective_settings(None),
        };
        let key = Key::Config { subject: subject.map(str::to_string) }.encode();
        Ok((previous, vec![(key, None)]))
    }

    /// Decides `PUT /mode[/{s}]` (`force`: into IMPORT even with live schemas).
    pub fn plan_mode(
        &self,
        subject: Option<&str>,
        mode: Mode,
        force: bool,
    ) -> Result<Vec<Record>, RegistryError> {
        if let Some(s) = subject {
            super::check_subject(s)?;
        }
        if mode == Mode::Import && !force {
            let live = match subject {
                Some(s) => !self.entries(s, false).is_empty(),
                None => !self.subjects(false).is_empty(),
            };
            if live {
                return Err(RegistryError::OperationNotPermitted(
                    "Cannot import since found existing subjects".into(),
                ));
            }
        }
        let key = Key::Mode { subject: subject.map(str::to_string) }.encode();
        Ok(vec![(key, Some(records::encode_mode(subject, mode)))])
    }

    /// Decides `DELETE /mode/{s}`: the mode it had and the record.
    pub fn plan_delete_mode(&self, subject: &str) -> Result<(Mode, Vec<Record>), RegistryError> {
        let previous = self
            .mode(Some(subject))
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_string()))?;
        Ok((previous, vec![(Key::Mode { subject: Some(subject.to_string()) }.encode(), None)]))
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
