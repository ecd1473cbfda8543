//! Whether a reader schema can read what a writer schema wrote: a port of Avro's Java
//! `SchemaCompatibility` (1.11), which Confluent's registry runs, with its verdicts, its
//! locations (JSON pointers into the reader) and, through `describe`, Confluent's
//! messages (`avro/Difference.java`). Logical types do not take part, as in Java.

use std::collections::{BTreeSet, HashMap};

use super::model::{Field, Graph, Node, NodeId, Primitive};

/// Java's `SchemaIncompatibilityType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    NameMismatch,
    FixedSizeMismatch,
    MissingEnumSymbols,
    ReaderFieldMissingDefaultValue,
    TypeMismatch,
    MissingUnionBranch,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::NameMismatch => "NAME_MISMATCH",
            Kind::FixedSizeMismatch => "FIXED_SIZE_MISMATCH",
            Kind::MissingEnumSymbols => "MISSING_ENUM_SYMBOLS",
            Kind::ReaderFieldMissingDefaultValue => "READER_FIELD_MISSING_DEFAULT_VALUE",
            Kind::TypeMismatch => "TYPE_MISMATCH",
            Kind::MissingUnionBranch => "MISSING_UNION_BRANCH",
        }
    }
}

/// One reason the reader cannot read the writer's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Incompatibility {
    pub(crate) kind: Kind,
    /// A JSON pointer into the reader schema.
    pub(crate) location: String,
    pub(crate) message: String,
}

impl Incompatibility {
    /// Confluent's text for it; `%s` placeholders name the reader and the writer ("new",
    /// "old"), filled by the caller that knows which is which.
    pub(crate) fn describe(&self, reader: &str, writer: &str) -> String {
        let path = &self.location;
        let info = &self.message;
        let description = match self.kind {
            Kind::FixedSizeMismatch => format!(
                "The size of FIXED type field at path '{path}' in the {reader} schema does not match with the {writer} schema"
            ),
            Kind::TypeMismatch => format!(
                "The type (path '{path}') of a field in the {reader} schema does not match with the {writer} schema"
            ),
            Kind::NameMismatch => format!("The name of the schema has changed (path '{path}')"),
            Kind::MissingEnumSymbols => format!(
                "The {reader} schema is missing enum symbols '{info}' at path '{path}' in the {writer} schema"
            ),
            Kind::MissingUnionBranch => format!(
                "The {reader} schema is missing a type inside a union field at path '{path}' in the {writer} schema"
            ),
            Kind::ReaderFieldMissingDefaultValue => format!(
                "The field '{info}' at path '{path}' in the {reader} schema has no default value and is missing in the {writer} schema"
            ),
        };
        format!(
            "{{errorType:'{}', description:'{description}', additionalInfo:'{info}'}}",
            self.kind.as_str()
        )
    }
}

/// Every reason `reader` cannot read data written with `writer`; empty when it can.
pub(crate) fn check(reader: &Graph, writer: &Graph) -> Vec<Incompatibility> {
    let mut c = Checker { reader, writer, memo: HashMap::new() };
    let mut location = Vec::new();
    c.compatibility("", reader.root, writer.root, &mut location).1
}

/// A result: compatible or not, and the reasons (Java's `SchemaCompatibilityResult`).
type Verdict = (bool, Vec<Incompatibility>);

#[derive(Clone)]
enum Memo {
    InProgress,
    Done(Verdict),
}

struct Checker<'a> {
    reader: &'a Graph,
    writer: &'a Graph,
    memo: HashMap<(NodeId, NodeId), Memo>,
}

fn ok() -> Verdict {
    (true, Vec::new())
}

fn merge(into: &mut Verdict, other: Verdict) {
    into.0 &= other.0;
    into.1.extend(other.1);
}

fn incompatible(kind: Kind, message: String, location: &[String]) -> Verdict {
    // Java's getLocation: the root token is left out, the rest joined with JSON pointer
    // escaping.
    let path: Vec<String> =
        location.iter().skip(1).map(|t| t.replace('~', "~0").replace('/', "~1")).collect();
    let location = format!("/{}", path.join("/"));
    (false, vec![Incompatibility { kind, location, message }])
}

impl Checker<'_> {
    /// A fresh walk from (reader, writer), as Java's two-argument `getCompatibility`: the
    /// memo is shared, the location starts again.
    fn fresh(&mut self, reader: NodeId, writer: NodeId) -> Verdict {
        let mut location = Vec::new();
        self.compatibility("", reader, writer, &mut location)
    }

    fn compatibility(
        &mut self,
        token: &str,
        reader: NodeId,
        writer: NodeId,
        location: &mut Vec<String>,
    ) -> Verdict {
        location.push(token.to_string());
        let result = match self.memo.get(&(reader, writer)) {
            // Recursion: compatible unless proven otherwise.
            Some(Memo::InProgress) => ok(),
            Some(Memo::Done(v)) => v.clone(),
            None => {
                self.memo.insert((reader, writer), Memo::InProgress);
                let v = self.calculate(reader, writer, location);
                self.memo.insert((reader, writer), Memo::Done(v.clone()));
                v
            }
        };
        location.pop();
        result
    }

    fn type_mismatch(&self, reader: NodeId, writer: NodeId, location: &[String]) -> Verdict {
        let message = format!(
            "reader type: {} not compatible with writer type: {}",
            self.reader.node(reader).type_name(),
            self.writer.node(writer).type_name()
        );
        incompatible(Kind::TypeMismatch, message, location)
    }

    fn calculate(&mut self, reader: NodeId, writer: NodeId, location: &mut Vec<String>) -> Verdict {
        let (r, w) = (self.reader.node(reader), self.writer.node(writer));
        let mut result = ok();
        match (r, w) {
            (Node::Primitive { kind: a, .. }, Node::Primitive { kind: b, .. }) if a == b => result,
            (Node::Array { items: a, .. }, Node::Array { items: b, .. }) => {
                let (a, b) = (*a, *b);
                merge(&mut result, self.compatibility("items", a, b, location));
                result
            }
            (Node::Map { values: a, .. }, Node::Map { values: b, .. }) => {
                let (a, b) = (*a, *b);
                merge(&mut result, self.compatibility("values", a, b, location));
                result
            }
            (Node::Fixed { size: a, .. }, Node::Fixed { size: b, .. }) => {
                let (a, b) = (*a, *b);
                merge(&mut result, self.names(reader, writer, location));
                location.push("size".into());
                if a != b {
                    merge(
                        &mut result,
                        incompatible(
                            Kind::FixedSizeMismatch,
                            format!("expected: {b}, found: {a}"),
                            location,
                        ),
                    );
                }
                location.pop();
                result
            }
            (Node::Enum { symbols: rs, default, .. }, Node::Enum { symbols: ws, .. }) => {
                merge(&mut result, self.names(reader, writer, location));
                location.push("symbols".into());
                let missing: BTreeSet<&String> = ws.iter().filter(|s| !rs.contains(s)).collect();
                let default_ok = default.as_ref().is_some_and(|d| rs.contains(d));
                if !missing.is_empty() && !default_ok {
                    let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                    let message = format!("[{}]", list.join(", "));
                    merge(&mut result, incompatible(Kind::MissingEnumSymbols, message, location));
                }
                location.pop();
                result
            }
            (Node::Record { fields: rf, .. }, Node::Record { fields: wf, .. }) => {
                merge(&mut result, self.names(reader, writer, location));
                location.push("fields".into());
                for (pos, field) in rf.iter().enumerate() {
                    location.push(pos.to_string());
                    match lookup_writer_field(wf, field) {
                        None if field.default.is_none() => merge(
                            &mut result,
                            incompatible(
                                Kind::ReaderFieldMissingDefaultValue,
                                field.name.clone(),
                                location,
                            ),
                        ),
                        None => {}
                        Some(w) => {
                            let v = self.compatibility("type", field.ty, w.ty, location);
                            merge(&mut result, v);
                        }
                    }
                    location.pop();
                }
                location.pop();
                result
            }
            (Node::Union(_), Node::Union(wb)) => {
                for (i, &branch) in wb.clone().iter().enumerate() {
                    location.push(i.to_string());
                    if !self.fresh(reader, branch).0 {
                        let message = format!(
                            "reader union lacking writer type: {}",
                            self.writer.node(branch).type_name()
                        );
                        merge(
                            &mut result,
                            incompatible(Kind::MissingUnionBranch, message, location),
                        );
                    }
                    location.pop();
                }
                result
            }
            // A writer union: the reader must read every branch.
            (_, Node::Union(wb)) => {
                for &branch in wb.clone().iter() {
                    let v = self.fresh(reader, branch);
                    merge(&mut result, v);
                }
                result
            }
            (Node::Union(rb), _) => {
                for &branch in rb.clone().iter() {
                    if self.fresh(branch, writer).0 {
                        return result;
                    }
                }
                let message = format!("reader union lacking writer type: {}", w.type_name());
                merge(&mut result, incompatible(Kind::MissingUnionBranch, message, location));
                result
            }
            (Node::Primitive { kind: rk, .. }, Node::Primitive { kind: wk, .. }) => {
                use Primitive::*;
                let promoted = matches!(
                    (rk, wk),
                    (Long, Int)
                        | (Float, Int | Long)
                        | (Double, Int | Long | Float)
                        | (Bytes, String)
                        | (String, Bytes)
                );
                if !promoted {
                    merge(&mut result, self.type_mismatch(reader, writer, location));
                }
                result
            }
            _ => {
                merge(&mut result, self.type_mismatch(reader, writer, location));
                result
            }
        }
    }

    /// Java's `checkSchemaNames`: the full names match, or the reader has the writer's as
    /// an alias.
    fn names(&self, reader: NodeId, writer: NodeId, location: &mut Vec<String>) -> Verdict {
        let (Some(r), Some(w)) =
            (self.reader.node(reader).named(), self.writer.node(writer).named())
        else {
            return ok();
        };
        let writer_full = w.name.full();
        location.push("name".into());
        let same =
            r.name.full() == writer_full || r.aliases.iter().any(|a| a.full() == writer_full);
        let v = if same {
            ok()
        } else {
            incompatible(Kind::NameMismatch, format!("expected: {writer_full}"), location)
        };
        location.pop();
        v
    }
}

/// The writer field a reader field reads: by name, else by one of the reader field's
/// aliases (Java throws when several match; the first is taken here).
fn lookup_writer_field<'a>(writer: &'a [Field], reader: &Field) -> Option<&'a Field> {
    writer
        .iter()
        .find(|w| w.name == reader.name)
        .or_else(|| reader.aliases.iter().find_map(|a| writer.iter().find(|w| &w.name == a)))
}
