//! Confluent's protobuf diff cases (its `SchemaDiffTest` examples, the same schemas and
//! verdicts re-expressed here): every difference, in Confluent's order, and whether the
//! update is compatible; plus the messages `isBackwardCompatible` gives.

use super::ProtobufSchema;
use super::diff;
use super::scope::Side;

/// One case: original and update texts with their references (import path, text).
struct Case {
    name: &'static str,
    original: &'static str,
    update: &'static str,
    original_refs: &'static [(&'static str, &'static str)],
    update_refs: &'static [(&'static str, &'static str)],
    changes: &'static [&'static str],
    compatible: bool,
}

fn differences(original: &ProtobufSchema, update: &ProtobufSchema) -> Vec<String> {
    let (o, u): (Side<'_>, Side<'_>) = (original.side(), update.side());
    diff::compare(&o, &u).iter().map(|d| format!("{} {}", d.kind.as_str(), d.path)).collect()
}

#[test]
fn confluent_diff_examples() {
    let mut failures = Vec::new();
    for case in CASES {
        let original = ProtobufSchema::parse(case.original, case.original_refs)
            .unwrap_or_else(|e| panic!("{}: original: {e}", case.name));
        let update = ProtobufSchema::parse(case.update, case.update_refs)
            .unwrap_or_else(|e| panic!("{}: update: {e}", case.name));
        let changes = differences(&original, &update);
        let compatible = update.can_read(&original, "new", "old").is_empty();
        if changes != case.changes || compatible != case.compatible {
            failures.push(format!(
                "{}: got {changes:?} (compatible: {compatible}), want {:?} ({})",
                case.name, case.changes, case.compatible
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

const CASES: &[Case] = &[
    Case {
        name: "Allow addition of un-reserved property",
        original: r#"syntax = "proto3";
package foo;
message TestMessage {
    string test_string = 1;
    .foo.TestMessage.Status test_int = 2;
    message Status {
    string test_string = 1;
    }
}"#,
        update: r#"syntax = "proto3";
package foo;

message TestMessage {
  string test_string = 1;
  .foo.TestMessage.Status test_int = 2;
  float test_float = 3;

  message Status {
    string test_string = 1;
  }
}
"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["FIELD_ADDED #/TestMessage/3"],
        compatible: true,
    },
    Case {
        name: "Detect package change",
        original: r#"syntax = "proto3";
package foo;
message TestMessage {
    string test_string = 1;
    .foo.TestMessage.Status test_int = 2;
    message Status {
    string test_string = 1;
    }
}"#,
        update: r#"syntax = "proto3";
package bar;
message TestMessage {
    string test_string = 1;
    .bar.TestMessage.Status test_int = 2;
    message Status {
    string test_string = 1;
    }
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["PACKAGE_CHANGED #/"],
        compatible: false,
    },
    Case {
        name: "Detect change to name qualification",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    Status test_int = 2;
    message Status {
    string test_string = 1;
    }
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    .TestMessage.Status test_int = 2;
    message Status {
    string test_string = 1;
    }
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &[],
        compatible: true,
    },
    Case {
        name: "Detect change to name qualification with package",
        original: r#"syntax = "proto3";
package foo;
message TestMessage {
    string test_string = 1;
    Status test_int = 2;
    message Status {
    string test_string = 1;
    }
}"#,
        update: r#"syntax = "proto3";
package foo;
message TestMessage {
    string test_string = 1;
    .foo.TestMessage.Status test_int = 2;
    message Status {
    string test_string = 1;
    }
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &[],
        compatible: true,
    },
    Case {
        name: "Detect added field",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    string test_string2 = 2;
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["FIELD_ADDED #/TestMessage/2"],
        compatible: true,
    },
    Case {
        name: "Detect added required field",
        original: r#"syntax = "proto2";
message TestMessage {
    optional string test_string = 1;
}"#,
        update: r#"syntax = "proto2";
message TestMessage {
    optional string test_string = 1;
    required string test_string2 = 2;
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["REQUIRED_FIELD_ADDED #/TestMessage/2"],
        compatible: false,
    },
    Case {
        name: "Detect added field to nested type",
        original: r#"syntax = "proto3";
message Wrapper {
    int32 wrapperInt = 1;
    message TestMessage {
    string test_string = 1;
}
}"#,
        update: r#"syntax = "proto3";
message Wrapper {
    int32 wrapperInt = 1;
    message TestMessage {
    string test_string = 1;
    string test_string2 = 2;
}
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["FIELD_ADDED #/Wrapper/TestMessage/2"],
        compatible: true,
    },
    Case {
        name: "Detect removed field",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    string test_string2 = 2;
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
}
"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["FIELD_REMOVED #/TestMessage/2"],
        compatible: true,
    },
    Case {
        name: "Detect removed required field",
        original: r#"syntax = "proto2";
message TestMessage {
    optional string test_string = 1;
    required string test_string2 = 2;
}"#,
        update: r#"syntax = "proto2";
message TestMessage {
    optional string test_string = 1;
}
"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["REQUIRED_FIELD_REMOVED #/TestMessage/2"],
        compatible: false,
    },
    Case {
        name: "Detect changed field number",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    string test_string = 2;
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["FIELD_REMOVED #/TestMessage/1", "FIELD_ADDED #/TestMessage/2"],
        compatible: true,
    },
    Case {
        name: "Detect compatible field number type change",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    int32 test_int = 2;
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    int64 test_int = 2;
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &[],
        compatible: true,
    },
    Case {
        name: "Detect compatible field string type change",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    string test_string2 = 2;
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    bytes test_string2 = 2;
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &[],
        compatible: true,
    },
    Case {
        name: "Detect field number type to enum change",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    int32 test_int = 2;
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    Status test_int = 2;
}
enum Status {
    ACTIVE = 0;
    INACTIVE = 1;
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["ENUM_ADDED #/Status"],
        compatible: true,
    },
    Case {
        name: "Detect enum type to field number change",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    Status test_int = 2;
}
enum Status {
    ACTIVE = 0;
    INACTIVE = 1;
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    int32 test_int = 2;
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["ENUM_REMOVED #/Status"],
        compatible: true,
    },
    Case {
        name: "Detect field number type to message with same name as enum",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    int32 test_int = 2;
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    .TestMessage.Status test_int = 2;
    message Status {
    string test_string = 1;
    }
}
enum Status {
    ACTIVE = 0;
    INACTIVE = 1;
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &[
            "FIELD_KIND_CHANGED #/TestMessage/2",
            "MESSAGE_ADDED #/TestMessage/Status",
            "ENUM_ADDED #/Status",
        ],
        compatible: false,
    },
    Case {
        name: "Detect message with same name as enum to field number change",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    .TestMessage.Status test_int = 2;
    message Status {
    string test_string = 1;
    }
}
enum Status {
    ACTIVE = 0;
    INACTIVE = 1;
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    int32 test_int = 2;
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &[
            "FIELD_KIND_CHANGED #/TestMessage/2",
            "MESSAGE_REMOVED #/TestMessage/Status",
            "ENUM_REMOVED #/Status",
        ],
        compatible: false,
    },
    Case {
        name: "Detect enum const change",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    Status test_int = 2;
}
enum Status {
    ACTIVE = 0;
    INACTIVE = 1;
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    Status test_int = 2;
}
enum Status {
    ACTIVE = 0;
    NOT_ACTIVE = 1;
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["ENUM_CONST_CHANGED #/Status/1"],
        compatible: true,
    },
    Case {
        name: "Detect compatible field to oneof change",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    string test_string2 = 2;
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    oneof new_oneof {
        string test_string2 = 2;
        int32 other_id = 3;
}
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &[
            "ONEOF_ADDED #/TestMessage/new_oneof",
            "ONEOF_FIELD_ADDED #/TestMessage/new_oneof/3",
        ],
        compatible: true,
    },
    Case {
        name: "Detect incompatible field to oneof change",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    string test_string2 = 2;
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    oneof new_oneof {
    string test_string = 1;
    string test_string2 = 2;
        int32 other_id = 3;
}
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &[
            "MULTIPLE_FIELDS_MOVED_TO_ONEOF #/TestMessage/new_oneof",
            "ONEOF_ADDED #/TestMessage/new_oneof",
            "ONEOF_FIELD_ADDED #/TestMessage/new_oneof/3",
        ],
        compatible: false,
    },
    Case {
        name: "Detect compatible add field to oneof",
        original: r#"syntax = "proto3";
message TestMessage {
    oneof new_oneof {
    string test_string = 1;
    string test_string2 = 2;
}
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    oneof new_oneof {
    string test_string = 1;
    string test_string2 = 2;
        int32 other_id = 3;
}
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["ONEOF_FIELD_ADDED #/TestMessage/new_oneof/3"],
        compatible: true,
    },
    Case {
        name: "Detect incompatible remove field from oneof",
        original: r#"syntax = "proto3";
message TestMessage {
    oneof new_oneof {
    string test_string = 1;
    string test_string2 = 2;
        int32 other_id = 3;
}
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    oneof new_oneof {
    string test_string = 1;
    string test_string2 = 2;
}
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["ONEOF_FIELD_REMOVED #/TestMessage/new_oneof/3"],
        compatible: false,
    },
    Case {
        name: "Detect compatible move field to oneof",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    string test_string2 = 2;
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    oneof new_oneof {
    string test_string2 = 2;
}
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["ONEOF_ADDED #/TestMessage/new_oneof"],
        compatible: true,
    },
    Case {
        name: "Detect incompatible move field to oneof",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    oneof new_oneof {
    string test_string2 = 2;
    string test_string3 = 3;
}
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    oneof new_oneof {
    string test_string = 1;
    string test_string2 = 2;
    string test_string3 = 3;
}
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["FIELD_MOVED_TO_EXISTING_ONEOF #/TestMessage/new_oneof"],
        compatible: false,
    },
    Case {
        name: "Detect incompatible move field to renamed oneof",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    oneof new_oneof {
    string test_string2 = 2;
    string test_string3 = 3;
}
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    oneof new_oneof_2 {
    string test_string = 1;
    string test_string2 = 2;
    string test_string3 = 3;
}
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &[
            "FIELD_MOVED_TO_EXISTING_ONEOF #/TestMessage/new_oneof_2",
            "ONEOF_REMOVED #/TestMessage/new_oneof",
            "ONEOF_ADDED #/TestMessage/new_oneof_2",
        ],
        compatible: false,
    },
    Case {
        name: "Detect incompatible field type change",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    int32 test_int = 2;
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    TestMessage2 test_int = 2;
}
message TestMessage2 {
    string s1 = 1;
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["MESSAGE_ADDED #/TestMessage2", "FIELD_KIND_CHANGED #/TestMessage/2"],
        compatible: false,
    },
    Case {
        name: "Detect incompatible field type change",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    int32 test_int = 2;
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    string test_string2 = 2;
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &[
            "FIELD_NAME_CHANGED #/TestMessage/2",
            "FIELD_SCALAR_KIND_CHANGED #/TestMessage/2",
        ],
        compatible: false,
    },
    Case {
        name: "Detect incompatible field type change",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    TestMessage2 test_int = 2;
}
message TestMessage2 {
    string s1 = 1;
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    TestMessage3 test_int = 2;
}
message TestMessage3 {
    string s1 = 1;
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &[
            "MESSAGE_REMOVED #/TestMessage2",
            "MESSAGE_ADDED #/TestMessage3",
            "FIELD_NAMED_TYPE_CHANGED #/TestMessage/2",
        ],
        compatible: false,
    },
    Case {
        name: "Detect incompatible field type change",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    map<string, int32> test_map_int = 2;
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    map<string, string> test_map_string = 2;
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &[
            "FIELD_NAME_CHANGED #/TestMessage/2",
            "FIELD_SCALAR_KIND_CHANGED #/TestMessage/2",
        ],
        compatible: false,
    },
    Case {
        name: "Detect compatible name qualification in map",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    map<string, Status> test_map = 2;
    message Status {
    string test_string = 1;
    }
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    map<string, TestMessage.Status> test_map = 2;
    message Status {
    string test_string = 1;
    }
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &[],
        compatible: true,
    },
    Case {
        name: "Detect compatible field label change for message",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    optional Status test_status = 2;
    message Status {
    string test_string = 1;
    }
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
    repeated Status test_status = 2;
    message Status {
    string test_string = 1;
    }
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &[],
        compatible: true,
    },
    Case {
        name: "Detect compatible field label change for string",
        original: r#"syntax = "proto3";
message TestMessage {
    optional string test_string = 1;
    Status test_status = 2;
    message Status {
    string test_string = 1;
    }
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    repeated string test_string = 1;
    Status test_status = 2;
    message Status {
    string test_string = 1;
    }
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["FIELD_STRING_OR_BYTES_LABEL_CHANGED #/TestMessage/1"],
        compatible: true,
    },
    Case {
        name: "Detect compatible field label change for bytes",
        original: r#"syntax = "proto3";
message TestMessage {
    optional bytes test_bytes = 1;
    Status test_status = 2;
    message Status {
    string test_string = 1;
    }
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    repeated bytes test_bytes = 1;
    Status test_status = 2;
    message Status {
    string test_string = 1;
    }
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["FIELD_STRING_OR_BYTES_LABEL_CHANGED #/TestMessage/1"],
        compatible: true,
    },
    Case {
        name: "Detect incompatible field label change for number",
        original: r#"syntax = "proto3";
message TestMessage {
    optional int32 test_int = 1;
    Status test_status = 2;
    message Status {
    string test_string = 1;
    }
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    repeated int32 test_int = 1;
    Status test_status = 2;
    message Status {
    string test_string = 1;
    }
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["FIELD_NUMERIC_LABEL_CHANGED #/TestMessage/1"],
        compatible: false,
    },
    Case {
        name: "Detect compatible message addition",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
}"#,
        update: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
}
message TestMessage2 {
    string test_string = 1;
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["MESSAGE_ADDED #/TestMessage2"],
        compatible: true,
    },
    Case {
        name: "Detect compatible message index change",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
}"#,
        update: r#"syntax = "proto3";
message TestMessage2 {
    string test_string = 1;
}
message TestMessage {
    string test_string = 1;
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["MESSAGE_ADDED #/TestMessage2", "MESSAGE_MOVED #/TestMessage"],
        compatible: true,
    },
    Case {
        name: "Detect compatible message index change",
        original: r#"syntax = "proto3";
message TestMessage {
    string test_string = 1;
}
message TestMessage2 {
    string test_string = 1;
}"#,
        update: r#"syntax = "proto3";
message TestMessage2 {
    string test_string = 1;
}
message TestMessage {
    string test_string = 1;
}"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["MESSAGE_MOVED #/TestMessage2", "MESSAGE_MOVED #/TestMessage"],
        compatible: true,
    },
    Case {
        name: "Detect incompatible import change",
        original: r#"syntax = "proto3";
import "google.proto";
message TestMessage {
    .io.confluent.cloud.demo.domain.GoogleHome test_string = 1;
    }"#,
        update: r#"syntax = "proto3";
import "google2.proto";
message TestMessage {
    .io.confluent.cloud.demo.domain.GoogleHome test_string = 1;
    }"#,
        original_refs: &[(
            "google.proto",
            r#"syntax = "proto3";

package io.confluent.cloud.demo.domain;

option java_outer_classname = "GoogleImpl";

message GoogleHome {
  int32 deviceID = 1;
  bool enabled = 2;
}"#,
        )],
        update_refs: &[(
            "google2.proto",
            r#"syntax = "proto3";

package io.confluent.cloud.demo.domain;

option java_outer_classname = "GoogleImpl2";

message GoogleHome {
  string deviceID = 1;
  bool enabled = 2;
}"#,
        )],
        changes: &[
            "FIELD_SCALAR_KIND_CHANGED #/GoogleHome/1",
            "FIELD_NAMED_TYPE_CHANGED #/TestMessage/1",
        ],
        compatible: false,
    },
    Case {
        name: "Detect moving to import",
        original: r#"syntax = "proto3";
message TestMessage {
    GoogleHome test_string = 1;
    }
message GoogleHome {
  int32 deviceID = 1;
  bool enabled = 2;
}"#,
        update: r#"syntax = "proto3";
import "google.proto";
message TestMessage {
    .io.confluent.cloud.demo.domain.GoogleHome test_string = 1;
    }"#,
        original_refs: &[],
        update_refs: &[(
            "google.proto",
            r#"syntax = "proto3";

package io.confluent.cloud.demo.domain;

option java_outer_classname = "GoogleImpl";

message GoogleHome {
  int32 deviceID = 1;
  bool enabled = 2;
}"#,
        )],
        changes: &["MESSAGE_REMOVED #/GoogleHome"],
        compatible: false,
    },
    Case {
        name: "Detect moving from import",
        original: r#"syntax = "proto3";
import "google.proto";
message TestMessage {
    .io.confluent.cloud.demo.domain.GoogleHome test_string = 1;
    }"#,
        update: r#"syntax = "proto3";
message TestMessage {
    GoogleHome test_string = 1;
    }
message GoogleHome {
  int32 deviceID = 1;
  bool enabled = 2;
}"#,
        original_refs: &[(
            "google.proto",
            r#"syntax = "proto3";

package io.confluent.cloud.demo.domain;

option java_outer_classname = "GoogleImpl";

message GoogleHome {
  int32 deviceID = 1;
  bool enabled = 2;
}"#,
        )],
        update_refs: &[],
        changes: &["MESSAGE_ADDED #/GoogleHome"],
        compatible: true,
    },
    Case {
        name: "Detect import change with different remote package name",
        original: r#"syntax = "proto3";
import "google.proto";
message TestMessage {
    .io.confluent.cloud.demo.domain.GoogleHome test_string = 1;
    }"#,
        update: r#"syntax = "proto3";
import "google2.proto";
message TestMessage {
    .io.confluent.cloud.demo.domain2.GoogleHome test_string = 1;
    }"#,
        original_refs: &[(
            "google.proto",
            r#"syntax = "proto3";

package io.confluent.cloud.demo.domain;

option java_outer_classname = "GoogleImpl";

message GoogleHome {
  int32 deviceID = 1;
  bool enabled = 2;
}"#,
        )],
        update_refs: &[(
            "google2.proto",
            r#"syntax = "proto3";

package io.confluent.cloud.demo.domain2;

option java_outer_classname = "GoogleImpl2";

message GoogleHome {
  int32 deviceID = 1;
  bool enabled = 2;
}"#,
        )],
        changes: &[],
        compatible: true,
    },
    Case {
        name: "Detect import change with different remote package nested name",
        original: r#"syntax = "proto3";
import "google.proto";
message TestMessage {
    .io.confluent.cloud.demo.domain.outer.GoogleHome test_string = 1;
    }"#,
        update: r#"syntax = "proto3";
import "google2.proto";
message TestMessage {
    .io.confluent.cloud.demo.domain2.outer.GoogleHome test_string = 1;
    }"#,
        original_refs: &[(
            "google.proto",
            r#"syntax = "proto3";

package io.confluent.cloud.demo.domain;

option java_outer_classname = "GoogleImpl";

message outer {
  message GoogleHome {
  int32 deviceID = 1;
  bool enabled = 2;
}
}"#,
        )],
        update_refs: &[(
            "google2.proto",
            r#"syntax = "proto3";

package io.confluent.cloud.demo.domain2;

option java_outer_classname = "GoogleImpl2";

message outer {
  message GoogleHome {
  int32 deviceID = 1;
  bool enabled = 2;
}
}"#,
        )],
        changes: &[],
        compatible: true,
    },
    Case {
        name: "Detect incompatible import change with different remote package nested name",
        original: r#"syntax = "proto3";
import "google.proto";
message TestMessage {
    .io.confluent.cloud.demo.domain.outer.GoogleHome test_string = 1;
    }"#,
        update: r#"syntax = "proto3";
import "google2.proto";
message TestMessage {
    .io.confluent.cloud.demo.domain2.outer.GoogleHome test_string = 1;
    }"#,
        original_refs: &[(
            "google.proto",
            r#"syntax = "proto3";

package io.confluent.cloud.demo.domain;

option java_outer_classname = "GoogleImpl";

message outer {
  message GoogleHome {
  int32 deviceID = 1;
  bool enabled = 2;
}
}"#,
        )],
        update_refs: &[(
            "google2.proto",
            r#"syntax = "proto3";

package io.confluent.cloud.demo.domain2;

option java_outer_classname = "GoogleImpl2";

message outer {
  message GoogleHome {
  string deviceID = 1;
  bool enabled = 2;
}
}"#,
        )],
        changes: &[
            "FIELD_SCALAR_KIND_CHANGED #/outer/GoogleHome/1",
            "FIELD_NAMED_TYPE_CHANGED #/TestMessage/1",
        ],
        compatible: false,
    },
    Case {
        name: "Detect incompatible import change with same subject, different version",
        original: r#"syntax = "proto3";
import "google.proto";
message TestMessage {
    .io.confluent.cloud.demo.domain.outer.GoogleHome test_string = 1;
    }"#,
        update: r#"syntax = "proto3";
import "google.proto";
message TestMessage {
    .io.confluent.cloud.demo.domain2.outer.GoogleHome test_string = 1;
    }"#,
        original_refs: &[(
            "google.proto",
            r#"syntax = "proto3";

package io.confluent.cloud.demo.domain;

option java_outer_classname = "GoogleImpl";

message outer {
  message GoogleHome {
  int32 deviceID = 1;
  bool enabled = 2;
}
}"#,
        )],
        update_refs: &[(
            "google.proto",
            r#"syntax = "proto3";

package io.confluent.cloud.demo.domain2;

option java_outer_classname = "GoogleImpl2";

message outer {
  message GoogleHome {
  string deviceID = 1;
  bool enabled = 2;
}
}"#,
        )],
        changes: &[
            "FIELD_SCALAR_KIND_CHANGED #/outer/GoogleHome/1",
            "FIELD_NAMED_TYPE_CHANGED #/TestMessage/1",
        ],
        compatible: false,
    },
    Case {
        name: "Detect incompatible field type change when enclosing oneof is renamed",
        original: r#"syntax = "proto3";
message Message {
  oneof oldOneOf {
    float field_float = 1;
    int32 field_with_incompatible_type_change = 2;
  }
}
"#,
        update: r#"syntax = "proto3";
message Message {
  oneof renamedOneOf {
    float field_float = 1;
    string field_with_incompatible_type_change = 2;
  }
}
"#,
        original_refs: &[],
        update_refs: &[],
        changes: &[
            "ONEOF_REMOVED #/Message/oldOneOf",
            "ONEOF_ADDED #/Message/renamedOneOf",
            "FIELD_SCALAR_KIND_CHANGED #/Message/renamedOneOf/2",
        ],
        compatible: false,
    },
    Case {
        name: "Detect incompatible field type change when field is moved out of a removed oneof",
        original: r#"syntax = "proto3";
message Message {
  oneof oldOneOf {
    float field_float = 1;
    int32 field_with_incompatible_type_change = 2;
  }
}
"#,
        update: r#"syntax = "proto3";
message Message {
  float field_float = 1;
  sint64 field_with_incompatible_type_change = 2;
}
"#,
        original_refs: &[],
        update_refs: &[],
        changes: &[
            "ONEOF_REMOVED #/Message/oldOneOf",
            "ONEOF_FIELD_MOVED_TO_TOP_LEVEL #/Message/1",
            "ONEOF_FIELD_MOVED_TO_TOP_LEVEL #/Message/2",
            "FIELD_SCALAR_KIND_CHANGED #/Message/2",
        ],
        compatible: false,
    },
    Case {
        name: "Detect incompatible field type change when field is moved into a new oneof",
        original: r#"syntax = "proto3";
message Message {
  float field_float = 1;
  int32 field_with_incompatible_type_change = 2;
}
"#,
        update: r#"syntax = "proto3";
message Message {
  float field_float = 1;
  oneof newOneOf {
    sint64 field_with_incompatible_type_change = 2;
  }
}
"#,
        original_refs: &[],
        update_refs: &[],
        changes: &[
            "ONEOF_ADDED #/Message/newOneOf",
            "FIELD_SCALAR_KIND_CHANGED #/Message/newOneOf/2",
        ],
        compatible: false,
    },
    Case {
        name: "Detect compatible oneof rename with identical fields",
        original: r#"syntax = "proto3";
message Message {
  oneof oldOneOf {
    float field_float = 1;
    int32 field_int = 2;
  }
}
"#,
        update: r#"syntax = "proto3";
message Message {
  oneof renamedOneOf {
    float field_float = 1;
    int32 field_int = 2;
  }
}
"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["ONEOF_REMOVED #/Message/oldOneOf", "ONEOF_ADDED #/Message/renamedOneOf"],
        compatible: true,
    },
    Case {
        name: "Detect incompatible field move between two differently-named oneofs",
        original: r#"syntax = "proto3";
message Message {
  oneof oneof_a {
    int32 field_1 = 1;
    int32 field_2 = 2;
  }
  oneof oneof_b {
    int32 field_3 = 3;
  }
}
"#,
        update: r#"syntax = "proto3";
message Message {
  oneof oneof_a {
    int32 field_1 = 1;
  }
  oneof oneof_b {
    int32 field_3 = 3;
    int32 field_2 = 2;
  }
}
"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["FIELD_MOVED_TO_EXISTING_ONEOF #/Message/oneof_b"],
        compatible: false,
    },
    Case {
        name: "Detect incompatible move of a field from a deleted oneof into an existing oneof",
        original: r#"syntax = "proto3";
message Message {
  oneof oneof_a { int32 field_a = 1; }
  oneof oneof_b { int32 field_b = 3; }
}
"#,
        update: r#"syntax = "proto3";
message Message {
  oneof oneof_b { int32 field_b = 3; int32 field_a = 1; }
}
"#,
        original_refs: &[],
        update_refs: &[],
        changes: &[
            "FIELD_MOVED_TO_EXISTING_ONEOF #/Message/oneof_b",
            "ONEOF_REMOVED #/Message/oneof_a",
        ],
        compatible: false,
    },
    Case {
        name: "Detect incompatible merge of two oneofs into a new oneof",
        original: r#"syntax = "proto3";
message Message {
  oneof oneof_a { int32 field_a = 1; }
  oneof oneof_b { int32 field_b = 2; }
}
"#,
        update: r#"syntax = "proto3";
message Message {
  oneof oneof_c { int32 field_a = 1; int32 field_b = 2; }
}
"#,
        original_refs: &[],
        update_refs: &[],
        changes: &[
            "FIELD_MOVED_TO_EXISTING_ONEOF #/Message/oneof_c",
            "ONEOF_REMOVED #/Message/oneof_a",
            "ONEOF_REMOVED #/Message/oneof_b",
            "ONEOF_ADDED #/Message/oneof_c",
        ],
        compatible: false,
    },
    Case {
        name: "Detect compatible move of a single field into a new singleton oneof from a surviving oneof",
        original: r#"syntax = "proto3";
message Message {
  oneof oneof_a { int32 field_a = 1; int32 field_b = 2; }
}
"#,
        update: r#"syntax = "proto3";
message Message {
  oneof oneof_a { int32 field_b = 2; }
  oneof oneof_b { int32 field_a = 1; }
}
"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["ONEOF_ADDED #/Message/oneof_b"],
        compatible: true,
    },
    Case {
        name: "Detect incompatible drop of a oneof member while renaming the oneof",
        original: r#"syntax = "proto3";
message Message {
  oneof g { int32 a = 1; int32 b = 2; }
}
"#,
        update: r#"syntax = "proto3";
message Message {
  oneof g2 { int32 a = 1; }
}
"#,
        original_refs: &[],
        update_refs: &[],
        changes: &[
            "ONEOF_REMOVED #/Message/g",
            "ONEOF_ADDED #/Message/g2",
            "ONEOF_FIELD_REMOVED #/Message/g/2",
        ],
        compatible: false,
    },
    Case {
        name: "Detect compatible move field out of a oneof to top level",
        original: r#"syntax = "proto3";
message Message {
  oneof oneof_x {
    int32 field_a = 1;
    int32 field_b = 2;
  }
}
"#,
        update: r#"syntax = "proto3";
message Message {
  oneof oneof_x {
    int32 field_a = 1;
  }
  int32 field_b = 2;
}
"#,
        original_refs: &[],
        update_refs: &[],
        changes: &["ONEOF_FIELD_MOVED_TO_TOP_LEVEL #/Message/2"],
        compatible: true,
    },
    Case {
        name: "Detect incompatible type change when field moved out of a oneof to top level",
        original: r#"syntax = "proto3";
message Message {
  oneof oneof_x {
    int32 field_a = 1;
    int32 field_b = 2;
  }
}
"#,
        update: r#"syntax = "proto3";
message Message {
  oneof oneof_x {
    int32 field_a = 1;
  }
  string field_b = 2;
}
"#,
        original_refs: &[],
        update_refs: &[],
        changes: &[
            "ONEOF_FIELD_MOVED_TO_TOP_LEVEL #/Message/2",
            "FIELD_SCALAR_KIND_CHANGED #/Message/2",
        ],
        compatible: false,
    },
];

const ADDRESS_V1: &str =
    "syntax = \"proto3\";\npackage com.ex;\nmessage Address {\n  string city = 1;\n}\n";
const ADDRESS_V2: &str = "syntax = \"proto3\";\npackage com.ex;\nmessage Address {\n  string city = 1;\n  string zip = 2;\n}\n";
const ADDRESS_V3: &str =
    "syntax = \"proto3\";\npackage com.ex;\nmessage Address {\n  int64 city = 1;\n}\n";
const USER: &str = "syntax = \"proto3\";\npackage com.ex;\nimport \"address.proto\";\nmessage User {\n  Address home = 1;\n}\n";

/// More cases, ours: the scalar groups, maps, labels, enums, references and known types.
/// Where several top-level names differ, the order is Java's `HashSet` order (for
/// example "Entry" hashes to bucket 2 and "M" to bucket 13 of 16). Each list is what
/// Confluent's own `SchemaDiff` (7.0.16's classes, run on these texts) gives; none of
/// these cases touches a oneof, where 7.0.16's rules are older than master's.
const OWN_CASES: &[Case] = &[
    Case {
        name: "enum constant removed",
        original: "syntax = \"proto3\"; enum E { A = 0; B = 1; }",
        update: "syntax = \"proto3\"; enum E { A = 0; }",
        original_refs: &[],
        update_refs: &[],
        changes: &["ENUM_CONST_REMOVED #/E/1"],
        compatible: true,
    },
    Case {
        name: "enum constants added and renamed in a nested enum",
        original: "syntax = \"proto3\"; message M { enum S { X = 0; Y = 1; } S s = 1; }",
        update: "syntax = \"proto3\"; message M { enum S { X = 0; Z = 1; W = 2; } S s = 1; }",
        original_refs: &[],
        update_refs: &[],
        changes: &["ENUM_CONST_CHANGED #/M/S/1", "ENUM_CONST_ADDED #/M/S/2"],
        compatible: true,
    },
    Case {
        name: "field renamed",
        original: "syntax = \"proto3\"; message M { string a = 1; }",
        update: "syntax = \"proto3\"; message M { string b = 1; }",
        original_refs: &[],
        update_refs: &[],
        changes: &["FIELD_NAME_CHANGED #/M/1"],
        compatible: true,
    },
    Case {
        name: "int32 to uint64: same group",
        original: "syntax = \"proto3\"; message M { int32 a = 1; }",
        update: "syntax = \"proto3\"; message M { uint64 a = 1; }",
        original_refs: &[],
        update_refs: &[],
        changes: &[],
        compatible: true,
    },
    Case {
        name: "int32 to sint32: across groups",
        original: "syntax = \"proto3\"; message M { int32 a = 1; }",
        update: "syntax = \"proto3\"; message M { sint32 a = 1; }",
        original_refs: &[],
        update_refs: &[],
        changes: &["FIELD_SCALAR_KIND_CHANGED #/M/1"],
        compatible: false,
    },
    Case {
        name: "fixed32 to sfixed32: same group",
        original: "syntax = \"proto3\"; message M { fixed32 a = 1; }",
        update: "syntax = \"proto3\"; message M { sfixed32 a = 1; }",
        original_refs: &[],
        update_refs: &[],
        changes: &[],
        compatible: true,
    },
    Case {
        name: "float to double: across groups",
        original: "syntax = \"proto3\"; message M { float a = 1; }",
        update: "syntax = \"proto3\"; message M { double a = 1; }",
        original_refs: &[],
        update_refs: &[],
        changes: &["FIELD_SCALAR_KIND_CHANGED #/M/1"],
        compatible: false,
    },
    Case {
        name: "enum to int32: both general numbers",
        original: "syntax = \"proto3\"; enum E { A = 0; } message M { E a = 1; }",
        update: "syntax = \"proto3\"; enum E { A = 0; } message M { int32 a = 1; }",
        original_refs: &[],
        update_refs: &[],
        changes: &[],
        compatible: true,
    },
    Case {
        name: "message to string",
        original: "syntax = \"proto3\"; message M { N a = 1; } message N {}",
        update: "syntax = \"proto3\"; message M { string a = 1; } message N {}",
        original_refs: &[],
        update_refs: &[],
        changes: &["FIELD_KIND_CHANGED #/M/1"],
        compatible: false,
    },
    Case {
        name: "map value int32 to string",
        original: "syntax = \"proto3\"; message M { map<string, int32> m = 1; }",
        update: "syntax = \"proto3\"; message M { map<string, string> m = 1; }",
        original_refs: &[],
        update_refs: &[],
        changes: &["FIELD_SCALAR_KIND_CHANGED #/M/1"],
        compatible: false,
    },
    Case {
        name: "map key int32 to int64",
        original: "syntax = \"proto3\"; message M { map<int32, string> m = 1; }",
        update: "syntax = \"proto3\"; message M { map<int64, string> m = 1; }",
        original_refs: &[],
        update_refs: &[],
        changes: &[],
        compatible: true,
    },
    Case {
        name: "map to a repeated message",
        original: "syntax = \"proto3\"; message M { map<string, string> m = 1; }",
        update: "syntax = \"proto3\"; message M { repeated Entry m = 1; } message Entry { string key = 1; string value = 2; }",
        original_refs: &[],
        update_refs: &[],
        changes: &["MESSAGE_ADDED #/Entry", "FIELD_KIND_CHANGED #/M/1"],
        compatible: false,
    },
    Case {
        name: "proto2 optional to repeated number",
        original: "syntax = \"proto2\"; message M { optional int32 a = 1; }",
        update: "syntax = \"proto2\"; message M { repeated int32 a = 1; }",
        original_refs: &[],
        update_refs: &[],
        changes: &["FIELD_NUMERIC_LABEL_CHANGED #/M/1"],
        compatible: false,
    },
    Case {
        name: "proto2 optional to repeated string",
        original: "syntax = \"proto2\"; message M { optional string a = 1; }",
        update: "syntax = \"proto2\"; message M { repeated string a = 1; }",
        original_refs: &[],
        update_refs: &[],
        changes: &["FIELD_STRING_OR_BYTES_LABEL_CHANGED #/M/1"],
        compatible: true,
    },
    Case {
        name: "proto3 singular to repeated: Confluent compares labels only when both are written",
        original: "syntax = \"proto3\"; message M { int32 a = 1; }",
        update: "syntax = \"proto3\"; message M { repeated int32 a = 1; }",
        original_refs: &[],
        update_refs: &[],
        changes: &[],
        compatible: true,
    },
    Case {
        name: "field type changed to another local message",
        original: "syntax = \"proto3\"; message M { Foo f = 1; } message Foo { string a = 1; }",
        update: "syntax = \"proto3\"; message M { Bar f = 1; } message Bar { string a = 1; }",
        original_refs: &[],
        update_refs: &[],
        changes: &[
            "MESSAGE_ADDED #/Bar",
            "MESSAGE_REMOVED #/Foo",
            "FIELD_NAMED_TYPE_CHANGED #/M/1",
        ],
        compatible: false,
    },
    Case {
        name: "message moved into another",
        original: "syntax = \"proto3\"; message M { Item i = 1; } message Item {}",
        update: "syntax = \"proto3\"; message M { Item i = 1; message Item {} }",
        original_refs: &[],
        update_refs: &[],
        changes: &[
            "MESSAGE_REMOVED #/Item",
            "FIELD_NAMED_TYPE_CHANGED #/M/1",
            "MESSAGE_ADDED #/M/Item",
        ],
        compatible: false,
    },
    Case {
        name: "the same reference on both sides",
        original: USER,
        update: USER,
        original_refs: &[("address.proto", ADDRESS_V1)],
        update_refs: &[("address.proto", ADDRESS_V1)],
        changes: &[],
        compatible: true,
    },
    Case {
        name: "a reference changed compatibly",
        original: USER,
        update: USER,
        original_refs: &[("address.proto", ADDRESS_V1)],
        update_refs: &[("address.proto", ADDRESS_V2)],
        changes: &["FIELD_ADDED #/Address/2"],
        compatible: true,
    },
    Case {
        name: "a reference changed incompatibly",
        original: USER,
        update: USER,
        original_refs: &[("address.proto", ADDRESS_V1)],
        update_refs: &[("address.proto", ADDRESS_V3)],
        changes: &["FIELD_SCALAR_KIND_CHANGED #/Address/1", "FIELD_NAMED_TYPE_CHANGED #/User/1"],
        compatible: false,
    },
    Case {
        name: "a known enum (google.type.DayOfWeek) to int32",
        original: "syntax = \"proto3\"; import \"google/type/dayofweek.proto\"; message M { google.type.DayOfWeek d = 1; }",
        update: "syntax = \"proto3\"; message M { int32 d = 1; }",
        original_refs: &[],
        update_refs: &[],
        changes: &[],
        compatible: true,
    },
    Case {
        name: "a well-known message to string",
        original: "syntax = \"proto3\"; import \"google/protobuf/timestamp.proto\"; message M { google.protobuf.Timestamp t = 1; }",
        update: "syntax = \"proto3\"; message M { string t = 1; }",
        original_refs: &[],
        update_refs: &[],
        changes: &["FIELD_KIND_CHANGED #/M/1"],
        compatible: false,
    },
];

#[test]
fn own_diff_cases() {
    let mut failures = Vec::new();
    for case in OWN_CASES {
        let original = ProtobufSchema::parse(case.original, case.original_refs)
            .unwrap_or_else(|e| panic!("{}: original: {e}", case.name));
        let update = ProtobufSchema::parse(case.update, case.update_refs)
            .unwrap_or_else(|e| panic!("{}: update: {e}", case.name));
        let changes = differences(&original, &update);
        let compatible = update.can_read(&original, "new", "old").is_empty();
        if changes != case.changes || compatible != case.compatible {
            failures.push(format!(
                "{}: got {changes:?} (compatible: {compatible}), want {:?} ({})",
                case.name, case.changes, case.compatible
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        OWN_CASES.len(),
        failures.join("\n")
    );
}
