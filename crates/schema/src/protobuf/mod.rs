//! Protobuf, as Confluent's registry handles it (`ProtobufSchema`): a schema is .proto
//! text, or a base64 FileDescriptorProto (what Python's confluent-kafka registers);
//! references are other .proto files by import path; `google/protobuf/*.proto`,
//! `google/type/*.proto` and Confluent's `confluent/meta.proto` and
//! `confluent/type/*.proto` resolve without one. protox compiles and validates; the file
//! is also read into Square Wire's element model (`parse`, or `descriptor` for the
//! serialized form), which `print` prints as Confluent's `canonicalString()` and `diff`
//! compares as Confluent's `SchemaDiff` does.

mod ast;
mod descriptor;
mod diff;
mod jorder;
mod normalize;
mod parse;
mod print;
mod scope;

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use prost::Message as _;
use prost_types::FileDescriptorProto;

use self::ast::{File, Type};
use self::scope::{Origin, Side};

/// The name the schema itself is compiled under (a reference is compiled under its own).
const ROOT: &str = "__schema__.proto";

/// The file name of the serialized form, as Confluent's `toDynamicSchema()` names it.
const SERIALIZED_NAME: &str = "default";

/// A valid Protobuf schema with its canonical text and serialized form.
#[derive(Debug, Clone)]
pub(crate) struct ProtobufSchema {
    file: Box<File>,
    dependencies: Vec<Dependency>,
    canonical: String,
    serialized: String,
    /// The compiled files, which decode data.
    pool: prost_reflect::DescriptorPool,
}

#[derive(Debug, Clone)]
struct Dependency {
    name: String,
    text: String,
    file: File,
}

/// A file as given: text, or a decoded FileDescriptorProto.
enum Source {
    Text(String),
    Descriptor(Box<FileDescriptorProto>),
}

/// Confluent's `toProtoFile(String)`: .proto text, else base64 of a FileDescriptorProto;
/// the text's syntax error when it is neither.
fn read(text: &str) -> Result<(File, Source), String> {
    match parse::parse(text) {
        Ok(file) => Ok((file, Source::Text(text.to_string()))),
        Err(e) => {
            let decoded = BASE64
                .decode(text.trim())
                .ok()
                .and_then(|bytes| FileDescriptorProto::decode(bytes.as_slice()).ok())
                .filter(|_| !text.trim().is_empty());
            match decoded {
                // prost-reflect panics labelling this error (see `parse`).
                Some(fd) if !matches!(fd.syntax(), "" | "proto2" | "proto3") => {
                    Err(format!("Could not parse Protobuf - unknown syntax '{}'", fd.syntax()))
                }
                Some(fd) => Ok((descriptor::file(&fd), Source::Descriptor(Box::new(fd)))),
                None => Err(format!("Could not parse Protobuf - {e}")),
            }
        }
    }
}

/// References by import path, for protox; unknown paths fall through to the next resolver.
struct Memory(HashMap<String, Source>);

impl protox::file::FileResolver for Memory {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        match self.0.get(name) {
            Some(Source::Text(text)) => protox::file::File::from_source(name, text),
            Some(Source::Descriptor(fd)) => {
                let mut fd = (**fd).clone();
                fd.name = Some(name.to_string());
                Ok(protox::file::File::from_file_descriptor_proto(fd))
            }
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// The files Confluent resolves without a reference besides `google/protobuf/*.proto`
/// (its `KNOWN_DEPENDENCIES`; see known/README.md).
const KNOWN_FILES: &[(&str, &str)] = &[
    ("confluent/meta.proto", include_str!("known/confluent/meta.proto")),
    ("confluent/type/decimal.proto", include_str!("known/confluent/type/decimal.proto")),
    ("confluent/type/variant.proto", include_str!("known/confluent/type/variant.proto")),
    ("google/type/calendar_period.proto", include_str!("known/google/type/calendar_period.proto")),
    ("google/type/color.proto", include_str!("known/google/type/color.proto")),
    ("google/type/date.proto", include_str!("known/google/type/date.proto")),
    ("google/type/datetime.proto", include_str!("known/google/type/datetime.proto")),
    ("google/type/dayofweek.proto", include_str!("known/google/type/dayofweek.proto")),
    ("google/type/decimal.proto", include_str!("known/google/type/decimal.proto")),
    ("google/type/expr.proto", include_str!("known/google/type/expr.proto")),
    ("google/type/fraction.proto", include_str!("known/google/type/fraction.proto")),
    ("google/type/interval.proto", include_str!("known/google/type/interval.proto")),
    ("google/type/latlng.proto", include_str!("known/google/type/latlng.proto")),
    ("google/type/money.proto", include_str!("known/google/type/money.proto")),
    ("google/type/month.proto", include_str!("known/google/type/month.proto")),
    ("google/type/phone_number.proto", include_str!("known/google/type/phone_number.proto")),
    ("google/type/postal_address.proto", include_str!("known/google/type/postal_address.proto")),
    ("google/type/quaternion.proto", include_str!("known/google/type/quaternion.proto")),
    ("google/type/timeofday.proto", include_str!("known/google/type/timeofday.proto")),
];

/// Resolves `KNOWN_FILES`.
struct Known;

impl protox::file::FileResolver for Known {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        match KNOWN_FILES.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => protox::file::File::from_source(name, text),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// `text` with 1-based line and column of byte `offset`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// protox's message, with where in which file.
fn describe(e: &protox::Error, root: &str, references: &HashMap<String, String>) -> String {
    use miette::Diagnostic;
    let file = e.file().unwrap_or(ROOT);
    let text = if file == ROOT { Some(root) } else { references.get(file).map(String::as_str) };
    let offset = e.labels().and_then(|mut l| l.next()).map(|l| l.offset());
    let place = match (text, offset) {
        (Some(text), Some(offset)) => {
            let (line, column) = line_column(text, offset);
            format!(" (line {line}, column {column})")
        }
        _ => String::new(),
    };
    match file {
        ROOT => format!("{e}{place}"),
        other => format!("{e} in reference '{other}'{place}"),
    }
}

/// The files a schema may use without a reference (Confluent's `KNOWN_DEPENDENCIES`):
/// types the diff may meet. `google/protobuf/*.proto` are read from their descriptors.
fn known() -> &'static [(String, File)] {
    static KNOWN: OnceLock<Vec<(String, File)>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let texts = KNOWN_FILES
            .iter()
            .filter_map(|(name, text)| Some((name.to_string(), parse::parse(text).ok()?)));
        let google = prost_reflect::DescriptorPool::global()
            .files()
            .filter(|f| f.name().starts_with("google/protobuf/"))
            .map(|f| (f.name().to_string(), descriptor::file(f.file_descriptor_proto())))
            .collect::<Vec<_>>();
        texts.chain(google).collect()
    })
}

/// protoc's default `json_name` of a field: lowerCamelCase of its name.
fn default_json_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The serialized form of the compiled `file`: its FileDescriptorProto with custom
/// options kept, named `default`, without the `json_name`s protox fills in for every field
/// (protoc's descriptors, and Confluent's, carry one only when the schema sets it).
fn serialize(file: &prost_reflect::FileDescriptor) -> String {
    use prost_reflect::{DynamicMessage, Value};
    fn strip(m: &mut DynamicMessage) {
        for list in ["field", "extension"] {
            if let Some(Value::List(fields)) = m.get_field_by_name_mut(list) {
                for f in fields.iter_mut().filter_map(|f| f.as_message_mut()) {
                    let name =
                        f.get_field_by_name("name").and_then(|v| v.as_str().map(str::to_string));
                    let json = f
                        .get_field_by_name("json_name")
                        .and_then(|v| v.as_str().map(str::to_string));
                    if name.map(|n| default_json_name(&n)) == json {
                        f.clear_field_by_name("json_name");
                    }
                }
            }
        }
        // A file's messages, a message's nested ones.
        for list in ["message_type", "nested_type"] {
            if let Some(Value::List(nested)) = m.get_field_by_name_mut(list) {
                nested.iter_mut().filter_map(|n| n.as_message_mut()).for_each(strip);
            }
        }
    }
    let bytes = file.encode_to_vec();
    let global = prost_reflect::DescriptorPool::global();
    let Some(desc) = global.get_message_by_name("google.protobuf.FileDescriptorProto") else {
        return BASE64.encode(bytes);
    };
    let Ok(mut message) = DynamicMessage::decode(desc, bytes.as_slice()) else {
        return BASE64.encode(bytes);
    };
    message.set_field_by_name("name", Value::String(SERIALIZED_NAME.to_string()));
    strip(&mut message);
    BASE64.encode(message.encode_to_vec())
}

impl ProtobufSchema {
    /// Parses and validates `text` with `references` (import path, text), each a .proto
    /// text or a base64 FileDescriptorProto. The error says what is wrong, and where.
    pub(crate) fn parse(text: &str, references: &[(&str, &str)]) -> Result<ProtobufSchema, String> {
        let mut dependencies = Vec::new();
        let mut sources = HashMap::new();
        let mut texts = HashMap::new();
        for &(name, dep_text) in references {
            let (file, source) =
                read(dep_text).map_err(|e| format!("{e} in reference '{name}'"))?;
            dependencies.push(Dependency { name: name.into(), text: dep_text.into(), file });
            sources.insert(name.to_string(), source);
            texts.insert(name.to_string(), dep_text.to_string());
        }
        let (file, source) = read(text)?;
        sources.insert(ROOT.to_string(), source);

        let compile = || {
            let mut resolver = protox::file::ChainFileResolver::new();
            resolver.add(Memory(sources));
            resolver.add(Known);
            resolver.add(protox::file::GoogleFileResolver::new());
            let mut compiler = protox::Compiler::with_file_resolver(resolver);
            compiler.open_file(ROOT).map_err(|e| describe(&e, text, &texts))?;
            let compiled = compiler
                .descriptor_pool()
                .get_file_by_name(ROOT)
                .ok_or_else(|| "the schema did not compile".to_string())?;
            Ok::<_, String>((serialize(&compiled), compiler.descriptor_pool()))
        };
        // prost-reflect 0.16.5 panics (an index out of bounds where it labels an error)
        // on some malformed descriptors; this is network input.
        let (serialized, pool) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(compile))
            .unwrap_or_else(|_| Err("the schema's descriptor is malformed".to_string()))?;
        let canonical = print::print(&file);
        Ok(ProtobufSchema { file: Box::new(file), dependencies, canonical, serialized, pool })
    }

    /// Confluent's `canonicalString()`: the text the registry stores and returns.
    pub(crate) fn canonical(&self) -> &str {
        &self.canonical
    }

    /// Confluent's `toNormalizedString`: the text `normalize=true` registers and looks up.
    /// An error names a type Confluent's resolution does not find.
    pub(crate) fn normalized(&self) -> Result<String, String> {
        Ok(print::print(&normalize::normalize(&self.side())?))
    }

    /// Confluent's `formattedString("serialized")`: base64 of the FileDescriptorProto
    /// (named `default`), as protox compiles it.
    pub(crate) fn serialized(&self) -> &str {
        &self.serialized
    }

    /// Confluent's `name()`: the first message's full name, else the first enum's.
    pub(crate) fn record_name(&self) -> Option<String> {
        let first = |message: bool| {
            self.file.types.iter().find(|t| matches!(t, Type::Message(_)) == message)
        };
        let ty = first(true).or_else(|| first(false))?;
        Some(self.qualified(ty.name()))
    }

    fn qualified(&self, name: &str) -> String {
        match self.file.package.as_deref() {
            Some(p) if !p.is_empty() => format!("{p}.{name}"),
            _ => name.to_string(),
        }
    }

    /// Confluent's `toMessageName(MessageIndexes)`: the full name of the message at
    /// `indexes` (among the top-level messages, then among that one's nested messages,
    /// and so on; enums do not count); empty means `[0]`. None when there is none there.
    pub(crate) fn message_name_at(&self, indexes: &[i32]) -> Option<String> {
        let indexes = if indexes.is_empty() { &[0][..] } else { indexes };
        let mut types = &self.file.types[..];
        let mut names = Vec::new();
        for &index in indexes {
            let message = types
                .iter()
                .filter_map(|t| match t {
                    Type::Message(m) => Some(m),
                    Type::Enum(_) => None,
                })
                .nth(usize::try_from(index).ok()?)?;
            names.push(message.name.as_str());
            types = &message.nested;
        }
        Some(self.qualified(&names.join(".")))
    }

    /// `data` (the wire format's message indexes, then the message) decoded as the
    /// message they name, as proto3's JSON mapping prints it (prost's recursion limit
    /// bounds the depth).
    pub(crate) fn decode(&self, data: &[u8]) -> Result<serde_json::Value, String> {
        let (indexes, taken) = crate::wire::message_indexes(data)
            .ok_or("the Protobuf message indexes before the message are malformed")?;
        let name = self
            .message_name_at(&indexes)
            .ok_or_else(|| format!("the schema has no message at indexes {indexes:?}"))?;
        let descriptor = self
            .pool
            .get_message_by_name(&name)
            .ok_or_else(|| format!("message {name} is not in the compiled schema"))?;
        let message = prost_reflect::DynamicMessage::decode(descriptor, &data[taken..])
            .map_err(|e| format!("not a {name} message: {e}"))?;
        serde_json::to_value(&message).map_err(|e| format!("{name} as JSON: {e}"))
    }

    fn side(&self) -> Side<'_> {
        let mut dependencies: Vec<(Origin, &File)> = self
            .dependencies
            .iter()
            .map(|d| (Origin::Reference { name: d.name.clone(), text: d.text.clone() }, &d.file))
            .collect();
        for (name, file) in known() {
            if !self.dependencies.iter().any(|d| &d.name == name) {
                dependencies.push((Origin::Known, file));
            }
        }
        Side { file: &self.file, dependencies }
    }

    /// Confluent's `ProtobufSchema.isBackwardCompatible(previous)`: the incompatible
    /// differences from `previous` (the writer's) to `self` (the reader's), the `%s` of
    /// Confluent's messages filled with `reader` and `writer`.
    pub(crate) fn can_read(
        &self,
        previous: &ProtobufSchema,
        reader: &str,
        writer: &str,
    ) -> Vec<String> {
        diff::compare(&previous.side(), &self.side())
            .iter()
            .filter(|d| !d.kind.is_compatible())
            .map(|d| d.describe(reader, writer))
            .collect()
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod diff_tests;

#[cfg(test)]
mod normalize_tests;
