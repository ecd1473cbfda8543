//! How `shale consume` prints a record and `shale produce --format json` reads one back.
//!
//! - Text: one line per record whatever its bytes. Printable UTF-8 stays as it is; a
//!   backslash, a newline (`\n`), tab (`\t`), carriage return (`\r`), other control
//!   characters and bytes that are not UTF-8 are escaped (`\\`, `\xNN`).
//! - Templates (`--template`, kcat's `-f`): `%t` topic, `%p` partition, `%o` offset, `%T`
//!   timestamp (ms), `%k` key, `%s` value, `%h` headers (`key=value,...`), `%K` and `%S`
//!   key and value lengths (-1 for null), `%%`, and `\n`, `\t`, `\\` escapes; keys, values
//!   and headers escaped as in text.
//! - JSON lines that keep every byte: a key, value or header value that is UTF-8 is a JSON
//!   string, anything else `{"base64": "..."}`, null is null; headers are a list in order.
//!   `shale produce --format json` reads the same lines back.

use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::client::ConsumerRecord;
use crate::record::Header;

/// `bytes` on one line: printable UTF-8 as it is, the rest escaped.
pub(super) fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() && (c as u32) < 0x100 => {
                    out.push_str(&format!("\\x{:02x}", c as u32));
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

fn escaped(b: &Option<Bytes>) -> String {
    b.as_deref().map(escape).unwrap_or_default()
}

fn headers_text(headers: &[Header]) -> String {
    let one = |h: &Header| match &h.value {
        Some(v) => format!("{}={}", escape(h.key.as_bytes()), escape(v)),
        None => escape(h.key.as_bytes()),
    };
    headers.iter().map(one).collect::<Vec<_>>().join(",")
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    Field(char),
}

/// A kcat-like output template.
#[derive(Debug, Clone)]
pub(super) struct Template(Vec<Piece>);

impl Template {
    /// Parses `s`; an unknown `%x` or `\x` is an error naming it.
    pub(super) fn parse(s: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' => match chars.next() {
                    Some('%') => literal.push('%'),
                    Some(f @ ('t' | 'p' | 'o' | 'T' | 'k' | 's' | 'h' | 'K' | 'S')) => {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                        pieces.push(Piece::Field(f));
                    }
                    Some(f) => return Err(format!("unknown template field %{f} in {s:?}")),
                    None => return Err(format!("the template {s:?} ends in a lone %")),
                },
                '\\' => match chars.next() {
                    Some('n') => literal.push('\n'),
                    Some('t') => literal.push('\t'),
                    Some('\\') => literal.push('\\'),
                    Some(e) => return Err(format!("unknown escape \\{e} in {s:?}")),
                    None => return Err(format!("the template {s:?} ends in a lone \\")),
                },
                c => literal.push(c),
            }
        }
        pieces.push(Piece::Literal(literal));
        pieces.retain(|p| *p != Piece::Literal(String::new()));
        Ok(Template(pieces))
    }

    /// `r` as the template says.
    pub(super) fn render(&self, r: &ConsumerRecord) -> String {
        let len = |b: &Option<Bytes>| b.as_ref().map_or(-1, |b| b.len() as i64);
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Literal(s) => out.push_str(s),
                Piece::Field('t') => out.push_str(&r.topic),
                Piece::Field('p') => out.push_str(&r.partition.to_string()),
                Piece::Field('o') => out.push_str(&r.offset.to_string()),
                Piece::Field('T') => out.push_str(&r.timestamp_ms.to_string()),
                Piece::Field('k') => out.push_str(&escaped(&r.key)),
                Piece::Field('s') => out.push_str(&escaped(&r.value)),
                Piece::Field('h') => out.push_str(&headers_text(&r.headers)),
                Piece::Field('K') => out.push_str(&len(&r.key).to_string()),
                Piece::Field('S') => out.push_str(&len(&r.value).to_string()),
                Piece::Field(_) => {}
            }
        }
        out
    }
}

/// Bytes as JSON: a string when UTF-8, else `{"base64": ...}`; null for none.
fn bytes_json(b: Option<&[u8]>) -> Value {
    match b {
        None => Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => Value::String(s.to_string()),
            Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(b) }),
        },
    }
}

/// A record as one JSON line that keeps every byte.
pub(super) fn to_json(r: &ConsumerRecord) -> Value {
    let headers: Vec<Value> = r
        .headers
        .iter()
        .map(|h| json!({ "key": h.key, "value": bytes_json(h.value.as_deref()) }))
        .collect();
    json!({
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.timestamp_ms,
        "key": bytes_json(r.key.as_deref()),
        "value": bytes_json(r.value.as_deref()),
        "headers": headers,
    })
}

/// A record read back from a JSON line of [`to_json`]'s.
#[derive(Debug, Default, PartialEq)]
pub(super) struct JsonRecord {
    pub(super) partition: Option<u32>,
    pub(super) timestamp_ms: Option<i64>,
    pub(super) key: Option<Bytes>,
    pub(super) value: Option<Bytes>,
    pub(super) headers: Vec<Header>,
}

/// Bytes from JSON: a string, `{"base64": ...}`, or null; `what` names the field.
fn json_bytes(v: &Value, what: &str) -> Result<Option<Bytes>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(Bytes::from(s.clone().into_bytes()))),
        Value::Object(o) => match o.get("base64") {
            Some(Value::String(s)) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map(|b| Some(Bytes::from(b)))
                .map_err(|e| format!("{what}: not base64 ({e})")),
            _ => Err(format!("{what}: an object must be {{\"base64\": \"...\"}}")),
        },
        other => {
            Err(format!("{what}: expected a string, {{\"base64\": ...}} or null, not {other}"))
        }
    }
}

/// Reads a line of `shale consume --format json` back.
pub(super) fn from_json(line: &str) -> Result<JsonRecord, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(o) = &v else { return Err("not a JSON object".to_string()) };
    let field = |name: &str| o.get(name).unwrap_or(&Value::Null);
    let partition = match field("partition") {
        Value::Null => None,
        p => Some(p.as_u64().and_then(|p| u32::try_from(p).ok()).ok_or(format!("partition: {p}"))?),
    };
    let timestamp_ms = match field("timestamp") {
        Value::Null => None,
        t => Some(t.as_i64().ok_or(format!("timestamp: {t}"))?),
    };
    let headers = match field("headers") {
        Value::Null => Vec::new(),
        Value::Array(hs) => hs
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let key = h["key"].as_str().ok_or(format!("headers[{i}].key: {}", h["key"]))?;
                let value = json_bytes(&h["value"], &format!("headers[{i}].value"))?;
                Ok(Header { key: key.to_string(), value })
            })
            .collect::<Result<_, String>>()?,
        h => return Err(format!("headers: expected a list, not {h}")),
    };
    Ok(JsonRecord {
        partition,
        timestamp_ms,
        key: json_bytes(field("key"), "key")?,
        value: json_bytes(field("value"), "value")?,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: Option<&[u8]>, value: Option<&[u8]>) -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 1,
            offset: 7,
            timestamp_ms: 1_700,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers: vec![
                Header { key: "a".into(), value: Some(Bytes::from_static(b"x\ny")) },
                Header { key: "b".into(), value: None },
            ],
        }
    }

    #[test]
    fn escaping_keeps_one_line_and_printable_text() {
        assert_eq!(escape(b"plain caf\xc3\xa9"), "plain café");
        assert_eq!(escape(b"a\nb\tc\\d\r\x00\x7f\xff"), "a\\nb\\tc\\\\d\\r\\x00\\x7f\\xff");
    }

    #[test]
    fn templates_render_every_field_and_refuse_unknown_ones() {
        let r = record(None, Some(b"v\n1"));
        let t = Template::parse("%t/%p@%o %T %k=%s %K %S [%h] 100%%\\n").unwrap();
        assert_eq!(t.render(&r), "t/1@7 1700 =v\\n1 -1 3 [a=x\\ny,b] 100%\n");
        assert!(Template::parse("%q").unwrap_err().contains("%q"));
        assert!(Template::parse("\\q").unwrap_err().contains("\\q"));
    }

    #[test]
    fn json_lines_keep_every_byte_and_read_back() {
        let r = record(Some(b"k\xff"), Some("caf\u{e9}".as_bytes()));
        let line = to_json(&r).to_string();
        assert!(line.contains(r#""key":{"base64":"a/8="}"#), "{line}");
        assert!(line.contains(r#""value":"café""#), "{line}");
        let back = from_json(&line).unwrap();
        assert_eq!(
            back,
            JsonRecord {
                partition: Some(1),
                timestamp_ms: Some(1_700),
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r.headers.clone(),
            }
        );
        assert!(from_json(r#"{"key": 5}"#).unwrap_err().contains("key"));
        assert!(from_json(r#"{"value": {"base64": "!!"}}"#).unwrap_err().contains("not base64"));
    }
}
