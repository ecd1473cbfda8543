//! An Avro schema printed as Avro's Java `Schema.toString()` prints it, which is the text
//! Confluent's registry stores, returns and compares (`canonicalString`): attributes in
//! Java's order, a named type defined once and then referred to by name, a namespace only
//! where it differs from the enclosing one, a primitive without properties as a bare
//! string, properties after Avro's own attributes in document order.

use crate::json::{Json, write_string};

use super::model::{Graph, Named, Node, NodeId};

/// The schema's text in Java's form; the types its references defined print as names.
pub(crate) fn print(graph: &Graph) -> String {
    let mut p =
        Printer { graph, written: vec![false; graph.nodes.len()], space: None, out: String::new() };
    for &id in &graph.from_references {
        p.written[id] = true;
    }
    p.node(graph.root);
    p.out
}

struct Printer<'a> {
    graph: &'a Graph,
    /// Named types already written (or defined by a reference): printed by name now.
    written: Vec<bool>,
    /// The enclosing namespace (Java's `Names.space`).
    space: Option<String>,
    out: String,
}

impl Printer<'_> {
    fn key(&mut self, key: &str) {
        write_string(key, &mut self.out);
        self.out.push(':');
    }

    fn string_attr(&mut self, key: &str, value: &str) {
        self.key(key);
        write_string(value, &mut self.out);
        self.out.push(',');
    }

    fn props(&mut self, props: &[(String, Json)]) {
        for (k, v) in props {
            self.key(k);
            v.write(&mut self.out);
            self.out.push(',');
        }
    }

    /// Ends an object whose every attribute was followed by a comma.
    fn close(&mut self) {
        if self.out.ends_with(',') {
            self.out.pop();
        }
        self.out.push('}');
    }

    fn node(&mut self, id: NodeId) {
        let graph = self.graph;
        let node = graph.node(id);
        if let Some(named) = node.named() {
            if self.written[id] {
                let name = named.name.qualified(self.space.as_deref());
                write_string(&name, &mut self.out);
                return;
            }
            self.written[id] = true;
        }
        match node {
            Node::Primitive { kind, props } if props.is_empty() => {
                write_string(kind.name(), &mut self.out);
            }
            Node::Primitive { kind, props } => {
                self.out.push('{');
                self.string_attr("type", kind.name());
                self.props(props);
                self.close();
            }
            Node::Union(branches) => {
                self.out.push('[');
                for (i, &b) in branches.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.node(b);
                }
                self.out.push(']');
            }
            Node::Array { items, props } => {
                self.out.push('{');
                self.string_attr("type", "array");
                self.key("items");
                self.node(*items);
                self.out.push(',');
                self.props(props);
                self.close();
            }
            Node::Map { values, props } => {
                self.out.push('{');
                self.string_attr("type", "map");
                self.key("values");
                self.node(*values);
                self.out.push(',');
                self.props(props);
                self.close();
            }
            Node::Record { named, error, fields } => {
                let saved = self.space.clone();
                self.out.push('{');
                self.string_attr("type", if *error { "error" } else { "record" });
                self.name(named);
                self.space = named.name.space.clone();
                if let Some(doc) = &named.doc {
                    self.string_attr("doc", doc);
                }
                self.key("fields");
                self.out.push('[');
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.out.push('{');
                    self.string_attr("name", &f.name);
                    self.key("type");
                    self.node(f.ty);
                    self.out.push(',');
                    if let Some(doc) = &f.doc {
                        self.string_attr("doc", doc);
                    }
                    if let Some(default) = &f.default {
                        self.key("default");
                        default.write(&mut self.out);
                        self.out.push(',');
                    }
                    if let Some(order) = f.order.as_deref().filter(|o| *o != "ascending") {
                        self.string_attr("order", order);
                    }
                    if !f.aliases.is_empty() {
                        self.key("aliases");
                        Json::Array(f.aliases.iter().cloned().map(Json::String).collect())
                            .write(&mut self.out);
                        self.out.push(',');
                    }
                    self.props(&f.props);
                    self.close();
                }
                self.out.push_str("],");
                self.props(&named.props);
                self.aliases(named);
                self.close();
                self.space = saved;
            }
            Node::Enum { named, symbols, default } => {
                self.out.push('{');
                self.string_attr("type", "enum");
                self.name(named);
                if let Some(doc) = &named.doc {
                    self.string_attr("doc", doc);
                }
                self.key("symbols");
                Json::Array(symbols.iter().cloned().map(Json::String).collect())
                    .write(&mut self.out);
                self.out.push(',');
                if let Some(default) = default {
                    self.string_attr("default", default);
                }
                self.props(&named.props);
                self.aliases(named);
                self.close();
            }
            Node::Fixed { named, size } => {
                self.out.push('{');
                self.string_attr("type", "fixed");
                self.name(named);
                if let Some(doc) = &named.doc {
                    self.string_attr("doc", doc);
                }
                self.key("size");
                self.out.push_str(&format!("{size},"));
                self.props(&named.props);
                self.aliases(named);
                self.close();
            }
        }
    }

    /// Java's `Name.writeName`: the name, and the namespace where it differs from the
    /// enclosing one (`""` for the null namespace inside a non-null one).
    fn name(&mut self, named: &Named) {
        self.string_attr("name", &named.name.name);
        match (&named.name.space, &self.space) {
            (Some(space), enclosing) if Some(space) != enclosing.as_ref() => {
                self.string_attr("namespace", &space.clone());
            }
            (None, Some(_)) => self.string_attr("namespace", ""),
            _ => {}
        }
    }

    fn aliases(&mut self, named: &Named) {
        if named.aliases.is_empty() {
            return;
        }
        let own = named.name.space.as_deref();
        let list = named.aliases.iter().map(|a| Json::String(a.qualified(own))).collect();
        self.key("aliases");
        Json::Array(list).write(&mut self.out);
        self.out.push(',');
    }
}
