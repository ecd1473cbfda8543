//! The typed model Confluent's diff works on: everit's `Schema` classes (`ObjectSchema`,
//! `ArraySchema`, `CombinedSchema`, `ReferenceSchema`, ...) as a graph of nodes (references
//! make it one). `load` reads a schema into it.

use crate::json::Json;

/// A node of the graph (a schema; references make it a graph).
pub(crate) type NodeId = usize;

/// `allOf`, `anyOf` or `oneOf` (everit's `ValidationCriterion`).
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Criterion {
    AllOf,
    AnyOf,
    OneOf,
}

impl Criterion {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Criterion::AllOf => "allOf",
            Criterion::AnyOf => "anyOf",
            Criterion::OneOf => "oneOf",
        }
    }
}

/// What every schema has (everit's `Schema`), and the unprocessed keywords the diff reads.
#[derive(Debug, Clone, Default)]
pub(crate) struct Common {
    pub(crate) id: Option<String>,
    pub(crate) title: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) default: Option<Json>,
    /// `connect.type`, when a string.
    pub(crate) connect_type: Option<String>,
    pub(crate) min_contains: Option<f64>,
    pub(crate) max_contains: Option<f64>,
    /// 2019-09 and later: `unevaluatedProperties` / `unevaluatedItems` as schemas.
    pub(crate) unevaluated_properties: Option<NodeId>,
    pub(crate) unevaluated_items: Option<NodeId>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct StringKeywords {
    pub(crate) min_length: Option<f64>,
    pub(crate) max_length: Option<f64>,
    pub(crate) pattern: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct NumberKeywords {
    pub(crate) minimum: Option<f64>,
    pub(crate) maximum: Option<f64>,
    /// Draft 6 on: the numbers. Draft 4's boolean modifiers are not compared, as in Java.
    pub(crate) exclusive_minimum: Option<f64>,
    pub(crate) exclusive_maximum: Option<f64>,
    /// As written (compared as decimals).
    pub(crate) multiple_of: Option<String>,
    /// `type: integer`.
    pub(crate) integer: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct ObjectKeywords {
    /// In document order.
    pub(crate) properties: Vec<(String, NodeId)>,
    pub(crate) required: Vec<String>,
    pub(crate) additional_allowed: bool,
    pub(crate) additional: Option<NodeId>,
    pub(crate) pattern_properties: Vec<(String, NodeId)>,
    pub(crate) property_dependencies: Vec<(String, Vec<String>)>,
    pub(crate) schema_dependencies: Vec<(String, NodeId)>,
    pub(crate) min_properties: Option<f64>,
    pub(crate) max_properties: Option<f64>,
}

#[derive(Debug, Clone)]
pub(crate) struct ArrayKeywords {
    pub(crate) all_items: Option<NodeId>,
    /// A tuple: one schema per position.
    pub(crate) item_schemas: Option<Vec<NodeId>>,
    pub(crate) additional_allowed: bool,
    pub(crate) additional: Option<NodeId>,
    pub(crate) min_items: Option<f64>,
    pub(crate) max_items: Option<f64>,
    pub(crate) unique_items: bool,
}

/// The schema classes; two schemas of different classes are a type change.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// `{}` (or an object with no validation keyword).
    Empty,
    /// `true` (a subclass of the empty schema in everit).
    True,
    /// `false`.
    False,
    Boolean,
    Null,
    String(StringKeywords),
    Number(NumberKeywords),
    Object(ObjectKeywords),
    Array(ArrayKeywords),
    Enum(Vec<Json>),
    Const(Json),
    Not(NodeId),
    Combined(Criterion, Vec<NodeId>),
    /// `if`/`then`/`else`: not compared.
    Conditional,
    /// A `$ref`, resolved.
    Reference(NodeId),
    /// A referenced schema not read yet (none is left once the graph is built).
    Pending,
}

impl Kind {
    /// Java's `getClass()`, for `schemaTypesEqual`.
    pub(crate) fn class(&self) -> u8 {
        match self {
            Kind::Empty => 0,
            Kind::True => 1,
            Kind::False => 2,
            Kind::Boolean => 3,
            Kind::Null => 4,
            Kind::String(_) => 5,
            Kind::Number(_) => 6,
            Kind::Object(_) => 7,
            Kind::Array(_) => 8,
            Kind::Enum(_) => 9,
            Kind::Const(_) => 10,
            Kind::Not(_) => 11,
            Kind::Combined(..) => 12,
            Kind::Conditional => 13,
            Kind::Reference(_) => 14,
            Kind::Pending => 15,
        }
    }

    /// `instanceof EmptySchema` (true is one too).
    pub(crate) fn is_empty_schema(&self) -> bool {
        matches!(self, Kind::Empty | Kind::True)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) common: Common,
    pub(crate) kind: Kind,
}

/// A schema read into the model.
#[derive(Debug, Clone)]
pub(crate) struct Graph {
    pub(crate) nodes: Vec<Node>,
    pub(crate) root: NodeId,
}

impl Graph {
    pub(crate) fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }
}
