//! JSON that keeps its object keys in the order they were written, printed compactly the
//! way Jackson prints it (Confluent's registry is Java: the schema text it stores and
//! returns is Jackson's). `serde_json::Value` sorts keys unless a workspace-wide feature
//! changes every map in the build, so the schema formats read into this instead.

use std::fmt::{self, Write as _};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value with its object keys in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number as parsed (an integer stays an integer).
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, keys in document order (a repeated key keeps its last value, as Jackson).
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses `text`; nesting deeper than serde_json's limit (128) is an error, not a
    /// stack overflow.
    pub fn parse(text: &str) -> Result<Json, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The value under `key` when this is an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, when this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The compact text, as Jackson writes it.
    pub fn to_compact(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    /// Appends the compact text to `out`.
    pub fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => write_number(n, out),
            Json::String(s) => write_string(s, out),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }

    /// The same value with every object's keys sorted, recursively (JSON Schema's
    /// normalized form).
    pub fn sorted(&self) -> Json {
        match self {
            Json::Array(items) => Json::Array(items.iter().map(Json::sorted).collect()),
            Json::Object(fields) => {
                let mut fields: Vec<_> =
                    fields.iter().map(|(k, v)| (k.clone(), v.sorted())).collect();
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                Json::Object(fields)
            }
            other => other.clone(),
        }
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_compact())
    }
}

/// A JSON string literal as Jackson escapes it: `"` and `\`, the short escapes for
/// backspace, form feed, newline, carriage return and tab, `\u00XX` (upper-case hex) for
/// other control characters; everything else, non-ASCII included, as is.
pub fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A number as Jackson prints it: integers as they are, floating point as Java's
/// `Double.toString` (`1.0`, `1.0E10`, `1.0E-5`).
fn write_number(n: &serde_json::Number, out: &mut String) {
    if n.is_i64() || n.is_u64() {
        let _ = write!(out, "{n}");
        return;
    }
    let Some(f) = n.as_f64() else {
        let _ = write!(out, "{n}");
        return;
    };
    let abs = f.abs();
    if abs == 0.0 || (1e-3..1e7).contains(&abs) {
        let text = format!("{f}");
        out.push_str(&text);
        if !text.contains('.') {
            out.push_str(".0");
        }
        return;
    }
    // Scientific: one digit before the point, at least one after, then E and the exponent.
    let text = format!("{f:e}"); // e.g. "1e10", "1.5e-5"
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    out.push_str(mantissa);
    if !mantissa.contains('.') {
        out.push_str(".0");
    }
    out.push('E');
    out.push_str(exponent);
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom(format!("the number {v} is not finite")))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut fields: Vec<(String, Json)> = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Json>()? {
            match fields.iter_mut().find(|(existing, _)| *existing == k) {
                Some(slot) => slot.1 = v,
                None => fields.push((k, v)),
            }
        }
        Ok(Json::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_prints_compactly() {
        let j =
            Json::parse(r#"{ "z": 1, "a": [true, null, "x"], "m": {"b": 2, "a": 1} }"#).unwrap();
        assert_eq!(j.to_compact(), r#"{"z":1,"a":[true,null,"x"],"m":{"b":2,"a":1}}"#);
        assert_eq!(j.sorted().to_compact(), r#"{"a":[true,null,"x"],"m":{"a":1,"b":2},"z":1}"#);
    }

    #[test]
    fn numbers_print_as_java_does() {
        let cases = [
            ("1", "1"),
            ("-7", "-7"),
            ("1.0", "1.0"),
            ("1.5", "1.5"),
            ("1e10", "1.0E10"),
            ("0.00001", "1.0E-5"),
            ("123456.5", "123456.5"),
            ("0.0", "0.0"),
            ("12345678.9", "1.23456789E7"),
        ];
        for (input, want) in cases {
            assert_eq!(Json::parse(input).unwrap().to_compact(), want, "{input}");
        }
    }

    #[test]
    fn strings_escape_as_jackson_does() {
        let j = Json::String("a\"b\\c\nd\u{1}é/".into());
        assert_eq!(j.to_compact(), "\"a\\\"b\\\\c\\nd\\u0001é/\"");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(Json::parse(&deep).is_err());
    }
}
