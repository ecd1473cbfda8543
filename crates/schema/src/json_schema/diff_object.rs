//! Confluent's `ObjectSchemaDiff` and `ArraySchemaDiff`: properties and items against the
//! content model that covers them. A content model is open (anything more is allowed:
//! `additionalProperties` absent or `true`), closed (`false`), or partially open (a schema
//! for what is not listed, from `patternProperties`, `additionalProperties` or, from
//! 2019-09, `unevaluatedProperties`). Properties are visited in the order of Java's hash
//! sets, which orders the messages.

use regex::Regex;

use super::diff::{Ctx, S, Shared, compare, limit};
use super::difference::Type::{self, *};
use super::java;
use super::model::{ArrayKeywords, Kind, NodeId, ObjectKeywords};

fn has_default(s: S<'_>, id: NodeId) -> bool {
    s.graph.node(id).common.default.is_some()
}

fn is_false(s: S<'_>, id: NodeId) -> bool {
    matches!(s.graph.node(id).kind, Kind::False)
}

fn is_empty(s: S<'_>, id: NodeId) -> bool {
    s.graph.node(id).kind.is_empty_schema()
}

fn get(list: &[(String, NodeId)], key: &str) -> Option<NodeId> {
    list.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

/// `ObjectSchemaDiff.isOpenContentModel`.
fn object_open(s: S<'_>, o: &ObjectKeywords) -> bool {
    let uneval = s.node().common.unevaluated_properties;
    o.additional_allowed
        && o.additional.is_none()
        && o.pattern_properties.is_empty()
        && uneval.is_none_or(|n| is_empty(s, n))
}

/// `ObjectSchemaDiff.schemaFromPartiallyOpenContentModel`.
fn object_partial(s: S<'_>, o: &ObjectKeywords, key: &str) -> Option<NodeId> {
    for (pattern, schema) in &o.pattern_properties {
        if Regex::new(pattern).is_ok_and(|r| r.is_match(key)) {
            return Some(*schema);
        }
    }
    if o.additional.is_some() {
        return o.additional;
    }
    let uneval = s.node().common.unevaluated_properties?;
    (o.additional_allowed && !is_false(s, uneval) && !is_empty(s, uneval)).then_some(uneval)
}

/// Compares a property or item against the schema of a partially open content model and
/// adds the verdict.
fn covered(sh: &mut Shared, ctx: &mut Ctx, o: S<'_>, u: S<'_>, [yes, no]: [Type; 2]) {
    let mut sub = ctx.sub();
    compare(sh, &mut sub, Some(o), Some(u));
    let ok = sh.compatible(&sub.diffs);
    ctx.extend(sub.diffs);
    ctx.add(if ok { yes } else { no });
}

pub(crate) fn object(
    sh: &mut Shared,
    ctx: &mut Ctx,
    o: S<'_>,
    ok: &ObjectKeywords,
    u: S<'_>,
    uk: &ObjectKeywords,
) {
    let o_keys = java::map_order(ok.properties.iter().map(|(k, _)| k.as_str()));
    let u_keys = java::map_order(uk.properties.iter().map(|(k, _)| k.as_str()));

    // Required.
    ctx.enter("required");
    for key in &o_keys {
        let Some(up) = get(&uk.properties, key) else { continue };
        let was = ok.required.iter().any(|r| r == key);
        let is = uk.required.iter().any(|r| r == key);
        let kind = match (was, is) {
            (true, false) => RequiredAttributeRemoved,
            (false, true) if has_default(u, up) => RequiredAttributeWithDefaultAdded,
            (false, true) => RequiredAttributeAdded,
            _ => continue,
        };
        ctx.add_at(key, kind);
    }
    ctx.leave();

    // Properties.
    ctx.enter("properties");
    for key in java::union_order(&o_keys, &u_keys) {
        ctx.enter(key);
        match (get(&ok.properties, key), get(&uk.properties, key)) {
            (Some(op), None) => {
                if object_open(u, uk) {
                    ctx.add(PropertyRemovedFromOpenContentModel);
                } else if let Some(partial) = object_partial(u, uk, key) {
                    let kinds = [
                        PropertyRemovedIsCoveredByPartiallyOpenContentModel,
                        PropertyRemovedNotCoveredByPartiallyOpenContentModel,
                    ];
                    covered(sh, ctx, o.at(op), u.at(partial), kinds);
                } else if is_false(o, op) {
                    ctx.add(PropertyWithFalseRemovedFromClosedContentModel);
                } else {
                    ctx.add(PropertyRemovedFromClosedContentModel);
                }
            }
            (None, Some(up)) => {
                let required = uk.required.iter().any(|r| r == key);
                if object_open(o, ok) {
                    ctx.add(if is_empty(u, up) {
                        PropertyWithEmptySchemaAddedToOpenContentModel
                    } else if required && has_default(u, up) {
                        RequiredPropertyWithDefaultAddedToOpenContentModel
                    } else if required {
                        RequiredPropertyAddedToOpenContentModel
                    } else {
                        OptionalPropertyAddedToOpenContentModel
                    });
                } else {
                    if let Some(partial) = object_partial(o, ok, key) {
                        let kinds = [
                            PropertyAddedIsCoveredByPartiallyOpenContentModel,
                            PropertyAddedNotCoveredByPartiallyOpenContentModel,
                        ];
                        covered(sh, ctx, o.at(partial), u.at(up), kinds);
                    }
                    ctx.add(if required && has_default(u, up) {
                        RequiredPropertyWithDefaultAddedToUnopenContentModel
                    } else if required {
                        RequiredPropertyAddedToUnopenContentModel
                    } else {
                        OptionalPropertyAddedToUnopenContentModel
                    });
                }
            }
            (Some(op), Some(up)) => compare(sh, ctx, Some(o.at(op)), Some(u.at(up))),
            (None, None) => {}
        }
        ctx.leave();
    }
    ctx.leave();

    dependencies(sh, ctx, o, ok, u, uk);

    ctx.enter("additionalProperties");
    if ok.additional_allowed != uk.additional_allowed {
        ctx.add(if uk.additional_allowed {
            AdditionalPropertiesAdded
        } else {
            AdditionalPropertiesRemoved
        });
    } else {
        match (ok.additional, uk.additional) {
            (None, Some(_)) => ctx.add(AdditionalPropertiesNarrowed),
            (Some(_), None) => ctx.add(AdditionalPropertiesExtended),
            (a, b) => compare(sh, ctx, a.map(|a| o.at(a)), b.map(|b| u.at(b))),
        }
    }
    ctx.leave();

    let kinds = [
        UnevaluatedPropertiesAdded,
        UnevaluatedPropertiesRemoved,
        UnevaluatedPropertiesExtended,
        UnevaluatedPropertiesNarrowed,
    ];
    let (a, b) = (o.node().common.unevaluated_properties, u.node().common.unevaluated_properties);
    unevaluated(sh, ctx, "unevaluatedProperties", (o, a), (u, b), kinds);

    let max =
        [MaxPropertiesAdded, MaxPropertiesRemoved, MaxPropertiesIncreased, MaxPropertiesDecreased];
    limit(ctx, "maxProperties", ok.max_properties, uk.max_properties, max);
    let min =
        [MinPropertiesAdded, MinPropertiesRemoved, MinPropertiesIncreased, MinPropertiesDecreased];
    limit(ctx, "minProperties", ok.min_properties, uk.min_properties, min);
}

fn dependencies(
    sh: &mut Shared,
    ctx: &mut Ctx,
    o: S<'_>,
    ok: &ObjectKeywords,
    u: S<'_>,
    uk: &ObjectKeywords,
) {
    ctx.enter("dependencies");
    let names = |list: &[(String, Vec<String>)]| -> Vec<String> {
        list.iter().map(|(k, _)| k.clone()).collect()
    };
    let (on, un) = (names(&ok.property_dependencies), names(&uk.property_dependencies));
    let o_keys = java::copied_map_order(on.iter().map(String::as_str));
    let u_keys = java::copied_map_order(un.iter().map(String::as_str));
    for key in java::union_order(&o_keys, &u_keys) {
        let find = |list: &[(String, Vec<String>)]| {
            list.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        };
        let kind = match (find(&ok.property_dependencies), find(&uk.property_dependencies)) {
            (_, None) => DependencyArrayRemoved,
            (None, Some(_)) => DependencyArrayAdded,
            (Some(a), Some(b)) => {
                let has_all = |x: &[String], y: &[String]| y.iter().all(|v| x.contains(v));
                match (has_all(&b, &a), has_all(&a, &b)) {
                    (true, true) => continue,
                    (true, false) => DependencyArrayExtended,
                    (false, true) => DependencyArrayNarrowed,
                    (false, false) => DependencyArrayChanged,
                }
            }
        };
        ctx.add_at(key, kind);
    }
    let o_keys = java::copied_map_order(ok.schema_dependencies.iter().map(|(k, _)| k.as_str()));
    let u_keys = java::copied_map_order(uk.schema_dependencies.iter().map(|(k, _)| k.as_str()));
    for key in java::union_order(&o_keys, &u_keys) {
        ctx.enter(key);
        match (get(&ok.schema_dependencies, key), get(&uk.schema_dependencies, key)) {
            (_, None) => ctx.add(DependencySchemaRemoved),
            (None, Some(_)) => ctx.add(DependencySchemaAdded),
            (Some(a), Some(b)) => compare(sh, ctx, Some(o.at(a)), Some(u.at(b))),
        }
        ctx.leave();
    }
    ctx.leave();
}

/// `compareUnevaluatedProperties` / `compareUnevaluatedItems`.
fn unevaluated(
    sh: &mut Shared,
    ctx: &mut Ctx,
    name: &str,
    (o, a): (S<'_>, Option<NodeId>),
    (u, b): (S<'_>, Option<NodeId>),
    [added, removed, extended, narrowed]: [Type; 4],
) {
    if a.is_none() && b.is_none() {
        return;
    }
    ctx.enter(name);
    let kind = match (a, b) {
        (None, Some(b)) if is_false(u, b) => Some(removed),
        (None, _) => Some(narrowed),
        (Some(a), None) if is_false(o, a) => Some(added),
        (_, None) => Some(extended),
        (Some(a), Some(b)) => {
            match (is_false(o, a), is_false(u, b), is_empty(o, a), is_empty(u, b)) {
                (true, false, ..) => Some(added),
                (false, true, ..) => Some(removed),
                (_, _, true, false) => Some(narrowed),
                (_, _, false, true) => Some(extended),
                _ => {
                    compare(sh, ctx, Some(o.at(a)), Some(u.at(b)));
                    None
                }
            }
        }
    };
    if let Some(kind) = kind {
        ctx.add(kind);
    }
    ctx.leave();
}

/// `ArraySchemaDiff.isOpenContentModel`.
fn array_open(s: S<'_>, a: &ArrayKeywords) -> bool {
    let uneval = s.node().common.unevaluated_items;
    a.additional_allowed && a.additional.is_none() && uneval.is_none_or(|n| is_empty(s, n))
}

/// `ArraySchemaDiff.schemaFromPartiallyOpenContentModel`.
fn array_partial(s: S<'_>, a: &ArrayKeywords) -> Option<NodeId> {
    if a.additional.is_some() {
        return a.additional;
    }
    let uneval = s.node().common.unevaluated_items?;
    (a.additional_allowed && !is_false(s, uneval) && !is_empty(s, uneval)).then_some(uneval)
}

pub(crate) fn array(
    sh: &mut Shared,
    ctx: &mut Ctx,
    o: S<'_>,
    oa: &ArrayKeywords,
    u: S<'_>,
    ua: &ArrayKeywords,
) {
    ctx.enter("items");
    compare(sh, ctx, oa.all_items.map(|i| o.at(i)), ua.all_items.map(|i| u.at(i)));
    ctx.leave();

    let (os, us) =
        (oa.item_schemas.as_deref().unwrap_or(&[]), ua.item_schemas.as_deref().unwrap_or(&[]));
    for index in 0..os.len().max(us.len()) {
        ctx.enter(&format!("items/{index}"));
        match (os.get(index), us.get(index)) {
            (Some(&a), Some(&b)) => compare(sh, ctx, Some(o.at(a)), Some(u.at(b))),
            (Some(&a), None) => {
                if array_open(u, ua) {
                    ctx.add(ItemRemovedFromOpenContentModel);
                } else if let Some(partial) = array_partial(u, ua) {
                    let kinds = [
                        ItemRemovedIsCoveredByPartiallyOpenContentModel,
                        ItemRemovedNotCoveredByPartiallyOpenContentModel,
                    ];
                    covered(sh, ctx, o.at(a), u.at(partial), kinds);
                } else if is_false(o, a) {
                    ctx.add(ItemWithFalseRemovedFromClosedContentModel);
                } else {
                    ctx.add(ItemRemovedFromClosedContentModel);
                }
            }
            (None, Some(&b)) => {
                if array_open(o, oa) {
                    ctx.add(if is_empty(u, b) {
                        ItemWithEmptySchemaAddedToOpenContentModel
                    } else {
                        ItemAddedToOpenContentModel
                    });
                } else if let Some(partial) = array_partial(o, oa) {
                    let kinds = [
                        ItemAddedIsCoveredByPartiallyOpenContentModel,
                        ItemAddedNotCoveredByPartiallyOpenContentModel,
                    ];
                    covered(sh, ctx, o.at(partial), u.at(b), kinds);
                } else {
                    ctx.add(ItemAddedToClosedContentModel);
                }
            }
            (None, None) => {}
        }
        ctx.leave();
    }

    ctx.enter("additionalItems");
    if oa.additional_allowed != ua.additional_allowed {
        ctx.add(if oa.additional_allowed { AdditionalItemsRemoved } else { AdditionalItemsAdded });
    } else {
        match (oa.additional, ua.additional) {
            (None, Some(_)) => ctx.add(AdditionalItemsNarrowed),
            (Some(_), None) => ctx.add(AdditionalItemsExtended),
            (a, b) => compare(sh, ctx, a.map(|a| o.at(a)), b.map(|b| u.at(b))),
        }
    }
    ctx.leave();

    let kinds = [
        UnevaluatedItemsAdded,
        UnevaluatedItemsRemoved,
        UnevaluatedItemsExtended,
        UnevaluatedItemsNarrowed,
    ];
    let (a, b) = (o.node().common.unevaluated_items, u.node().common.unevaluated_items);
    unevaluated(sh, ctx, "unevaluatedItems", (o, a), (u, b), kinds);

    let max = [MaxItemsAdded, MaxItemsRemoved, MaxItemsIncreased, MaxItemsDecreased];
    limit(ctx, "maxItems", oa.max_items, ua.max_items, max);
    let min = [MinItemsAdded, MinItemsRemoved, MinItemsIncreased, MinItemsDecreased];
    limit(ctx, "minItems", oa.min_items, ua.min_items, min);
    if oa.unique_items != ua.unique_items {
        ctx.add_at(
            "uniqueItems",
            if oa.unique_items { UniqueItemsRemoved } else { UniqueItemsAdded },
        );
    }
    // Compared as Java's `intValue()`.
    let int = |v: Option<f64>| v.map(|v| v.trunc());
    let (oc, uc) = (&o.node().common, &u.node().common);
    let max = [MaxContainsAdded, MaxContainsRemoved, MaxContainsIncreased, MaxContainsDecreased];
    limit(ctx, "maxContains", int(oc.max_contains), int(uc.max_contains), max);
    let min = [MinContainsAdded, MinContainsRemoved, MinContainsIncreased, MinContainsDecreased];
    limit(ctx, "minContains", int(oc.min_contains), int(uc.min_contains), min);
}
