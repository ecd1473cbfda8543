//! Confluent's `protobuf/diff/Context` name tables, shared by `diff` and `normalize`: every
//! type and every extension field of a schema and the files it may use, by full name, and
//! the lookup of a name as written from a scope (`resolve`), as protoc resolves it.

use std::collections::HashMap;
use std::rc::Rc;

use super::ast::{Field, File, Type};

/// The scalar types (Wire's `ProtoType.isScalar`).
pub(crate) const SCALARS: &[&str] = &[
    "bool", "bytes", "double", "float", "fixed32", "fixed64", "int32", "int64", "sfixed32",
    "sfixed64", "sint32", "sint64", "string", "uint32", "uint64",
];

/// Whether `ty` is a `map<K, V>` type.
pub(crate) fn is_map(ty: &str) -> bool {
    ty.starts_with("map<") && ty.ends_with('>')
}

/// Where a type was defined: the schema itself (`Local`, Confluent's dummy reference), a
/// reference (its name and text stand for Confluent's subject and version), or a file
/// the registry knows without a reference (`None` in Confluent: always compared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    Local,
    Reference { name: String, text: String },
    Known,
}

/// A schema's file and the files it may use.
pub(crate) struct Side<'a> {
    pub(crate) file: &'a File,
    pub(crate) dependencies: Vec<(Origin, &'a File)>,
}

/// Confluent's `TypeElementInfo`.
#[derive(Clone)]
pub(crate) struct TypeInfo<'a> {
    pub(crate) package: String,
    pub(crate) origin: Origin,
    pub(crate) ty: &'a Type,
    /// For a map entry: `map<K, V>` from its key and value fields.
    pub(crate) map: Option<String>,
}

/// One side's names (Confluent's `Context` for `isOriginal` one way): types and extension
/// fields by full name, and the package names are resolved in.
#[derive(Clone, Default)]
pub(crate) struct Scope<'a> {
    pub(crate) types: Rc<HashMap<String, TypeInfo<'a>>>,
    pub(crate) extend_fields: Rc<HashMap<String, &'a Field>>,
    /// The last file's package (the schema's own after `collect`).
    pub(crate) package: String,
}

impl<'a> Scope<'a> {
    /// Confluent's `Context.collectTypeInfo`: the dependencies' names, then the file's.
    pub(crate) fn collect(side: &Side<'a>) -> Scope<'a> {
        let mut types = HashMap::new();
        let mut extend_fields = HashMap::new();
        let mut package = String::new();
        let files = side.dependencies.iter().map(|(o, f)| (o.clone(), *f));
        for (origin, file) in files.chain([(Origin::Local, side.file)]) {
            package = file.package.clone().unwrap_or_default();
            let mut path = Vec::new();
            let mut c = Collector {
                types: &mut types,
                fields: &mut extend_fields,
                origin,
                package: &package,
            };
            c.extends(&file.extends.iter().flat_map(|e| &e.fields).collect::<Vec<_>>(), &path);
            c.types(&file.types, &mut path);
        }
        Scope { types: Rc::new(types), extend_fields: Rc::new(extend_fields), package }
    }

    /// Confluent's `resolve`: the full name (without a leading dot) of the type `name`
    /// refers to from inside `full_name` (the enclosing messages' names).
    pub(crate) fn resolve(&self, name: &str, full_name: &[String]) -> Option<String> {
        self.resolve_with(name, full_name, |n| self.types.contains_key(n))
    }

    /// The full name of the extension field `name` refers to from inside `full_name`.
    pub(crate) fn resolve_extend(&self, name: &str, full_name: &[String]) -> Option<String> {
        self.resolve_with(name, full_name, |n| self.extend_fields.contains_key(n))
    }

    /// Confluent's `getType`: the type `name` refers to from inside `full_name`.
    pub(crate) fn get_type(&self, name: &str, full_name: &[String]) -> Option<&TypeInfo<'a>> {
        self.types.get(&self.resolve(name, full_name)?)
    }

    /// Confluent's `resolveFull`: the name from the innermost scope outwards, then as is;
    /// nothing resolves while there are no types at all (as in Confluent).
    fn resolve_with(
        &self,
        name: &str,
        full_name: &[String],
        known: impl Fn(&str) -> bool,
    ) -> Option<String> {
        if self.types.is_empty() {
            return None;
        }
        if let Some(rest) = name.strip_prefix('.') {
            return known(rest).then(|| rest.to_string());
        }
        let mut prefix: Vec<&str> = match self.package.is_empty() {
            true => Vec::new(),
            false => self.package.split('.').collect(),
        };
        prefix.extend(full_name.iter().map(String::as_str));
        while !prefix.is_empty() {
            let candidate = format!("{}.{name}", prefix.join("."));
            if known(&candidate) {
                return Some(candidate);
            }
            prefix.pop();
        }
        known(name).then(|| name.to_string())
    }
}

struct Collector<'s, 'a> {
    types: &'s mut HashMap<String, TypeInfo<'a>>,
    fields: &'s mut HashMap<String, &'a Field>,
    origin: Origin,
    package: &'s str,
}

impl<'a> Collector<'_, 'a> {
    fn full(&self, path: &[String], name: &str) -> String {
        let mut parts: Vec<&str> = Vec::new();
        if !self.package.is_empty() {
            parts.push(self.package);
        }
        parts.extend(path.iter().map(String::as_str));
        parts.push(name);
        parts.join(".")
    }

    fn extends(&mut self, fields: &[&'a Field], path: &[String]) {
        for f in fields {
            let name = self.full(path, &f.name);
            self.fields.insert(name, f);
        }
    }

    fn types(&mut self, types: &'a [Type], path: &mut Vec<String>) {
        for ty in types {
            let map = match ty {
                Type::Message(m) if m.is_map_entry() => match (m.field("key"), m.field("value")) {
                    (Some(k), Some(v)) => Some(format!("map<{}, {}>", k.ty, v.ty)),
                    _ => None,
                },
                _ => None,
            };
            let name = self.full(path, ty.name());
            path.push(ty.name().to_string());
            if let Type::Message(m) = ty {
                self.extends(&m.extends.iter().flat_map(|e| &e.fields).collect::<Vec<_>>(), path);
            }
            let info = TypeInfo {
                package: self.package.to_string(),
                origin: self.origin.clone(),
                ty,
                map,
            };
            self.types.insert(name, info);
            self.types(ty.nested(), path);
            path.pop();
        }
    }
}
