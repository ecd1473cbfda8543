//! A key or value in the registry's wire format decoded to JSON with the schema that
//! wrote it (what a console shows): Avro's datum, Protobuf's message (proto3's JSON
//! mapping), JSON Schema's document. The bytes are network input: every length they claim
//! and the depth they nest to are bounded, and a datum that does not decode says why.

use crate::{Inner, ParsedSchema};

/// Bytes a decoder allocates at most for one length a datum claims.
pub const MAX_ALLOCATION: usize = 16 << 20;

/// Longest data decoded.
pub const MAX_DATA: usize = 1 << 20;

/// Longest Avro datum decoded with a schema whose named types are used by name (which
/// may recurse): such a datum nests as deep as it has bytes, and every level takes stack
/// to decode, print and drop (a debug build's frames need ~100 KiB a level).
pub const MAX_RECURSIVE_DATA: usize = 1 << 10;

/// Stack of the thread an Avro datum is decoded, printed and dropped on: enough for
/// [`MAX_RECURSIVE_DATA`] levels (the unused part is never touched, so never backed by
/// memory).
const AVRO_STACK: usize = 256 << 20;

impl ParsedSchema {
    /// `data` (what follows the wire format's magic byte and schema ID) read with this
    /// schema, as JSON text; else why it does not decode. Printed here: a datum nested a
    /// thousand deep is never handed on as a value (dropping it, or printing it, would
    /// recurse as deep on the caller's stack).
    pub fn decode(&self, data: &[u8]) -> Result<String, String> {
        if data.len() > MAX_DATA {
            return Err(format!(
                "{} bytes, more than the {MAX_DATA} decoded with a schema",
                data.len()
            ));
        }
        match &self.inner {
            Inner::Avro(a) if a.may_recurse() && data.len() > MAX_RECURSIVE_DATA => Err(format!(
                "{} bytes, more than the {MAX_RECURSIVE_DATA} decoded with a schema whose types \
                 may nest without end",
                data.len()
            )),
            Inner::Avro(a) => std::thread::scope(|scope| {
                let decoding = std::thread::Builder::new()
                    .name("avro-decode".into())
                    .stack_size(AVRO_STACK)
                    .spawn_scoped(scope, || a.decode(data).and_then(|v| print(&v)))
                    .map_err(|e| format!("no thread to decode on: {e}"))?;
                decoding.join().unwrap_or_else(|_| Err("the Avro decoder failed".to_string()))
            }),
            Inner::Protobuf(p) => p.decode(data).and_then(|v| print(&v)),
            // serde_json refuses nesting deeper than 128.
            Inner::Json(_) => serde_json::from_slice(data)
                .map_err(|e| format!("not a JSON document: {e}"))
                .and_then(|v: serde_json::Value| print(&v)),
        }
    }
}

fn print(value: &serde_json::Value) -> Result<String, String> {
    serde_json::to_string(value).map_err(|e| format!("cannot print as JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{SchemaType, parse};

    fn schema(schema_type: SchemaType, text: &str) -> crate::ParsedSchema {
        parse(schema_type, text, &[]).unwrap()
    }

    fn decoded(schema: &crate::ParsedSchema, data: &[u8]) -> serde_json::Value {
        serde_json::from_str(&schema.decode(data).unwrap()).unwrap()
    }

    #[test]
    fn an_avro_datum_reads_as_json() {
        let user = schema(
            SchemaType::Avro,
            r#"{"type":"record","name":"User","fields":[{"name":"name","type":"string"},
                {"name":"age","type":"int"},{"name":"email","type":["null","string"]}]}"#,
        );
        // "ann" (length 3, zigzag 6), 42 (zigzag 84), the union's branch 1 and "a@b".
        let datum = [&[6u8, b'a', b'n', b'n', 84, 2, 6][..], b"a@b"].concat();
        assert_eq!(decoded(&user, &datum), json!({"name":"ann","age":42,"email":"a@b"}));
        assert!(user.decode(&datum[..3]).unwrap_err().starts_with("not an Avro datum"));
        let extra = [&datum[..], &[1]].concat();
        assert_eq!(user.decode(&extra).unwrap_err(), "1 bytes left over after the Avro datum");
    }

    #[test]
    fn an_avro_datum_claiming_a_huge_length_is_refused_without_allocating_it() {
        let bytes = schema(SchemaType::Avro, r#""bytes""#);
        // A length of 2^40 (zigzag varint).
        let claim = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
        let e = bytes.decode(&claim).unwrap_err();
        assert!(e.starts_with("not an Avro datum"), "{e}");
    }

    #[test]
    fn a_recursive_avro_datum_as_deep_as_its_bytes_allow_decodes() {
        let list = schema(
            SchemaType::Avro,
            r#"{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]}"#,
        );
        // Every level is one byte (the union's branch 1), the last branch 0 (null).
        let mut deep = vec![2u8; super::MAX_RECURSIVE_DATA - 1];
        deep.push(0);
        let printed = list.decode(&deep).unwrap();
        assert_eq!(printed.matches("\"next\"").count(), super::MAX_RECURSIVE_DATA);
        let e = list.decode(&vec![2u8; super::MAX_RECURSIVE_DATA + 1]).unwrap_err();
        assert!(e.contains("more than the 1024 decoded"), "{e}");
    }

    #[test]
    fn a_protobuf_message_reads_as_json_by_its_indexes() {
        let orders = schema(
            SchemaType::Protobuf,
            r#"syntax = "proto3"; package shop;
               message Order { string id = 1; int32 qty = 2; }
               message Refund { string order_id = 1; }"#,
        );
        // Indexes [] (count 0: the first message), then id "o1" and qty 5.
        let order = [0u8, 0x0a, 2, b'o', b'1', 0x10, 5];
        assert_eq!(decoded(&orders, &order), json!({"id":"o1","qty":5}));
        // Indexes [1] (count 1, index 1, zigzag): the second message.
        let refund = [2u8, 2, 0x0a, 2, b'o', b'1'];
        assert_eq!(decoded(&orders, &refund), json!({"orderId":"o1"}));
        let e = orders.decode(&[2u8, 8, 0x0a]).unwrap_err();
        assert_eq!(e, "the schema has no message at indexes [4]");
        assert!(orders.decode(&[0u8, 0x0a, 9, b'o']).unwrap_err().starts_with("not a shop.Order"));
    }

    #[test]
    fn a_json_schema_document_reads_as_itself() {
        let doc = schema(SchemaType::Json, r#"{"type":"object"}"#);
        assert_eq!(decoded(&doc, br#"{"a": [1]}"#), json!({"a":[1]}));
        assert!(doc.decode(b"{").unwrap_err().starts_with("not a JSON document"));
    }
}
