//! The records of the registry's log (`_schemas`), in Confluent Schema Registry's format
//! byte for byte: keys are written exactly as Confluent's Jackson writes them (compaction
//! and tombstones match on the key's bytes, and a user moving from Confluent or Karapace
//! copies their topic in), values as Confluent writes them; both are read tolerantly
//! (unknown fields ignored, a `null` subject read as absent, as Karapace and Redpanda
//! write it).

use serde_json::{Map, Value};

use crate::json::write_string;
use crate::{Level, SchemaType};

/// A schema's reference to another subject's version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// The name the referring schema uses for it (import path, `$ref`, or type name).
    pub name: String,
    /// The subject holding it.
    pub subject: String,
    /// The version under that subject.
    pub version: i32,
}

/// A registry mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Registrations and deletes allowed (the default).
    #[default]
    ReadWrite,
    /// No change allowed.
    ReadOnly,
    /// As READONLY, and it overrides every subject's mode when global.
    ReadOnlyOverride,
    /// Registrations must carry their ID (moving from another registry).
    Import,
}

impl Mode {
    /// The name in the API and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
            Mode::ReadOnlyOverride => "READONLY_OVERRIDE",
            Mode::Import => "IMPORT",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = ();

    fn from_str(s: &str) -> Result<Mode, ()> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "READWRITE" => Mode::ReadWrite,
            "READONLY" => Mode::ReadOnly,
            "READONLY_OVERRIDE" => Mode::ReadOnlyOverride,
            "IMPORT" => Mode::Import,
            _ => return Err(()),
        })
    }
}

/// A record's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A subject's version.
    Schema { subject: String, version: i32 },
    /// A subject's compatibility level, or the global one.
    Config { subject: Option<String> },
    /// A subject's mode, or the global one.
    Mode { subject: Option<String> },
    /// A soft delete of a whole subject.
    DeleteSubject { subject: String },
    /// A subject's soft-deleted versions purged (switching to IMPORT).
    ClearSubject { subject: String },
    /// A marker with no effect.
    Noop,
    /// A key type this registry does not use (a newer registry's context records): skipped.
    Other(String),
}

impl Key {
    /// The key's bytes, exactly as Confluent writes them.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::from("{\"keytype\":");
        let subject_field = |out: &mut String, subject: &str| {
            out.push_str(",\"subject\":");
            write_string(subject, out);
        };
        match self {
            Key::Schema { subject, version } => {
                out.push_str("\"SCHEMA\"");
                subject_field(&mut out, subject);
                out.push_str(&format!(",\"version\":{version},\"magic\":1}}"));
                return out.into_bytes();
            }
            Key::Config { subject } | Key::Mode { subject } => {
                out.push_str(if matches!(self, Key::Config { .. }) {
                    "\"CONFIG\""
                } else {
                    "\"MODE\""
                });
                if let Some(s) = subject {
                    subject_field(&mut out, s);
                }
            }
            Key::DeleteSubject { subject } => {
                out.push_str("\"DELETE_SUBJECT\"");
                subject_field(&mut out, subject);
            }
            Key::ClearSubject { subject } => {
                out.push_str("\"CLEAR_SUBJECT\"");
                subject_field(&mut out, subject);
            }
            Key::Noop => out.push_str("\"NOOP\""),
            Key::Other(t) => write_string(t, &mut out),
        }
        out.push_str(",\"magic\":0}");
        out.into_bytes()
    }

    /// Reads a key; the error names what is wrong with it.
    pub fn decode(bytes: &[u8]) -> Result<Key, String> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("key is not JSON: {e}"))?;
        let o = v.as_object().ok_or("key is not a JSON object")?;
        let keytype = o.get("keytype").and_then(Value::as_str).ok_or("key has no keytype")?;
        let subject = o.get("subject").and_then(Value::as_str).map(str::to_string);
        let need = |s: Option<String>| s.ok_or(format!("{keytype} key has no subject"));
        Ok(match keytype {
            "SCHEMA" => Key::Schema {
                subject: need(subject)?,
                version: int_field(o, "version").ok_or("SCHEMA key has no version")?,
            },
            "CONFIG" => Key::Config { subject },
            "MODE" => Key::Mode { subject },
            "DELETE_SUBJECT" => Key::DeleteSubject { subject: need(subject)? },
            "CLEAR_SUBJECT" => Key::ClearSubject { subject: need(subject)? },
            "NOOP" => Key::Noop,
            other => Key::Other(other.to_string()),
        })
    }
}

fn int_field(o: &Map<String, Value>, name: &str) -> Option<i32> {
    o.get(name).and_then(Value::as_i64).and_then(|v| i32::try_from(v).ok())
}

/// A SCHEMA record's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaValue {
    /// The subject.
    pub subject: String,
    /// The version under it.
    pub version: i32,
    /// The schema's global ID.
    pub id: i32,
    /// Its format.
    pub schema_type: SchemaType,
    /// The schemas it refers to.
    pub references: Vec<Reference>,
    /// Its canonical text.
    pub schema: String,
    /// Soft-deleted.
    pub deleted: bool,
}

impl SchemaValue {
    /// The value's bytes, as Confluent writes them (`schemaType` left out for Avro,
    /// `references` when empty).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::from("{\"subject\":");
        write_string(&self.subject, &mut out);
        out.push_str(&format!(",\"version\":{},\"id\":{}", self.version, self.id));
        if self.schema_type != SchemaType::Avro {
            out.push_str(&format!(",\"schemaType\":\"{}\"", self.schema_type));
        }
        if !self.references.is_empty() {
            out.push_str(",\"references\":");
            out.push_str(&encode_references(&self.references));
        }
        out.push_str(",\"schema\":");
        write_string(&self.schema, &mut out);
        out.push_str(&format!(",\"deleted\":{}}}", self.deleted));
        out.into_bytes()
    }

    /// Reads a value; the subject and version come from the key when the value lacks them.
    pub fn decode(bytes: &[u8], subject: &str, version: i32) -> Result<SchemaValue, String> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("SCHEMA value is not JSON: {e}"))?;
        let o = v.as_object().ok_or("SCHEMA value is not a JSON object")?;
        let schema_type = match o.get("schemaType").and_then(Value::as_str) {
            None => SchemaType::Avro,
            Some(t) => t.parse().map_err(|e: crate::InvalidSchema| e.0)?,
        };
        Ok(SchemaValue {
            subject: o.get("subject").and_then(Value::as_str).unwrap_or(subject).to_string(),
            version: int_field(o, "version").unwrap_or(version),
            id: int_field(o, "id").ok_or("SCHEMA value has no id")?,
            schema_type,
            references: decode_references(o.get("references"))?,
            schema: o
                .get("schema")
                .and_then(Value::as_str)
                .ok_or("SCHEMA value has no schema")?
                .to_string(),
            deleted: o.get("deleted").and_then(Value::as_bool).unwrap_or(false),
        })
    }
}

/// References as the API and the log write them.
pub fn encode_references(refs: &[Reference]) -> String {
    let mut out = String::from("[");
    for (i, r) in refs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        write_string(&r.name, &mut out);
        out.push_str(",\"subject\":");
        write_string(&r.subject, &mut out);
        out.push_str(&format!(",\"version\":{}}}", r.version));
    }
    out.push(']');
    out
}

/// References read from a JSON array (absent or null: none).
pub fn decode_references(v: Option<&Value>) -> Result<Vec<Reference>, String> {
    let Some(Value::Array(list)) = v else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|r| {
            let o = r.as_object().ok_or("a reference is not a JSON object")?;
            Ok(Reference {
                name: o
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or("a reference has no name")?
                    .to_string(),
                subject: o
                    .get("subject")
                    .and_then(Value::as_str)
                    .ok_or("a reference has no subject")?
                    .to_string(),
                version: int_field(o, "version").ok_or("a reference has no version")?,
            })
        })
        .collect()
}

/// A subject's settings (or the global ones): what is set, each field on its own (a
/// subject's unset field falls back to the global one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Config {
    /// `compatibilityLevel`.
    pub level: Option<Level>,
    /// `normalize`: registrations, lookups and checks normalize the schema first.
    pub normalize: Option<bool>,
}

impl Config {
    /// `self`'s fields, else `under`'s.
    pub fn over(self, under: Config) -> Config {
        Config { level: self.level.or(under.level), normalize: self.normalize.or(under.normalize) }
    }
}

/// A CONFIG value: `{"subject"?,"compatibilityLevel"?:...,"normalize"?:...}`.
pub fn encode_config(subject: Option<&str>, config: Config) -> Vec<u8> {
    let mut fields = Vec::new();
    if let Some(s) = subject {
        let mut text = String::from("\"subject\":");
        write_string(s, &mut text);
        fields.push(text);
    }
    if let Some(level) = config.level {
        fields.push(format!("\"compatibilityLevel\":\"{level}\""));
    }
    if let Some(normalize) = config.normalize {
        fields.push(format!("\"normalize\":{normalize}"));
    }
    format!("{{{}}}", fields.join(",")).into_bytes()
}

/// Reads a CONFIG value.
pub fn decode_config(bytes: &[u8]) -> Result<Config, String> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("CONFIG value is not JSON: {e}"))?;
    let level = match v.get("compatibilityLevel") {
        None | Some(Value::Null) => None,
        Some(Value::String(level)) => {
            Some(level.parse().map_err(|_| format!("CONFIG value has an unknown level {level}"))?)
        }
        Some(other) => return Err(format!("CONFIG value has a compatibilityLevel {other}")),
    };
    let normalize = match v.get("normalize") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => return Err(format!("CONFIG value has a normalize {other}")),
    };
    Ok(Config { level, normalize })
}

/// A MODE value: `{"subject"?,"mode":...}`.
pub fn encode_mode(subject: Option<&str>, mode: Mode) -> Vec<u8> {
    let mut out = String::from("{");
    if let Some(s) = subject {
        out.push_str("\"subject\":");
        write_string(s, &mut out);
        out.push(',');
    }
    out.push_str(&format!("\"mode\":\"{}\"}}", mode.as_str()));
    out.into_bytes()
}

/// Reads a MODE value.
pub fn decode_mode(bytes: &[u8]) -> Result<Mode, String> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("MODE value is not JSON: {e}"))?;
    let mode = v.get("mode").and_then(Value::as_str).ok_or("MODE value has no mode")?;
    mode.parse().map_err(|_| format!("MODE value has an unknown mode {mode}"))
}

/// A DELETE_SUBJECT value: `{"subject":...,"version":<the highest version deleted>}`.
pub fn encode_delete_subject(subject: &str, version: i32) -> Vec<u8> {
    let mut out = String::from("{\"subject\":");
    write_string(subject, &mut out);
    out.push_str(&format!(",\"version\":{version}}}"));
    out.into_bytes()
}

/// Reads a DELETE_SUBJECT value's version.
pub fn decode_delete_subject(bytes: &[u8]) -> Result<i32, String> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("DELETE_SUBJECT value is not JSON: {e}"))?;
    v.as_object()
        .and_then(|o| int_field(o, "version"))
        .ok_or_else(|| "DELETE_SUBJECT value has no version".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_written_exactly_as_confluent_writes_them() {
        let cases = [
            (
                Key::Schema { subject: "orders-value".into(), version: 3 },
                r#"{"keytype":"SCHEMA","subject":"orders-value","version":3,"magic":1}"#,
            ),
            (
                Key::Config { subject: Some("s".into()) },
                r#"{"keytype":"CONFIG","subject":"s","magic":0}"#,
            ),
            (Key::Config { subject: None }, r#"{"keytype":"CONFIG","magic":0}"#),
            (Key::Mode { subject: None }, r#"{"keytype":"MODE","magic":0}"#),
            (
                Key::DeleteSubject { subject: "s".into() },
                r#"{"keytype":"DELETE_SUBJECT","subject":"s","magic":0}"#,
            ),
            (
                Key::ClearSubject { subject: "s".into() },
                r#"{"keytype":"CLEAR_SUBJECT","subject":"s","magic":0}"#,
            ),
            (Key::Noop, r#"{"keytype":"NOOP","magic":0}"#),
        ];
        for (key, want) in cases {
            assert_eq!(String::from_utf8(key.encode()).unwrap(), want);
            assert_eq!(Key::decode(want.as_bytes()).unwrap(), key);
        }
        // Karapace and Redpanda write a null subject for the global records, and extra
        // fields; both read the same.
        assert_eq!(
            Key::decode(br#"{"keytype":"CONFIG","subject":null,"magic":0}"#).unwrap(),
            Key::Config { subject: None }
        );
        assert_eq!(
            Key::decode(
                br#"{"keytype":"SCHEMA","subject":"s","version":1,"magic":1,"seq":7,"node":2}"#
            )
            .unwrap(),
            Key::Schema { subject: "s".into(), version: 1 }
        );
        assert!(Key::decode(b"{}").is_err());
        assert!(Key::decode(b"\xff").is_err());
        assert!(
            Key::decode(br#"{"keytype":"SCHEMA","subject":"s","version":99999999999,"magic":1}"#)
                .is_err()
        );
    }

    #[test]
    fn values_round_trip_in_confluent_form() {
        let v = SchemaValue {
            subject: "s".into(),
            version: 2,
            id: 7,
            schema_type: SchemaType::Avro,
            references: vec![Reference { name: "a.B".into(), subject: "b".into(), version: 1 }],
            schema: "\"string\"".into(),
            deleted: false,
        };
        let bytes = v.encode();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"subject":"s","version":2,"id":7,"references":[{"name":"a.B","subject":"b","version":1}],"schema":"\"string\"","deleted":false}"#
        );
        assert_eq!(SchemaValue::decode(&bytes, "x", 9).unwrap(), v);
        let proto = SchemaValue {
            schema_type: SchemaType::Protobuf,
            references: vec![],
            deleted: true,
            ..v
        };
        assert!(String::from_utf8(proto.encode()).unwrap().contains(r#""schemaType":"PROTOBUF""#));
        assert_eq!(SchemaValue::decode(&proto.encode(), "x", 9).unwrap(), proto);
        let full = Config { level: Some(Level::Full), normalize: Some(true) };
        assert_eq!(decode_config(&encode_config(Some("s"), full)).unwrap(), full);
        let backward = Config { level: Some(Level::Backward), normalize: None };
        assert_eq!(
            String::from_utf8(encode_config(None, backward)).unwrap(),
            r#"{"compatibilityLevel":"BACKWARD"}"#
        );
        let normalize = Config { level: None, normalize: Some(false) };
        assert_eq!(
            String::from_utf8(encode_config(Some("s"), normalize)).unwrap(),
            r#"{"subject":"s","normalize":false}"#
        );
        assert_eq!(decode_config(br#"{"normalize":false}"#).unwrap(), normalize);
        assert_eq!(decode_mode(&encode_mode(None, Mode::Import)).unwrap(), Mode::Import);
        assert_eq!(decode_delete_subject(&encode_delete_subject("s", 4)).unwrap(), 4);
    }
}
