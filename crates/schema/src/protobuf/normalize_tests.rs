//! Confluent's normalization tests (`ProtobufSchemaTest`, master): each schema's
//! normalized text as Confluent's `normalize().canonicalString()` gives it, from the text
//! and, where Confluent checks it too, from the serialized form; normalizing a normalized
//! schema changes nothing. Where protoc refuses a schema Wire's parser takes, the case
//! says what was changed; `testComplexCustomOptions3` and `testComplexEnum` are left out
//! (their option literals and proto3 extensions do not compile). The serialized forms of
//! `testComplexCustomOptions2` and `testNormalization` are not checked: from a descriptor
//! Shale reads no custom options (Confluent reads its own `confluent.*_meta` ones) and
//! drops a `json_name` equal to the default one.

use super::ProtobufSchema;
use super::normalize::format_number;

struct Case {
    name: &'static str,
    schema: &'static str,
    normalized: &'static str,
    /// What normalizing the serialized form gives, where Confluent checks it.
    from_descriptor: Option<&'static str>,
}

const CASES: &[Case] = &[
    // Changed: constants renumbered out of the reserved ranges.
    Case {
        name: "testEnumReserved",
        schema: r##"
import "google/protobuf/descriptor.proto";

message FooOptions {
  optional string name = 1;
  optional FooParameterType type = 2;
}
enum FooParameterType {
  reserved 20, 100 to max;
  reserved 10;
  reserved 1 to 3;
  reserved "BAD", "OLD";
  NUMBER = 4;
  STRING = 5;
}
"##,
        normalized: r##"
import "google/protobuf/descriptor.proto";

message FooOptions {
  optional string name = 1;
  optional .FooParameterType type = 2;
}
enum FooParameterType {
  reserved 1 to 3;
  reserved 10;
  reserved 20;
  reserved 100 to max;
  reserved "BAD";
  reserved "OLD";
  NUMBER = 4;
  STRING = 5;
}
"##,
        from_descriptor: None,
    },
    // Changed: a list is no option value to protoc.
    Case {
        name: "testComplexCustomOptions2",
        schema: r##"syntax = "proto3";
package com.example.mynamespace;
import "confluent/meta.proto";
import "confluent/type/decimal.proto";
option java_package = "io.confluent.kafka.serializers.protobuf.test";
option java_outer_classname = "ComplexProto";
message SampleRecord {
  int32 my_field1 = 1 [
    (confluent.field_meta).tags = "foo"
  ];
  double my_field2 = 2 [(confluent.field_meta) = {
    tags: [
      "bar"
    ]
  }];
  int32 my_field3 = 3 [
    (confluent.field_meta).tags = "foo",
    (confluent.field_meta).tags = "bar"
  ];
  double my_field4 = 4 [(confluent.field_meta) = {
    tags: [
      "foo",
      "bar"
    ]
  }];
  string my_field5 = 5 [
    (confluent.field_meta) = {
      tags: ["foo"]
    },
    (confluent.field_meta).tags = "bar"
  ];
  string my_field6 = 6 [
    (confluent.field_meta).tags = "foo",
    (confluent.field_meta).tags = "bar"
  ];
}"##,
        normalized: r##"syntax = "proto3";
package com.example.mynamespace;

import "confluent/meta.proto";
import "confluent/type/decimal.proto";

option java_outer_classname = "ComplexProto";
option java_package = "io.confluent.kafka.serializers.protobuf.test";

message SampleRecord {
  int32 my_field1 = 1 [(confluent.field_meta) = {
    tags: "foo"
  }];
  double my_field2 = 2 [(confluent.field_meta) = {
    tags: "bar"
  }];
  int32 my_field3 = 3 [(confluent.field_meta) = {
    tags: [
      "foo",
      "bar"
    ]
  }];
  double my_field4 = 4 [(confluent.field_meta) = {
    tags: [
      "foo",
      "bar"
    ]
  }];
  string my_field5 = 5 [(confluent.field_meta) = {
    tags: [
      "foo",
      "bar"
    ]
  }];
  string my_field6 = 6 [(confluent.field_meta) = {
    tags: [
      "foo",
      "bar"
    ]
  }];
}
"##,
        from_descriptor: None,
    },
    Case {
        name: "testNestedCustomOptions",
        schema: r##"syntax = "proto3";
package acme.events;
import "google/protobuf/wrappers.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/descriptor.proto";

message ValidationSettings {
  bool is_optional = 1;
}
message EventMetadata {
  google.protobuf.StringValue owner = 1;
  google.protobuf.StringValue description = 2;
  RetentionPolicies retention_policy = 4;
}

extend google.protobuf.FieldOptions {
  ValidationSettings validation_settings = 10000;
  EventMetadata event_metadata = 10001;
}

enum RetentionPolicies {
  DEFAULT = 0; // Default value, allows enforcement to implement default strategy
  SEVEN_DAYS = 1;
  THIRTY_DAYS = 2;
  NINETY_DAYS = 3;
  ONE_YEAR = 4;
  TWO_YEARS = 5;
  SEVEN_YEARS = 6;
  ALL_TIME = 7;
}

message EventHeader {
  google.protobuf.StringValue event_source = 1;
  google.protobuf.StringValue event_id = 2;
  google.protobuf.Timestamp event_timestamp = 3;
  google.protobuf.StringValue event_name = 4;
}

message Event {
  EventHeader header = 1;
  oneof only_one_event_limiter {
    SearchEvent requested_search = 2 [
      (event_metadata).description.value = "Fires when a user submits a search request.",
      (event_metadata).owner.value = "DISCO"
    ];
  }
}
message SearchEvent {
  google.protobuf.Int32Value user_id = 1 [(validation_settings).is_optional = true];
}
"##,
        normalized: r##"syntax = "proto3";
package acme.events;

import "google/protobuf/descriptor.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

message ValidationSettings {
  bool is_optional = 1;
}
message EventMetadata {
  .google.protobuf.StringValue owner = 1;
  .google.protobuf.StringValue description = 2;
  .acme.events.RetentionPolicies retention_policy = 4;
}
message EventHeader {
  .google.protobuf.StringValue event_source = 1;
  .google.protobuf.StringValue event_id = 2;
  .google.protobuf.Timestamp event_timestamp = 3;
  .google.protobuf.StringValue event_name = 4;
}
message Event {
  .acme.events.EventHeader header = 1;

  oneof only_one_event_limiter {
    .acme.events.SearchEvent requested_search = 2 [(acme.events.event_metadata) = {
      description: {
        value: "Fires when a user submits a search request."
      },
      owner: {
        value: "DISCO"
      }
    }];
  }
}
message SearchEvent {
  .google.protobuf.Int32Value user_id = 1 [(acme.events.validation_settings) = {
    is_optional: true
  }];
}
enum RetentionPolicies {
  DEFAULT = 0;
  SEVEN_DAYS = 1;
  THIRTY_DAYS = 2;
  NINETY_DAYS = 3;
  ONE_YEAR = 4;
  TWO_YEARS = 5;
  SEVEN_YEARS = 6;
  ALL_TIME = 7;
}

extend .google.protobuf.FieldOptions {
  .acme.events.ValidationSettings validation_settings = 10000;
  .acme.events.EventMetadata event_metadata = 10001;
}
"##,
        from_descriptor: None,
    },
    Case {
        name: "testRanges",
        schema: r##"
message Money {
  reserved 5000 to 6000;
  reserved 10000 to 10001;
  reserved 20000 to 20000;

  optional int64 cents = 1;

  extensions 100 to 200;
  extensions 1000 to 1001;
  extensions 2000 to 2000;

  enum MoneyEnum {
    reserved 100 to 200;
    reserved 1000 to 1001;
    reserved 2000 to 2000;
    NONE = 0;
    CENTS = 1;
    DOLLARS = 2;
  }
}
"##,
        normalized: r##"
message Money {
  reserved 5000 to 6000;
  reserved 10000 to 10001;
  reserved 20000;

  optional int64 cents = 1;

  extensions 100 to 200;
  extensions 1000 to 1001;
  extensions 2000;

  enum MoneyEnum {
    reserved 100 to 200;
    reserved 1000 to 1001;
    reserved 2000;
    NONE = 0;
    CENTS = 1;
    DOLLARS = 2;
  }
}
"##,
        from_descriptor: None,
    },
    // Changed: a proto3 enum starts with its zero; reserved numbers moved off the field numbers; confluent/meta.proto imported.
    Case {
        name: "testNormalization",
        schema: r##"syntax = "proto3";
package my.package;

import "google/protobuf/timestamp.proto";
import "confluent/type/decimal.proto";
import "confluent/meta.proto";

option java_package = "my.package";
option java_outer_classname = "Outer";
option java_multiple_files = true;
option java_string_check_utf8 = true;
option optimize_for = CODE_SIZE;
option go_package = "go.package";
option cc_generic_services = false;
option java_generic_services = true;
option py_generic_services = false;
option cc_enable_arenas = true;
option objc_class_prefix = "objc";
option csharp_namespace = "csharp";
option swift_prefix = "swift";
option php_class_prefix = "php";
option php_namespace = "php_ns";
option php_metadata_namespace = "php_md_ns";
option ruby_package = "ruby";

message Nested {
  confluent.type.Decimal test_cflt_decimal = 1 [(confluent.field_meta) = {
    params: [
      {
        value: "8",
        key: "precision"
      },
      {
        value: "3",
        key: "scale"
      }
    ],
    doc: "test decimal"
  }];
  google.protobuf.Timestamp test_timestamp = 2;
  map<string, InnerMessage> test_map = 3;

  message InnerMessage {
    reserved "foo", "bar";
    reserved 114, 115, 109 to 111;
    reserved 101, 120, 129 to 131;
  
    option no_standard_descriptor_accessor = true;
    option deprecated = true;
  
    InnerMessage.DeepMessage deep2 = 4;
    Nested.InnerMessage.DeepMessage deep3 = 5;
    my.package.Nested.InnerMessage.DeepMessage deep4 = 6;
    .my.package.Nested.InnerMessage.DeepMessage deep5 = 7;
    string id = 1 [json_name = "id"];
    repeated int32 ids = 2 [packed = true];
    DeepMessage deep1 = 3;
  
    oneof some_val {
      string one_id = 12;
      int32 other_id = 11;
    }
    oneof some_val2 {
      string one_id2 = 13;
      int32 other_id2 = 10 [
        deprecated = true,
        ctype = CORD,
        jstype = JS_STRING,
        json_name = "otherId2"
      ];
    }
  
    message DeepMessage {
      string id = 1;
    }
    enum InnerEnum {
      reserved 100 to 110;
      option allow_alias = true;
      ZERO = 0 [deprecated = true];
      TWO = 2;
      ONE = 1;
      ALSO_ZERO = 0;
    }
  }
}
enum Status {
  ACTIVE = 0;
  INACTIVE = 1;
}

service MyService {
  option deprecated = true;

  rpc MyMethod2 (stream Nested) returns (Nested.InnerMessage);
  rpc MyMethod1 (Nested.InnerMessage) returns (stream Nested) {
    option idempotency_level = NO_SIDE_EFFECTS;
    option deprecated = true;
  };
}
"##,
        normalized: r##"syntax = "proto3";
package my.package;

import "confluent/meta.proto";
import "confluent/type/decimal.proto";
import "google/protobuf/timestamp.proto";

option cc_enable_arenas = true;
option cc_generic_services = false;
option csharp_namespace = "csharp";
option go_package = "go.package";
option java_generic_services = true;
option java_multiple_files = true;
option java_outer_classname = "Outer";
option java_package = "my.package";
option java_string_check_utf8 = true;
option objc_class_prefix = "objc";
option optimize_for = CODE_SIZE;
option php_class_prefix = "php";
option php_metadata_namespace = "php_md_ns";
option php_namespace = "php_ns";
option py_generic_services = false;
option ruby_package = "ruby";
option swift_prefix = "swift";

message Nested {
  .confluent.type.Decimal test_cflt_decimal = 1 [(confluent.field_meta) = {
    doc: "test decimal",
    params: [
      {
        key: "precision",
        value: "8"
      },
      {
        key: "scale",
        value: "3"
      }
    ]
  }];
  .google.protobuf.Timestamp test_timestamp = 2;
  map<string, .my.package.Nested.InnerMessage> test_map = 3;

  message InnerMessage {
    reserved 101;
    reserved 109 to 111;
    reserved 114;
    reserved 115;
    reserved 120;
    reserved 129 to 131;
    reserved "bar";
    reserved "foo";
  
    option deprecated = true;
    option no_standard_descriptor_accessor = true;
  
    string id = 1 [json_name = "id"];
    repeated int32 ids = 2 [packed = true];
    .my.package.Nested.InnerMessage.DeepMessage deep1 = 3;
    .my.package.Nested.InnerMessage.DeepMessage deep2 = 4;
    .my.package.Nested.InnerMessage.DeepMessage deep3 = 5;
    .my.package.Nested.InnerMessage.DeepMessage deep4 = 6;
    .my.package.Nested.InnerMessage.DeepMessage deep5 = 7;
  
    oneof some_val2 {
      int32 other_id2 = 10 [
        ctype = CORD,
        deprecated = true,
        json_name = "otherId2",
        jstype = JS_STRING
      ];
      string one_id2 = 13;
    }
    oneof some_val {
      int32 other_id = 11;
      string one_id = 12;
    }
  
    message DeepMessage {
      string id = 1;
    }
    enum InnerEnum {
      reserved 100 to 110;
      option allow_alias = true;
      ALSO_ZERO = 0;
      ZERO = 0 [deprecated = true];
      ONE = 1;
      TWO = 2;
    }
  }
}
enum Status {
  ACTIVE = 0;
  INACTIVE = 1;
}

service MyService {
  option deprecated = true;

  rpc MyMethod2 (stream .my.package.Nested) returns (.my.package.Nested.InnerMessage);
  rpc MyMethod1 (.my.package.Nested.InnerMessage) returns (stream .my.package.Nested) {
    option deprecated = true;
    option idempotency_level = NO_SIDE_EFFECTS;
  };
}
"##,
        from_descriptor: None,
    },
    Case {
        name: "testNormalizationWithExtensions",
        schema: r##"package my.package;

message ExtendedDummy {
    // just to namespace the extensions
    extend Extended {
        optional string extension_normal2 = 101;
        optional string extension_normal = 100;
    }

    message Nested {
        // but these are to test insane but legit definitions
        extend package.Extended {
            optional string extension_identifier2 = 103;
            optional string extension_identifier = 102;
        }
        message Oh {
            extend my.package.Extended {
                optional string extension_vault_replace2 = 105;
                optional string extension_vault_replace = 104;
            }
            message My {
                extend .my.package.Extended {
                    optional string extension_fidelius_token2 = 107;
                    optional string extension_fidelius_token = 106;
                }
                message God {
                    extend Extended.NestedExtended {
                        optional string extension_nested_entity2 = 109;
                        optional string extension_nested_entity = 108;
                    }
                    extend my.package.Extended.NestedExtended {
                        optional string extension_nested_again2 = 111;
                        optional string extension_nested_again = 110;
                    }
                }
            }
        }
    }
}

message Extended {
    optional string vaulted_data = 1;
    optional string field_normal = 2;
    extensions 100 to 199;

    message NestedExtended {
        optional string vaulted_data = 1;
        optional string field_normal = 2;
        optional string field_vault_replace = 3;
        extensions 100 to 199;
        extend NestedExtended {
            optional string extension_nested_trouble2 = 113;
            optional string extension_nested_trouble = 112;
        }
    }
}
"##,
        normalized: r##"package my.package;

message ExtendedDummy {
  extend .my.package.Extended {
    optional string extension_normal = 100;
    optional string extension_normal2 = 101;
  }

  message Nested {
    extend .my.package.Extended {
      optional string extension_identifier = 102;
      optional string extension_identifier2 = 103;
    }
  
    message Oh {
      extend .my.package.Extended {
        optional string extension_vault_replace = 104;
        optional string extension_vault_replace2 = 105;
      }
    
      message My {
        extend .my.package.Extended {
          optional string extension_fidelius_token = 106;
          optional string extension_fidelius_token2 = 107;
        }
      
        message God {
          extend .my.package.Extended.NestedExtended {
            optional string extension_nested_entity = 108;
            optional string extension_nested_entity2 = 109;
            optional string extension_nested_again = 110;
            optional string extension_nested_again2 = 111;
          }
        }
      }
    }
  }
}
message Extended {
  optional string vaulted_data = 1;
  optional string field_normal = 2;

  extensions 100 to 199;

  message NestedExtended {
    optional string vaulted_data = 1;
    optional string field_normal = 2;
    optional string field_vault_replace = 3;
  
    extensions 100 to 199;
  
    extend .my.package.Extended.NestedExtended {
      optional string extension_nested_trouble = 112;
      optional string extension_nested_trouble2 = 113;
    }
  }
}
"##,
        from_descriptor: Some(
            r##"package my.package;

message ExtendedDummy {
  extend .my.package.Extended {
    optional string extension_normal = 100;
    optional string extension_normal2 = 101;
  }

  message Nested {
    extend .my.package.Extended {
      optional string extension_identifier = 102;
      optional string extension_identifier2 = 103;
    }
  
    message Oh {
      extend .my.package.Extended {
        optional string extension_vault_replace = 104;
        optional string extension_vault_replace2 = 105;
      }
    
      message My {
        extend .my.package.Extended {
          optional string extension_fidelius_token = 106;
          optional string extension_fidelius_token2 = 107;
        }
      
        message God {
          extend .my.package.Extended.NestedExtended {
            optional string extension_nested_entity = 108;
            optional string extension_nested_entity2 = 109;
            optional string extension_nested_again = 110;
            optional string extension_nested_again2 = 111;
          }
        }
      }
    }
  }
}
message Extended {
  optional string vaulted_data = 1;
  optional string field_normal = 2;

  extensions 100 to 199;

  message NestedExtended {
    optional string vaulted_data = 1;
    optional string field_normal = 2;
    optional string field_vault_replace = 3;
  
    extensions 100 to 199;
  
    extend .my.package.Extended.NestedExtended {
      optional string extension_nested_trouble = 112;
      optional string extension_nested_trouble2 = 113;
    }
  }
}
"##,
        ),
    },
    // Changed: the extension keys name ones that exist, in full.
    Case {
        name: "testNormalizationWithExtensions2",
        schema: r##"syntax = "proto2";
package io.confluent.kafka.serializers.protobuf.test;

import "google/protobuf/descriptor.proto";

option java_package = "io.confluent.kafka.serializers.protobuf.test";

message FooBar {
  extensions 100 to 200;

  optional int32 foo = 1;
  optional string bar = 2;
  repeated FooBar nested = 3;

  message More {
    repeated int32 serial = 1;

    extend FooBar {
      optional string more_string = 150;
    }

    option (my_message_option) = {[io.confluent.kafka.serializers.protobuf.test.FooBar.More.more_string]: "foobar", [io.confluent.kafka.serializers.protobuf.test.rep]: []};
  }

  extend google.protobuf.EnumOptions {
    optional string foobar_string = 71001;
  }

  enum FooBarBazEnum {
    option (FooBar.foobar_string) = "foobar";

    FOO = 1;
    BAR = 2;
    BAZ = 3;
  }
}

extend google.protobuf.MessageOptions {
  optional FooBar my_message_option = 50001;
}

extend FooBar {
  optional FooBar.FooBarBazEnum ext = 101;
  repeated FooBar.FooBarBazEnum rep = 102;
}"##,
        normalized: r##"package io.confluent.kafka.serializers.protobuf.test;

import "google/protobuf/descriptor.proto";

option java_package = "io.confluent.kafka.serializers.protobuf.test";

message FooBar {
  optional int32 foo = 1;
  optional string bar = 2;
  repeated .io.confluent.kafka.serializers.protobuf.test.FooBar nested = 3;

  extensions 100 to 200;

  extend .google.protobuf.EnumOptions {
    optional string foobar_string = 71001;
  }

  message More {
    option (io.confluent.kafka.serializers.protobuf.test.my_message_option) = {
      [io.confluent.kafka.serializers.protobuf.test.FooBar.More.more_string]: "foobar"
    };
  
    repeated int32 serial = 1;
  
    extend .io.confluent.kafka.serializers.protobuf.test.FooBar {
      optional string more_string = 150;
    }
  }
  enum FooBarBazEnum {
    option (io.confluent.kafka.serializers.protobuf.test.FooBar.foobar_string) = "foobar";
    FOO = 1;
    BAR = 2;
    BAZ = 3;
  }
}

extend .google.protobuf.MessageOptions {
  optional .io.confluent.kafka.serializers.protobuf.test.FooBar my_message_option = 50001;
}
extend .io.confluent.kafka.serializers.protobuf.test.FooBar {
  optional .io.confluent.kafka.serializers.protobuf.test.FooBar.FooBarBazEnum ext = 101;
  repeated .io.confluent.kafka.serializers.protobuf.test.FooBar.FooBarBazEnum rep = 102;
}
"##,
        from_descriptor: Some(
            r##"package io.confluent.kafka.serializers.protobuf.test;

import "google/protobuf/descriptor.proto";

option java_package = "io.confluent.kafka.serializers.protobuf.test";

message FooBar {
  optional int32 foo = 1;
  optional string bar = 2;
  repeated .io.confluent.kafka.serializers.protobuf.test.FooBar nested = 3;

  extensions 100 to 200;

  extend .google.protobuf.EnumOptions {
    optional string foobar_string = 71001;
  }

  message More {
    repeated int32 serial = 1;
  
    extend .io.confluent.kafka.serializers.protobuf.test.FooBar {
      optional string more_string = 150;
    }
  }
  enum FooBarBazEnum {
    FOO = 1;
    BAR = 2;
    BAZ = 3;
  }
}

extend .google.protobuf.MessageOptions {
  optional .io.confluent.kafka.serializers.protobuf.test.FooBar my_message_option = 50001;
}
extend .io.confluent.kafka.serializers.protobuf.test.FooBar {
  optional .io.confluent.kafka.serializers.protobuf.test.FooBar.FooBarBazEnum ext = 101;
  repeated .io.confluent.kafka.serializers.protobuf.test.FooBar.FooBarBazEnum rep = 102;
}
"##,
        ),
    },
    // Changed: a bytes default is a string, and Shale prints it quoted (unquoted, as Confluent prints it, it does not compile).
    Case {
        name: "testNormalizationWithComplexCustomOptions",
        schema: r##"package acme.common;

import "google/protobuf/descriptor.proto";

option java_outer_classname = "ExternalMetadata";
option java_package = "com.acme.protos.common";

message ExternalMetadata {
  
  optional string content_type = 1;
  
  optional bytes metadata = 2 [
    default = "0", (length).min = 1.0, (length).max = 1024.0];
}


extend google.protobuf.FieldOptions {
  optional Range length = 22301;
}


message Range {
  
  optional double min = 1 [default = -inf];
;

  
  optional double max = 2 [default = nan];
;
}
"##,
        normalized: r##"package acme.common;

import "google/protobuf/descriptor.proto";

option java_outer_classname = "ExternalMetadata";
option java_package = "com.acme.protos.common";

message ExternalMetadata {
  optional string content_type = 1;
  optional bytes metadata = 2 [
    (acme.common.length) = {
      max: 1024,
      min: 1
    },
    default = "0"
  ];
}
message Range {
  optional double min = 1 [default = -inf];
  optional double max = 2 [default = nan];
}

extend .google.protobuf.FieldOptions {
  optional .acme.common.Range length = 22301;
}
"##,
        from_descriptor: None,
    },
    Case {
        name: "testNormalizationWithNestedComplexCustomOptions",
        schema: r##"package acme.common;

import "google/protobuf/descriptor.proto";

message Container {
  optional string value = 1 [
    (constraints).range.min = 1.0, (constraints).range.max = 1024.0];
}

extend google.protobuf.FieldOptions {
  optional Constraints constraints = 22302;
}

message Constraints {
  optional Range range = 1;
}

message Range {
  optional double min = 1;
  optional double max = 2;
}
"##,
        normalized: r##"package acme.common;

import "google/protobuf/descriptor.proto";

message Container {
  optional string value = 1 [(acme.common.constraints) = {
    range: {
      max: 1024,
      min: 1
    }
  }];
}
message Constraints {
  optional .acme.common.Range range = 1;
}
message Range {
  optional double min = 1;
  optional double max = 2;
}

extend .google.protobuf.FieldOptions {
  optional .acme.common.Constraints constraints = 22302;
}
"##,
        from_descriptor: None,
    },
    // Changed: a repeated message field is set through a message literal.
    Case {
        name: "testNormalizationWithRepeatedNestedCustomOptions",
        schema: r##"package acme.common;

import "google/protobuf/descriptor.proto";

message Container {
  optional string value = 1 [
    (wrapper) = { tags: { name: "a" } tags: { name: "b" } }];
}

extend google.protobuf.FieldOptions {
  optional Wrapper wrapper = 22303;
}

message Wrapper {
  repeated Tag tags = 1;
}

message Tag {
  optional string name = 1;
}
"##,
        normalized: r##"package acme.common;

import "google/protobuf/descriptor.proto";

message Container {
  optional string value = 1 [(acme.common.wrapper) = {
    tags: [
      {
        name: "a"
      },
      {
        name: "b"
      }
    ]
  }];
}
message Wrapper {
  repeated .acme.common.Tag tags = 1;
}
message Tag {
  optional string name = 1;
}

extend .google.protobuf.FieldOptions {
  optional .acme.common.Wrapper wrapper = 22303;
}
"##,
        from_descriptor: None,
    },
    Case {
        name: "testNormalizationWithPackagePrefix",
        schema: r##"syntax = "proto3";
package confluent.package;

import "confluent/type/decimal.proto";

message Nested {
  type.Decimal test_cflt_decimal = 1;
}
"##,
        normalized: r##"syntax = "proto3";
package confluent.package;

import "confluent/type/decimal.proto";

message Nested {
  .confluent.type.Decimal test_cflt_decimal = 1;
}
"##,
        from_descriptor: Some(
            r##"syntax = "proto3";
package confluent.package;

import "confluent/type/decimal.proto";

message Nested {
  .confluent.type.Decimal test_cflt_decimal = 1;
}
"##,
        ),
    },
];

fn parse(name: &str, text: &str) -> ProtobufSchema {
    ProtobufSchema::parse(text, &[]).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"))
}

#[test]
fn confluents_schemas_normalize_as_confluent_normalizes_them() {
    let mut failed = Vec::new();
    for case in CASES {
        let schema = parse(case.name, case.schema);
        let normalized = schema.normalized().unwrap_or_else(|e| panic!("{}: {e}", case.name));
        if normalized != case.normalized {
            failed.push(format!(
                "{}:\n--- expected\n{}\n--- got\n{normalized}",
                case.name, case.normalized
            ));
            continue;
        }
        let again = parse(case.name, &normalized).normalized().expect("normalizes");
        if again != normalized {
            failed.push(format!("{}: normalizing again changed it:\n{again}", case.name));
        }
        if let Some(expected) = case.from_descriptor {
            let got = parse(case.name, schema.serialized()).normalized().expect("normalizes");
            if got != expected {
                failed.push(format!(
                    "{} (serialized):\n--- expected\n{expected}\n--- got\n{got}",
                    case.name
                ));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} differ:\n{}",
        failed.len(),
        CASES.len(),
        failed.join("\n\n")
    );
}

/// Confluent's `testNumberFormats`, and what does not read as a number.
#[test]
fn numbers_print_as_javas_decimal_format_prints_them() {
    let cases = [
        ("123", "123"),
        ("0123", "83"),
        ("0x123", "291"),
        ("0123.0", "123"),
        ("123.", "123"),
        ("123.0", "123"),
        ("123.00", "123"),
        ("123e1", "1230"),
        ("123E1", "1230"),
        ("123E+1", "1230"),
        ("123E-1", "12.3"),
        (".123E+3", "123"),
        ("1.23E+3", "1230"),
        ("12.3E+3", "12300"),
        ("123.E+3", "123000"),
        ("123.4E+3", "123400"),
        ("123.45E+3", "123450"),
        ("123.456E+3", "123456"),
        ("123.4567E+2", "12345.67"),
        ("-2.0", "-2"),
        ("1.23456", "1.235"),
        ("99999999999999999999999", "99999999999999999999999"),
        ("inf", "inf"),
        ("-nan", "-nan"),
    ];
    for (text, expected) in cases {
        assert_eq!(format_number(text), expected, "{text}");
    }
}
