//! Cases from the Avro specification and Avro's Java tests (`TestSchemaCompatibility`),
//! with the texts and messages Confluent's registry gives for them.

use super::AvroSchema;
use crate::{Level, Previous, SchemaType, check, parse};

fn canonical(text: &str) -> String {
    AvroSchema::parse(text, &[]).unwrap_or_else(|e| panic!("{text}: {e}")).canonical().to_string()
}

#[test]
fn prints_as_java_does() {
    let cases = [
        (r#"{"type":"string"}"#, r#""string""#),
        (r#"  "long" "#, r#""long""#),
        (
            r#"{"fields":[{"type":"int","doc":"d","default":1,"name":"a"}],"name":"R","type":"record"}"#,
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int","doc":"d","default":1}]}"#,
        ),
        (
            r#"{"type":"record","name":"a.b.R","fields":[{"name":"x","type":{"type":"fixed","name":"F","size":4}},{"name":"y","type":"F"}]}"#,
            r#"{"type":"record","name":"R","namespace":"a.b","fields":[{"name":"x","type":{"type":"fixed","name":"F","size":4}},{"name":"y","type":"F"}]}"#,
        ),
        (
            r#"{"type":"record","name":"R","namespace":"a","fields":[{"name":"x","type":{"type":"record","name":"S","namespace":"b","fields":[]}},{"name":"y","type":"b.S"}]}"#,
            r#"{"type":"record","name":"R","namespace":"a","fields":[{"name":"x","type":{"type":"record","name":"S","namespace":"b","fields":[]}},{"name":"y","type":"b.S"}]}"#,
        ),
        (
            r#"{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"],"default":null}]}"#,
            r#"{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"],"default":null}]}"#,
        ),
        (
            r#"{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}"#,
            r#"{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}"#,
        ),
        (
            r#"{"type":"record","name":"R","custom":{"z":1,"a":2},"aliases":["Old"],"doc":"r","fields":[{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"],"default":"A"},"order":"descending","aliases":["f"],"x-prop":true},{"name":"o","type":"int","order":"ascending"}]}"#,
            r#"{"type":"record","name":"R","doc":"r","fields":[{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"],"default":"A"},"order":"descending","aliases":["f"],"x-prop":true},{"name":"o","type":"int"}],"custom":{"z":1,"a":2},"aliases":["Old"]}"#,
        ),
        (
            r#"{"type":"array","items":{"type":"map","values":"string"}}"#,
            r#"{"type":"array","items":{"type":"map","values":"string"}}"#,
        ),
    ];
    for (input, want) in cases {
        assert_eq!(canonical(input), want, "{input}");
    }
}

#[test]
fn a_schema_with_references_prints_their_types_by_name() {
    let address = r#"{"type":"record","name":"Address","namespace":"com.ex","fields":[{"name":"city","type":"string"}]}"#;
    let user = r#"{"type":"record","name":"User","namespace":"com.ex","fields":[{"name":"home","type":"Address"},{"name":"work","type":"com.ex.Address"}]}"#;
    let parsed = AvroSchema::parse(user, &[address]).unwrap();
    assert_eq!(
        parsed.canonical(),
        r#"{"type":"record","name":"User","namespace":"com.ex","fields":[{"name":"home","type":"Address"},{"name":"work","type":"Address"}]}"#
    );
    let missing = AvroSchema::parse(user, &[]).unwrap_err();
    assert!(missing.contains("com.ex.Address"), "{missing}");
}

#[test]
fn invalid_schemas_are_refused_with_the_reason() {
    let cases = [
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":"x"}]}"#,
        r#"{"type":"foo"}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"a","type":"int"}]}"#,
        r#"{"type":"enum","name":"E","symbols":["A","A"]}"#,
        r#"{"type":"record","name":"1R","fields":[]}"#,
        r#"not json"#,
        r#"{"type":"fixed","name":"F"}"#,
    ];
    for input in cases {
        let e = AvroSchema::parse(input, &[]).expect_err(input);
        assert!(!e.is_empty());
    }
}

#[test]
fn deeply_nested_schemas_are_refused_not_a_crash() {
    let deep = format!("{}\"int\"{}", r#"{"type":"array","items":"#.repeat(5000), "}".repeat(5000));
    assert!(AvroSchema::parse(&deep, &[]).is_err());
}

fn reasons(reader: &str, writer: &str) -> Vec<String> {
    let r = AvroSchema::parse(reader, &[]).unwrap();
    let w = AvroSchema::parse(writer, &[]).unwrap();
    r.can_read(&w, "new", "old")
}

const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;

#[test]
fn a_reader_field_without_default_is_named_with_its_path() {
    let v2 = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#;
    assert_eq!(
        reasons(v2, V1),
        vec![
            "{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE', description:'The field 'b' at path '/fields/1' in the new schema has no default value and is missing in the old schema', additionalInfo:'b'}"
        ]
    );
    let with_default = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string","default":""}]}"#;
    assert!(reasons(with_default, V1).is_empty());
    // Removing a field: the new reads the old (the field is skipped).
    assert!(reasons(V1, v2).is_empty());
}

#[test]
fn promotions_go_one_way() {
    let long = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#;
    assert!(reasons(long, V1).is_empty());
    assert_eq!(
        reasons(V1, long),
        vec![
            "{errorType:'TYPE_MISMATCH', description:'The type (path '/fields/0/type') of a field in the new schema does not match with the old schema', additionalInfo:'reader type: INT not compatible with writer type: LONG'}"
        ]
    );
    for (reader, writer) in [
        ("\"double\"", "\"float\""),
        ("\"float\"", "\"long\""),
        ("\"bytes\"", "\"string\""),
        ("\"string\"", "\"bytes\""),
    ] {
        assert!(reasons(reader, writer).is_empty(), "{reader} reads {writer}");
    }
    assert!(!reasons("\"int\"", "\"float\"").is_empty());
}

#[test]
fn enums_need_every_writer_symbol_or_a_default() {
    let abc = r#"{"type":"enum","name":"E","symbols":["A","B","C"]}"#;
    let ab = r#"{"type":"enum","name":"E","symbols":["A","B"]}"#;
    let ab_default = r#"{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}"#;
    assert_eq!(
        reasons(ab, abc),
        vec![
            "{errorType:'MISSING_ENUM_SYMBOLS', description:'The new schema is missing enum symbols '[C]' at path '/symbols' in the old schema', additionalInfo:'[C]'}"
        ]
    );
    assert!(reasons(ab_default, abc).is_empty());
    assert!(reasons(abc, ab).is_empty());
}

#[test]
fn unions_are_resolved_branch_by_branch() {
    // The writer may have written null: a plain string reader cannot read it.
    assert_eq!(
        reasons("\"string\"", r#"["null","string"]"#),
        vec![
            "{errorType:'TYPE_MISMATCH', description:'The type (path '/') of a field in the new schema does not match with the old schema', additionalInfo:'reader type: STRING not compatible with writer type: NULL'}"
        ]
    );
    assert!(reasons(r#"["null","string"]"#, "\"string\"").is_empty());
    assert_eq!(
        reasons(r#"["int"]"#, r#"["int","string"]"#),
        vec![
            "{errorType:'MISSING_UNION_BRANCH', description:'The new schema is missing a type inside a union field at path '/1' in the old schema', additionalInfo:'reader union lacking writer type: STRING'}"
        ]
    );
    assert!(reasons(r#"["long","string"]"#, r#"["int"]"#).is_empty());
}

#[test]
fn named_types_match_by_full_name_or_reader_alias() {
    let renamed = r#"{"type":"record","name":"S","fields":[{"name":"a","type":"int"}]}"#;
    let aliased =
        r#"{"type":"record","name":"S","aliases":["R"],"fields":[{"name":"a","type":"int"}]}"#;
    assert_eq!(
        reasons(renamed, V1),
        vec![
            "{errorType:'NAME_MISMATCH', description:'The name of the schema has changed (path '/name')', additionalInfo:'expected: R'}"
        ]
    );
    assert!(reasons(aliased, V1).is_empty());
    let f4 = r#"{"type":"fixed","name":"F","size":4}"#;
    let f8 = r#"{"type":"fixed","name":"F","size":8}"#;
    assert_eq!(
        reasons(f8, f4),
        vec![
            "{errorType:'FIXED_SIZE_MISMATCH', description:'The size of FIXED type field at path '/size' in the new schema does not match with the old schema', additionalInfo:'expected: 4, found: 8'}"
        ]
    );
    // A field renamed with the old name as an alias still reads it.
    let field_alias =
        r#"{"type":"record","name":"R","fields":[{"name":"z","type":"int","aliases":["a"]}]}"#;
    assert!(reasons(field_alias, V1).is_empty());
}

#[test]
fn logical_types_do_not_take_part() {
    let p10 = r#"{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}"#;
    let p12 = r#"{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}"#;
    assert!(reasons(p12, p10).is_empty());
}

#[test]
fn recursive_schemas_terminate_and_collect_every_reason() {
    let list = r#"{"type":"record","name":"L","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","L"]}]}"#;
    let list2 = r#"{"type":"record","name":"L","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","L"]},{"name":"w","type":"int"}]}"#;
    assert!(reasons(list, list).is_empty());
    assert!(reasons(list2, list).len() == 1, "{:?}", reasons(list2, list));
    assert_eq!(reasons(list, list2).len(), 1, "{:?}", reasons(list, list2));
}

fn parsed(text: &str) -> crate::ParsedSchema {
    parse(SchemaType::Avro, text, &[]).unwrap()
}

#[test]
fn levels_check_the_latest_or_every_version() {
    let v1 = parsed(V1);
    let v2 = parsed(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string","default":"x"}]}"#,
    );
    let v3 = parsed(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#,
    );
    let previous = [Previous { version: 1, schema: &v1 }, Previous { version: 2, schema: &v2 }];
    assert!(check(Level::Backward, &v3, &previous).is_empty());
    let transitive = check(Level::BackwardTransitive, &v3, &previous);
    assert_eq!(transitive.len(), 3, "{transitive:?}");
    assert_eq!(transitive[1], "{oldSchemaVersion: 1}");
    assert_eq!(transitive[2], format!("{{oldSchema: '{}'}}", V1));
    assert!(check(Level::None, &v3, &previous).is_empty());
    // v3 drops b's default: the old (v2) reads v3's data, v3 cannot read v1's.
    assert!(check(Level::Forward, &v3, &previous).is_empty());
    assert!(check(Level::Full, &v3, &previous).is_empty());
    assert!(!check(Level::FullTransitive, &v3, &previous).is_empty());
    // Forward: the old must read the new; removing a field without a default breaks it.
    let only_b = parsed(
        r#"{"type":"record","name":"R","fields":[{"name":"b","type":"string","default":"x"}]}"#,
    );
    let forward = check(Level::Forward, &only_b, &previous[..1]);
    assert!(forward[0].contains("The field 'a' at path '/fields/0' in the old schema has no default value and is missing in the new schema"), "{forward:?}");
    assert!(check(Level::Backward, &only_b, &previous[..1]).is_empty());
}

#[test]
fn levels_parse_as_confluent_reads_them() {
    assert_eq!("full_transitive".parse::<Level>().unwrap(), Level::FullTransitive);
    assert_eq!("BACKWARD".parse::<Level>().unwrap(), Level::Backward);
    assert!("sideways".parse::<Level>().is_err());
    assert_eq!(Level::default(), Level::Backward);
}

mod fuzz {
    use proptest::prelude::*;

    use super::AvroSchema;
    use crate::json::Json;

    /// Schema-shaped JSON: Avro's vocabulary, mixed with wrong types and garbage.
    fn schemaish() -> impl Strategy<Value = Json> {
        let names = prop::sample::select(vec![
            "null", "boolean", "int", "long", "float", "double", "bytes", "string", "R", "S", "E",
            "ns.R", "1R", "", "record", "enum", "fixed", "array", "map", "error",
        ]);
        let leaf = prop_oneof![
            names.clone().prop_map(|s| Json::String(s.into())),
            any::<i64>().prop_map(|n| Json::Number(n.into())),
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
        ];
        let keys = prop::sample::select(vec![
            "type",
            "name",
            "namespace",
            "fields",
            "items",
            "values",
            "symbols",
            "size",
            "default",
            "aliases",
            "doc",
            "order",
            "logicalType",
            "precision",
            "scale",
        ]);
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
                prop::collection::vec((keys.clone().prop_map(String::from), inner), 0..6)
                    .prop_map(Json::Object),
            ]
        })
    }

    /// Schemas built from Avro's grammar, most valid, some not (repeated names, references
    /// to undefined names, defaults of the wrong type).
    fn structured() -> impl Strategy<Value = Json> {
        let obj = |pairs: Vec<(&str, Json)>| {
            Json::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
        };
        let s = |v: &str| Json::String(v.to_string());
        let name = prop::sample::select(vec!["A", "B", "C", "ns.A", "x.y.B"]);
        let primitive = prop::sample::select(vec![
            "null", "boolean", "int", "long", "float", "double", "bytes", "string",
        ]);
        let default = prop_oneof![
            Just(Json::Null),
            any::<i32>().prop_map(|n| Json::Number(n.into())),
            Just(Json::String("x".into())),
            Just(Json::Bool(true)),
            Just(Json::Array(vec![])),
            Just(Json::Object(vec![])),
        ];
        let leaf = prop_oneof![
            primitive.clone().prop_map(s),
            name.clone().prop_map(s),
            (primitive, prop::sample::select(vec!["decimal", "date", "uuid", "timestamp-millis"]))
                .prop_map(move |(p, l)| obj(vec![
                    ("type", s(p)),
                    ("logicalType", s(l)),
                    ("precision", Json::Number(4.into()))
                ])),
            (name.clone(), prop::collection::vec(prop::sample::select(vec!["X", "Y", "Z"]), 1..4))
                .prop_map(move |(n, syms)| obj(vec![
                    ("type", s("enum")),
                    ("name", s(n)),
                    ("symbols", Json::Array(syms.into_iter().map(s).collect()))
                ])),
            (name.clone(), 0u64..20).prop_map(move |(n, size)| obj(vec![
                ("type", s("fixed")),
                ("name", s(n)),
                ("size", Json::Number(size.into()))
            ])),
        ];
        leaf.prop_recursive(4, 48, 5, move |inner| {
            let field = (
                prop::sample::select(vec!["f", "g", "h"]),
                inner.clone(),
                prop::option::of(default.clone()),
            )
                .prop_map(move |(n, t, d)| {
                    let mut pairs = vec![("name", s(n)), ("type", t)];
                    if let Some(d) = d {
                        pairs.push(("default", d));
                    }
                    obj(pairs)
                });
            prop_oneof![
                (name.clone(), prop::collection::vec(field, 0..4)).prop_map(
                    move |(n, fields)| obj(vec![
                        ("type", s("record")),
                        ("name", s(n)),
                        ("fields", Json::Array(fields)),
                    ])
                ),
                inner.clone().prop_map(move |t| obj(vec![("type", s("array")), ("items", t)])),
                inner.clone().prop_map(move |t| obj(vec![("type", s("map")), ("values", t)])),
                prop::collection::vec(inner, 1..4).prop_map(Json::Array),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Whatever the text, parsing answers (never panics); what it accepts prints to a
        /// text that parses to itself and is compatible with itself.
        #[test]
        fn parsing_never_panics_and_canonical_text_is_stable(json in prop_oneof![schemaish(), structured()]) {
            let text = json.to_compact();
            if let Ok(parsed) = AvroSchema::parse(&text, &[]) {
                let again = AvroSchema::parse(parsed.canonical(), &[])
                    .unwrap_or_else(|e| panic!("{text} printed as {} which does not parse: {e}", parsed.canonical()));
                prop_assert_eq!(again.canonical(), parsed.canonical());
                prop_assert!(parsed.can_read(&again, "new", "old").is_empty());
            }
        }

        /// Any two schemas compare without panicking, both ways, and a schema always reads
        /// its own data.
        #[test]
        fn checking_any_two_schemas_never_panics(a in structured(), b in structured()) {
            if let (Ok(a), Ok(b)) = (AvroSchema::parse(&a.to_compact(), &[]), AvroSchema::parse(&b.to_compact(), &[])) {
                let _ = a.can_read(&b, "new", "old");
                let _ = b.can_read(&a, "new", "old");
                prop_assert!(a.can_read(&a, "new", "old").is_empty());
            }
        }
    }
}
