//! The printer (Confluent's `canonicalString()`, expected texts derived from
//! `ProtobufSchemaUtils` and its tests), the serialized form, parse errors, references,
//! names and message indexes, and the registry-level API.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use prost::Message as _;

use super::ProtobufSchema;
use crate::{Dependency, Level, Previous, SchemaType, check, parse};

fn schema(text: &str) -> ProtobufSchema {
    ProtobufSchema::parse(text, &[]).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Confluent's `enumBeforeMessageSchema` test: messages print before enums.
const ENUM_BEFORE: &str = concat!(
    "syntax = \"proto3\";\n\n",
    "option java_package = \"io.confluent.kafka.serializers.protobuf.test\";\n",
    "option java_outer_classname = \"TestEnumProtos\";\n\n",
    "enum Suit {\n  SPADES = 0;\n  HEARTS = 1;\n  DIAMONDS = 2;\n  CLUBS = 3;\n}\n",
    "message TestEnum {\n  int32 suit = 1;\n}\n",
);
const ENUM_AFTER: &str = concat!(
    "syntax = \"proto3\";\n\n",
    "option java_package = \"io.confluent.kafka.serializers.protobuf.test\";\n",
    "option java_outer_classname = \"TestEnumProtos\";\n\n",
    "message TestEnum {\n  int32 suit = 1;\n}\n",
    "enum Suit {\n  SPADES = 0;\n  HEARTS = 1;\n  DIAMONDS = 2;\n  CLUBS = 3;\n}\n",
);

/// Confluent's `testEnumReserved` (its constants renumbered out of the reserved ranges,
/// which protoc refuses): already canonical (no syntax line: proto2; the import
/// section starts with a blank line).
const ENUM_RESERVED: &str = concat!(
    "\nimport \"google/protobuf/descriptor.proto\";\n\n",
    "message FooOptions {\n  optional string name = 1;\n  optional FooParameterType type = 2;\n}\n",
    "enum FooParameterType {\n  reserved 20, 100 to max;\n  reserved 10;\n  reserved 1 to 3;\n",
    "  reserved \"BAD\", \"OLD\";\n  NUMBER = 4;\n  STRING = 5;\n}\n",
);

/// Declarations in any order, as people write them.
const MESSY: &str = r#"syntax = "proto3";
package my.package;
import "google/protobuf/timestamp.proto";
option java_package = "my.package";
option java_outer_classname = "Outer";
option java_multiple_files = true;
option optimize_for = CODE_SIZE;
option go_package = "go.package";

service MyService {
  option deprecated = true;
  rpc MyMethod2 (stream Nested) returns (Nested.InnerMessage);
  rpc MyMethod1 (Nested.InnerMessage) returns (stream Nested) {
    option idempotency_level = NO_SIDE_EFFECTS;
    option deprecated = true;
  };
}

enum Status { ACTIVE = 0; INACTIVE = 1; }

message Nested {
  google.protobuf.Timestamp test_timestamp = 2; // a comment
  /* another */
  message InnerMessage {
    option no_standard_descriptor_accessor = true;
    InnerMessage.DeepMessage deep2 = 4;
    enum InnerEnum {
      option allow_alias = true;
      ZERO = 0 [deprecated = true];
      ALSO_ZERO = 0;
      reserved 100 to 110;
      TWO = 2;
      ONE = 1;
    }
    reserved "foo", 'bar';
    Nested.InnerMessage.DeepMessage deep3 = 5;
    my.package.Nested.InnerMessage.DeepMessage deep4 = 6;
    .my.package.Nested.InnerMessage.DeepMessage deep5 = 7;
    string id = 1 [json_name = "id"];
    oneof some_val {
      string one_id = 12;
      int32 other_id = 11;
    }
    repeated int32 ids = 2 [packed = true];
    message DeepMessage { string id = 1; }
    DeepMessage deep1 = 3;
    reserved 14, 15, 8 to 9;
    oneof some_val2 {
      string one_id2 = 13;
      int64 other_id2 = 10 [deprecated = true, jstype = JS_STRING, json_name = "otherId2"];
    }
    option deprecated = true;
    reserved 16, 20, 29 to 31;
  }
  map<string,InnerMessage> test_map = 3;
}
"#;

const MESSY_CANONICAL: &str = concat!(
    "syntax = \"proto3\";\n",
    "package my.package;\n",
    "\n",
    "import \"google/protobuf/timestamp.proto\";\n",
    "\n",
    "option java_package = \"my.package\";\n",
    "option java_outer_classname = \"Outer\";\n",
    "option java_multiple_files = true;\n",
    "option optimize_for = CODE_SIZE;\n",
    "option go_package = \"go.package\";\n",
    "\n",
    "message Nested {\n",
    "  google.protobuf.Timestamp test_timestamp = 2;\n",
    "  map<string, InnerMessage> test_map = 3;\n",
    "\n",
    "  message InnerMessage {\n",
    "    reserved \"foo\", \"bar\";\n",
    "    reserved 14, 15, 8 to 9;\n",
    "    reserved 16, 20, 29 to 31;\n",
    "  \n",
    "    option no_standard_descriptor_accessor = true;\n",
    "    option deprecated = true;\n",
    "  \n",
    "    InnerMessage.DeepMessage deep2 = 4;\n",
    "    Nested.InnerMessage.DeepMessage deep3 = 5;\n",
    "    my.package.Nested.InnerMessage.DeepMessage deep4 = 6;\n",
    "    .my.package.Nested.InnerMessage.DeepMessage deep5 = 7;\n",
    "    string id = 1 [json_name = \"id\"];\n",
    "    repeated int32 ids = 2 [packed = true];\n",
    "    DeepMessage deep1 = 3;\n",
    "  \n",
    "    oneof some_val {\n",
    "      string one_id = 12;\n",
    "      int32 other_id = 11;\n",
    "    }\n",
    "    oneof some_val2 {\n",
    "      string one_id2 = 13;\n",
    "      int64 other_id2 = 10 [\n",
    "        deprecated = true,\n",
    "        jstype = JS_STRING,\n",
    "        json_name = \"otherId2\"\n",
    "      ];\n",
    "    }\n",
    "  \n",
    "    message DeepMessage {\n",
    "      string id = 1;\n",
    "    }\n",
    "    enum InnerEnum {\n",
    "      reserved 100 to 110;\n",
    "      option allow_alias = true;\n",
    "      ZERO = 0 [deprecated = true];\n",
    "      ALSO_ZERO = 0;\n",
    "      TWO = 2;\n",
    "      ONE = 1;\n",
    "    }\n",
    "  }\n",
    "}\n",
    "enum Status {\n",
    "  ACTIVE = 0;\n",
    "  INACTIVE = 1;\n",
    "}\n",
    "\n",
    "service MyService {\n",
    "  option deprecated = true;\n",
    "\n",
    "  rpc MyMethod2 (stream Nested) returns (Nested.InnerMessage);\n",
    "  rpc MyMethod1 (Nested.InnerMessage) returns (stream Nested) {\n",
    "    option idempotency_level = NO_SIDE_EFFECTS;\n",
    "    option deprecated = true;\n",
    "  };\n",
    "}\n",
);

/// Custom options: string escapes, `(ext).field`, text-format maps and lists.
const OPTIONS: &str = r#"syntax = "proto3";
package acme;
import "google/protobuf/descriptor.proto";
message Rule { string name = 1; repeated string tags = 2; Kind kind = 3; Rule inner = 4; }
enum Kind { NONE = 0; STRICT = 1; }
extend google.protobuf.FileOptions { string note = 50001; Rule file_rule = 50002; Rule other = 50005; }
extend google.protobuf.FieldOptions { Rule rule = 50003; repeated string labels = 50004; }
option (note) = "tab\there \"quoted\" 'single' back\\slash";
option (other).name = 'x';
option (file_rule) = { name: "n" tags: "a" tags: "b", kind: STRICT; inner { name: "deep" } };
message User {
  string id = 1 [(rule) = { tags: ["pii"] }, (labels) = "x"];
  string email = 2 [(rule).kind = STRICT];
  string plain = 3 [(labels) = "only"];
}
"#;

const OPTIONS_CANONICAL: &str = concat!(
    "syntax = \"proto3\";\n",
    "package acme;\n",
    "\n",
    "import \"google/protobuf/descriptor.proto\";\n",
    "\n",
    "option (note) = \"tab\\there \\\"quoted\\\" \\'single\\' back\\\\slash\";\n",
    "option (other).name = \"x\";\n",
    "option (file_rule) = {\n",
    "  name: \"n\",\n",
    "  tags: [\n",
    "    \"a\",\n",
    "    \"b\"\n",
    "  ],\n",
    "  kind: STRICT,\n",
    "  inner: {\n",
    "    name: \"deep\"\n",
    "  }\n",
    "};\n",
    "\n",
    "message Rule {\n",
    "  string name = 1;\n",
    "  repeated string tags = 2;\n",
    "  Kind kind = 3;\n",
    "  Rule inner = 4;\n",
    "}\n",
    "message User {\n",
    "  string id = 1 [\n",
    "    (rule) = {\n",
    "      tags: [\n",
    "        \"pii\"\n",
    "      ]\n",
    "    },\n",
    "    (labels) = \"x\"\n",
    "  ];\n",
    "  string email = 2 [(rule).kind = STRICT];\n",
    "  string plain = 3 [(labels) = \"only\"];\n",
    "}\n",
    "enum Kind {\n",
    "  NONE = 0;\n",
    "  STRICT = 1;\n",
    "}\n",
    "\n",
    "extend google.protobuf.FileOptions {\n",
    "  string note = 50001;\n",
    "  Rule file_rule = 50002;\n",
    "  Rule other = 50005;\n",
    "}\n",
    "extend google.protobuf.FieldOptions {\n",
    "  Rule rule = 50003;\n",
    "  repeated string labels = 50004;\n",
    "}\n",
);

/// proto2: labels, defaults (a string's quoted, the rest bare), groups, extensions.
const PROTO2: &str = r#"syntax = "proto2";
package p2;
message Search {
  required string query = 1 [default = "a\nb"];
  optional int32 page = 2 [default = 10];
  optional bool exact = 3 [default = true];
  optional Corpus corpus = 4 [default = WEB];
  repeated group Result = 5 {
    required string url = 6;
  }
  extensions 100 to 199, 500 to max;
  enum Corpus { UNIVERSAL = 0; WEB = 1; }
}
"#;

const PROTO2_CANONICAL: &str = concat!(
    "syntax = \"proto2\";\n",
    "package p2;\n",
    "\n",
    "message Search {\n",
    "  required string query = 1 [default = \"a\\nb\"];\n",
    "  optional int32 page = 2 [default = 10];\n",
    "  optional bool exact = 3 [default = true];\n",
    "  optional Corpus corpus = 4 [default = WEB];\n",
    "\n",
    "  repeated group Result = 5 {\n",
    "    required string url = 6;\n",
    "  }\n",
    "\n",
    "  extensions 100 to 199, 500 to max;\n",
    "\n",
    "  enum Corpus {\n",
    "    UNIVERSAL = 0;\n",
    "    WEB = 1;\n",
    "  }\n",
    "}\n",
);

/// Each expected text derived from Confluent's printer, and the same as Confluent's own
/// classes (7.0.16's `ProtobufSchema`) print for the input.
const PRINTED: &[(&str, &str)] = &[
    (ENUM_BEFORE, ENUM_AFTER),
    (ENUM_RESERVED, ENUM_RESERVED),
    (MESSY, MESSY_CANONICAL),
    (OPTIONS, OPTIONS_CANONICAL),
    (PROTO2, PROTO2_CANONICAL),
    ("syntax = \"proto3\";\nmessage Empty {}\n", "syntax = \"proto3\";\n\nmessage Empty {}\n"),
    (
        "syntax = 'proto3'; message M { optional string note = 1; oneof o { bytes b = 2; } }",
        "syntax = \"proto3\";\n\nmessage M {\n  optional string note = 1;\n\n  oneof o {\n    bytes b = 2;\n  }\n}\n",
    ),
    (
        "syntax = \"proto3\"; import public \"google/protobuf/empty.proto\"; import \"google/protobuf/any.proto\"; message M { google.protobuf.Any a = 1; }",
        "syntax = \"proto3\";\n\nimport \"google/protobuf/any.proto\";\nimport public \"google/protobuf/empty.proto\";\n\nmessage M {\n  google.protobuf.Any a = 1;\n}\n",
    ),
];

#[test]
fn prints_as_confluent_does() {
    for (input, want) in PRINTED {
        assert_eq!(schema(input).canonical(), *want, "{input}");
    }
}

#[test]
fn the_canonical_text_is_stable() {
    for (input, _) in PRINTED {
        let once = schema(input).canonical().to_string();
        assert_eq!(schema(&once).canonical(), once, "{input}");
    }
}

/// What Confluent prints for a schema registered as a serialized descriptor: names fully
/// qualified, a map as its entry message, each reserved range its own statement.
#[test]
fn a_serialized_descriptor_prints_as_confluent_prints_one() {
    let s = schema(ENUM_BEFORE);
    let from_descriptor = schema(s.serialized());
    assert_eq!(from_descriptor.canonical(), ENUM_AFTER);

    let text = concat!(
        "syntax = \"proto3\";\npackage a.b;\n\n",
        "message Order {\n  reserved 8, 10 to 12;\n  reserved \"old\";\n\n",
        "  Item item = 1;\n  map<string, int64> counts = 2;\n  optional string note = 3;\n",
        "  string user_id = 4 [json_name = \"user\"];\n\n",
        "  message Item {\n    string sku = 1;\n  }\n}\n",
    );
    let want = concat!(
        "syntax = \"proto3\";\npackage a.b;\n\n",
        "message Order {\n  reserved 8;\n  reserved 10 to 12;\n  reserved \"old\";\n\n",
        "  .a.b.Order.Item item = 1;\n  repeated .a.b.Order.CountsEntry counts = 2;\n",
        "  optional string note = 3;\n  string user_id = 4 [json_name = \"user\"];\n\n",
        // protoc puts a map's entry message where the map field is declared.
        "  message CountsEntry {\n    option map_entry = true;\n  \n",
        "    string key = 1;\n    int64 value = 2;\n  }\n",
        "  message Item {\n    string sku = 1;\n  }\n}\n",
    );
    let s = schema(text);
    assert_eq!(s.canonical(), text);
    let from_descriptor = schema(s.serialized());
    assert_eq!(from_descriptor.canonical(), want);
    // Stable from there: the descriptor of the descriptor prints the same.
    assert_eq!(schema(from_descriptor.serialized()).canonical(), want);
    // Either form reads the other's data: no incompatible difference.
    assert_eq!(from_descriptor.can_read(&s, "new", "old"), Vec::<String>::new());
    assert_eq!(s.can_read(&from_descriptor, "new", "old"), Vec::<String>::new());
}

#[test]
fn the_serialized_form_is_a_file_descriptor_named_default() {
    let s = schema(MESSY);
    let bytes = BASE64.decode(s.serialized()).unwrap();
    let fd = prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap();
    assert_eq!(fd.name(), "default");
    assert_eq!(fd.package(), "my.package");
    assert_eq!(fd.dependency, ["google/protobuf/timestamp.proto"]);
    let nested = &fd.message_type[0];
    assert_eq!(nested.name(), "Nested");
    let inner = &nested.nested_type[0];
    let id = inner.field.iter().find(|f| f.name() == "id").unwrap();
    assert_eq!(id.json_name, None, "json_name = \"id\" is the default one");
    let other = inner.field.iter().find(|f| f.name() == "other_id2").unwrap();
    assert_eq!(other.json_name, None, "otherId2 is the default one too");
    let custom =
        schema("syntax = \"proto3\"; message M { string user_id = 1 [json_name = \"user\"]; }");
    let bytes = BASE64.decode(custom.serialized()).unwrap();
    let fd = prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap();
    assert_eq!(fd.message_type[0].field[0].json_name(), "user");
    let deep = inner.field.iter().find(|f| f.name() == "deep1").unwrap();
    assert_eq!(deep.json_name, None, "a default json_name is left out, as protoc does");
    assert_eq!(deep.type_name(), ".my.package.Nested.InnerMessage.DeepMessage");
}

#[test]
fn invalid_schemas_are_refused_with_the_reason() {
    let cases = [
        (
            "syntax = \"proto3\";\nmessage M {\n  strin s = 1;\n}\n",
            "name 'strin' is not defined (line 3, column 3)",
        ),
        (
            "syntax = \"proto3\";\nimport \"missing.proto\";\nmessage M {}\n",
            "import 'missing.proto' not found",
        ),
        (
            "syntax = \"proto3\";\nmessage M {\n  string s = 1\n}\n",
            "Syntax error in line 4, column 1: expected ';'",
        ),
        (
            "syntax = \"proto3\";\nmessage M { string a = 1; int32 b = 1; }",
            "field number '1' is already used",
        ),
        ("syntax = \"proto4\";", "unexpected syntax: proto4"),
        ("message M { string s = 1; }", "expected"),
        ("Zm9vYmFy!", "Could not parse Protobuf"),
        (
            "not a schema at all",
            "Could not parse Protobuf - Syntax error in line 1, column 1: unexpected label: not",
        ),
    ];
    for (input, want) in cases {
        let e = ProtobufSchema::parse(input, &[]).expect_err(input);
        assert!(e.contains(want), "{input}: {e}");
    }
}

const ADDRESS: &str =
    "syntax = \"proto3\";\npackage com.ex;\nmessage Address {\n  string city = 1;\n}\n";
const USER: &str = "syntax = \"proto3\";\npackage com.ex;\nimport \"address.proto\";\nmessage User {\n  Address home = 1;\n  com.ex.Address work = 2;\n}\n";

#[test]
fn references_resolve_by_import_path() {
    let user = ProtobufSchema::parse(USER, &[("address.proto", ADDRESS)]).unwrap();
    assert_eq!(
        user.canonical(),
        "syntax = \"proto3\";\npackage com.ex;\n\nimport \"address.proto\";\n\nmessage User {\n  Address home = 1;\n  com.ex.Address work = 2;\n}\n"
    );
    assert_eq!(user.record_name().as_deref(), Some("com.ex.User"));
    // A reference may itself be a serialized descriptor.
    let serialized = schema(ADDRESS).serialized().to_string();
    ProtobufSchema::parse(USER, &[("address.proto", &serialized)]).unwrap();
    let e = ProtobufSchema::parse(USER, &[]).unwrap_err();
    assert!(e.contains("import 'address.proto' not found"), "{e}");
    let e = ProtobufSchema::parse(USER, &[("address.proto", "message {")]).unwrap_err();
    assert!(e.contains("in reference 'address.proto'"), "{e}");
    let broken = "syntax = \"proto3\";\npackage com.ex;\nmessage Address {\n  Strin city = 1;\n}\n";
    let e = ProtobufSchema::parse(USER, &[("address.proto", broken)]).unwrap_err();
    assert!(e.contains("in reference 'address.proto' (line 4, column 3)"), "{e}");
}

#[test]
fn names_and_message_indexes() {
    let s = schema(
        "syntax = \"proto3\"; package p; enum E { E0 = 0; } message A { message B {} enum F { X = 0; } message C { message D {} } } message Z {}",
    );
    assert_eq!(s.record_name().as_deref(), Some("p.A"));
    assert_eq!(s.message_name_at(&[]).as_deref(), Some("p.A"));
    assert_eq!(s.message_name_at(&[0]).as_deref(), Some("p.A"));
    assert_eq!(s.message_name_at(&[1]).as_deref(), Some("p.Z"));
    assert_eq!(s.message_name_at(&[0, 0]).as_deref(), Some("p.A.B"));
    assert_eq!(s.message_name_at(&[0, 1, 0]).as_deref(), Some("p.A.C.D"));
    assert_eq!(s.message_name_at(&[2]), None);
    assert_eq!(s.message_name_at(&[-1]), None);
    assert_eq!(s.message_name_at(&[1, 0]), None);
    let only_enum = schema("syntax = \"proto3\"; enum E { A = 0; }");
    assert_eq!(only_enum.record_name().as_deref(), Some("E"));
    assert_eq!(only_enum.message_name_at(&[]), None);
    assert_eq!(schema("").record_name(), None);
}

#[test]
fn the_registry_api_parses_and_checks_protobuf() {
    let v1 = parse(
        SchemaType::Protobuf,
        "syntax = \"proto3\"; package ex; message Order { int64 id = 1; string note = 2; }",
        &[],
    )
    .unwrap();
    assert_eq!(v1.schema_type(), SchemaType::Protobuf);
    assert_eq!(v1.record_name().as_deref(), Some("ex.Order"));
    assert!(v1.serialized().is_some());
    assert_eq!(v1.message_name_at(&[]).as_deref(), Some("ex.Order"));
    let v2 = parse(
        SchemaType::Protobuf,
        "syntax = \"proto3\"; package ex; message Order { string id = 1; }",
        &[],
    )
    .unwrap();
    let previous = [Previous { version: 1, schema: &v1 }];
    let messages = check(Level::Backward, &v2, &previous);
    assert_eq!(
        messages,
        [
            "{errorType:\"FIELD_SCALAR_KIND_CHANGED\", description:\"The kind of a SCALAR field at path '#/Order/1' in the new schema does not match its kind in the old schema\"}".to_string(),
            "{oldSchemaVersion: 1}".to_string(),
            format!("{{oldSchema: '{}'}}", v1.canonical()),
        ]
    );
    let messages = check(Level::Forward, &v2, &previous);
    assert!(
        messages[0].contains("in the old schema does not match its kind in the new schema"),
        "{messages:?}"
    );
    // Removing a field is compatible both ways.
    let v3 = parse(
        SchemaType::Protobuf,
        "syntax = \"proto3\"; package ex; message Order { int64 id = 1; }",
        &[],
    )
    .unwrap();
    assert!(check(Level::Full, &v3, &previous).is_empty());

    // Mixed formats: refused, no panic.
    let avro = parse(SchemaType::Avro, "\"string\"", &[]).unwrap();
    assert_eq!(
        check(Level::Backward, &avro, &previous)[0],
        "Incompatible because of different schema type"
    );
    assert_eq!(avro.serialized(), None);

    // References by name; a reference of another format is refused.
    let deps =
        [Dependency { name: "address.proto", schema_type: SchemaType::Protobuf, text: ADDRESS }];
    let user = parse(SchemaType::Protobuf, USER, &deps).unwrap();
    assert_eq!(user.record_name().as_deref(), Some("com.ex.User"));
    let deps = [Dependency { name: "address.proto", schema_type: SchemaType::Avro, text: ADDRESS }];
    let e = parse(SchemaType::Protobuf, USER, &deps).unwrap_err();
    assert!(e.0.contains("not PROTOBUF"), "{e}");
    let e = parse(SchemaType::Protobuf, "message {", &[]).unwrap_err();
    assert!(e.0.starts_with("Invalid schema message {: Could not parse Protobuf - "), "{e}");
    // Served.
    assert!(SchemaType::SUPPORTED.contains(&SchemaType::Protobuf));
}

/// Confluent's `testComplexCustomOptions`, without what protoc (and protox) refuse but
/// Wire takes: a duplicated import, and list literals as option values outside a
/// `{...}` message value (`= ["PII", "PRIVATE"]`; a repeated field is set once per
/// statement instead). `confluent/meta.proto` resolves without a reference.
#[test]
fn confluent_meta_options_print_as_confluent_does() {
    let extensions = r#"syntax = "proto3";
package com.custom;
import "google/protobuf/descriptor.proto";
enum Mode { NONE = 0; FULL = 1; }
message Map { string subject = 1; Mode compatibility_mode = 2; }
extend google.protobuf.FileOptions { Map map = 50000; }
"#;
    let text = concat!(
        "syntax = \"proto3\";\n\n",
        "import \"common/extensions.proto\";\n",
        "import \"confluent/meta.proto\";\n\n",
        "package com.custom.example.v0;\n\n",
        "option go_package = \"example/v0;example\";\n",
        "option java_multiple_files = true;\n",
        "option (com.custom.map).subject = 'user-value';\n",
        "option (com.custom.map).compatibility_mode = FULL;\n",
        "option (.confluent.file_meta).doc = \"file meta\";\n",
        "option (confluent.file_meta).params = {\n",
        "        value: \"my_value\",\n",
        "        key: \"my_key\"\n",
        "    };\n",
        "option (confluent.file_meta).tags = \"PII\";\n",
        "option (confluent.file_meta).tags = \"PRIVATE\";\n",
        "message User {\n",
        "  string first_name = 1;\n",
        "  string last_name = 2;\n",
        "}",
    );
    let want = concat!(
        "syntax = \"proto3\";\n",
        "package com.custom.example.v0;\n",
        "\n",
        "import \"common/extensions.proto\";\n",
        "import \"confluent/meta.proto\";\n",
        "\n",
        "option go_package = \"example/v0;example\";\n",
        "option java_multiple_files = true;\n",
        "option (com.custom.map).subject = \"user-value\";\n",
        "option (com.custom.map).compatibility_mode = FULL;\n",
        "option (.confluent.file_meta).doc = \"file meta\";\n",
        "option (confluent.file_meta).params = {\n",
        "  value: \"my_value\",\n",
        "  key: \"my_key\"\n",
        "};\n",
        "option (confluent.file_meta).tags = \"PII\";\n",
        "option (confluent.file_meta).tags = \"PRIVATE\";\n",
        "\n",
        "message User {\n",
        "  string first_name = 1;\n",
        "  string last_name = 2;\n",
        "}\n",
    );
    let s = ProtobufSchema::parse(text, &[("common/extensions.proto", extensions)]).unwrap();
    assert_eq!(s.canonical(), want);
}

#[test]
fn known_files_resolve_without_references() {
    let text = concat!(
        "syntax = \"proto3\";\n",
        "import \"google/type/date.proto\";\n",
        "import \"google/type/money.proto\";\n",
        "import \"google/protobuf/timestamp.proto\";\n",
        "import \"confluent/type/decimal.proto\";\n",
        "message M {\n",
        "  google.type.Date d = 1;\n",
        "  google.type.Money m = 2;\n",
        "  google.protobuf.Timestamp t = 3;\n",
        "  confluent.type.Decimal price = 4;\n",
        "}\n",
    );
    schema(text);
    let e =
        ProtobufSchema::parse("syntax = \"proto3\"; import \"google/type/nothing.proto\";", &[])
            .unwrap_err();
    assert!(e.contains("import 'google/type/nothing.proto' not found"), "{e}");
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = format!("syntax = \"proto3\";{}{}", "message M {".repeat(5000), "}".repeat(5000));
    let e = ProtobufSchema::parse(&deep, &[]).unwrap_err();
    assert!(e.contains("nested more than 100 levels deep"), "{e}");
    let deep =
        format!("syntax = \"proto3\"; option (x) = {}{};", "{a:".repeat(5000), "}".repeat(5000));
    let e = ProtobufSchema::parse(&deep, &[]).unwrap_err();
    assert!(e.contains("nested more than 100 levels deep"), "{e}");
    let ok = format!("syntax = \"proto3\";{}{}", "message M {".repeat(20), "}".repeat(20));
    schema(&ok);
}

#[test]
fn the_serialized_form_keeps_custom_options() {
    let bytes = BASE64.decode(schema(OPTIONS).serialized()).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("\"quoted\" 'single'"), "{text}");
    assert!(text.contains("deep"), "{text}");
    let fd = prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap();
    assert_eq!(fd.name(), "default");
}

/// Inputs whose canonical text Confluent's own classes (7.0.16's `ProtobufSchema`, whose
/// printer agrees with master's for these constructs) gave: adjacent strings and escapes
/// (Wire knows no `\\u`), a hex field number, a stray `;`, text-format values with
/// repeated keys, `default` and `json_name` after the other options, a group in a oneof,
/// an empty service, an rpc with an empty body.
const FROM_CONFLUENT: &[(&str, &str)] = &[
    (
        "syntax = \"proto3\";\npackage c;\nimport \"google/protobuf/descriptor.proto\";\nextend google.protobuf.FileOptions { string s1 = 50001; string s2 = 50002; double d1 = 50003; int32 i1 = 50004; }\nextend google.protobuf.MessageOptions { Agg agg = 50005; }\noption (s1) = \"abc\" 'def'\n   \"ghi\";\noption (s2) = \"oct\\101\\x42\\u0043 \\?\";\noption (d1) = -1.50e3;\noption (i1) = 0x1F;\nmessage Agg { int32 a = 1; repeated Agg kids = 2; string s = 3; }\nmessage M {\n  option (agg) = { a: 1; kids { a: 2 } kids: { a: 3, s: \"x\" } s: 'y' };\n  int32 x = 0x10;;\n  // trailing\n};\n;\n",
        "syntax = \"proto3\";\npackage c;\n\nimport \"google/protobuf/descriptor.proto\";\n\noption (s1) = \"abcdefghi\";\noption (s2) = \"octABu0043 ?\";\noption (d1) = -1.50e3;\noption (i1) = 0x1F;\n\nmessage Agg {\n  int32 a = 1;\n  repeated Agg kids = 2;\n  string s = 3;\n}\nmessage M {\n  option (agg) = {\n    a: 1,\n    kids: [\n      {\n        a: 2\n      },\n      {\n        a: 3,\n        s: \"x\"\n      }\n    ],\n    s: \"y\"\n  };\n\n  int32 x = 16;\n}\n\nextend google.protobuf.FileOptions {\n  string s1 = 50001;\n  string s2 = 50002;\n  double d1 = 50003;\n  int32 i1 = 50004;\n}\nextend google.protobuf.MessageOptions {\n  Agg agg = 50005;\n}\n",
    ),
    (
        "syntax = \"proto2\";\nimport \"google/protobuf/descriptor.proto\";\nextend google.protobuf.EnumValueOptions { optional int32 w = 50001; }\nenum E {\n  A = 0 [deprecated = true, (w) = 1];\n  B = 1 [(w) = -2];\n}\nmessage M {\n  optional int32 a = 1 [deprecated = true, default = 5, json_name = \"aa\"];\n  optional string b = 2 [json_name = \"bb\", default = \"d\"];\n  oneof o {\n    string c = 3;\n    group G = 4 { optional int32 x = 5; }\n  }\n  reserved 10 to max;\n}\nservice Empty {}\nservice S { rpc A (M) returns (M) {}; rpc B (M) returns (M) { } }\n",
        "syntax = \"proto2\";\n\nimport \"google/protobuf/descriptor.proto\";\n\nmessage M {\n  reserved 10 to max;\n\n  optional int32 a = 1 [\n    deprecated = true,\n    default = 5,\n    json_name = \"aa\"\n  ];\n  optional string b = 2 [\n    default = \"d\",\n    json_name = \"bb\"\n  ];\n\n  oneof o {\n    string c = 3;\n  \n    group G = 4 {\n      optional int32 x = 5;\n    }\n  }\n}\nenum E {\n  A = 0 [\n    deprecated = true,\n    (w) = 1\n  ];\n  B = 1 [(w) = -2];\n}\n\nextend google.protobuf.EnumValueOptions {\n  optional int32 w = 50001;\n}\n\nservice Empty {}\nservice S {\n  rpc A (M) returns (M);\n  rpc B (M) returns (M);\n}\n",
    ),
    (
        "syntax = \"proto3\";\nimport \"google/protobuf/descriptor.proto\";\nmessage KV { map<string, string> m = 1; repeated string tags = 2; bool flag = 3; E e = 4; }\nenum E { E0 = 0; E1 = 1; }\nextend google.protobuf.FieldOptions { KV kv = 50001; }\nmessage M {\n  string a = 1 [(kv) = { m { key: \"k1\" value: \"v1\" } m: [{key: \"k2\", value: \"v2\"}], tags: [\"t1\", \"t2\"], flag: true, e: E1 }];\n  string b = 2 [(kv).tags = \"x\", (kv).flag = false];\n}\n",
        "syntax = \"proto3\";\n\nimport \"google/protobuf/descriptor.proto\";\n\nmessage KV {\n  map<string, string> m = 1;\n  repeated string tags = 2;\n  bool flag = 3;\n  E e = 4;\n}\nmessage M {\n  string a = 1 [(kv) = {\n    m: [\n      {\n        key: \"k1\",\n        value: \"v1\"\n      },\n      {\n        key: \"k2\",\n        value: \"v2\"\n      }\n    ],\n    tags: [\n      \"t1\",\n      \"t2\"\n    ],\n    flag: true,\n    e: E1\n  }];\n  string b = 2 [\n    (kv).tags = \"x\",\n    (kv).flag = false\n  ];\n}\nenum E {\n  E0 = 0;\n  E1 = 1;\n}\n\nextend google.protobuf.FieldOptions {\n  KV kv = 50001;\n}\n",
    ),
];

#[test]
fn prints_what_confluents_classes_print() {
    for (input, want) in FROM_CONFLUENT {
        let once = schema(input);
        assert_eq!(once.canonical(), *want, "{input}");
        assert_eq!(schema(once.canonical()).canonical(), *want, "stable: {input}");
    }
}

mod robustness {
    use super::super::ProtobufSchema;
    use proptest::prelude::*;

    const TOKENS: &[&str] = &[
        "syntax = \"proto3\";",
        "syntax = \"proto2\";",
        "package p;",
        "message",
        "enum",
        "M",
        "N",
        "E",
        "{",
        "}",
        ";",
        "=",
        "1",
        "2",
        "0x10",
        "-1",
        "int32",
        "string",
        "repeated",
        "optional",
        "required",
        "map<string, M>",
        "oneof",
        "o",
        "reserved",
        "to",
        "max",
        ",",
        "\"a\"",
        "'b\\x41'",
        "option",
        "(x)",
        ".y",
        "[",
        "]",
        ":",
        "true",
        "group",
        "G",
        "extensions",
        "extend",
        "service",
        "rpc",
        "(",
        ")",
        "returns",
        "stream",
        "// c\n",
        "/* c */",
        "import",
        "\"google/protobuf/any.proto\"",
        "public",
        "weak",
        "\\",
    ];

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(TOKENS), 0..60).prop_map(|t| t.join(" "))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Network input: any text parses or is refused, never panics; what parses prints
        /// and compares against anything else that parses.
        #[test]
        fn any_text_is_parsed_or_refused(a in text(), b in text()) {
            let a = ProtobufSchema::parse(&a, &[]);
            let b = ProtobufSchema::parse(&b, &[]);
            if let (Ok(a), Ok(b)) = (&a, &b) {
                let _ = a.can_read(b, "new", "old");
                let _ = b.can_read(a, "new", "old");
                let _ = ProtobufSchema::parse(a.serialized(), &[]);
                let _ = a.message_name_at(&[0, 1, 2]);
            }
        }

        /// Valid schemas with a piece cut out, or a byte of their serialized form changed.
        #[test]
        fn damaged_schemas_are_parsed_or_refused(
            which in 0..4usize,
            start in 0..2000usize,
            len in 1..40usize,
            flip in any::<(usize, u8)>(),
        ) {
            use base64::Engine;
            let engine = base64::engine::general_purpose::STANDARD;
            let text = [super::MESSY, super::OPTIONS, super::PROTO2, super::ENUM_RESERVED][which];
            let chars: Vec<char> = text.chars().collect();
            let start = start % chars.len();
            let end = (start + len).min(chars.len());
            let cut: String = chars[..start].iter().chain(&chars[end..]).collect();
            if let Ok(s) = ProtobufSchema::parse(&cut, &[]) {
                let _ = ProtobufSchema::parse(s.canonical(), &[]);
            }
            let original = ProtobufSchema::parse(text, &[]).unwrap();
            let mut bytes = engine.decode(original.serialized()).unwrap();
            let at = flip.0 % bytes.len();
            bytes[at] ^= flip.1.max(1);
            if let Ok(s) = ProtobufSchema::parse(&engine.encode(&bytes), &[]) {
                let _ = s.can_read(&original, "new", "old");
                let _ = original.can_read(&s, "new", "old");
            }
        }

        /// Any bytes in base64: a descriptor, or refused.
        #[test]
        fn any_base64_is_parsed_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            use base64::Engine;
            let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
            let _ = ProtobufSchema::parse(&text, &[]);
        }
    }
}

/// prost-reflect 0.16.5 panics while labelling the error for some malformed descriptors
/// (an unknown `syntax`, for one); the registry gets an error instead.
#[test]
fn a_malformed_descriptor_is_refused_not_panicked_on() {
    let bytes = BASE64.decode(schema(ENUM_BEFORE).serialized()).unwrap();
    let mut fd = prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap();
    fd.syntax = Some("qroto3".into());
    let e = ProtobufSchema::parse(&BASE64.encode(fd.encode_to_vec()), &[]).unwrap_err();
    assert_eq!(e, "Could not parse Protobuf - unknown syntax 'qroto3'");
}

/// What Confluent's Java serializer registers: the text Confluent prints from a generated
/// class's descriptor (qualified names, a map as its explicit entry message). It parses,
/// prints as it is, and reads and is read by the `map<>` form of the same schema.
#[test]
fn the_java_serializers_text_registers() {
    let java = concat!(
        "syntax = \"proto3\";\npackage a.b;\n\n",
        "import \"google/protobuf/timestamp.proto\";\n\n",
        "message Order {\n  repeated .a.b.Order.CountsEntry counts = 2;\n",
        "  .google.protobuf.Timestamp at = 3;\n  optional string note = 4;\n\n",
        "  message CountsEntry {\n    option map_entry = true;\n  \n",
        "    string key = 1;\n    int64 value = 2;\n  }\n}\n",
    );
    let s = schema(java);
    assert_eq!(s.canonical(), java);
    let text = schema(
        "syntax = \"proto3\"; package a.b; import \"google/protobuf/timestamp.proto\"; message Order { map<string, int64> counts = 2; google.protobuf.Timestamp at = 3; optional string note = 4; }",
    );
    assert_eq!(s.can_read(&text, "new", "old"), Vec::<String>::new());
    assert_eq!(text.can_read(&s, "new", "old"), Vec::<String>::new());
}

/// A descriptor's `java_string_check_utf8` comes back, after
/// `java_generate_equals_and_hash`, as Confluent's `toProtoFile` puts it.
#[test]
fn a_descriptors_java_string_check_utf8_is_read_back() {
    let text = "syntax = \"proto3\";\n\noption java_string_check_utf8 = true;\noption java_package = \"p\";\n\nmessage M {\n  string a = 1;\n}\n";
    let from_descriptor = schema(schema(text).serialized());
    assert_eq!(
        from_descriptor.canonical(),
        "syntax = \"proto3\";\n\noption java_package = \"p\";\noption java_string_check_utf8 = true;\n\nmessage M {\n  string a = 1;\n}\n"
    );
}
