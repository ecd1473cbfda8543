//! How a record's bytes are shown: as text, as JSON (pretty, when they are JSON), or as
//! hex, each cut at a length a page can hold, saying how much was cut.

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
}

impl Format {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Hex => "hex",
        }
    }
}

/// `bytes` (none: null) as `format` shows them.
pub(crate) fn show(bytes: Option<&[u8]>, format: Format) -> String {
    let Some(bytes) = bytes else { return "null".to_string() };
    let (head, cut) = match bytes.len() > SHOWN_BYTES {
        true => (&bytes[..SHOWN_BYTES], bytes.len() - SHOWN_BYTES),
        false => (bytes, 0),
    };
    let shown = match format {
        Format::Hex => head.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" "),
        Format::Json if cut == 0 => match serde_json::from_slice::<serde_json::Value>(head) {
            Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
            Err(_) => String::from_utf8_lossy(head).into_owned(),
        },
        Format::Json | Format::Text => String::from_utf8_lossy(head).into_owned(),
    };
    match cut {
        0 => shown,
        cut => format!("{shown}… ({cut} more bytes)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_show_as_text_json_or_hex_and_long_ones_are_cut() {
        assert_eq!(show(None, Format::Text), "null");
        assert_eq!(show(Some(b"hi \xff"), Format::Text), "hi \u{fffd}");
        assert_eq!(show(Some(br#"{"a":1}"#), Format::Json), "{\n  \"a\": 1\n}");
        assert_eq!(show(Some(b"not json"), Format::Json), "not json");
        assert_eq!(show(Some(&[0, 255]), Format::Hex), "00 ff");
        let long = vec![b'x'; SHOWN_BYTES + 10];
        assert!(show(Some(&long), Format::Text).ends_with("… (10 more bytes)"));
    }
}
