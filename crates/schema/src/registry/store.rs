//! The registry's state, built by applying `_schemas` in order: every broker applies the
//! same records and reaches the same state. Reads answer from it; `plan` decides changes
//! against it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use super::RegistryError;
use super::records::{self, Config, Key, Mode, Reference, SchemaValue};
use crate::{Dependency, Level, ParsedSchema, SchemaType};

/// A schema as stored under its ID.
#[derive(Debug)]
pub struct Stored {
    /// Its global ID.
    pub id: i32,
    /// Its format.
    pub schema_type: SchemaType,
    /// Its canonical text.
    pub schema: String,
    /// The schemas it refers to.
    pub references: Vec<Reference>,
    parsed: OnceLock<Result<ParsedSchema, String>>,
}

/// What makes two registrations the same schema (Confluent: the canonical text and the
/// references; not the type).
type Content = (String, Vec<Reference>);

/// A subject's version as the API shows it.
#[derive(Debug, Clone)]
pub struct SubjectVersion {
    /// The subject.
    pub subject: String,
    /// The version.
    pub version: i32,
    /// Soft-deleted.
    pub deleted: bool,
    /// The schema.
    pub schema: Arc<Stored>,
}

/// A version in a request path: a number, or the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionId {
    /// The highest version (live, or any with `deleted`).
    Latest,
    /// This one.
    Number(i32),
}

impl VersionId {
    /// Confluent's rule: `latest` (any case, trimmed), `-1`, or 1..=2^31-1.
    pub fn parse(text: &str) -> Result<VersionId, RegistryError> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("latest") {
            return Ok(VersionId::Latest);
        }
        match t.parse::<i32>() {
            Ok(-1) => Ok(VersionId::Latest),
            Ok(n) if n >= 1 => Ok(VersionId::Number(n)),
            _ => Err(RegistryError::InvalidVersion(text.to_string())),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) id: i32,
    pub(crate) deleted: bool,
}

/// The registry's state.
#[derive(Debug, Default)]
pub struct Store {
    schemas: HashMap<i32, Arc<Stored>>,
    content: HashMap<Content, i32>,
    pub(crate) subjects: BTreeMap<String, BTreeMap<i32, Entry>>,
    uses: HashMap<i32, BTreeSet<(String, i32)>>,
    configs: BTreeMap<Option<String>, Config>,
    modes: BTreeMap<Option<String>, Mode>,
    max_id: i32,
    next_offset: i64,
}

impl Store {
    /// The offset of the next record to apply (all before it are applied).
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// The highest ID any applied record carried, deleted ones included.
    pub fn max_id(&self) -> i32 {
        self.max_id
    }

    /// Applies the record at `offset`. A record that cannot be read, or that would give an
    /// ID to a second schema, is skipped (the error says why); the offset advances either
    /// way, so every broker skips the same records.
    pub fn apply(&mut self, offset: i64, key: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        self.next_offset = self.next_offset.max(offset + 1);
        match Key::decode(key)? {
            Key::Schema { subject, version } => match value {
                None => {
                    self.remove_version(&subject, version);
                    Ok(())
                }
                Some(v) => {
                    self.apply_schema(SchemaValue::decode(v, &subject, version)?, &subject, version)
                }
            },
            Key::Config { subject } => {
                match value {
                    None => self.configs.remove(&subject),
                    Some(v) => self.configs.insert(subject, records::decode_config(v)?),
                };
                Ok(())
            }
            Key::Mode { subject } => {
                match value {
                    None => self.modes.remove(&subject),
                    Some(v) => self.modes.insert(subject, records::decode_mode(v)?),
                };
                Ok(())
            }
            Key::DeleteSubject { subject } => {
                let Some(v) = value else { return Ok(()) };
                let upto = records::decode_delete_subject(v)?;
                if let Some(versions) = self.subjects.get_mut(&subject) {
                    for (_, e) in versions.range_mut(..=upto) {
                        e.deleted = true;
                    }
                }
                Ok(())
            }
            Key::ClearSubject { subject } => {
                let deleted: Vec<i32> = self
                    .subjects
                    .get(&subject)
                    .map(|vs| vs.iter().filter(|(_, e)| e.deleted).map(|(v, _)| *v).collect())
                    .unwrap_or_default();
                for v in deleted {
                    self.remove_version(&subject, v);
                }
                Ok(())
            }
            Key::Noop | Key::Other(_) => Ok(()),
        }
    }

    fn apply_schema(
        &mut self,
        value: SchemaValue,
        subject: &str,
        version: i32,
    ) -> Result<(), String> {
        let content: Content = (value.schema.clone(), value.references.clone());
        if let Some(existing) = self.schemas.get(&value.id) {
            if (existing.schema.as_str(), &existing.references) != (content.0.as_str(), &content.1)
            {
                return Err(format!(
                    "ID {} already names another schema; the record for subject {subject} version {version} is ignored",
                    value.id
                ));
            }
        } else {
            self.schemas.insert(
                value.id,
                Arc::new(Stored {
                    id: value.id,
                    schema_type: value.schema_type,
                    schema: value.schema,
                    references: value.references,
                    parsed: OnceLock::new(),
                }),
            );
            self.content.entry(content).or_insert(value.id);
        }
        // A version rewritten with another ID (an import over a deleted one) drops the old use.
        if let Some(old) = self.subjects.get(subject).and_then(|vs| vs.get(&version)).map(|e| e.id)
            && old != value.id
        {
            self.remove_version(subject, version);
        }
        self.max_id = self.max_id.max(value.id);
        self.subjects
            .entry(subject.to_string())
            .or_default()
            .insert(version, Entry { id: value.id, deleted: value.deleted });
        self.uses.entry(value.id).or_default().insert((subject.to_string(), version));
        Ok(())
    }

    fn remove_version(&mut self, subject: &str, version: i32) {
        let Some(versions) = self.subjects.get_mut(subject) else { return };
        let Some(entry) = versions.remove(&version) else { return };
        if versions.is_empty() {
            self.subjects.remove(subject);
        }
        let Some(uses) = self.uses.get_mut(&entry.id) else { return };
        uses.remove(&(subject.to_string(), version));
        if uses.is_empty() {
            self.uses.remove(&entry.id);
            if let Some(s) = self.schemas.remove(&entry.id) {
                self.content.remove(&(s.schema.clone(), s.references.clone()));
            }
        }
    }

    /// The schema with this ID (soft-deleted versions keep it readable).
    pub fn schema(&self, id: i32) -> Result<Arc<Stored>, RegistryError> {
        self.schemas.get(&id).cloned().ok_or_else(|| RegistryError::SchemaNotFound(id.to_string()))
    }

    /// The ID of a schema with this content, wherever it is registered.
    pub(crate) fn id_of(&self, schema: &str, references: &[Reference]) -> Option<i32> {
        self.content.get(&(schema.to_string(), references.to_vec())).copied()
    }

    /// The subjects with a live version (or with any version, `deleted`), sorted.
    pub fn subjects(&self, deleted: bool) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(_, vs)| deleted || vs.values().any(|e| !e.deleted))
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// A subject's versions, live (or all, `deleted`).
    pub fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<i32>, RegistryError> {
        let list: Vec<i32> = self
            .subjects
            .get(subject)
            .map(|vs| vs.iter().filter(|(_, e)| deleted || !e.deleted).map(|(v, _)| *v).collect())
            .unwrap_or_default();
        if list.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        Ok(list)
    }

    fn entry(
        &self,
        subject: &str,
        version: i32,
        e: Entry,
    ) -> Result<SubjectVersion, RegistryError> {
        Ok(SubjectVersion {
            subject: subject.to_string(),
            version,
            deleted: e.deleted,
            schema: self.schema(e.id)?,
        })
    }

    /// One version of a subject.
    pub fn version(
        &self,
        subject: &str,
        id: VersionId,
        deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        let versions = self.versions(subject, deleted)?;
        let all = &self.subjects[subject];
        let v = match id {
            VersionId::Latest => *versions
                .last()
                .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_string()))?,
            VersionId::Number(n) => n,
        };
        match all.get(&v) {
            Some(e) if deleted || !e.deleted => self.entry(subject, v, *e),
            _ => Err(RegistryError::VersionNotFound(v.to_string())),
        }
    }

    /// The live versions (or all, `deleted`) of a subject, oldest first, with their entries.
    pub(crate) fn entries(&self, subject: &str, deleted: bool) -> Vec<(i32, Entry)> {
        self.subjects
            .get(subject)
            .map(|vs| {
                vs.iter().filter(|(_, e)| deleted || !e.deleted).map(|(v, e)| (*v, *e)).collect()
            })
            .unwrap_or_default()
    }

    /// The version of `subject` holding this content (the newest, when several).
    pub(crate) fn find(
        &self,
        subject: &str,
        schema: &str,
        references: &[Reference],
        deleted: bool,
    ) -> Option<(i32, Entry)> {
        let id = self.id_of(schema, references)?;
        self.entries(subject, deleted).into_iter().rev().find(|(_, e)| e.id == id)
    }

    /// The version of `subject` with this schema (the lookup of `POST /subjects/{s}`).
    pub fn lookup(
        &self,
        subject: &str,
        parsed: &ParsedSchema,
        references: &[Reference],
        deleted: bool,
    ) -> Result<SubjectVersion, RegistryError> {
        if self.entries(subject, deleted).is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        match self.find(subject, parsed.canonical(), references, deleted) {
            Some((v, e)) => self.entry(subject, v, e),
            None => Err(RegistryError::SchemaNotFound(String::new())),
        }
    }

    /// The (subject, version) pairs using a schema ID, live (or all, `deleted`).
    pub fn uses(&self, id: i32, deleted: bool) -> Result<Vec<(String, i32)>, RegistryError> {
        self.schema(id)?;
        Ok(self
            .uses
            .get(&id)
            .into_iter()
            .flatten()
            .filter(|(s, v)| {
                deleted || self.subjects.get(s).and_then(|vs| vs.get(v)).is_some_and(|e| !e.deleted)
            })
            .cloned()
            .collect())
    }

    /// Whether a version of `subject`, soft-deleted ones included, has schema `id`: what
    /// the broker's schema ID validation asks of a record (data written while a version
    /// was live stays valid after a soft delete).
    pub fn registered_under(&self, subject: &str, id: i32) -> bool {
        self.uses.get(&id).is_some_and(|uses| uses.iter().any(|(s, _)| s == subject))
    }

    /// The IDs of live schemas that refer to `subject`'s `version`.
    pub fn referenced_by(&self, subject: &str, version: i32) -> Vec<i32> {
        let mut ids: Vec<i32> = self
            .schemas
            .values()
            .filter(|s| s.references.iter().any(|r| r.subject == subject && r.version == version))
            .filter(|s| self.uses(s.id, false).is_ok_and(|u| !u.is_empty()))
            .map(|s| s.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The compatibility level set for a subject (or globally, `None`).
    pub fn config(&self, subject: Option<&str>) -> Option<Level> {
        self.settings(subject).and_then(|c| c.level)
    }

    /// What is set for a subject (or globally, `None`), when anything is.
    pub fn settings(&self, subject: Option<&str>) -> Option<Config> {
        self.configs.get(&subject.map(str::to_string)).copied()
    }

    /// The settings that apply to a subject (`None`: the global ones): each field its
    /// own, else the global one, else the default level (BACKWARD); `normalize` stays
    /// unset when set nowhere.
    pub fn effective_settings(&self, subject: Option<&str>) -> Config {
        let global = self.settings(None).unwrap_or_default();
        let own = subject.and_then(|s| self.settings(Some(s))).unwrap_or_default();
        own.over(global).over(Config { level: Some(Level::default()), normalize: None })
    }

    /// Whether a subject's schemas are normalized before registration, lookup and check
    /// (its `normalize`, else the global one).
    pub fn normalizes(&self, subject: &str) -> bool {
        self.effective_settings(Some(subject)).normalize.unwrap_or(false)
    }

    /// The level that applies to a subject: its own, else the global, else BACKWARD.
    pub fn effective_level(&self, subject: &str) -> Level {
        self.effective_settings(Some(subject)).level.unwrap_or_default()
    }

    /// The mode set for a subject (or globally, `None`).
    pub fn mode(&self, subject: Option<&str>) -> Option<Mode> {
        self.modes.get(&subject.map(str::to_string)).copied()
    }

    /// The mode that applies to a subject: a global READONLY_OVERRIDE, else its own, else
    /// the global, else READWRITE.
    pub fn effective_mode(&self, subject: &str) -> Mode {
        let global = self.mode(None).unwrap_or_default();
        if global == Mode::ReadOnlyOverride {
            return global;
        }
        self.mode(Some(subject)).unwrap_or(global)
    }

    /// Every schema `references` reach, directly or not, each before those that use it,
    /// as the format parsers want them. A schema reached under several reference names is
    /// listed under each (JSON Schema's `$ref`s use the names); its own references are
    /// visited once.
    pub fn dependencies(
        &self,
        references: &[Reference],
    ) -> Result<Vec<(String, Arc<Stored>)>, RegistryError> {
        let mut out: Vec<(String, Arc<Stored>)> = Vec::new();
        let mut seen = BTreeSet::new();
        for r in references {
            self.visit(r, &mut out, &mut seen, 0)?;
        }
        Ok(out)
    }

    fn visit(
        &self,
        r: &Reference,
        out: &mut Vec<(String, Arc<Stored>)>,
        seen: &mut BTreeSet<(String, i32)>,
        depth: usize,
    ) -> Result<(), RegistryError> {
        const MAX_DEPTH: usize = 64;
        if depth > MAX_DEPTH {
            return Err(RegistryError::InvalidSchema(format!(
                "references nest deeper than {MAX_DEPTH}"
            )));
        }
        let first = seen.insert((r.subject.clone(), r.version));
        if !first && out.iter().any(|(name, _)| *name == r.name) {
            return Ok(());
        }
        let target =
            self.version(&r.subject, VersionId::Number(r.version), true).map_err(|_| {
                RegistryError::InvalidSchema(format!(
                    "Invalid schema: reference {} to subject {} version {} not found",
                    r.name, r.subject, r.version
                ))
            })?;
        if first {
            for inner in &target.schema.references {
                self.visit(inner, out, seen, depth + 1)?;
            }
        }
        out.push((r.name.clone(), target.schema));
        Ok(())
    }

    /// Parses a schema with its references resolved from this state.
    pub fn parse(
        &self,
        schema_type: SchemaType,
        text: &str,
        references: &[Reference],
    ) -> Result<ParsedSchema, RegistryError> {
        let deps = self.dependencies(references)?;
        let list: Vec<Dependency<'_>> = deps
            .iter()
            .map(|(name, s)| Dependency { name, schema_type: s.schema_type, text: &s.schema })
            .collect();
        crate::parse(schema_type, text, &list).map_err(|e| RegistryError::InvalidSchema(e.0))
    }

    /// A schema as `normalize=true` asks: its normalized text
    /// ([`ParsedSchema::normalized`]) and its references sorted (by name, subject,
    /// version) without duplicates, as Confluent normalizes them.
    pub fn normalized(
        &self,
        schema_type: SchemaType,
        text: &str,
        references: &[Reference],
    ) -> Result<(String, Vec<Reference>), RegistryError> {
        let parsed = self.parse(schema_type, text, references)?;
        let text = parsed.normalized().map_err(|e| RegistryError::InvalidSchema(e.0))?;
        let mut references = references.to_vec();
        references.sort();
        references.dedup();
        Ok((text, references))
    }

    /// A stored schema's text in `format` (a request's `format` parameter): `serialized`
    /// gives a Protobuf schema as base64 of its FileDescriptorProto (what Confluent's
    /// Protobuf deserializers ask for); any other format, or none, the stored text.
    pub fn formatted(&self, stored: &Stored, format: Option<&str>) -> Result<String, String> {
        match format {
            Some(f) if f.eq_ignore_ascii_case("serialized") => {
                match self.parsed(stored)?.serialized() {
                    Some(serialized) => Ok(serialized),
                    None => Ok(stored.schema.clone()),
                }
            }
            _ => Ok(stored.schema.clone()),
        }
    }

    /// A stored schema, parsed (once) with its references.
    pub fn parsed<'a>(&self, stored: &'a Stored) -> Result<&'a ParsedSchema, String> {
        stored
            .parsed
            .get_or_init(|| {
                self.parse(stored.schema_type, &stored.schema, &stored.references)
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}
