//! JSON Schema: parsing, canonical text, and Confluent's compatibility rules. The diff
//! cases re-express the examples of Confluent's `json/diff` tests (the schemas, the changes
//! found in Java's order, and the STRICT verdict), then cases of our own.

use super::difference::{Policy, Type};
use super::*;

fn parse(text: &str) -> JsonSchema {
    JsonSchema::parse(text, &[]).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Every change from `old` (the writer) to `new` (the reader), as `TYPE #/path`.
fn changes(policy: Policy, old: &str, new: &str) -> (Vec<String>, bool) {
    let diffs = diff::compare_graphs(policy, &parse(old).graph, &parse(new).graph);
    let compatible = diffs.iter().all(|d| policy.allows(d.kind));
    (diffs.iter().map(|d| format!("{} {}", d.kind.as_str(), d.path)).collect(), compatible)
}

type Case = (&'static str, &'static str, &'static str, &'static [&'static str], bool);

#[rustfmt::skip]
const CASES: &[Case] = &[
// Drafts 4 to 7.
    (
        "Anything can change to empty schema",
        r#"{"properties":{}}"#,
        r#"{}"#,
        &[],
        true,
    ),
    (
        "Detect changes to id",
        r#"{"$id":"something"}"#,
        r#"{"$id":"something_else"}"#,
        &["ID_CHANGED #/"],
        true,
    ),
    (
        "Detect changes to title",
        r#"{"title":"something"}"#,
        r#"{"title":"something_else"}"#,
        &["TITLE_CHANGED #/"],
        true,
    ),
    (
        "Detect changes to simple schema type",
        r#"{"type":"object"}"#,
        r#"{"type":"array"}"#,
        &["TYPE_CHANGED #/"],
        false,
    ),
    (
        "Detect increased minLength string schema",
        r#"{"type":"string","minLength":10}"#,
        r#"{"type":"string","minLength":11}"#,
        &["MIN_LENGTH_INCREASED #/minLength"],
        false,
    ),
    (
        "Detect decreased maxLength string schema",
        r#"{"type":"string","maxLength":12}"#,
        r#"{"type":"string","maxLength":10}"#,
        &["MAX_LENGTH_DECREASED #/maxLength"],
        false,
    ),
    (
        "Detect changes to pattern string schema",
        r#"{"type":"string","pattern":"date-time"}"#,
        r#"{"type":"string","pattern":"uuid"}"#,
        &["PATTERN_CHANGED #/pattern"],
        false,
    ),
    (
        "Detect changes to pattern",
        r#"{"type":"string","pattern":"date-time"}"#,
        r#"{"type":"string","pattern":"date-time"}"#,
        &[],
        true,
    ),
    (
        "Detect increased maximum number schema",
        r#"{"type":"number","maximum":10}"#,
        r#"{"type":"number","maximum":11}"#,
        &["MAXIMUM_INCREASED #/maximum"],
        true,
    ),
    (
        "Detect decreased maximum number schema",
        r#"{"type":"number","maximum":11}"#,
        r#"{"type":"number","maximum":10}"#,
        &["MAXIMUM_DECREASED #/maximum"],
        false,
    ),
    (
        "Detect increased minimum number schema",
        r#"{"type":"number","minimum":10}"#,
        r#"{"type":"number","minimum":11}"#,
        &["MINIMUM_INCREASED #/minimum"],
        false,
    ),
    (
        "Detect removed multipleOf number schema",
        r#"{"type":"number","multipleOf":10}"#,
        r#"{"type":"number"}"#,
        &["MULTIPLE_OF_REMOVED #/multipleOf"],
        true,
    ),
    (
        "Detect reduced multipleOf number schema",
        r#"{"type":"number","multipleOf":10}"#,
        r#"{"type":"number","multipleOf":2}"#,
        &["MULTIPLE_OF_REDUCED #/multipleOf"],
        true,
    ),
    (
        "Detect changes to multipleOf number schema",
        r#"{"type":"number","multipleOf":10}"#,
        r#"{"type":"number","multipleOf":11}"#,
        &["MULTIPLE_OF_CHANGED #/multipleOf"],
        false,
    ),
    (
        "Detect narrowed change to number schema",
        r#"{"type":"number"}"#,
        r#"{"type":"integer"}"#,
        &["TYPE_NARROWED #/"],
        false,
    ),
    (
        "Detect extended change to number schema",
        r#"{"type":"integer"}"#,
        r#"{"type":"number"}"#,
        &["TYPE_EXTENDED #/"],
        true,
    ),
    (
        "Detect compatible change to not schema",
        r#"{"not":{"type":"number"}}"#,
        r#"{"not":{"type":"integer"}}"#,
        &["NOT_TYPE_NARROWED #/not"],
        true,
    ),
    (
        "Detect incompatible change to not schema",
        r#"{"not":{"type":"integer"}}"#,
        r#"{"not":{"type":"number"}}"#,
        &["NOT_TYPE_EXTENDED #/not"],
        false,
    ),
    (
        "Detect incompatible changes to const schema",
        r#"{"$schema":"http://json-schema.org/draft-07/schema#","properties":{"foo":{"const":"red"}}}"#,
        r#"{"$schema":"http://json-schema.org/draft-07/schema#","properties":{"foo":{"const":"blue"}}}"#,
        &["ENUM_ARRAY_CHANGED #/properties/foo/const"],
        false,
    ),
    (
        "Detect incompatible changes to enum schema",
        r#"{"allOf":[{"type":"string"},{"enum":["red"]}]}"#,
        r#"{"allOf":[{"type":"string"},{"enum":["blue"]}]}"#,
        &["COMBINED_TYPE_SUBSCHEMAS_CHANGED #/"],
        false,
    ),
    (
        "Detect compatible changes to enum schema",
        r#"{"allOf":[{"type":"string"},{"enum":["red"]}]}"#,
        r#"{"allOf":[{"enum":["red","blue"]},{"type":"string"}]}"#,
        &["ENUM_ARRAY_EXTENDED #/allOf/1/enum"],
        true,
    ),
    (
        "Detect changes to type array",
        r#"{"type":["object"]}"#,
        r#"{"type":["object","array"]}"#,
        &["SUM_TYPE_EXTENDED #/"],
        true,
    ),
    (
        "Detect changes to sub schemas",
        r#"{"oneOf":[{"type":"string"}]}"#,
        r#"{"oneOf":[{"type":"number"}]}"#,
        &["COMBINED_TYPE_SUBSCHEMAS_CHANGED #/"],
        false,
    ),
    (
        "Detect changes to number of sub schemas",
        r#"{"oneOf":[{"type":"string"}]}"#,
        r#"{"oneOf":[{"type":"number"},{"type":"string"}]}"#,
        &["SUM_TYPE_EXTENDED #/"],
        true,
    ),
    (
        "Detect changes to remove properties",
        r#"{"properties":{"foo":{"type":"string"}}}"#,
        r#"{"properties":{"bar":{"type":"string"}}}"#,
        &["OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL #/properties/bar", "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL #/properties/foo"],
        false,
    ),
    (
        "Detect change type of properties",
        r#"{"properties":{"foo":{"type":"string"}}}"#,
        r#"{"properties":{"foo":{"type":"number"}}}"#,
        &["TYPE_CHANGED #/properties/foo"],
        false,
    ),
    (
        "Detect optional property added to closed content model",
        r#"{"properties":{"foo":{"type":"string"}},"additionalProperties":false}"#,
        r#"{"properties":{"foo":{"type":"string"},"bar":{"type":"number"}},"additionalProperties":false}"#,
        &["OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/bar"],
        true,
    ),
    (
        "Detect property added to partially open content model 1",
        r#"{"properties":{"foo":{"type":"string"}},"additionalProperties":false,"patternProperties":{"^S_":{"type":"string"},"^I_":{"type":"integer"}}}"#,
        r#"{"properties":{"foo":{"type":"string"},"I_123":{"type":"number"}},"additionalProperties":false,"patternProperties":{"^S_":{"type":"string"},"^I_":{"type":"integer"}}}"#,
        &["TYPE_EXTENDED #/properties/I_123", "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/properties/I_123", "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/I_123"],
        true,
    ),
    (
        "Detect property added to partially open content model 3",
        r#"{"properties":{"foo":{"type":"string"}},"additionalProperties":{"type":"string"}}"#,
        r#"{"properties":{"foo":{"type":"string"},"bar":{"type":"number"}},"additionalProperties":{"type":"string"}}"#,
        &["TYPE_CHANGED #/properties/bar", "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/properties/bar", "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/bar"],
        false,
    ),
    (
        "Detect property added to partially open content model 4",
        r#"{"properties":{"foo":{"type":"string"}},"additionalProperties":{"type":"string"}}"#,
        r#"{"properties":{"foo":{"type":"string"},"bar":{"type":"string"}},"required":["bar"],"additionalProperties":{"type":"string"}}"#,
        &["PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/properties/bar", "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/bar"],
        false,
    ),
    (
        "Detect property removed from partially open content model 1",
        r#"{"properties":{"foo":{"type":"string"},"I_123":{"type":"integer"}},"additionalProperties":false}"#,
        r#"{"properties":{"foo":{"type":"string"}},"additionalProperties":false,"patternProperties":{"^S_":{"type":"string"},"^I_":{"type":"number"}}}"#,
        &["TYPE_EXTENDED #/properties/I_123", "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/properties/I_123"],
        true,
    ),
    (
        "Detect property removed from partially open content model 3",
        r#"{"properties":{"foo":{"type":"string"},"bar":{"type":"number"}},"additionalProperties":false}"#,
        r#"{"properties":{"foo":{"type":"string"}},"additionalProperties":{"type":"string"}}"#,
        &["TYPE_CHANGED #/properties/bar", "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/properties/bar", "ADDITIONAL_PROPERTIES_ADDED #/additionalProperties"],
        false,
    ),
    (
        "Detect property removed from partially open content model 5",
        r#"{"properties":{"foo":{"type":"string"},"bar":{"type":"string"}},"additionalProperties":false}"#,
        r#"{"properties":{"foo":{"type":"string"}},"additionalProperties":{"oneOf":[{"type":"null"},{"type":"string"}]}}"#,
        &["SUM_TYPE_EXTENDED #/properties/bar", "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/properties/bar", "ADDITIONAL_PROPERTIES_ADDED #/additionalProperties"],
        true,
    ),
    (
        "Detect property added to open content model",
        r#"{"properties":{"foo":{"type":"string"}}}"#,
        r#"{"properties":{"foo":{"type":"string"},"bar":{"type":"number"}}}"#,
        &["OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL #/properties/bar"],
        false,
    ),
    (
        "Detect changes to composed schema type",
        r#"{"oneOf":[{"properties":{"foo":{"type":"string"}}}]}"#,
        r#"{"oneOf":[{"properties":{"foo":{"type":"number"}}}]}"#,
        &["COMBINED_TYPE_SUBSCHEMAS_CHANGED #/"],
        false,
    ),
    (
        "Detect changes to validation criteria in composed schema type for singleton",
        r#"{"oneOf":[{"type":"string"}]}"#,
        r#"{"allOf":[{"type":"string"}]}"#,
        &["COMBINED_TYPE_EXTENDED #/"],
        true,
    ),
    (
        "Detect changes to validation criteria in composed schema type",
        r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#,
        r#"{"allOf":[{"type":"string"}]}"#,
        &["COMBINED_TYPE_CHANGED #/"],
        false,
    ),
    (
        "Detect changes to dependencies as array",
        r#"{"properties":{"foo":{"type":"number"},"bar":{"type":"string"}},"dependencies":{"foo":["bar"]}}"#,
        r#"{"properties":{"foo":{"type":"number"},"bar":{"type":"string"}},"dependencies":{"bar":["foo"]}}"#,
        &["DEPENDENCY_ARRAY_ADDED #/dependencies/bar", "DEPENDENCY_ARRAY_REMOVED #/dependencies/foo"],
        false,
    ),
    (
        "Detect compatible changes to dependencies schemas",
        r#"{"dependencies":{"foo":{"type":"string"},"bar":{"type":"string"}}}"#,
        r#"{"dependencies":{"foo":{"type":"string"}}}"#,
        &["DEPENDENCY_SCHEMA_REMOVED #/dependencies/bar"],
        true,
    ),
    (
        "Detect incompatible changes to dependencies schemas",
        r#"{"dependencies":{"foo":{"type":"string"}}}"#,
        r#"{"dependencies":{"foo":{"type":"number"}}}"#,
        &["TYPE_CHANGED #/dependencies/foo"],
        false,
    ),
    (
        "Detect changes to dependencies properties",
        r#"{"dependencies":{"foo":{"type":"string"}}}"#,
        r#"{"dependencies":{"bar":{"type":"string"}}}"#,
        &["DEPENDENCY_SCHEMA_ADDED #/dependencies/bar", "DEPENDENCY_SCHEMA_REMOVED #/dependencies/foo"],
        false,
    ),
    (
        "Detect required array to be removed",
        r#"{"properties":{"foo":{"type":"string"}},"required":["foo"]}"#,
        r#"{"properties":{"foo":{"type":"string"}}}"#,
        &["REQUIRED_ATTRIBUTE_REMOVED #/required/foo"],
        true,
    ),
    (
        "Detect required array to be added",
        r#"{"properties":{"foo":{"type":"string"}}}"#,
        r#"{"properties":{"foo":{"type":"string"}},"required":["foo"]}"#,
        &["REQUIRED_ATTRIBUTE_ADDED #/required/foo"],
        false,
    ),
    (
        "Detect required array to be changed",
        r#"{"properties":{"foo":{"type":"string"}},"required":["foo"]}"#,
        r#"{"properties":{"foo":{"type":"string"}},"required":["bar"]}"#,
        &["REQUIRED_ATTRIBUTE_REMOVED #/required/foo"],
        true,
    ),
    (
        "Detect decreased maxProperties",
        r#"{"maxProperties":2}"#,
        r#"{"maxProperties":1}"#,
        &["MAX_PROPERTIES_DECREASED #/maxProperties"],
        false,
    ),
    (
        "Detect increased minProperties",
        r#"{"minProperties":1}"#,
        r#"{"minProperties":2}"#,
        &["MIN_PROPERTIES_INCREASED #/minProperties"],
        false,
    ),
    (
        "Detect changes to all items schema",
        r#"{"type":"array"}"#,
        r#"{"type":"array","items":{"type":"string"}}"#,
        &["SCHEMA_ADDED #/items"],
        false,
    ),
    (
        "Detect changes to all items schema",
        r#"{"type":"array","items":{"type":"string"}}"#,
        r#"{"type":"array"}"#,
        &["SCHEMA_REMOVED #/items"],
        true,
    ),
    (
        "Detect changes to items schema list",
        r#"{"type":"array","items":[{"type":"string"},{"type":"number"}]}"#,
        r#"{"type":"array"}"#,
        &["ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL #/items/0", "ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL #/items/1"],
        true,
    ),
    (
        "Detect item added to partially open content model 1",
        r#"{"type":"array","items":[{"type":"string"},{"type":"number"}],"additionalItems":{"type":"string"}}"#,
        r#"{"type":"array","items":[{"type":"string"},{"type":"number"},{"type":"string"}],"additionalItems":{"type":"string"}}"#,
        &["ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/items/2"],
        true,
    ),
    (
        "Detect item added to partially open content model 2",
        r#"{"type":"array","items":[{"type":"string"},{"type":"number"}],"additionalItems":{"type":"string"}}"#,
        r#"{"type":"array","items":[{"type":"string"},{"type":"number"},{"type":"number"}],"additionalItems":{"type":"string"}}"#,
        &["TYPE_CHANGED #/items/2", "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/items/2"],
        false,
    ),
    (
        "Detect item removed from partially open content model 1",
        r#"{"type":"array","items":[{"type":"string"},{"type":"number"},{"type":"string"}],"additionalItems":{"type":"string"}}"#,
        r#"{"type":"array","items":[{"type":"string"},{"type":"number"}],"additionalItems":{"type":"string"}}"#,
        &["ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/items/2"],
        true,
    ),
    (
        "Detect item removed from partially open content model 3",
        r#"{"type":"array","items":[{"type":"string"},{"type":"number"},{"type":"number"}],"additionalItems":{"type":"string"}}"#,
        r#"{"type":"array","items":[{"type":"string"},{"type":"number"}],"additionalItems":{"type":"string"}}"#,
        &["TYPE_CHANGED #/items/2", "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/items/2"],
        false,
    ),
    (
        "Detect changes to items in the schema list",
        r#"{"type":"array","items":[{"type":"string"}]}"#,
        r#"{"type":"array","items":[{"type":"number"}]}"#,
        &["TYPE_CHANGED #/items/0"],
        false,
    ),
    (
        "Detect decreased maxItems",
        r#"{"type":"array","maxItems":2}"#,
        r#"{"type":"array","maxItems":1}"#,
        &["MAX_ITEMS_DECREASED #/maxItems"],
        false,
    ),
    (
        "Detect unique items removed",
        r#"{"type":"array","uniqueItems":true}"#,
        r#"{"type":"array"}"#,
        &["UNIQUE_ITEMS_REMOVED #/uniqueItems"],
        true,
    ),
    (
        "Detect incompatible changes to reference schemas",
        r##"{"type":"array","items":{"$ref":"#/definitions/someRef"},"definitions":{"someRef":{"type":"string"}}}"##,
        r##"{"type":"array","items":{"$ref":"#/definitions/someRef"},"definitions":{"someRef":{"type":"number"}}}"##,
        &["TYPE_CHANGED #/items"],
        false,
    ),
    (
        "Detect compatible change of moving to reference schema",
        r#"{"type":"string"}"#,
        r##"{"$ref":"#/definitions/someRef","definitions":{"someRef":{"type":"string"}}}"##,
        &[],
        true,
    ),
    (
        "Detect added boolean additional properties",
        r#"{"properties":{},"additionalProperties":false}"#,
        r#"{"properties":{}}"#,
        &["ADDITIONAL_PROPERTIES_ADDED #/additionalProperties"],
        true,
    ),
    (
        "Detect removed boolean additional properties",
        r#"{"additionalProperties":true}"#,
        r#"{"additionalProperties":false}"#,
        &["ADDITIONAL_PROPERTIES_REMOVED #/additionalProperties"],
        false,
    ),
    (
        "Detect narrowing changes to additional properties schema",
        r#"{"additionalProperties":true}"#,
        r#"{"additionalProperties":{"type":"number"}}"#,
        &["ADDITIONAL_PROPERTIES_NARROWED #/additionalProperties"],
        false,
    ),
    (
        "Detect adding empty schema to open content model",
        r#"{"additionalProperties":true}"#,
        r#"{"additionalProperties":true,"properties":{"foo":true}}"#,
        &["PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL #/properties/foo"],
        true,
    ),
    (
        "Detect adding false to closed content model",
        r#"{"additionalProperties":false}"#,
        r#"{"additionalProperties":false,"properties":{"foo":false}}"#,
        &["OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/foo"],
        true,
    ),
    (
        "Detect removing false from closed content model",
        r#"{"additionalProperties":false,"properties":{"foo":false}}"#,
        r#"{"additionalProperties":false}"#,
        &["PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL #/properties/foo"],
        true,
    ),
    (
        "Detect changes to additional properties schema",
        r#"{"additionalProperties":{"type":"string"}}"#,
        r#"{"additionalProperties":{"type":"number"}}"#,
        &["TYPE_CHANGED #/additionalProperties"],
        false,
    ),
    (
        "Detect removed boolean additional items",
        r#"{"additionalItems":true}"#,
        r#"{"additionalItems":false}"#,
        &["ADDITIONAL_ITEMS_REMOVED #/additionalItems"],
        false,
    ),
    (
        "Detect changes to additional items schema",
        r#"{"additionalItems":{"type":"string"}}"#,
        r#"{"additionalItems":{"type":"number"}}"#,
        &["TYPE_CHANGED #/additionalItems"],
        false,
    ),
    (
        "Detect adding empty schema to open content model for array",
        r#"{"type":"array","additionalItems":true,"items":[{"type":"number"}]}"#,
        r#"{"type":"array","additionalItems":true,"items":[{"type":"number"},true]}"#,
        &["ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL #/items/1"],
        true,
    ),
    (
        "Detect adding false to closed content model for array",
        r#"{"type":"array","additionalItems":false,"items":[{"type":"number"}]}"#,
        r#"{"type":"array","additionalItems":false,"items":[{"type":"number"},false]}"#,
        &["ITEM_ADDED_TO_CLOSED_CONTENT_MODEL #/items/1"],
        true,
    ),
    (
        "Detect adding to closed content model for array",
        r#"{"type":"array","items":[{"type":"string"},{"type":"number"}],"additionalItems":false}"#,
        r#"{"type":"array","items":[{"type":"string"},{"type":"number"},{"type":"boolean"}],"additionalItems":true}"#,
        &["ITEM_ADDED_TO_CLOSED_CONTENT_MODEL #/items/2", "ADDITIONAL_ITEMS_ADDED #/additionalItems"],
        true,
    ),
    (
        "Detect removing from closed content model for array",
        r#"{"type":"array","items":[{"type":"string"},{"type":"number"},{"type":"boolean"}],"additionalItems":false}"#,
        r#"{"type":"array","items":[{"type":"string"},{"type":"number"}],"additionalItems":true}"#,
        &["ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL #/items/2", "ADDITIONAL_ITEMS_ADDED #/additionalItems"],
        true,
    ),
    (
        "Detect removing number from closed content model for array",
        r#"{"type":"array","items":[{"type":"string"},{"type":"number"}],"additionalItems":false}"#,
        r#"{"type":"array","items":[{"type":"string"}],"additionalItems":{"type":"number"}}"#,
        &["ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/items/1", "ADDITIONAL_ITEMS_ADDED #/additionalItems"],
        true,
    ),
    (
        "Detect adding number to partially open content model for array",
        r#"{"type":"array","items":[{"type":"string"}],"additionalItems":{"type":"number"}}"#,
        r#"{"type":"array","items":[{"type":"string"},{"type":"number"}],"additionalItems":true}"#,
        &["ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/items/1", "ADDITIONAL_ITEMS_EXTENDED #/additionalItems"],
        true,
    ),
    (
        "Detect change to oneOf schema",
        r#"{"type":"string"}"#,
        r#"{"oneOf":[{"type":"number"},{"type":"string"}]}"#,
        &["SUM_TYPE_EXTENDED #/"],
        true,
    ),
    (
        "Detect change to oneOf schema",
        r#"{"oneOf":[{"type":"number"}]}"#,
        r#"{"oneOf":[{"type":"string"},{"type":"number"}]}"#,
        &["SUM_TYPE_EXTENDED #/"],
        true,
    ),
    (
        "Detect change to oneOf schema",
        r#"{"type":"string","maxLength":3}"#,
        r#"{"oneOf":[{"type":"number"},{"type":"string"}]}"#,
        &["MAX_LENGTH_REMOVED #/maxLength", "SUM_TYPE_EXTENDED #/"],
        true,
    ),
    (
        "Allow addition of un-reserved property",
        r#"{"properties":{"foo":{"type":"string"}},"additionalProperties":false}"#,
        r#"{"properties":{"foo":{"type":"string"},"bar":{"type":"string"}},"additionalProperties":false}"#,
        &["OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/bar"],
        true,
    ),
// Combined schemas.
    (
        "Detect compatible change to combined schema",
        r#"{"type":"object","properties":{"prop1":{"allOf":[{"enum":["one","two","three"]},{"type":"string"},{"maxLength":5}]}}}"#,
        r#"{"type":"object","properties":{"prop1":{"allOf":[{"maxLength":5},{"enum":["one","two","three"]},{"type":"string"}]}}}"#,
        &[],
        true,
    ),
    (
        "Detect incompatible change to combined schema",
        r#"{"type":"object","properties":{"prop1":{"allOf":[{"enum":["one","two","three"]},{"type":"string"},{"maxLength":5}]}}}"#,
        r#"{"type":"object","properties":{"prop1":{"allOf":[{"maxLength":5},{"enum":["one","two","three"]},{"type":"number"}]}}}"#,
        &["COMBINED_TYPE_SUBSCHEMAS_CHANGED #/properties/prop1"],
        false,
    ),
    (
        "Detect combined schema with duplicates in original",
        r#"{"type":"object","properties":{"prop1":{"allOf":[{"type":"string"},{"type":"string"}]}}}"#,
        r#"{"type":"object","properties":{"prop1":{"allOf":[{"type":"string"}]}}}"#,
        &[],
        true,
    ),
    (
        "Detect compatible change to oneOf schema",
        r#"{"type":"object","properties":{"prop1":{"oneOf":[{"type":"string"}]}}}"#,
        r#"{"type":"object","properties":{"prop1":{"oneOf":[{"type":"number"},{"type":"string"}]}}}"#,
        &["SUM_TYPE_EXTENDED #/properties/prop1"],
        true,
    ),
    (
        "Detect compatible change to oneOf schema with more properties",
        r#"{"type":"object","properties":{"prop1":{"oneOf":[{"type":"string","maxLength":5}]}}}"#,
        r#"{"type":"object","properties":{"prop1":{"oneOf":[{"type":"boolean"},{"type":"number"},{"title":"my string","type":"string","maxLength":8}]}}}"#,
        &["SUM_TYPE_EXTENDED #/properties/prop1", "TITLE_CHANGED #/properties/prop1/oneOf/0", "MAX_LENGTH_INCREASED #/properties/prop1/oneOf/0/maxLength"],
        true,
    ),
    (
        "Detect incompatible change to oneOf schema",
        r#"{"type":"object","properties":{"prop1":{"oneOf":[{"type":"number"},{"type":"string"}]}}}"#,
        r#"{"type":"object","properties":{"prop1":{"oneOf":[{"type":"string"}]}}}"#,
        &["SUM_TYPE_NARROWED #/properties/prop1"],
        false,
    ),
    (
        "Detect compatible change to allOf schema",
        r#"{"type":"object","properties":{"prop1":{"allOf":[{"enum":["one","two","three"]},{"type":"string"}]}}}"#,
        r#"{"type":"object","properties":{"prop1":{"allOf":[{"type":"string"}]}}}"#,
        &["PRODUCT_TYPE_NARROWED #/properties/prop1"],
        true,
    ),
    (
        "Detect incompatible change to allOf schema",
        r#"{"type":"object","properties":{"prop1":{"allOf":[{"type":"string"}]}}}"#,
        r#"{"type":"object","properties":{"prop1":{"allOf":[{"enum":["one","two","three"]},{"type":"string"}]}}}"#,
        &["PRODUCT_TYPE_EXTENDED #/properties/prop1"],
        false,
    ),
    (
        "Detect compatible change from oneOf to anyOf schema",
        r#"{"type":"object","properties":{"prop1":{"oneOf":[{"type":"string"}]}}}"#,
        r#"{"type":"object","properties":{"prop1":{"anyOf":[{"type":"string"}]}}}"#,
        &["COMBINED_TYPE_EXTENDED #/properties/prop1"],
        true,
    ),
    (
        "Detect incompatible change from oneOf to anyOf schema with fewer properties",
        r#"{"type":"object","properties":{"prop1":{"oneOf":[{"type":"number"},{"type":"string"}]}}}"#,
        r#"{"type":"object","properties":{"prop1":{"anyOf":[{"type":"string"}]}}}"#,
        &["COMBINED_TYPE_EXTENDED #/properties/prop1", "SUM_TYPE_NARROWED #/properties/prop1"],
        false,
    ),
    (
        "Detect compatible change from allOf to anyOf schema with fewer properties",
        r#"{"type":"object","properties":{"prop1":{"allOf":[{"type":"number"},{"type":"string"}]}}}"#,
        r#"{"type":"object","properties":{"prop1":{"anyOf":[{"type":"string"}]}}}"#,
        &["COMBINED_TYPE_EXTENDED #/properties/prop1", "PRODUCT_TYPE_NARROWED #/properties/prop1"],
        true,
    ),
    (
        "Detect incompatible change from anyOf to oneOf schema with fewer properties",
        r#"{"type":"object","properties":{"prop1":{"anyOf":[{"type":"number"},{"type":"string"}]}}}"#,
        r#"{"type":"object","properties":{"prop1":{"oneOf":[{"type":"string"}]}}}"#,
        &["COMBINED_TYPE_CHANGED #/properties/prop1"],
        false,
    ),
    (
        "Detect compatible change from allOf to oneOf schema with more properties",
        r#"{"type":"object","properties":{"prop1":{"allOf":[{"type":"number"}]}}}"#,
        r#"{"type":"object","properties":{"prop1":{"oneOf":[{"type":"number"},{"type":"string"}]}}}"#,
        &["COMBINED_TYPE_EXTENDED #/properties/prop1", "SUM_TYPE_EXTENDED #/properties/prop1"],
        true,
    ),
    (
        "Detect incompatible change from anyOf to allOf schema",
        r#"{"type":"object","properties":{"prop1":{"anyOf":[{"type":"string"}]}}}"#,
        r#"{"type":"object","properties":{"prop1":{"allOf":[{"type":"number"},{"type":"string"}]}}}"#,
        &["COMBINED_TYPE_CHANGED #/properties/prop1"],
        false,
    ),
    (
        "Detect compatible change from non-combined to anyOf schema",
        r#"{"type":"object","properties":{"prop1":{"type":"string"}}}"#,
        r#"{"type":"object","properties":{"prop1":{"anyOf":[{"type":"number"},{"type":"string"}]}}}"#,
        &["SUM_TYPE_EXTENDED #/properties/prop1"],
        true,
    ),
    (
        "Detect compatible change from non-combined to oneOf schema",
        r#"{"type":"object","properties":{"prop1":{"type":"string"}}}"#,
        r#"{"type":"object","properties":{"prop1":{"oneOf":[{"type":"number"},{"type":"string"}]}}}"#,
        &["SUM_TYPE_EXTENDED #/properties/prop1"],
        true,
    ),
    (
        "Detect compatible change from non-combined to allOf schema",
        r#"{"type":"object","properties":{"prop1":{"type":"string"}}}"#,
        r#"{"type":"object","properties":{"prop1":{"allOf":[{"type":"string"}]}}}"#,
        &[],
        true,
    ),
    (
        "Detect incompatible change from non-combined to allOf schema",
        r#"{"type":"object","properties":{"prop1":{"type":"string"}}}"#,
        r#"{"type":"object","properties":{"prop1":{"allOf":[{"type":"number"},{"type":"string"}]}}}"#,
        &["TYPE_CHANGED #/properties/prop1"],
        false,
    ),
// 2020-12, as Confluent reads it through json-sKema.
    (
        "Detect changes to id",
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","$id":"something"}"#,
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","$id":"something_else"}"#,
        &[],
        true,
    ),
    (
        "Detect optional property added to closed content model, unevaluated",
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"foo":{"type":"string"}},"unevaluatedProperties":false}"#,
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"foo":{"type":"string"},"bar":{"type":"number"}},"unevaluatedProperties":false}"#,
        &["OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/bar"],
        true,
    ),
    (
        "Detect property added to partially open content model 2, unevaluated",
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"foo":{"type":"string"}},"unevaluatedProperties":{"type":"string"}}"#,
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"foo":{"type":"string"},"bar":{"type":"string"}},"unevaluatedProperties":{"type":"string"}}"#,
        &["PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/properties/bar", "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/bar"],
        true,
    ),
    (
        "Detect property added to partially open content model 3, unevaluated",
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"foo":{"type":"string"}},"unevaluatedProperties":{"type":"string"}}"#,
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"foo":{"type":"string"},"bar":{"type":"number"}},"unevaluatedProperties":{"type":"string"}}"#,
        &["TYPE_CHANGED #/properties/bar", "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/properties/bar", "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/bar"],
        false,
    ),
    (
        "Detect property added to partially open content model 4, unevaluated",
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"foo":{"type":"string"}},"unevaluatedProperties":{"type":"string"}}"#,
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"foo":{"type":"string"},"bar":{"type":"string"}},"required":["bar"],"unevaluatedProperties":{"type":"string"}}"#,
        &["PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/properties/bar", "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/bar"],
        false,
    ),
    (
        "Detect removed maxProperties",
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{},"maxProperties":1}"#,
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{}}"#,
        &[],
        true,
    ),
    (
        "Detect changes to items schema list",
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array","prefixItems":[{"type":"string"},{"type":"number"}]}"#,
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array"}"#,
        &["ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL #/items/0", "ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL #/items/1"],
        true,
    ),
    (
        "Detect item added to partially open content model 1, unevaluated",
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array","prefixItems":[{"type":"string"},{"type":"number"}],"unevaluatedItems":{"type":"string"}}"#,
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array","prefixItems":[{"type":"string"},{"type":"number"},{"type":"string"}],"unevaluatedItems":{"type":"string"}}"#,
        &["ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/items/2"],
        true,
    ),
    (
        "Detect item added to partially open content model 2, unevaluated",
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array","prefixItems":[{"type":"string"},{"type":"number"}],"unevaluatedItems":{"type":"string"}}"#,
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array","prefixItems":[{"type":"string"},{"type":"number"},{"type":"number"}],"unevaluatedItems":{"type":"string"}}"#,
        &["TYPE_CHANGED #/items/2", "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/items/2"],
        false,
    ),
    (
        "Detect item removed from partially open content model 1, unevaluated",
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array","prefixItems":[{"type":"string"},{"type":"number"},{"type":"string"}],"unevaluatedItems":{"type":"string"}}"#,
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array","prefixItems":[{"type":"string"},{"type":"number"}],"unevaluatedItems":{"type":"string"}}"#,
        &["ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/items/2"],
        true,
    ),
    (
        "Detect item removed from partially open content model 2, unevaluated",
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array","prefixItems":[{"type":"string"},{"type":"number"},{"oneOf":[{"type":"null"},{"type":"string"}]}],"unevaluatedItems":{"oneOf":[{"type":"null"},{"type":"string"}]}}"#,
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array","prefixItems":[{"type":"string"},{"type":"number"}],"unevaluatedItems":{"oneOf":[{"type":"null"},{"type":"string"}]}}"#,
        &["ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/items/2"],
        true,
    ),
    (
        "Detect item removed from partially open content model 3, unevaluated",
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array","prefixItems":[{"type":"string"},{"type":"number"},{"type":"number"}],"unevaluatedItems":{"type":"string"}}"#,
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array","prefixItems":[{"type":"string"},{"type":"number"}],"unevaluatedItems":{"type":"string"}}"#,
        &["TYPE_CHANGED #/items/2", "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL #/items/2"],
        false,
    ),
    (
        "Detect removed minContains",
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array","contains":{"type":"number"},"minContains":1}"#,
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array","contains":{"type":"number"}}"#,
        &[],
        true,
    ),
    (
        "Detect increased minContains",
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array","contains":{"type":"number"},"minContains":1}"#,
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array","contains":{"type":"number"},"minContains":2}"#,
        &["MIN_CONTAINS_INCREASED #/minContains"],
        false,
    ),
    (
        "Detect decreased minContains",
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array","contains":{"type":"number"},"minContains":2}"#,
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"array","contains":{"type":"number"},"minContains":1}"#,
        &["MIN_CONTAINS_DECREASED #/minContains"],
        true,
    ),
    (
        "Detect added boolean additional properties",
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{},"additionalProperties":false}"#,
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{}}"#,
        &[],
        true,
    ),
];

#[test]
fn confluents_diff_examples() {
    assert!(CASES.len() >= 100);
    for (what, old, new, want, compatible) in CASES {
        let (got, ok) = changes(Policy::Strict, old, new);
        assert_eq!(got, *want, "{what}\n  old {old}\n  new {new}");
        assert_eq!(ok, *compatible, "{what}");
    }
}

#[test]
fn the_lenient_policy_accepts_what_a_reader_can_skip() {
    let cases = [
        (
            r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}"#,
            r#"{"type":"object","properties":{},"additionalProperties":false}"#,
        ),
        (r#"{"type":"object"}"#, r#"{"type":"object","properties":{"a":{"type":"string"}}}"#),
        (r#"{"type":"object"}"#, r#"{"type":"object","additionalProperties":false}"#),
        (r#"{"type":"object"}"#, r#"{"type":"object","additionalProperties":{"type":"string"}}"#),
    ];
    for (old, new) in cases {
        assert!(!changes(Policy::Strict, old, new).1, "strict: {old} -> {new}");
        assert!(changes(Policy::Lenient, old, new).1, "lenient: {old} -> {new}");
    }
    // Still refused: a required property without default added to an open model.
    let new = r#"{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}"#;
    assert!(!changes(Policy::Lenient, r#"{"type":"object"}"#, new).1);
}

/// The messages of `can_read`, as Confluent's registry words them (typos included).
#[test]
fn messages_are_confluents() {
    let can_read =
        |reader: &str, writer: &str| parse(reader).can_read(&parse(writer), "new", "old");
    let old = r#"{"type":"object","properties":{"a":{"type":"string"}}}"#;
    assert!(can_read(old, old).is_empty());
    let cases = [
        (
            r#"{"type":"object","properties":{"a":{"type":"number"}}}"#,
            r#"{errorType:"TYPE_CHANGED", description:"A type at path '#/properties/a' is different between the new schema and the old schema'}"#,
        ),
        (
            r#"{"type":"object","properties":{"a":{"type":"string","maxLength":3}}}"#,
            r#"{errorType:"MAX_LENGTH_ADDED", description:"The keyword at path '#/properties/a/maxLength' in the new schema is not present in the old schema'}"#,
        ),
        (
            r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}}}"#,
            r#"{errorType:"OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", description:"The new schema has an open content model and has a property or item at path '#/properties/b' which is missing in the old schema'}"#,
        ),
        (
            r#"{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}"#,
            r#"{errorType:"REQUIRED_ATTRIBUTE_ADDED", description:"The keyword at path '#/required/a' in the new schema is not present in the old schema'}"#,
        ),
        (
            r#"{"type":"object","properties":{"a":{"type":"string","enum":["x"]}}}"#,
            r#"{errorType:"TYPE_CHANGED", description:"A type at path '#/properties/a' is different between the new schema and the old schema'}"#,
        ),
    ];
    for (new, want) in cases {
        assert_eq!(can_read(new, old), vec![want.to_string()], "{new}");
    }
    // The other way round, the labels swap (FORWARD: the old schema reads the new data).
    let closed =
        r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}"#;
    let fewer = r#"{"type":"object","properties":{},"additionalProperties":false}"#;
    assert_eq!(
        parse(fewer).can_read(&parse(closed), "old", "new"),
        vec![
            r#"{errorType:"PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", description:"The old has a closed content model and is missing a property or item present at path '#/properties/a' in the new schema'}"#
        ]
    );
    // A difference with no description in Java: an empty one.
    assert_eq!(
        can_read(r#"{"type":"array","items":{"type":"string"}}"#, r#"{"type":"array"}"#),
        vec![r#"{errorType:"SCHEMA_ADDED", description:"'}"#]
    );
}

#[test]
fn messages_come_in_the_order_of_javas_hash_sets() {
    // Buckets of 16: "aa" 0, "a" 1, "b" 2, "c" 3, "z" 10; document order is b, c, z, aa.
    let old = r#"{"type":"object","properties":{"a":{"type":"string"}}}"#;
    let new = r#"{"type":"object","properties":{"a":{"type":"string"},"b":{},"c":{"type":"string"},"z":{"type":"string"},"aa":{"type":"string"}},"required":["z","c","a"]}"#;
    let (got, compatible) = changes(Policy::Strict, old, new);
    assert!(!compatible);
    assert_eq!(
        got,
        [
            "REQUIRED_ATTRIBUTE_ADDED #/required/a",
            "OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL #/properties/aa",
            "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL #/properties/b",
            "REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL #/properties/c",
            "REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL #/properties/z",
        ]
    );
}

#[test]
fn numbers_compare_as_confluent_compares_them() {
    let number = |k: &str| format!(r#"{{"type":"number",{k}}}"#);
    let cases = [
        // multipleOf as decimals: 10 is a multiple of 0.5, 0.5 equals 0.50.
        (number(r#""multipleOf":0.5"#), number(r#""multipleOf":10"#), vec!["MULTIPLE_OF_EXPANDED #/multipleOf"]),
        (number(r#""multipleOf":0.5"#), number(r#""multipleOf":0.50"#), vec![]),
        (number(r#""multipleOf":0.3"#), number(r#""multipleOf":0.1"#), vec!["MULTIPLE_OF_REDUCED #/multipleOf"]),
        (number(r#""multipleOf":3"#), number(r#""multipleOf":2"#), vec!["MULTIPLE_OF_CHANGED #/multipleOf"]),
        (number(r#""minimum":1"#), number(r#""minimum":1.0"#), vec![]),
        (number(r#""exclusiveMinimum":1"#), number(r#""exclusiveMinimum":2"#), vec!["EXCLUSIVE_MINIMUM_INCREASED #/exclusiveMinimum"]),
        (number(r#""exclusiveMaximum":5"#), number(r#""exclusiveMaximum":3"#), vec!["EXCLUSIVE_MAXIMUM_DECREASED #/exclusiveMaximum"]),
        // Java compares a lower exclusiveMaximum with the new maximum.
        (number(r#""exclusiveMaximum":5"#), number(r#""exclusiveMaximum":3,"maximum":9"#), vec!["MAXIMUM_ADDED #/maximum"]),
        (r#"{"type":"integer"}"#.into(), r#"{"type":"number"}"#.into(), vec!["TYPE_EXTENDED #/"]),
        // Draft 4's boolean exclusive limits are not compared.
        (
            r#"{"$schema":"http://json-schema.org/draft-04/schema#","type":"number","maximum":5}"#.into(),
            r#"{"$schema":"http://json-schema.org/draft-04/schema#","type":"number","maximum":5,"exclusiveMaximum":true}"#.into(),
            vec![],
        ),
    ];
    for (old, new, want) in cases {
        assert_eq!(changes(Policy::Strict, &old, &new).0, want, "{old} -> {new}");
    }
}

#[test]
fn special_cases_of_the_type_check() {
    let cases = [
        // Kafka Connect's decimals: bytes either way, whatever the JSON type.
        (
            r#"{"type":"string","title":"org.apache.kafka.connect.data.Decimal","connect.version":1,"connect.type":"bytes","connect.parameters":{"scale":"2"}}"#,
            r#"{"type":"number","title":"org.apache.kafka.connect.data.Decimal","connect.version":1,"connect.type":"bytes","connect.parameters":{"scale":"2"}}"#,
            vec![],
        ),
        // The empty schema to an empty object schema narrows it.
        ("{}", r#"{"properties":{}}"#, vec!["TYPE_CHANGED #/"]),
        ("true", "{}", vec![]),
        ("false", r#"{"type":"string"}"#, vec![]),
        ("{}", "true", vec![]),
        (r#"{"type":"string"}"#, "false", vec!["TYPE_CHANGED #/"]),
        // A type array is an anyOf; one more type extends it.
        (r#"{"type":"string"}"#, r#"{"type":["string","null"]}"#, vec!["SUM_TYPE_EXTENDED #/"]),
        (r#"{"type":["string","null"]}"#, r#"{"type":"string"}"#, vec!["TYPE_CHANGED #/"]),
        // Keywords of two kinds make an allOf; enum values compare as sets.
        (
            r#"{"type":"string","enum":["a","b"]}"#,
            r#"{"enum":["b","a","c"],"type":"string"}"#,
            vec!["ENUM_ARRAY_EXTENDED #/allOf/0/enum"],
        ),
        (r#"{"const":{"a":[1,2]}}"#, r#"{"const":{"a":[1,2]}}"#, vec![]),
        (r#"{"const":1}"#, r#"{"const":1.0}"#, vec!["ENUM_ARRAY_CHANGED #/const"]),
    ];
    for (old, new, want) in cases {
        assert_eq!(changes(Policy::Strict, old, new).0, want, "{old} -> {new}");
    }
}

/// A subschema referring to itself or to its ancestors (Confluent's recursion tests).
#[test]
fn recursive_schemas_compare_and_terminate() {
    let categories = r##"{"$schema":"http://json-schema.org/draft-04/schema#","type":"object","properties":{"categories":{"description":"Test recursive schema.","type":"array","items":{"$ref":"#/definitions/Category"}}},"required":["categories"],"definitions":{"Category":{"description":"Test category","type":"object","properties":{"category_id":{"description":"Some description","type":"integer"},"categories":{"description":"All subcategories within this category.","type":"array","items":{"$ref":"#/definitions/Category"}}},"required":["category_id","categories"]}}}"##;
    assert_eq!(changes(Policy::Strict, categories, categories), (vec![], true));
    let deeper = categories.replace(
        r#""category_id":{"description":"Some description","type":"integer"}"#,
        r#""category_id":{"description":"Some description","type":"string"}"#,
    );
    let (got, ok) = changes(Policy::Strict, categories, &deeper);
    assert!(!ok);
    // Once where the cycle is entered, once where it comes back (the fixpoint's seed).
    assert_eq!(
        got,
        [
            "TYPE_CHANGED #/properties/categories/items/properties/category_id",
            "TYPE_CHANGED #/properties/categories/items/properties/categories/items/properties/category_id"
        ]
    );

    // T0 -> T2 -> T0 through singleton oneOfs, under a root oneOf[T0, T1]: a type change
    // behind the cycle must not be masked by the memo.
    let masking = |t0: &str, t1: &str| {
        let object = |id: &str, next: &str| {
            format!(
                r##"{{"type":"object","additionalProperties":true,"properties":{{"id":{{"type":"{id}"}},"ref":{{"oneOf":[{{"$ref":"#/definitions/{next}"}}]}}}}}}"##
            )
        };
        format!(
            r##"{{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","additionalProperties":true,"definitions":{{"T0":{},"T1":{},"T2":{}}},"properties":{{"root":{{"oneOf":[{{"$ref":"#/definitions/T0"}},{{"$ref":"#/definitions/T1"}}]}}}}}}"##,
            object(t0, "T2"),
            object(t1, "T2"),
            object("integer", "T0")
        )
    };
    assert!(
        !changes(Policy::Strict, &masking("integer", "boolean"), &masking("boolean", "number")).1
    );
    assert!(
        changes(Policy::Strict, &masking("integer", "boolean"), &masking("integer", "boolean")).1
    );

    // Twelve products, each referring to the union of all: terminates at once.
    let types: Vec<String> = (0..12).map(|i| format!("T{i}")).collect();
    let union = format!(
        r#"{{"oneOf":[{}]}}"#,
        types
            .iter()
            .map(|t| format!(r##"{{"$ref":"#/definitions/{t}"}}"##))
            .collect::<Vec<_>>()
            .join(",")
    );
    let defs: Vec<String> = types
        .iter()
        .map(|t| format!(r#""{t}":{{"type":"object","properties":{{"id":{{"type":"string"}},"underlying":{union},"reference":{union}}}}}"#))
        .collect();
    let trade = format!(
        r#"{{"title":"Trade","type":"object","definitions":{{{}}},"properties":{{"tradeId":{{"type":"string"}},"product":{union}}}}}"#,
        defs.join(",")
    );
    assert_eq!(changes(Policy::Strict, &trade, &trade), (vec![], true));
    let changed = trade.replacen(r#""id":{"type":"string"}"#, r#""id":{"type":"number"}"#, 1);
    assert!(!changes(Policy::Strict, &trade, &changed).1);

    // 2020-12: `$ref` beside other keywords, cycles through oneOf.
    let branches: Vec<String> = (0..12)
        .map(|i| {
            let refs: String = (0..5).map(|p| format!(r##""ref{p}":{{"$ref":"#/$defs/ProductOrId"}},"##)).collect();
            format!(r##""Type{i}":{{"$ref":"#/$defs/Base","type":"object","properties":{{{refs}"tag":{{"type":"string","const":"type{i}"}}}},"required":["ref0","tag"]}}"##)
        })
        .collect();
    let products: Vec<String> =
        (0..12).map(|i| format!(r##"{{"$ref":"#/$defs/Type{i}"}}"##)).collect();
    let circular = format!(
        r##"{{"$schema":"https://json-schema.org/draft/2020-12/schema","$defs":{{"SimpleId":{{"type":"object","properties":{{"id":{{"type":"string"}}}},"required":["id"]}},"Base":{{"type":"object","properties":{{"name":{{"type":"string"}}}}}},"ProductOrId":{{"oneOf":[{{"$ref":"#/$defs/SimpleId"}},{{"$ref":"#/$defs/Product"}}]}},{},"Product":{{"oneOf":[{}]}}}},"$ref":"#/$defs/Product"}}"##,
        branches.join(","),
        products.join(",")
    );
    assert_eq!(changes(Policy::Strict, &circular, &circular), (vec![], true));
}

#[test]
fn canonical_text_is_compact_json_in_document_order() {
    let text = "{ \"type\" : \"object\",\n  \"properties\": { \"z\": {\"type\": \"number\", \"maximum\": 1e3}, \"a\": {} },\n  \"title\": \"R\\u00e9cord\" }";
    let schema = parse(text);
    assert_eq!(
        schema.canonical(),
        r#"{"type":"object","properties":{"z":{"type":"number","maximum":1E+3},"a":{}},"title":"Récord"}"#
    );
    assert_eq!(schema.title().as_deref(), Some("Récord"));
    assert_eq!(parse("true").canonical(), "true");
    assert_eq!(parse(r#"{"type":"string"}"#).title(), None);
}

#[test]
fn invalid_schemas_are_refused_with_the_reason() {
    let cases = [
        ("{\"type\":", "invalid JSON"),
        (
            r#"{"type":"objekt"}"#,
            "\"objekt\" is not valid under any of the schemas listed in the 'anyOf' keyword (at '/type')",
        ),
        (r#"{"properties":{"a":{"type":"objekt"}}}"#, "(at '/properties/a/type')"),
        (r#"{"minLength":-1}"#, "-1 is less than the minimum of 0"),
        (r#"{"pattern":"(["}"#, "is not a \"regex\""),
        (
            r#"{"$schema":"http://json-schema.org/draft-07/schema#","exclusiveMinimum":true}"#,
            "true is not of type \"number\"",
        ),
        ("5", "expected an object or boolean at the root, found 5"),
        (r#""string""#, "expected an object or boolean at the root"),
        (r#"{"$ref":"other.json"}"#, "other.json"),
        (r##"{"properties":{"a":{"$ref":"#/definitions/missing"}}}"##, "/definitions/missing"),
        (r#"{"$ref":"https://example.com/remote.json"}"#, "https://example.com/remote.json"),
    ];
    for (text, reason) in cases {
        let e = JsonSchema::parse(text, &[]).err().unwrap_or_else(|| panic!("accepted {text}"));
        assert!(e.contains(reason), "{text}: {e}");
    }
}

#[test]
fn every_draft_parses() {
    for url in [
        "http://json-schema.org/draft-04/schema#",
        "http://json-schema.org/draft-06/schema#",
        "http://json-schema.org/draft-07/schema#",
        "https://json-schema.org/draft/2019-09/schema",
        "https://json-schema.org/draft/2020-12/schema",
        // Unknown: read as draft 7, as Confluent does.
        "http://example.com/custom-meta",
    ] {
        let text = format!(
            r#"{{"$schema":"{url}","type":"object","properties":{{"a":{{"type":"string"}}}}}}"#
        );
        assert!(JsonSchema::parse(&text, &[]).is_ok(), "{url}");
    }
    // A draft-4 `id` and a 2020-12 `$defs` reference, and Confluent's bridge from `$defs`
    // to `definitions`.
    parse(
        r##"{"$schema":"http://json-schema.org/draft-04/schema#","id":"http://ex.com/s.json","properties":{"a":{"$ref":"#/definitions/A"}},"definitions":{"A":{"type":"string"}}}"##,
    );
    parse(
        r##"{"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"a":{"$ref":"#/$defs/A"}},"$defs":{"A":{"type":"string"}}}"##,
    );
    let bridged = r##"{"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"a":{"$ref":"#/$defs/A"}},"definitions":{"A":{"type":"string"}}}"##;
    let (got, _) = changes(
        Policy::Strict,
        bridged,
        &bridged.replace(r#""A":{"type":"string"}"#, r#""A":{"type":"number"}"#),
    );
    assert_eq!(got, ["TYPE_CHANGED #/properties/a"]);
}

#[test]
fn references_resolve_to_dependencies_by_name() {
    let address = r#"{"type":"object","properties":{"city":{"type":"string"}},"definitions":{"Zip":{"type":"string","maxLength":10}}}"#;
    let user = r##"{"type":"object","properties":{"home":{"$ref":"address.json"},"zip":{"$ref":"address.json#/definitions/Zip"}}}"##;
    let e = JsonSchema::parse(user, &[]).err().unwrap();
    assert!(e.contains("address.json"), "{e}");
    let parsed = JsonSchema::parse(user, &[("address.json", address)]).unwrap();
    assert_eq!(parsed.canonical(), user, "references are not inlined");

    // A change inside the referenced schema shows under the property referring to it.
    let narrower = address.replace(r#""maxLength":10"#, r#""maxLength":5"#);
    let new = JsonSchema::parse(user, &[("address.json", &narrower)]).unwrap();
    assert_eq!(
        new.can_read(&parsed, "new", "old"),
        vec![
            r#"{errorType:"MAX_LENGTH_DECREASED", description:"The value at path '#/properties/zip/maxLength' in the new schema is less than its value in the old schema'}"#
        ]
    );

    // With an `$id`, names resolve against it (Confluent's REST tests use this form).
    let referrer = r#"{"$id":"https://acme.com/referrer.json","$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"Ref":{"$ref":"ref.json#/definitions/ExternalType"}},"additionalProperties":false}"#;
    let reference = r#"{"type":"object","additionalProperties":false,"definitions":{"ExternalType":{"type":"object","properties":{"name":{"type":"string"}},"additionalProperties":false}}}"#;
    JsonSchema::parse(referrer, &[("ref.json", reference)]).unwrap();
    assert!(JsonSchema::parse(referrer, &[("other.json", reference)]).is_err());

    // Through two levels, and by an absolute name.
    let inner = r#"{"type":"integer"}"#;
    let middle = r#"{"type":"object","properties":{"n":{"$ref":"inner.json"}}}"#;
    let outer = r#"{"type":"object","properties":{"m":{"$ref":"middle.json"},"x":{"$ref":"https://example.com/x.json"}}}"#;
    JsonSchema::parse(
        outer,
        &[("inner.json", inner), ("middle.json", middle), ("https://example.com/x.json", inner)],
    )
    .unwrap();
    assert!(
        JsonSchema::parse(outer, &[("middle.json", middle), ("https://example.com/x.json", inner)])
            .is_err()
    );

    // A reference that is not JSON.
    let e = JsonSchema::parse(user, &[("address.json", "{")]).err().unwrap();
    assert!(e.contains("the reference 'address.json' is not valid JSON"), "{e}");
}

#[test]
fn references_by_id_and_anchor_resolve() {
    let by_id = r##"{"$schema":"http://json-schema.org/draft-07/schema#","$id":"http://ex.com/root.json","properties":{"a":{"$ref":"item.json"},"b":{"$ref":"#thing"}},"definitions":{"I":{"$id":"item.json","type":"string"},"T":{"$id":"#thing","type":"number"}}}"##;
    let (got, _) =
        changes(Policy::Strict, by_id, &by_id.replace(r#""type":"number""#, r#""type":"boolean""#));
    assert_eq!(got, ["TYPE_CHANGED #/properties/b"]);
    let anchored = r##"{"$schema":"https://json-schema.org/draft/2020-12/schema","properties":{"a":{"$ref":"#thing"}},"$defs":{"T":{"$anchor":"thing","type":"number"}}}"##;
    let (got, _) = changes(
        Policy::Strict,
        anchored,
        &anchored.replace(r#""type":"number""#, r#""type":"string""#),
    );
    assert_eq!(got, ["TYPE_CHANGED #/properties/a"]);
}

#[test]
fn deep_and_recursive_schemas_are_compared_without_crashing() {
    // A chain of 100 nested definitions, changed at its far end.
    let chain = |last: &str| {
        let defs: Vec<String> = (0..100)
            .map(|i| format!(r##""d{i}":{{"type":"object","properties":{{"x":{{"$ref":"#/definitions/d{}"}}}}}}"##, i + 1))
            .collect();
        format!(
            r##"{{"$ref":"#/definitions/d0","definitions":{{{},"d100":{{"type":"{last}"}}}}}}"##,
            defs.join(",")
        )
    };
    let (old, new) = (parse(&chain("string")), parse(&chain("number")));
    let messages = new.can_read(&old, "new", "old");
    assert_eq!(messages.len(), 1);
    assert!(messages[0].contains(&"/properties/x".repeat(100)), "{}", messages[0]);

    // Two cycles of different lengths compared out of step.
    let ring = |n: usize, t: &str| {
        let defs: Vec<String> = (0..n)
            .map(|i| format!(r##""r{i}":{{"type":"object","properties":{{"v":{{"type":"{t}"}},"next":{{"$ref":"#/definitions/r{}"}}}}}}"##, (i + 1) % n))
            .collect();
        format!(r##"{{"$ref":"#/definitions/r0","definitions":{{{}}}}}"##, defs.join(","))
    };
    assert!(
        parse(&ring(61, "string")).can_read(&parse(&ring(60, "string")), "new", "old").is_empty()
    );
    assert!(
        !parse(&ring(61, "number")).can_read(&parse(&ring(60, "string")), "new", "old").is_empty()
    );

    // JSON nested past serde_json's limit is not JSON.
    let deep = format!("{}{}", r#"{"items":"#.repeat(200), "}".repeat(200));
    assert!(JsonSchema::parse(&deep, &[]).unwrap_err().contains("invalid JSON"));
}

#[test]
fn policy_sets_are_confluents() {
    // A few of each kind, against SchemaDiff's sets.
    for t in [Type::IdChanged, Type::SchemaRemoved, Type::SumTypeExtended, Type::NotTypeNarrowed] {
        assert!(Policy::Strict.allows(t));
    }
    for t in [Type::SchemaAdded, Type::TypeChanged, Type::OptionalPropertyAddedToOpenContentModel] {
        assert!(!Policy::Strict.allows(t));
    }
    assert!(Policy::Lenient.allows(Type::OptionalPropertyAddedToOpenContentModel));
    assert!(!Policy::Lenient.allows(Type::RequiredPropertyAddedToOpenContentModel));
}

mod fuzz {
    use proptest::prelude::*;

    use super::super::JsonSchema;
    use crate::json::Json;

    /// Schema-shaped JSON: JSON Schema's vocabulary (references included), mixed with
    /// wrong types.
    fn schemaish() -> impl Strategy<Value = Json> {
        let words = prop::sample::select(vec![
            "object",
            "array",
            "string",
            "number",
            "integer",
            "boolean",
            "null",
            "objekt",
            "a",
            "b",
            "#",
            "#/definitions/a",
            "#/definitions/b",
            "#/$defs/a",
            "other.json",
            "^a",
            "http://json-schema.org/draft-04/schema#",
            "https://json-schema.org/draft/2020-12/schema",
        ]);
        let leaf = prop_oneof![
            words.clone().prop_map(|s| Json::String(s.into())),
            (-3i64..20).prop_map(|n| Json::Number(n.into())),
            prop::sample::select(vec![0.5f64, 1.5, 2.0])
                .prop_map(|f| Json::Number(serde_json::Number::from_f64(f).unwrap_or(0.into()))),
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            Just(Json::Object(vec![])),
        ];
        let keys = prop::sample::select(vec![
            "type",
            "properties",
            "required",
            "additionalProperties",
            "patternProperties",
            "items",
            "prefixItems",
            "additionalItems",
            "enum",
            "const",
            "allOf",
            "anyOf",
            "oneOf",
            "not",
            "$ref",
            "definitions",
            "$defs",
            "a",
            "b",
            "minimum",
            "maximum",
            "exclusiveMaximum",
            "multipleOf",
            "maxLength",
            "pattern",
            "minItems",
            "uniqueItems",
            "dependencies",
            "unevaluatedProperties",
            "title",
            "default",
            "$schema",
            "$id",
        ]);
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
                prop::collection::vec((keys.clone().prop_map(String::from), inner), 0..6)
                    .prop_map(Json::Object),
            ]
        })
    }

    /// Valid schemas from JSON Schema's grammar: the kinds the diff compares, content models
    /// open, closed and partially open, combinations, and references into `definitions`
    /// (one of them recursive).
    fn structured() -> impl Strategy<Value = Json> {
        fn obj(pairs: Vec<(&str, Json)>) -> Json {
            Json::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
        }
        fn s(v: &str) -> Json {
            Json::String(v.to_string())
        }
        fn n(v: i64) -> Json {
            Json::Number(v.into())
        }
        let limit = prop::option::of(0i64..5);
        let leaf = prop_oneof![
            (
                limit.clone(),
                limit.clone(),
                prop::option::of(prop::sample::select(vec!["^a", "b$"]))
            )
                .prop_map(|(min, max, pattern)| {
                    let mut f = vec![("type", s("string"))];
                    f.extend(min.map(|v| ("minLength", n(v))));
                    f.extend(max.map(|v| ("maxLength", n(v))));
                    f.extend(pattern.map(|p| ("pattern", s(p))));
                    obj(f)
                }),
            (any::<bool>(), limit.clone(), limit.clone(), prop::option::of(1i64..4)).prop_map(
                |(int, min, max, mult)| {
                    let mut f = vec![("type", s(if int { "integer" } else { "number" }))];
                    f.extend(min.map(|v| ("minimum", n(v))));
                    f.extend(max.map(|v| ("exclusiveMaximum", n(v))));
                    f.extend(mult.map(|v| ("multipleOf", n(v))));
                    obj(f)
                }
            ),
            prop::sample::subsequence(vec!["x", "y", "z"], 1..3)
                .prop_map(|v| obj(vec![("enum", Json::Array(v.into_iter().map(s).collect()))])),
            prop::sample::select(vec![
                obj(vec![("type", s("boolean"))]),
                obj(vec![("type", s("null"))]),
                obj(vec![("const", n(1))]),
                obj(vec![("type", Json::Array(vec![s("string"), s("null")]))]),
                obj(vec![("$ref", s("#/definitions/d"))]),
                obj(vec![("$ref", s("#/definitions/node"))]),
                obj(vec![]),
                Json::Bool(true),
                Json::Bool(false),
            ]),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            let props = prop::collection::vec(
                (prop::sample::select(vec!["a", "b", "c"]), inner.clone()),
                0..4,
            );
            let required = prop::sample::subsequence(vec!["a", "b", "c"], 0..3);
            let additional = prop_oneof![
                Just(None),
                any::<bool>().prop_map(|b| Some(Json::Bool(b))),
                inner.clone().prop_map(Some),
            ];
            let patterns = prop::option::of(inner.clone());
            prop_oneof![
                (props, required, additional, patterns).prop_map(
                    |(props, required, additional, patterns)| {
                        let mut f = vec![("type", s("object"))];
                        let props: Vec<(String, Json)> =
                            props.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                        f.push(("properties", Json::Object(props)));
                        if !required.is_empty() {
                            f.push((
                                "required",
                                Json::Array(required.into_iter().map(s).collect()),
                            ));
                        }
                        f.extend(additional.map(|a| ("additionalProperties", a)));
                        f.extend(patterns.map(|p| ("patternProperties", obj(vec![("^a", p)]))));
                        obj(f)
                    }
                ),
                (inner.clone(), any::<bool>(), prop::option::of(any::<bool>())).prop_map(
                    |(items, unique, more)| {
                        let mut f = vec![("type", s("array"))];
                        match more {
                            None => f.push(("items", items)),
                            Some(more) => {
                                f.push(("items", Json::Array(vec![items])));
                                f.push(("additionalItems", Json::Bool(more)));
                            }
                        }
                        if unique {
                            f.push(("uniqueItems", Json::Bool(true)));
                        }
                        obj(f)
                    }
                ),
                (
                    prop::sample::select(vec!["anyOf", "oneOf", "allOf"]),
                    prop::collection::vec(inner.clone(), 1..4)
                )
                    .prop_map(|(k, subs)| obj(vec![(k, Json::Array(subs))])),
                inner.prop_map(|i| obj(vec![("not", i)])),
            ]
        })
        .prop_map(|schema| {
            let definitions = obj(vec![
                ("d", obj(vec![("type", s("string"))])),
                (
                    "node",
                    obj(vec![
                        ("type", s("object")),
                        (
                            "properties",
                            obj(vec![("next", obj(vec![("$ref", s("#/definitions/node"))]))]),
                        ),
                    ]),
                ),
            ]);
            match schema {
                Json::Object(mut f) => {
                    f.push(("definitions".to_string(), definitions));
                    Json::Object(f)
                }
                other => other,
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Valid schemas parse, read themselves, and compare both ways without panicking.
        #[test]
        fn valid_schemas_read_themselves(a in structured(), b in structured()) {
            let (ta, tb) = (a.to_compact(), b.to_compact());
            let pa = JsonSchema::parse(&ta, &[]).map_err(|e| TestCaseError::fail(format!("{ta}: {e}")))?;
            let pb = JsonSchema::parse(&tb, &[]).map_err(|e| TestCaseError::fail(format!("{tb}: {e}")))?;
            prop_assert!(pa.can_read(&pa, "new", "old").is_empty(), "{} does not read itself", ta);
            let _ = pa.can_read(&pb, "new", "old");
            let _ = pb.can_read(&pa, "old", "new");
        }

        /// Parsing never panics; what parses has a stable canonical text, reads itself,
        /// and compares with another without panicking.
        #[test]
        fn parsing_and_checking_never_panic(a in schemaish(), b in schemaish()) {
            let (ta, tb) = (a.to_compact(), b.to_compact());
            let (pa, pb) = (JsonSchema::parse(&ta, &[]), JsonSchema::parse(&tb, &[]));
            if let Ok(pa) = &pa {
                let again = JsonSchema::parse(pa.canonical(), &[]).expect("canonical text parses");
                prop_assert_eq!(again.canonical(), pa.canonical());
                prop_assert!(pa.can_read(pa, "new", "old").is_empty(), "{} does not read itself", ta);
            }
            if let (Ok(pa), Ok(pb)) = (&pa, &pb) {
                let _ = pa.can_read(pb, "new", "old");
                let _ = pb.can_read(pa, "old", "new");
            }
        }
    }
}
