//! JSON Schema read into the typed model (`model`), the way everit's `SchemaLoader` builds
//! it for drafts 4, 6 and 7, and the way Confluent's `SchemaTranslator` builds it from
//! json-sKema for 2019-09 and 2020-12.
//!
//! The loader's rules that change meaning: a `type` array becomes an `anyOf` of one schema
//! per type; keywords of several kinds in one object (`enum`, `allOf`, `not`, `type`,
//! string or number keywords, ...) become an `allOf` of one schema per kind; an object with
//! none is the empty schema; a `$ref` ignores its siblings (but for `title`, `description`,
//! `default` and `$id`) before 2019-09 and joins them in an `allOf` from it on.

use std::collections::HashMap;

use super::Draft;
use super::model::{
    ArrayKeywords, Common, Criterion, Graph, Kind, Node, NodeId, NumberKeywords, ObjectKeywords,
    StringKeywords,
};
use super::resolve::Documents;
use crate::json::Json;

/// How deep a schema's JSON may nest (references do not add to it; JSON itself stops at
/// 128 levels).
pub(crate) const MAX_DEPTH: usize = 256;

const NUMBER_KEYWORDS: &[&str] =
    &["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"];
const STRING_KEYWORDS: &[&str] = &["minLength", "maxLength", "pattern", "format"];
const V4_OBJECT_KEYWORDS: &[&str] = &[
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "dependencies",
    "patternProperties",
    "additionalProperties",
];
const V6_OBJECT_KEYWORDS: &[&str] = &[
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "dependencies",
    "patternProperties",
    "additionalProperties",
    "propertyNames",
];
const MODERN_OBJECT_KEYWORDS: &[&str] = &[
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "dependencies",
    "dependentRequired",
    "dependentSchemas",
    "patternProperties",
    "additionalProperties",
    "propertyNames",
    "unevaluatedProperties",
];
const V4_ARRAY_KEYWORDS: &[&str] =
    &["items", "additionalItems", "minItems", "maxItems", "uniqueItems"];
const V6_ARRAY_KEYWORDS: &[&str] =
    &["items", "additionalItems", "minItems", "maxItems", "uniqueItems", "contains"];
const MODERN_ARRAY_KEYWORDS: &[&str] = &[
    "items",
    "prefixItems",
    "additionalItems",
    "minItems",
    "maxItems",
    "uniqueItems",
    "contains",
    "unevaluatedItems",
];

/// Reads a schema and what it refers to into a [`Graph`].
pub(crate) struct Loader<'a, 'd> {
    draft: Draft,
    docs: &'d Documents<'a>,
    nodes: Vec<Node>,
    /// Each referenced subschema's node, so every `$ref` to it shares it (as everit does).
    targets: HashMap<*const Json, NodeId>,
    /// Referenced subschemas still to read (read after the one that refers to them, so
    /// chains of references do not nest).
    pending: Vec<(NodeId, &'a Json)>,
    depth: usize,
}

/// The keys of one schema object and which of them a kind of schema has taken.
struct Keys<'a> {
    json: &'a Json,
    consumed: Vec<&'static str>,
}

impl<'a> Keys<'a> {
    fn has(&self, key: &str) -> bool {
        self.json.get(key).is_some() && !self.consumed.contains(&key)
    }

    fn take(&mut self, key: &'static str) -> Option<&'a Json> {
        let v = self.json.get(key).filter(|_| !self.consumed.contains(&key))?;
        self.consumed.push(key);
        Some(v)
    }

    fn any(&self, keys: &[&str]) -> bool {
        keys.iter().any(|k| self.has(k))
    }

    fn consume_all(&mut self, keys: &[&'static str]) {
        for k in keys {
            if self.has(k) {
                self.consumed.push(k);
            }
        }
    }
}

fn number(v: Option<&Json>) -> Option<f64> {
    match v {
        Some(Json::Number(n)) => n.as_f64(),
        _ => None,
    }
}

fn string(v: Option<&Json>) -> Option<String> {
    v.and_then(Json::as_str).map(str::to_string)
}

impl<'a, 'd> Loader<'a, 'd> {
    /// Reads `root` (a document indexed in `docs`).
    pub(crate) fn load_graph(
        draft: Draft,
        docs: &'d Documents<'a>,
        root: &'a Json,
    ) -> Result<Graph, String> {
        let mut loader = Loader {
            draft,
            docs,
            nodes: Vec::new(),
            targets: HashMap::new(),
            pending: Vec::new(),
            depth: 0,
        };
        let root = loader.load(root)?;
        while let Some((slot, target)) = loader.pending.pop() {
            let loaded = loader.load(target)?;
            loader.nodes[slot] = loader.nodes[loaded].clone();
        }
        Ok(Graph { nodes: loader.nodes, root })
    }

    fn push(&mut self, kind: Kind) -> NodeId {
        self.nodes.push(Node { common: Common::default(), kind });
        self.nodes.len() - 1
    }

    fn load(&mut self, json: &'a Json) -> Result<NodeId, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("the schema nests deeper than {MAX_DEPTH} levels"));
        }
        let result = match json {
            Json::Bool(true) => Ok(self.push(Kind::True)),
            Json::Bool(false) => Ok(self.push(Kind::False)),
            Json::Object(_) => self.load_object(json),
            other => Err(format!("a schema must be an object or a boolean, found {other}")),
        };
        self.depth -= 1;
        result
    }

    fn load_all(&mut self, v: &'a Json) -> Result<Vec<NodeId>, String> {
        match v {
            Json::Array(items) => items.iter().map(|i| self.load(i)).collect(),
            _ => Ok(Vec::new()),
        }
    }

    /// The node of the subschema `reference` points to (read once, shared).
    fn referenced(&mut self, from: &'a Json, reference: &str) -> Result<NodeId, String> {
        let target = self.docs.resolve(from, reference)?;
        if let Some(&id) = self.targets.get(&(target as *const Json)) {
            return Ok(id);
        }
        let slot = self.push(Kind::Pending);
        self.targets.insert(target as *const Json, slot);
        self.pending.push((slot, target));
        Ok(slot)
    }

    fn load_object(&mut self, json: &'a Json) -> Result<NodeId, String> {
        let modern = self.draft.modern();
        let mut keys = Keys { json, consumed: Vec::new() };
        let mut parts = Vec::new();
        let mut only_ref = false;
        if let Some(r) = keys.take("$ref").and_then(Json::as_str) {
            let target = self.referenced(json, r)?;
            parts.push(self.push(Kind::Reference(target)));
            only_ref = !modern;
        }
        if !only_ref {
            self.extract(&mut keys, &mut parts)?;
        }
        let node = match parts.len() {
            0 => self.push(Kind::Empty),
            1 => parts[0],
            _ => self.push(Kind::Combined(Criterion::AllOf, parts)),
        };
        let id_key = if self.draft == Draft::V4 { "id" } else { "$id" };
        let common = &mut self.nodes[node].common;
        // json-sKema takes `$id` as the base URI only: Confluent sees no id from 2019-09.
        common.id = string(keys.take(id_key)).filter(|_| !modern);
        common.title = string(keys.take("title"));
        common.description = string(keys.take("description"));
        common.default = keys.take("default").cloned();
        common.connect_type = string(keys.take("connect.type"));
        if !modern {
            // Unknown keywords before 2019-09: left as unprocessed numbers the diff reads.
            common.min_contains = number(keys.take("minContains"));
            common.max_contains = number(keys.take("maxContains"));
        }
        Ok(node)
    }

    /// everit's extractors, in order, each taking its keywords from the next ones.
    fn extract(&mut self, keys: &mut Keys<'a>, parts: &mut Vec<NodeId>) -> Result<(), String> {
        if let Some(Json::Array(values)) = keys.take("enum") {
            parts.push(self.push(Kind::Enum(values.clone())));
        }
        // In the order of the HashSet Java collects the present keywords into.
        for (key, criterion) in
            [("allOf", Criterion::AllOf), ("oneOf", Criterion::OneOf), ("anyOf", Criterion::AnyOf)]
        {
            if let Some(v) = keys.take(key) {
                let subschemas = self.load_all(v)?;
                parts.push(self.push(Kind::Combined(criterion, subschemas)));
            }
        }
        if let Some(v) = keys.take("not") {
            let inner = self.load(v)?;
            parts.push(self.push(Kind::Not(inner)));
        }
        if self.draft != Draft::V4
            && let Some(v) = keys.take("const")
        {
            parts.push(self.push(Kind::Const(v.clone())));
        }
        match keys.take("type") {
            Some(Json::String(t)) => {
                let node = self.load_type(keys, t)?;
                parts.push(node);
            }
            Some(Json::Array(types)) => {
                let mut subschemas = Vec::new();
                for t in types {
                    let t = t.as_str().ok_or("a type must be a string")?;
                    subschemas.push(self.load_type(keys, t)?);
                }
                parts.push(self.push(Kind::Combined(Criterion::AnyOf, subschemas)));
            }
            _ => {}
        }
        // The property sniffer: keywords without their type. From 2019-09 an empty
        // `properties` or `patternProperties` says nothing, nor does `format`.
        if keys.any(self.array_keywords()) {
            let kind = self.array(keys)?;
            parts.push(self.push_typed(kind, keys));
        }
        let object_keywords = self.object_keywords().iter().filter(|k| {
            !self.draft.modern()
                || !matches!(keys.json.get(k), Some(Json::Object(m)) if m.is_empty()
                    && matches!(**k, "properties" | "patternProperties"))
        });
        if object_keywords.copied().any(|k| keys.has(k)) {
            let kind = self.object(keys)?;
            parts.push(self.push_typed(kind, keys));
        }
        if keys.any(NUMBER_KEYWORDS) {
            let kind = Kind::Number(self.number(keys, false));
            parts.push(self.push(kind));
        }
        let string_keywords = match self.draft.modern() {
            true => &STRING_KEYWORDS[..3],
            false => STRING_KEYWORDS,
        };
        if keys.any(string_keywords) {
            let kind = Kind::String(self.string(keys));
            parts.push(self.push(kind));
        }
        if self.draft != Draft::V4 && self.draft != Draft::V6 && keys.any(&["if", "then", "else"]) {
            keys.consume_all(&["if", "then", "else"]);
            parts.push(self.push(Kind::Conditional));
        }
        Ok(())
    }

    fn array_keywords(&self) -> &'static [&'static str] {
        match self.draft {
            Draft::V4 => V4_ARRAY_KEYWORDS,
            Draft::V6 | Draft::V7 => V6_ARRAY_KEYWORDS,
            Draft::V2019 | Draft::V2020 => MODERN_ARRAY_KEYWORDS,
        }
    }

    fn object_keywords(&self) -> &'static [&'static str] {
        match self.draft {
            Draft::V4 => V4_OBJECT_KEYWORDS,
            Draft::V6 | Draft::V7 => V6_OBJECT_KEYWORDS,
            Draft::V2019 | Draft::V2020 => MODERN_OBJECT_KEYWORDS,
        }
    }

    /// everit's `loadForExplicitType`.
    fn load_type(&mut self, keys: &mut Keys<'a>, t: &str) -> Result<NodeId, String> {
        let kind = match t {
            "string" => Kind::String(self.string(keys)),
            "integer" => Kind::Number(self.number(keys, true)),
            "number" => Kind::Number(self.number(keys, false)),
            "boolean" => Kind::Boolean,
            "null" => Kind::Null,
            "array" => self.array(keys)?,
            "object" => self.object(keys)?,
            other => return Err(format!("unknown type: [{other}]")),
        };
        Ok(self.push_typed(kind, keys))
    }

    /// A node for an object or array schema, with the 2019-09+ keywords kept beside it.
    fn push_typed(&mut self, kind: Kind, keys: &Keys<'a>) -> NodeId {
        let is_array = matches!(kind, Kind::Array(_));
        let is_object = matches!(kind, Kind::Object(_));
        let node = self.push(kind);
        if !self.draft.modern() {
            return node;
        }
        let json = keys.json;
        if is_array && json.get("contains").is_some() {
            let common = &mut self.nodes[node].common;
            common.min_contains = number(json.get("minContains")).or(Some(1.0));
            common.max_contains = number(json.get("maxContains"));
        }
        let key = if is_array { "unevaluatedItems" } else { "unevaluatedProperties" };
        if (is_array || is_object)
            && let Some(v) = json.get(key)
            && let Ok(inner) = self.load(v)
        {
            let common = &mut self.nodes[node].common;
            match is_array {
                true => common.unevaluated_items = Some(inner),
                false => common.unevaluated_properties = Some(inner),
            }
        }
        node
    }

    fn string(&mut self, keys: &mut Keys<'a>) -> StringKeywords {
        let json = keys.json;
        keys.consume_all(STRING_KEYWORDS);
        StringKeywords {
            min_length: number(json.get("minLength")),
            max_length: number(json.get("maxLength")),
            pattern: string(json.get("pattern")),
        }
    }

    fn number(&mut self, keys: &mut Keys<'a>, integer: bool) -> NumberKeywords {
        let json = keys.json;
        keys.consume_all(NUMBER_KEYWORDS);
        let multiple_of = match json.get("multipleOf") {
            Some(Json::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        NumberKeywords {
            minimum: number(json.get("minimum")),
            maximum: number(json.get("maximum")),
            exclusive_minimum: number(json.get("exclusiveMinimum")),
            exclusive_maximum: number(json.get("exclusiveMaximum")),
            multiple_of,
            integer,
        }
    }

    fn object(&mut self, keys: &mut Keys<'a>) -> Result<Kind, String> {
        let json = keys.json;
        keys.consume_all(self.object_keywords());
        let mut o = ObjectKeywords {
            properties: Vec::new(),
            required: Vec::new(),
            additional_allowed: true,
            additional: None,
            pattern_properties: Vec::new(),
            property_dependencies: Vec::new(),
            schema_dependencies: Vec::new(),
            min_properties: number(json.get("minProperties")),
            max_properties: number(json.get("maxProperties")),
        };
        let id_key = if self.draft == Draft::V4 { "id" } else { "$id" };
        if let Some(Json::Object(props)) = json.get("properties") {
            for (name, schema) in props {
                if name != id_key || matches!(schema, Json::Object(_)) {
                    let node = self.load(schema)?;
                    o.properties.push((name.clone(), node));
                }
            }
        }
        match json.get("additionalProperties") {
            Some(Json::Bool(allowed)) => o.additional_allowed = *allowed,
            Some(v @ Json::Object(_)) => o.additional = Some(self.load(v)?),
            _ => {}
        }
        if let Some(Json::Array(required)) = json.get("required") {
            o.required = required.iter().filter_map(Json::as_str).map(str::to_string).collect();
        }
        if let Some(Json::Object(patterns)) = json.get("patternProperties") {
            for (pattern, schema) in patterns {
                let node = self.load(schema)?;
                o.pattern_properties.push((pattern.clone(), node));
            }
        }
        let mut dependencies = Vec::new();
        for key in ["dependencies", "dependentRequired", "dependentSchemas"] {
            if let Some(Json::Object(deps)) = json.get(key) {
                dependencies.extend(deps.iter());
            }
        }
        for (name, dep) in dependencies {
            match dep {
                Json::Array(names) => o.property_dependencies.push((
                    name.clone(),
                    names.iter().filter_map(Json::as_str).map(str::to_string).collect(),
                )),
                schema => {
                    let node = self.load(schema)?;
                    o.schema_dependencies.push((name.clone(), node));
                }
            }
        }
        Ok(Kind::Object(o))
    }

    fn array(&mut self, keys: &mut Keys<'a>) -> Result<Kind, String> {
        let json = keys.json;
        keys.consume_all(self.array_keywords());
        let mut a = ArrayKeywords {
            all_items: None,
            item_schemas: None,
            additional_allowed: true,
            additional: None,
            min_items: number(json.get("minItems")),
            max_items: number(json.get("maxItems")),
            unique_items: matches!(json.get("uniqueItems"), Some(Json::Bool(true))),
        };
        if !self.draft.modern() {
            match json.get("additionalItems") {
                Some(Json::Bool(allowed)) => a.additional_allowed = *allowed,
                Some(v @ Json::Object(_)) => a.additional = Some(self.load(v)?),
                _ => {}
            }
            match json.get("items") {
                Some(items @ Json::Array(_)) => a.item_schemas = Some(self.load_all(items)?),
                Some(v) => a.all_items = Some(self.load(v)?),
                None => {}
            }
            return Ok(Kind::Array(a));
        }
        // The translator's rules: a tuple is `prefixItems` (2020-12) or an `items` array
        // (2019-09); what follows it, or `items` without a tuple, is `true` (nothing),
        // `false` (closed) or a schema.
        let (tuple, rest) = match (json.get("prefixItems"), json.get("items")) {
            (Some(p @ Json::Array(_)), items) => (Some(p), items),
            (_, Some(i @ Json::Array(_))) => (Some(i), json.get("additionalItems")),
            (_, items) => (None, items),
        };
        if let Some(t) = tuple {
            a.item_schemas = Some(self.load_all(t)?);
        }
        match rest {
            Some(Json::Bool(false)) => a.additional_allowed = false,
            Some(v @ Json::Object(_)) if tuple.is_some() => a.additional = Some(self.load(v)?),
            Some(v @ Json::Object(_)) => a.all_items = Some(self.load(v)?),
            _ => {}
        }
        Ok(Kind::Array(a))
    }
}
