//! Confluent's `FieldSchemaDiff`: a field's kind (scalar or enum, message, map), its
//! scalar group, its label, and for a message type the type's name and, when it comes
//! from a reference, its content.

use super::super::ast::{Field, Label, Type};
use super::super::scope::{Origin, SCALARS, is_map};
use super::{Ctx, Kind, compare_messages};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    Scalar,
    Map,
    Message,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScalarKind {
    GeneralNumber,
    SignedNumber,
    StringOrBytes,
    Fixed32,
    Fixed64,
    Float,
    Double,
    Any,
}

/// Wire's `ProtoType` key and value of `map<K, V>`.
fn map_parts(ty: &str) -> (String, String) {
    let inner = &ty[4..ty.len() - 1];
    match inner.split_once(',') {
        Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
        None => (inner.trim().to_string(), String::new()),
    }
}

/// Confluent's `FieldSchemaDiff.compare`.
pub(super) fn compare_field<'a>(ctx: &mut Ctx<'a>, original: &Field, update: &Field) {
    if original.name != update.name {
        ctx.add(Kind::FieldNameChanged);
    }
    compare_labels_and_types(ctx, original.label, update.label, &original.ty, &update.ty);
}

fn compare_labels_and_types<'a>(
    ctx: &mut Ctx<'a>,
    o_label: Option<Label>,
    u_label: Option<Label>,
    o_type: &str,
    u_type: &str,
) {
    let effective = |ctx: &Ctx<'a>, ty: &str, original: bool| match ctx
        .get_type(ty, original)
        .and_then(|t| t.map)
    {
        Some(map) => map,
        None => ty.to_string(),
    };
    let o_type = effective(ctx, o_type, true);
    let u_type = effective(ctx, u_type, false);
    let o_kind = field_kind(ctx, &o_type, true);
    if o_kind != field_kind(ctx, &u_type, false) {
        ctx.add(Kind::FieldKindChanged);
        return;
    }
    match o_kind {
        FieldKind::Scalar => {
            let o_scalar = scalar_kind(ctx, &o_type, true);
            if o_scalar != scalar_kind(ctx, &u_type, false) {
                ctx.add(Kind::FieldScalarKindChanged);
            } else if let (Some(a), Some(b)) = (o_label, u_label)
                && a != b
            {
                match o_scalar {
                    ScalarKind::StringOrBytes => ctx.add(Kind::FieldStringOrBytesLabelChanged),
                    ScalarKind::Any => {}
                    _ => ctx.add(Kind::FieldNumericLabelChanged),
                }
            }
        }
        FieldKind::Message => compare_message_types(ctx, &o_type, &u_type),
        FieldKind::Map => {
            let (ok, ov) = map_parts(&o_type);
            let (uk, uv) = map_parts(&u_type);
            compare_labels_and_types(ctx, None, None, &ok, &uk);
            compare_labels_and_types(ctx, None, None, &ov, &uv);
        }
    }
}

fn field_kind(ctx: &Ctx<'_>, ty: &str, original: bool) -> FieldKind {
    if SCALARS.contains(&ty) {
        FieldKind::Scalar
    } else if is_map(ty) {
        FieldKind::Map
    } else if ctx.get_type(ty, original).is_some_and(|t| matches!(t.ty, Type::Enum(_))) {
        FieldKind::Scalar
    } else {
        FieldKind::Message
    }
}

fn scalar_kind(ctx: &Ctx<'_>, ty: &str, original: bool) -> ScalarKind {
    if ctx.get_type(ty, original).is_some_and(|t| matches!(t.ty, Type::Enum(_))) {
        return ScalarKind::GeneralNumber;
    }
    match ty {
        "int32" | "int64" | "uint32" | "uint64" | "bool" => ScalarKind::GeneralNumber,
        "sint32" | "sint64" => ScalarKind::SignedNumber,
        "string" | "bytes" => ScalarKind::StringOrBytes,
        "fixed32" | "sfixed32" => ScalarKind::Fixed32,
        "fixed64" | "sfixed64" => ScalarKind::Fixed64,
        "float" => ScalarKind::Float,
        "double" => ScalarKind::Double,
        // Java throws here; not reachable for a valid schema.
        _ => ScalarKind::Any,
    }
}

/// Confluent's `compareMessageTypes`: the same local name, and when either comes from a
/// reference (other than the same one on both sides), no incompatible change inside.
fn compare_message_types<'a>(ctx: &mut Ctx<'a>, o_type: &str, u_type: &str) {
    let (Some(o_full), Some(u_full)) = (ctx.resolve(o_type, true), ctx.resolve(u_type, false))
    else {
        if o_type != u_type {
            ctx.add(Kind::FieldNamedTypeChanged);
        }
        return;
    };
    let (Some(o_info), Some(u_info)) =
        (ctx.original.types.get(&o_full).cloned(), ctx.update.types.get(&u_full).cloned())
    else {
        return;
    };
    let local = |full: &str, package: &str| match full.strip_prefix(&format!("{package}.")) {
        Some(rest) => rest.to_string(),
        None => full.to_string(),
    };
    let o_local = local(&o_full, &o_info.package);
    let u_local = local(&u_full, &u_info.package);
    if o_local != u_local {
        ctx.add(Kind::FieldNamedTypeChanged);
        return;
    }
    let same_reference = o_info.origin != Origin::Known && o_info.origin == u_info.origin;
    if same_reference {
        return;
    }
    let (Type::Message(o_message), Type::Message(u_message)) = (o_info.ty, u_info.ty) else {
        return;
    };
    let mut sub = ctx.subcontext();
    sub.original.package = o_info.package.clone();
    sub.update.package = u_info.package.clone();
    sub.full_path = o_local.split('.').map(str::to_string).collect();
    sub.full_name = sub.full_path.clone();
    compare_messages(&mut sub, o_message, u_message);
    let compatible = sub.diffs.iter().all(|d| d.kind.is_compatible());
    ctx.diffs.append(&mut sub.diffs);
    if !compatible {
        ctx.add(Kind::FieldNamedTypeChanged);
    }
}
