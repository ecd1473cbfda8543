//! An Avro schema read into a graph of types, the way Avro's Java `Schema.Parser` reads it:
//! named types are defined once and referred to by id (so recursive types are finite),
//! names are resolved against the enclosing namespace, and every attribute that is not
//! Avro's own is kept, in document order, as a property.

use std::collections::HashMap;

use crate::json::Json;

/// Index of a type in `Graph::nodes`.
pub(crate) type NodeId = usize;

/// The primitive types, named as Java's `Schema.Type` prints them in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Primitive {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
}

impl Primitive {
    pub(crate) fn from_name(name: &str) -> Option<Primitive> {
        Some(match name {
            "null" => Primitive::Null,
            "boolean" => Primitive::Boolean,
            "int" => Primitive::Int,
            "long" => Primitive::Long,
            "float" => Primitive::Float,
            "double" => Primitive::Double,
            "bytes" => Primitive::Bytes,
            "string" => Primitive::String,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Primitive::Null => "null",
            Primitive::Boolean => "boolean",
            Primitive::Int => "int",
            Primitive::Long => "long",
            Primitive::Float => "float",
            Primitive::Double => "double",
            Primitive::Bytes => "bytes",
            Primitive::String => "string",
        }
    }
}

/// A named type's name: its simple name and its namespace (none for the null namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name {
    pub(crate) name: String,
    pub(crate) space: Option<String>,
}

impl Name {
    /// `name` read in namespace `space`: a dotted name carries its own namespace.
    pub(crate) fn new(name: &str, space: Option<&str>) -> Name {
        match name.rsplit_once('.') {
            Some((space, simple)) => Name { name: simple.to_string(), space: non_empty(space) },
            None => Name { name: name.to_string(), space: space.and_then(non_empty) },
        }
    }

    pub(crate) fn full(&self) -> String {
        match &self.space {
            Some(space) => format!("{space}.{}", self.name),
            None => self.name.clone(),
        }
    }

    /// As Java's `Name.getQualified`: the simple name in its own namespace, else the full.
    pub(crate) fn qualified(&self, default_space: Option<&str>) -> String {
        match &self.space {
            None => self.name.clone(),
            Some(space) if Some(space.as_str()) == default_space => self.name.clone(),
            Some(_) => self.full(),
        }
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// A record field.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub(crate) name: String,
    pub(crate) ty: NodeId,
    pub(crate) doc: Option<String>,
    pub(crate) default: Option<Json>,
    pub(crate) order: Option<String>,
    pub(crate) aliases: Vec<String>,
    pub(crate) props: Vec<(String, Json)>,
}

/// What a named type adds to its name.
#[derive(Debug, Clone)]
pub(crate) struct Named {
    pub(crate) name: Name,
    pub(crate) doc: Option<String>,
    pub(crate) aliases: Vec<Name>,
    pub(crate) props: Vec<(String, Json)>,
}

/// One type of the graph.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Primitive { kind: Primitive, props: Vec<(String, Json)> },
    Record { named: Named, error: bool, fields: Vec<Field> },
    Enum { named: Named, symbols: Vec<String>, default: Option<String> },
    Fixed { named: Named, size: u64 },
    Array { items: NodeId, props: Vec<(String, Json)> },
    Map { values: NodeId, props: Vec<(String, Json)> },
    Union(Vec<NodeId>),
}

impl Node {
    /// The type's name as Java's `Schema.Type` prints it in messages (`RECORD`, `INT`...).
    pub(crate) fn type_name(&self) -> String {
        match self {
            Node::Primitive { kind, .. } => kind.name().to_uppercase(),
            Node::Record { .. } => "RECORD".into(),
            Node::Enum { .. } => "ENUM".into(),
            Node::Fixed { .. } => "FIXED".into(),
            Node::Array { .. } => "ARRAY".into(),
            Node::Map { .. } => "MAP".into(),
            Node::Union(_) => "UNION".into(),
        }
    }

    pub(crate) fn named(&self) -> Option<&Named> {
        match self {
            Node::Record { named, .. } | Node::Enum { named, .. } | Node::Fixed { named, .. } => {
                Some(named)
            }
            _ => None,
        }
    }
}

/// A parsed schema: its types, the root, and the named types the references defined
/// (printed by name, not inline, as Confluent prints a schema with references).
#[derive(Debug, Clone)]
pub(crate) struct Graph {
    pub(crate) nodes: Vec<Node>,
    pub(crate) root: NodeId,
    pub(crate) from_references: Vec<NodeId>,
}

impl Graph {
    pub(crate) fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }
}

const SCHEMA_RESERVED: &[&str] = &[
    "doc",
    "fields",
    "items",
    "name",
    "namespace",
    "size",
    "symbols",
    "values",
    "type",
    "aliases",
];
const FIELD_RESERVED: &[&str] = &["default", "doc", "name", "order", "type", "aliases"];

/// Reads schema documents into one graph: the references first (in dependency order),
/// then the schema itself. The text was validated by apache-avro before; what is checked
/// here is only what this reading needs, each failure a message naming the bad value.
#[derive(Default)]
pub(crate) struct Reader {
    nodes: Vec<Node>,
    names: HashMap<String, NodeId>,
}

impl Reader {
    /// Reads one document; returns its root.
    pub(crate) fn read(&mut self, json: &Json) -> Result<NodeId, String> {
        self.parse(json, None)
    }

    /// The graph rooted at `root`; `from_references` are the named types defined before it.
    pub(crate) fn finish(self, root: NodeId, from_references: Vec<NodeId>) -> Graph {
        Graph { nodes: self.nodes, root, from_references }
    }

    /// The named types defined so far.
    pub(crate) fn named_ids(&self) -> Vec<NodeId> {
        let mut ids: Vec<_> = self.names.values().copied().collect();
        ids.sort_unstable();
        ids
    }

    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn lookup(&self, name: &str, space: Option<&str>) -> Option<NodeId> {
        let full = Name::new(name, space).full();
        self.names.get(&full).or_else(|| self.names.get(name)).copied()
    }

    fn parse(&mut self, json: &Json, space: Option<&str>) -> Result<NodeId, String> {
        match json {
            Json::String(name) => self.by_name(name, space, Vec::new()),
            Json::Array(branches) => {
                let ids =
                    branches.iter().map(|b| self.parse(b, space)).collect::<Result<Vec<_>, _>>()?;
                Ok(self.push(Node::Union(ids)))
            }
            Json::Object(fields) => self.parse_object(json, fields, space),
            other => Err(format!("not a schema: {other}")),
        }
    }

    fn by_name(
        &mut self,
        name: &str,
        space: Option<&str>,
        props: Vec<(String, Json)>,
    ) -> Result<NodeId, String> {
        if let Some(kind) = Primitive::from_name(name) {
            return Ok(self.push(Node::Primitive { kind, props }));
        }
        self.lookup(name, space).ok_or_else(|| format!("undefined name: {name}"))
    }

    fn parse_object(
        &mut self,
        json: &Json,
        fields: &[(String, Json)],
        space: Option<&str>,
    ) -> Result<NodeId, String> {
        let ty = match json.get("type") {
            Some(Json::String(t)) => t.as_str(),
            Some(nested) => return self.parse(nested, space),
            None => return Err(format!("no type: {json}")),
        };
        let props = |reserved: &[&str]| -> Vec<(String, Json)> {
            fields.iter().filter(|(k, _)| !reserved.contains(&k.as_str())).cloned().collect()
        };
        match ty {
            "record" | "error" | "enum" | "fixed" => self.parse_named(json, ty, space, props),
            "array" => {
                let items =
                    json.get("items").ok_or_else(|| format!("array has no items: {json}"))?;
                let items = self.parse(items, space)?;
                Ok(self.push(Node::Array { items, props: props(SCHEMA_RESERVED) }))
            }
            "map" => {
                let values =
                    json.get("values").ok_or_else(|| format!("map has no values: {json}"))?;
                let values = self.parse(values, space)?;
                Ok(self.push(Node::Map { values, props: props(SCHEMA_RESERVED) }))
            }
            other => self.by_name(other, space, props(SCHEMA_RESERVED)),
        }
    }

    fn parse_named(
        &mut self,
        json: &Json,
        ty: &str,
        space: Option<&str>,
        props: impl Fn(&[&str]) -> Vec<(String, Json)>,
    ) -> Result<NodeId, String> {
        let simple = json
            .get("name")
            .and_then(Json::as_str)
            .ok_or_else(|| format!("no name in schema: {json}"))?;
        let space = match json.get("namespace") {
            Some(Json::String(ns)) => Some(ns.as_str()),
            _ => space,
        };
        let name = Name::new(simple, space);
        let full = name.full();
        if self.names.contains_key(&full) {
            return Err(format!("Can't redefine: {full}"));
        }
        let own_space = name.space.clone();
        let aliases = match json.get("aliases") {
            Some(Json::Array(a)) => a
                .iter()
                .filter_map(Json::as_str)
                .map(|s| Name::new(s, own_space.as_deref()))
                .collect(),
            _ => Vec::new(),
        };
        let doc = json.get("doc").and_then(Json::as_str).map(str::to_string);
        let reserved: Vec<&str> = match ty {
            "enum" => SCHEMA_RESERVED.iter().copied().chain(["default"]).collect(),
            _ => SCHEMA_RESERVED.to_vec(),
        };
        let named = Named { name, doc, aliases, props: props(&reserved) };
        let id = match ty {
            "enum" => {
                let symbols = match json.get("symbols") {
                    Some(Json::Array(s)) => {
                        s.iter().filter_map(Json::as_str).map(str::to_string).collect()
                    }
                    _ => return Err(format!("enum has no symbols: {json}")),
                };
                let default = json.get("default").and_then(Json::as_str).map(str::to_string);
                self.push(Node::Enum { named, symbols, default })
            }
            "fixed" => {
                let size = match json.get("size") {
                    Some(Json::Number(n)) => n.as_u64(),
                    _ => None,
                }
                .ok_or_else(|| format!("fixed has no valid size: {json}"))?;
                self.push(Node::Fixed { named, size })
            }
            _ => {
                // Defined before its fields are read, so a field may refer to it.
                let error = ty == "error";
                self.push(Node::Record { named, error, fields: Vec::new() })
            }
        };
        self.names.insert(full, id);
        if matches!(ty, "record" | "error") {
            let fields = self.parse_fields(json, own_space.as_deref())?;
            if let Node::Record { fields: slot, .. } = &mut self.nodes[id] {
                *slot = fields;
            }
        }
        Ok(id)
    }

    fn parse_fields(&mut self, json: &Json, space: Option<&str>) -> Result<Vec<Field>, String> {
        let Some(Json::Array(list)) = json.get("fields") else {
            return Err(format!("record has no fields: {json}"));
        };
        let mut fields = Vec::with_capacity(list.len());
        for f in list {
            let Json::Object(attrs) = f else {
                return Err(format!("not a field: {f}"));
            };
            let name = f
                .get("name")
                .and_then(Json::as_str)
                .ok_or_else(|| format!("no field name: {f}"))?;
            let ty = f.get("type").ok_or_else(|| format!("no field type: {f}"))?;
            let ty = self.parse(ty, space)?;
            fields.push(Field {
                name: name.to_string(),
                ty,
                doc: f.get("doc").and_then(Json::as_str).map(str::to_string),
                default: f.get("default").cloned(),
                order: f.get("order").and_then(Json::as_str).map(str::to_string),
                aliases: match f.get("aliases") {
                    Some(Json::Array(a)) => {
                        a.iter().filter_map(Json::as_str).map(str::to_string).collect()
                    }
                    _ => Vec::new(),
                },
                props: attrs
                    .iter()
                    .filter(|(k, _)| !FIELD_RESERVED.contains(&k.as_str()))
                    .cloned()
                    .collect(),
            });
        }
        Ok(fields)
    }
}
