//! Shale's schema formats and its schema registry's rules, by the rules of Confluent
//! Schema Registry: a schema's text is parsed and validated, printed in the canonical form
//! the registry stores and compares, and checked for compatibility with earlier versions
//! at a compatibility level, with Confluent's messages; the registry's log records, the
//! state they build and what each change writes. Pure: no I/O; the broker feeds and
//! appends the log, the REST front end serves the API.
//!
//! Layout:
//! - `json`: JSON with its keys in document order, printed as Jackson prints it.
//! - `avro` (private): Avro's type graph, its Java-style printer and Java's
//!   `SchemaCompatibility`.
//! - `json_schema` (private): JSON Schema validated against its draft's meta-schema, read
//!   into everit's typed model, and Confluent's `json/diff` compatibility checker.
//! - `protobuf` (private): .proto text or a serialized descriptor, compiled by protox,
//!   printed as Confluent prints it and diffed by Confluent's `protobuf/diff` rules.
//! - `wire`: Confluent's wire format of a serialized key or value (magic byte, schema ID).
//! - `decode`: such a key or value decoded to JSON with the schema that wrote it.
//! - `registry`: the `_schemas` records (Confluent's format), the state they build, and
//!   the rules of registrations, deletes, configs and modes.
//!
//! Served: Avro, Protobuf and JSON Schema.

mod avro;
pub mod decode;
pub mod json;
mod json_schema;
mod protobuf;
pub mod registry;
pub mod wire;

use std::fmt;
use std::str::FromStr;

/// A schema format, as the registry's `schemaType` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaType {
    /// Apache Avro (the default when a request names no type).
    Avro,
    /// Protocol Buffers.
    Protobuf,
    /// JSON Schema.
    Json,
}

impl SchemaType {
    /// The formats this build parses and checks.
    pub const SUPPORTED: &'static [SchemaType] =
        &[SchemaType::Avro, SchemaType::Protobuf, SchemaType::Json];

    /// The name in the registry's API: `AVRO`, `PROTOBUF`, `JSON`.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Protobuf => "PROTOBUF",
            SchemaType::Json => "JSON",
        }
    }
}

impl fmt::Display for SchemaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SchemaType {
    type Err = InvalidSchema;

    fn from_str(s: &str) -> Result<SchemaType, InvalidSchema> {
        match s {
            "AVRO" => Ok(SchemaType::Avro),
            "PROTOBUF" => Ok(SchemaType::Protobuf),
            "JSON" => Ok(SchemaType::Json),
            other => Err(InvalidSchema(format!("Invalid schema type {other}"))),
        }
    }
}

/// Why a schema's text is not a valid schema (the registry's 42201).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSchema(pub String);

/// A schema another refers to, resolved by the registry: its reference name (for Avro,
/// unused: names resolve by the types the text defines; for JSON Schema, what a `$ref`
/// names, resolved against the schema's `$id`), its type and its text.
#[derive(Debug, Clone, Copy)]
pub struct Dependency<'a> {
    /// The reference's `name` (Protobuf's import path, JSON Schema's `$ref`).
    pub name: &'a str,
    /// Its format.
    pub schema_type: SchemaType,
    /// Its text.
    pub text: &'a str,
}

/// A valid schema.
#[derive(Debug, Clone)]
pub struct ParsedSchema {
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    Avro(avro::AvroSchema),
    Json(json_schema::JsonSchema),
    Protobuf(protobuf::ProtobufSchema),
}

/// Parses and validates `text` as `schema_type`. `dependencies` are every schema it
/// refers to, directly or not, each before the ones that use it.
pub fn parse(
    schema_type: SchemaType,
    text: &str,
    dependencies: &[Dependency<'_>],
) -> Result<ParsedSchema, InvalidSchema> {
    match schema_type {
        SchemaType::Avro => {
            // A schema reached under two names is one set of named types.
            let mut refs: Vec<&str> = Vec::new();
            for d in dependencies {
                if !refs.contains(&d.text) {
                    refs.push(d.text);
                }
            }
            let schema = avro::AvroSchema::parse(text, &refs)
                .map_err(|e| InvalidSchema(format!("Invalid schema {text}: {e}")))?;
            Ok(ParsedSchema { inner: Inner::Avro(schema) })
        }
        SchemaType::Json => {
            let refs: Vec<(&str, &str)> = dependencies
                .iter()
                .filter(|d| d.schema_type == SchemaType::Json)
                .map(|d| (d.name, d.text))
                .collect();
            let schema = json_schema::JsonSchema::parse(text, &refs)
                .map_err(|e| InvalidSchema(format!("Invalid schema {text}: {e}")))?;
            Ok(ParsedSchema { inner: Inner::Json(schema) })
        }
        SchemaType::Protobuf => {
            let mut refs = Vec::new();
            for d in dependencies {
                if d.schema_type != SchemaType::Protobuf {
                    return Err(InvalidSchema(format!(
                        "Invalid schema {text}: reference '{}' is a {} schema, not PROTOBUF",
                        d.name, d.schema_type
                    )));
                }
                refs.push((d.name, d.text));
            }
            let schema = protobuf::ProtobufSchema::parse(text, &refs)
                .map_err(|e| InvalidSchema(format!("Invalid schema {text}: {e}")))?;
            Ok(ParsedSchema { inner: Inner::Protobuf(schema) })
        }
    }
}

impl ParsedSchema {
    /// Its format.
    pub fn schema_type(&self) -> SchemaType {
        match self.inner {
            Inner::Avro(_) => SchemaType::Avro,
            Inner::Json(_) => SchemaType::Json,
            Inner::Protobuf(_) => SchemaType::Protobuf,
        }
    }

    /// The canonical text: what the registry stores, returns and compares.
    pub fn canonical(&self) -> &str {
        match &self.inner {
            Inner::Avro(a) => a.canonical(),
            Inner::Json(j) => j.canonical(),
            Inner::Protobuf(p) => p.canonical(),
        }
    }

    /// The normalized text (`normalize=true`): Avro's canonical text (what Confluent 7.x's
    /// `normalize()` gives), JSON Schema's with every object's keys sorted, Protobuf's as
    /// Confluent's `toNormalizedString` prints it (qualified names, declarations sorted).
    pub fn normalized(&self) -> Result<String, InvalidSchema> {
        match &self.inner {
            Inner::Avro(a) => Ok(a.canonical().to_string()),
            Inner::Json(j) => Ok(j.normalized()),
            Inner::Protobuf(p) => p.normalized().map_err(|e| {
                InvalidSchema(format!("Invalid schema {}, details: {e}", p.canonical()))
            }),
        }
    }

    /// The serialized form (`?format=serialized`): base64 of a Protobuf schema's
    /// FileDescriptorProto; None for the other formats, which have none.
    pub fn serialized(&self) -> Option<String> {
        match &self.inner {
            Inner::Protobuf(p) => Some(p.serialized().to_string()),
            _ => None,
        }
    }

    /// The full name of the Protobuf message at `indexes` (Confluent's message indexes
    /// of the wire format; empty means the first message); None when there is no message
    /// there or the schema is not Protobuf.
    pub fn message_name_at(&self, indexes: &[i32]) -> Option<String> {
        match &self.inner {
            Inner::Protobuf(p) => p.message_name_at(indexes),
            _ => None,
        }
    }

    /// The name of the record it describes (RecordNameStrategy's subject), when named: for
    /// JSON Schema, its `title` (Confluent's `JsonSchema.name()`).
    pub fn record_name(&self) -> Option<String> {
        match &self.inner {
            Inner::Avro(a) => a.record_name(),
            Inner::Json(j) => j.title(),
            Inner::Protobuf(p) => p.record_name(),
        }
    }

    /// Confluent's `isBackwardCompatible`: why `self` cannot read what `writer` wrote,
    /// the reader named `reader_label` and the writer `writer_label` in the messages.
    fn can_read(
        &self,
        writer: &ParsedSchema,
        reader_label: &str,
        writer_label: &str,
    ) -> Vec<String> {
        match (&self.inner, &writer.inner) {
            (Inner::Avro(r), Inner::Avro(w)) => r.can_read(w, reader_label, writer_label),
            (Inner::Json(r), Inner::Json(w)) => r.can_read(w, reader_label, writer_label),
            (Inner::Protobuf(r), Inner::Protobuf(w)) => r.can_read(w, reader_label, writer_label),
            // Never in one subject (the checks compare types first); said plainly if it is.
            _ => vec!["Incompatible because of different schema type".into()],
        }
    }
}

/// A subject's compatibility level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Level {
    /// No check.
    None,
    /// The new schema reads data written with the latest (the global default).
    #[default]
    Backward,
    /// ... with every earlier version.
    BackwardTransitive,
    /// The latest reads data written with the new schema.
    Forward,
    /// ... every earlier version does.
    ForwardTransitive,
    /// Both ways, with the latest.
    Full,
    /// Both ways, with every earlier version.
    FullTransitive,
}

impl Level {
    /// The name in the registry's API.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn transitive(self) -> bool {
        matches!(self, Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not one of the seven levels (the registry's 42203).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive"
)]
pub struct InvalidLevel;

impl FromStr for Level {
    type Err = InvalidLevel;

    /// Case-insensitive, as Confluent reads it.
    fn from_str(s: &str) -> Result<Level, InvalidLevel> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "NONE" => Level::None,
            "BACKWARD" => Level::Backward,
            "BACKWARD_TRANSITIVE" => Level::BackwardTransitive,
            "FORWARD" => Level::Forward,
            "FORWARD_TRANSITIVE" => Level::ForwardTransitive,
            "FULL" => Level::Full,
            "FULL_TRANSITIVE" => Level::FullTransitive,
            _ => return Err(InvalidLevel),
        })
    }
}

/// An earlier version of the subject, to check a new schema against.
#[derive(Debug, Clone, Copy)]
pub struct Previous<'a> {
    /// Its version number.
    pub version: i32,
    /// The schema.
    pub schema: &'a ParsedSchema,
}

/// Why `new` may not follow `previous` (the subject's live versions, oldest first) at
/// `level`: Confluent's `CompatibilityChecker` — the latest only, or every version newest
/// first stopping at the first that fails, each failure followed by
/// `{oldSchemaVersion: N}` and `{oldSchema: '...'}`. Empty when compatible.
pub fn check(level: Level, new: &ParsedSchema, previous: &[Previous<'_>]) -> Vec<String> {
    if level == Level::None {
        return Vec::new();
    }
    let against: Vec<&Previous<'_>> = match level.transitive() {
        true => previous.iter().rev().collect(),
        false => previous.last().into_iter().collect(),
    };
    for old in against {
        let messages = check_one(level, new, old);
        if !messages.is_empty() {
            return messages;
        }
    }
    Vec::new()
}

fn check_one(level: Level, new: &ParsedSchema, old: &Previous<'_>) -> Vec<String> {
    let backward = |appended: bool| with_old(new_reads_old(new, old.schema), old, appended);
    let forward = |appended: bool| with_old(old_reads_new(new, old.schema), old, appended);
    match level {
        Level::None => Vec::new(),
        Level::Backward | Level::BackwardTransitive => backward(true),
        Level::Forward | Level::ForwardTransitive => forward(true),
        Level::Full | Level::FullTransitive => {
            let mut messages = forward(false);
            messages.extend(backward(true));
            messages
        }
    }
}

fn new_reads_old(new: &ParsedSchema, old: &ParsedSchema) -> Vec<String> {
    if new.schema_type() != old.schema_type() {
        return vec!["Incompatible because of different schema type".into()];
    }
    new.can_read(old, "new", "old")
}

fn old_reads_new(new: &ParsedSchema, old: &ParsedSchema) -> Vec<String> {
    if new.schema_type() != old.schema_type() {
        return vec!["Incompatible because of different schema type".into()];
    }
    old.can_read(new, "old", "new")
}

/// Confluent's `formatErrorMessages`: the old version and its text after the reasons.
fn with_old(mut messages: Vec<String>, old: &Previous<'_>, append: bool) -> Vec<String> {
    const MAX_SCHEMA_FOR_MESSAGE: usize = 10 * 1024;
    if messages.is_empty() || !append {
        return messages;
    }
    messages.push(format!("{{oldSchemaVersion: {}}}", old.version));
    let text = old.schema.canonical();
    if text.len() <= MAX_SCHEMA_FOR_MESSAGE {
        messages.push(format!("{{oldSchema: '{text}'}}"));
    } else {
        let mut end = MAX_SCHEMA_FOR_MESSAGE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        messages.push(format!(
            "{{oldSchema: <truncated to {MAX_SCHEMA_FOR_MESSAGE} characters> '{}'}}",
            &text[..end]
        ));
    }
    messages
}
