//! A port of Confluent's `protobuf/diff` package (`SchemaDiff`, `MessageSchemaDiff`,
//! `FieldSchemaDiff`, `EnumSchemaDiff`, `Context`, `Difference`; master, 8.x): every
//! difference between an original and an updated schema, each with a path like
//! `#/Order/items/3`, in Confluent's order (Java's `HashSet` order where Confluent iterates
//! one, see `jorder`). A difference not in `COMPATIBLE` makes the update incompatible.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::ast::{Enum, Field, Label, Message, Type};
use super::jorder::{JavaHashSet, java_string_hash};
use super::scope::{Scope, Side, TypeInfo};

mod field;

use self::field::compare_field;

/// Confluent's `Difference.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    PackageChanged,
    MessageAdded,
    MessageRemoved,
    MessageMoved,
    EnumAdded,
    EnumRemoved,
    EnumConstAdded,
    EnumConstChanged,
    EnumConstRemoved,
    FieldAdded,
    FieldRemoved,
    FieldNameChanged,
    FieldKindChanged,
    FieldScalarKindChanged,
    FieldNamedTypeChanged,
    FieldNumericLabelChanged,
    FieldStringOrBytesLabelChanged,
    RequiredFieldAdded,
    RequiredFieldRemoved,
    OneofAdded,
    OneofRemoved,
    OneofFieldAdded,
    OneofFieldRemoved,
    OneofFieldMovedToTopLevel,
    MultipleFieldsMovedToOneof,
    FieldMovedToExistingOneof,
}

/// Confluent's `SchemaDiff.COMPATIBLE_CHANGES`.
pub(crate) const COMPATIBLE: &[Kind] = &[
    Kind::MessageAdded,
    Kind::MessageMoved,
    Kind::EnumAdded,
    Kind::EnumRemoved,
    Kind::EnumConstAdded,
    Kind::EnumConstChanged,
    Kind::EnumConstRemoved,
    Kind::FieldAdded,
    Kind::FieldRemoved,
    Kind::FieldNameChanged,
    Kind::FieldStringOrBytesLabelChanged,
    Kind::OneofAdded,
    Kind::OneofRemoved,
    Kind::OneofFieldAdded,
    Kind::OneofFieldMovedToTopLevel,
];

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        use Kind::*;
        match self {
            PackageChanged => "PACKAGE_CHANGED",
            MessageAdded => "MESSAGE_ADDED",
            MessageRemoved => "MESSAGE_REMOVED",
            MessageMoved => "MESSAGE_MOVED",
            EnumAdded => "ENUM_ADDED",
            EnumRemoved => "ENUM_REMOVED",
            EnumConstAdded => "ENUM_CONST_ADDED",
            EnumConstChanged => "ENUM_CONST_CHANGED",
            EnumConstRemoved => "ENUM_CONST_REMOVED",
            FieldAdded => "FIELD_ADDED",
            FieldRemoved => "FIELD_REMOVED",
            FieldNameChanged => "FIELD_NAME_CHANGED",
            FieldKindChanged => "FIELD_KIND_CHANGED",
            FieldScalarKindChanged => "FIELD_SCALAR_KIND_CHANGED",
            FieldNamedTypeChanged => "FIELD_NAMED_TYPE_CHANGED",
            FieldNumericLabelChanged => "FIELD_NUMERIC_LABEL_CHANGED",
            FieldStringOrBytesLabelChanged => "FIELD_STRING_OR_BYTES_LABEL_CHANGED",
            RequiredFieldAdded => "REQUIRED_FIELD_ADDED",
            RequiredFieldRemoved => "REQUIRED_FIELD_REMOVED",
            OneofAdded => "ONEOF_ADDED",
            OneofRemoved => "ONEOF_REMOVED",
            OneofFieldAdded => "ONEOF_FIELD_ADDED",
            OneofFieldRemoved => "ONEOF_FIELD_REMOVED",
            OneofFieldMovedToTopLevel => "ONEOF_FIELD_MOVED_TO_TOP_LEVEL",
            MultipleFieldsMovedToOneof => "MULTIPLE_FIELDS_MOVED_TO_ONEOF",
            FieldMovedToExistingOneof => "FIELD_MOVED_TO_EXISTING_ONEOF",
        }
    }

    pub(crate) fn is_compatible(self) -> bool {
        COMPATIBLE.contains(&self)
    }
}

/// One difference at a path (`#/Message/Nested/<tag>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Difference {
    pub(crate) kind: Kind,
    pub(crate) path: String,
}

impl Difference {
    /// Confluent's `Difference.toString()` after `String.format(msg, reader, writer)`.
    pub(crate) fn describe(&self, reader: &str, writer: &str) -> String {
        let p = &self.path;
        use Kind::*;
        let description = match self.kind {
            PackageChanged => format!(
                "The package at '{p}' in the {reader} schema does not match the package in the {writer} schema"
            ),
            MessageRemoved => format!(
                "The {reader} schema is missing a MESSAGE type at path '{p}' in the {writer} schema"
            ),
            FieldKindChanged => format!(
                "The type of a field at path '{p}' in the {reader} schema does not match the {writer} schema"
            ),
            FieldScalarKindChanged => format!(
                "The kind of a SCALAR field at path '{p}' in the {reader} schema does not match its kind in the {writer} schema"
            ),
            FieldNamedTypeChanged => format!(
                "The type of a MESSAGE field at path '{p}' in the {reader} schema does not match its type in the {writer} schema"
            ),
            FieldNumericLabelChanged => format!(
                "The label for a NUMERIC field at path '{p}' in the {reader} schema does not match its label in the {writer} schema"
            ),
            RequiredFieldAdded => format!(
                "A required field  at path '{p}' in the {reader} schema is missing in the {writer} schema"
            ),
            RequiredFieldRemoved => format!(
                "The {reader} schema is missing a required field at path: '{p}' in the {writer} schema"
            ),
            OneofFieldRemoved => format!(
                "The {reader} schema is missing a oneof field at path '{p}' in the {writer} schema"
            ),
            OneofFieldMovedToTopLevel => format!(
                "The oneof field at path '{p}' in the {reader} schema was moved out of its oneof to a top-level field in the {writer} schema"
            ),
            MultipleFieldsMovedToOneof => format!(
                "Multiple fields in the oneof at path '{p}' in the {reader} schema are outside a oneof in the {writer} schema"
            ),
            FieldMovedToExistingOneof => format!(
                "A field in the oneof at path '{p}' in the {reader} schema is outside an existing oneof in the {writer} schema"
            ),
            _ => String::new(),
        };
        format!("{{errorType:\"{}\", description:\"{description}\"}}", self.kind.as_str())
    }
}

/// Confluent's `SchemaDiff.compare(original, update)`.
pub(crate) fn compare(original: &Side<'_>, update: &Side<'_>) -> Vec<Difference> {
    let mut ctx = Ctx {
        original: Scope::collect(original),
        update: Scope::collect(update),
        ..Ctx::default()
    };
    if original.file.package != update.file.package {
        ctx.add(Kind::PackageChanged);
    }
    compare_types(&mut ctx, &original.file.types, &update.file.types);
    ctx.diffs
}

/// Confluent's `Context`: both sides' types, the path and the scope being compared.
#[derive(Default, Clone)]
struct Ctx<'a> {
    original: Scope<'a>,
    update: Scope<'a>,
    full_path: Vec<String>,
    full_name: Vec<String>,
    /// Original messages being compared (Confluent's `schemas`, by identity).
    schemas: HashSet<*const Message>,
    diffs: Vec<Difference>,
}

impl<'a> Ctx<'a> {
    fn add(&mut self, kind: Kind) {
        self.diffs.push(Difference { kind, path: format!("#/{}", self.full_path.join("/")) });
    }

    fn add_at(&mut self, segments: &[&str], kind: Kind) {
        let depth = self.full_path.len();
        self.full_path.extend(segments.iter().map(|s| s.to_string()));
        self.add(kind);
        self.full_path.truncate(depth);
    }

    fn subcontext(&self) -> Ctx<'a> {
        Ctx { diffs: Vec::new(), ..self.clone() }
    }

    fn scope(&self, original: bool) -> &Scope<'a> {
        match original {
            true => &self.original,
            false => &self.update,
        }
    }

    /// Confluent's `resolve`: the full name `name` refers to from the current scope.
    fn resolve(&self, name: &str, original: bool) -> Option<String> {
        self.scope(original).resolve(name, &self.full_name)
    }

    fn get_type(&self, name: &str, original: bool) -> Option<TypeInfo<'a>> {
        self.scope(original).get_type(name, &self.full_name).cloned()
    }
}

/// Confluent's `SchemaDiff.compareTypeElements`: messages, then enums, matched by name.
fn compare_types<'a>(ctx: &mut Ctx<'a>, original: &'a [Type], update: &'a [Type]) {
    let (o_messages, o_indexes, o_enums) = index_types(original);
    let (u_messages, u_indexes, u_enums) = index_types(update);
    for name in union_order(&o_messages, &u_messages) {
        ctx.full_path.push(name.clone());
        ctx.full_name.push(name.clone());
        match (lookup(&o_messages, &name), lookup(&u_messages, &name)) {
            (Some(_), None) => {
                if ctx.get_type(&name, true).is_some_and(|t| t.map.is_none()) {
                    ctx.add(Kind::MessageRemoved);
                }
            }
            (None, Some(_)) => {
                if ctx.get_type(&name, false).is_some_and(|t| t.map.is_none()) {
                    ctx.add(Kind::MessageAdded);
                }
            }
            (Some(o), Some(u)) => {
                compare_messages(ctx, o, u);
                if lookup(&o_indexes, &name) != lookup(&u_indexes, &name) {
                    ctx.add(Kind::MessageMoved);
                }
            }
            (None, None) => {}
        }
        ctx.full_name.pop();
        ctx.full_path.pop();
    }
    for name in union_order(&o_enums, &u_enums) {
        ctx.full_path.push(name.clone());
        ctx.full_name.push(name.clone());
        match (lookup(&o_enums, &name), lookup(&u_enums, &name)) {
            (Some(_), None) => ctx.add(Kind::EnumRemoved),
            (None, Some(_)) => ctx.add(Kind::EnumAdded),
            (Some(o), Some(u)) => compare_enums(ctx, o, u),
            (None, None) => {}
        }
        ctx.full_name.pop();
        ctx.full_path.pop();
    }
}

/// A `java.util.HashMap` with String keys: entries by name, kept in Java's iteration order.
type JavaMap<V> = JavaHashSet<String, V>;

fn lookup<V: Clone>(map: &JavaMap<V>, key: &str) -> Option<V> {
    map.get(java_string_hash(key), key).cloned()
}

#[allow(clippy::type_complexity)]
fn index_types(types: &[Type]) -> (JavaMap<&Message>, JavaMap<usize>, JavaMap<&Enum>) {
    let (mut messages, mut indexes, mut enums) =
        (JavaHashSet::new(), JavaHashSet::new(), JavaHashSet::new());
    let mut index = 0;
    for ty in types {
        let hash = java_string_hash(ty.name());
        match ty {
            Type::Message(m) => {
                messages.put(hash, m.name.clone(), m);
                indexes.put(hash, m.name.clone(), index);
                index += 1;
            }
            Type::Enum(e) => enums.put(hash, e.name.clone(), e),
        }
    }
    (messages, indexes, enums)
}

/// `new HashSet<>(original.keySet())` then `addAll(update.keySet())`, iterated.
fn union_order<V>(original: &JavaMap<V>, update: &JavaMap<V>) -> Vec<String> {
    let mut all = JavaHashSet::with_expected(original.len());
    for (hash, key, _) in original.iter().chain(update.iter()) {
        all.put(hash, key.clone(), ());
    }
    all.iter().map(|(_, k, _)| k.clone()).collect()
}

/// Confluent's `EnumSchemaDiff.compare`: constants matched by number.
fn compare_enums(ctx: &mut Ctx<'_>, original: &Enum, update: &Enum) {
    let by_tag = |e: &Enum| {
        let mut map = JavaHashSet::new();
        for c in &e.constants {
            map.put(c.tag as i32, c.tag, c.name.clone());
        }
        map
    };
    let (o, u) = (by_tag(original), by_tag(update));
    let mut all = JavaHashSet::with_expected(o.len());
    for (hash, tag, _) in o.iter().chain(u.iter()) {
        all.put(hash, *tag, ());
    }
    for (hash, tag, _) in all.iter() {
        let kind = match (o.get(hash, tag), u.get(hash, tag)) {
            (Some(_), None) => Kind::EnumConstRemoved,
            (None, Some(_)) => Kind::EnumConstAdded,
            (Some(a), Some(b)) if a != b => Kind::EnumConstChanged,
            _ => continue,
        };
        ctx.add_at(&[&tag.to_string()], kind);
    }
}

struct Fields<'a> {
    by_tag: HashMap<i64, &'a Field>,
    tag_to_oneof: HashMap<i64, &'a str>,
    oneofs: HashMap<&'a str, Vec<i64>>,
}

fn collect_fields(m: &Message) -> Fields<'_> {
    let mut f =
        Fields { by_tag: HashMap::new(), tag_to_oneof: HashMap::new(), oneofs: HashMap::new() };
    for field in &m.fields {
        f.by_tag.insert(field.tag, field);
    }
    for oneof in &m.oneofs {
        f.oneofs.insert(&oneof.name, oneof.fields.iter().map(|x| x.tag).collect());
        for field in &oneof.fields {
            f.by_tag.insert(field.tag, field);
            f.tag_to_oneof.insert(field.tag, &oneof.name);
        }
    }
    f
}

/// Confluent's `MessageSchemaDiff.compare`: fields matched by number across the message,
/// oneof membership changes, then nested types.
fn compare_messages<'a>(ctx: &mut Ctx<'a>, original: &'a Message, update: &'a Message) {
    let key = original as *const Message;
    if ctx.schemas.insert(key) {
        compare_fields(ctx, original, update);
        ctx.schemas.remove(&key);
    }
    compare_types(ctx, &original.nested, &update.nested);
}

fn compare_fields<'a>(ctx: &mut Ctx<'a>, original: &'a Message, update: &'a Message) {
    let o = collect_fields(original);
    let u = collect_fields(update);
    // A oneof gone by name with none of its members left anywhere: deleted whole.
    let deleted: HashSet<&str> = o
        .oneofs
        .iter()
        .filter(|(name, tags)| {
            !u.oneofs.contains_key(*name) && !tags.iter().any(|t| u.by_tag.contains_key(t))
        })
        .map(|(name, _)| *name)
        .collect();
    // Fields newly made mutually exclusive.
    for oneof in &update.oneofs {
        let mut groups: HashSet<String> = HashSet::new();
        let mut moved_in = 0;
        for field in &oneof.fields {
            if let Some(from) = o.tag_to_oneof.get(&field.tag) {
                groups.insert(format!("oneof:{from}"));
            } else if o.by_tag.contains_key(&field.tag) {
                groups.insert(format!("field:{}", field.tag));
                moved_in += 1;
            }
        }
        if groups.len() > 1 {
            let kind = match moved_in > 1 {
                true => Kind::MultipleFieldsMovedToOneof,
                false => Kind::FieldMovedToExistingOneof,
            };
            ctx.add_at(&[&oneof.name], kind);
        }
    }
    let names: BTreeSet<&str> = o.oneofs.keys().chain(u.oneofs.keys()).copied().collect();
    for name in names {
        if !u.oneofs.contains_key(name) {
            ctx.add_at(&[name], Kind::OneofRemoved);
        } else if !o.oneofs.contains_key(name) {
            ctx.add_at(&[name], Kind::OneofAdded);
        }
    }
    let tags: BTreeSet<i64> = o.by_tag.keys().chain(u.by_tag.keys()).copied().collect();
    for tag in tags {
        let t = tag.to_string();
        let (o_oneof, u_oneof) = (o.tag_to_oneof.get(&tag), u.tag_to_oneof.get(&tag));
        match (o.by_tag.get(&tag), u.by_tag.get(&tag)) {
            (Some(field), None) => match o_oneof {
                Some(oneof) if !deleted.contains(oneof) => {
                    ctx.add_at(&[oneof, &t], Kind::OneofFieldRemoved);
                }
                Some(_) => {}
                None if field.label == Some(Label::Required) => {
                    ctx.add_at(&[&t], Kind::RequiredFieldRemoved);
                }
                None => ctx.add_at(&[&t], Kind::FieldRemoved),
            },
            (None, Some(field)) => match u_oneof {
                Some(oneof) => ctx.add_at(&[oneof, &t], Kind::OneofFieldAdded),
                None if field.label == Some(Label::Required) => {
                    ctx.add_at(&[&t], Kind::RequiredFieldAdded);
                }
                None => ctx.add_at(&[&t], Kind::FieldAdded),
            },
            (Some(a), Some(b)) => {
                if o_oneof.is_some() && u_oneof.is_none() {
                    ctx.add_at(&[&t], Kind::OneofFieldMovedToTopLevel);
                }
                let depth = ctx.full_path.len();
                if let Some(oneof) = u_oneof {
                    ctx.full_path.push(oneof.to_string());
                }
                ctx.full_path.push(t);
                compare_field(ctx, a, b);
                ctx.full_path.truncate(depth);
            }
            (None, None) => {}
        }
    }
}
