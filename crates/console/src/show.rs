//! How a record's bytes are shown: as text, as JSON (pretty, when they are JSON), as hex,
//! or decoded with the registry's schema that wrote them (Avro, Protobuf, JSON Schema; the
//! broker decodes), each cut at a length a page can hold, saying how much was cut.

use serde::Deserialize;

/// Bytes of a key or value shown at most; the rest is counted, not shown.
pub(crate) const SHOWN_BYTES: usize = 4096;

/// How keys and values are decoded for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Format {
    /// UTF-8, invalid sequences replaced.
    #[default]
    Text,
    /// Pretty-printed JSON; text when the bytes are not JSON.
    Json,
    /// Hex, two digits a byte.
    Hex,
    /// Decoded with the schema registry's schema whose ID the bytes carry (Confluent's
    /// wire format), as JSON; bytes not in the wire format as text.
    Registry,
}

/// Decodes bytes in the registry's wire format: the schema ID and the JSON text, or why
/// not (`shale_broker::api::Api::decode_registered`, for the page's caller).
pub(crate) type Registered<'a> = &'a dyn Fn(&[u8]) -> Result<(i32, String), String>;

impl Format {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Hex => "hex",
            Format::Registry => "registry",
        }
    }
}

/// `bytes` (none: null) as `format` shows them; `registered` decodes for
/// [`Format::Registry`].
pub(crate) fn show(bytes: Option<&[u8]>, format: Format, registered: Registered<'_>) -> String {
    let Some(bytes) = bytes else { return "null".to_string() };
    if format == Format::Registry {
        return match registered(bytes) {
            Ok((id, json)) => cut(format!("schema {id}\n{}", pretty(json.as_bytes()))),
            // Not in the wire format (a plain key, say): as text.
            Err(_) if shale_schema::wire::schema_id(bytes).is_err() => {
                show(Some(bytes), Format::Text, registered)
            }
            Err(why) => format!("{why}\n{}", show(Some(bytes), Format::Hex, registered)),
        };
    }
    let (head, cut) = match bytes.len() > SHOWN_BYTES {
        true => (&bytes[..SHOWN_BYTES], bytes.len() - SHOWN_BYTES),
        false => (bytes, 0),
    };
    let shown = match format {
        Format::Hex => head.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" "),
        Format::Json if cut == 0 => pretty(head),
        Format::Json | Format::Text | Format::Registry => {
            String::from_utf8_lossy(head).into_owned()
        }
    };
    match cut {
        0 => shown,
        cut => format!("{shown}… ({cut} more bytes)"),
    }
}

/// JSON pretty-printed, when it parses (nested at most 128 deep); else as it is.
fn pretty(json: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(json) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(json).into_owned(),
    }
}

/// `text` cut at [`SHOWN_BYTES`] (at a character's boundary), saying how much was cut.
fn cut(text: String) -> String {
    if text.len() <= SHOWN_BYTES {
        return text;
    }
    let mut end = SHOWN_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes)", &text[..end], text.len() - end)
}

/// Decodes nothing (tests of the other formats).
#[cfg(test)]
fn unregistered(_: &[u8]) -> Result<(i32, String), String> {
    Err("not decoded with the registry".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_show_as_text_json_or_hex_and_long_ones_are_cut() {
        let none = &unregistered;
        assert_eq!(show(None, Format::Text, none), "null");
        assert_eq!(show(Some(b"hi \xff"), Format::Text, none), "hi \u{fffd}");
        assert_eq!(show(Some(br#"{"a":1}"#), Format::Json, none), "{\n  \"a\": 1\n}");
        assert_eq!(show(Some(b"not json"), Format::Json, none), "not json");
        assert_eq!(show(Some(&[0, 255]), Format::Hex, none), "00 ff");
        let long = vec![b'x'; SHOWN_BYTES + 10];
        assert!(show(Some(&long), Format::Text, none).ends_with("… (10 more bytes)"));
    }

    #[test]
    fn registered_bytes_show_decoded_and_others_as_text_or_why_not() {
        let registry = |b: &[u8]| match b {
            [0, 0, 0, 0, 7, ..] => Ok((7, r#"{"name":"ann"}"#.to_string())),
            _ => Err("schema 9: not an Avro datum".to_string()),
        };
        let decoded = show(Some(&[0, 0, 0, 0, 7, 6]), Format::Registry, &registry);
        assert_eq!(decoded, "schema 7\n{\n  \"name\": \"ann\"\n}");
        assert_eq!(show(Some(b"order-1"), Format::Registry, &registry), "order-1");
        let bad = show(Some(&[0, 0, 0, 0, 9, 1]), Format::Registry, &registry);
        assert_eq!(bad, "schema 9: not an Avro datum\n00 00 00 00 09 01");
        assert!(cut("é".repeat(SHOWN_BYTES)).ends_with(&format!("({SHOWN_BYTES} more bytes)")));
    }
}
