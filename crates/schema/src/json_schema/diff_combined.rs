//! Confluent's `CombinedSchemaDiff`: two `allOf`/`anyOf`/`oneOf` compared by their
//! criteria, their numbers of distinct subschemas, and a maximum matching of the pairs of
//! subschemas that are compatible (Confluent's `MaximumCardinalityMatch`); what the matched
//! pairs found is kept, and a matching that leaves the smaller side uncovered is a change.

use super::diff::{Ctx, S, Shared, try_compare};
use super::difference::{Difference, Type};
use super::model::{Criterion, Graph, Kind, NodeId};

/// `CombinedSchemaDiff.compare`.
pub(crate) fn combined(
    sh: &mut Shared,
    ctx: &mut Ctx,
    o: S<'_>,
    (oc, osubs): (Criterion, &[NodeId]),
    u: S<'_>,
    (uc, usubs): (Criterion, &[NodeId]),
) {
    let (o_single, u_single) = (osubs.len() == 1, usubs.len() == 1);
    if oc != uc {
        let extended = uc == Criterion::AnyOf
            || (o_single && u_single)
            || (o_single && uc == Criterion::OneOf)
            || (u_single && oc == Criterion::AllOf);
        if !extended {
            return ctx.add(Type::CombinedTypeChanged);
        }
        ctx.add(Type::CombinedTypeExtended);
    }
    // Duplicates collapse, as in Java's sets of subschemas.
    let (os, us) = (distinct(o, osubs), distinct(u, usubs));
    if os.len() < us.len() {
        ctx.add(if uc == Criterion::AllOf {
            Type::ProductTypeExtended
        } else {
            Type::SumTypeExtended
        });
    } else if os.len() > us.len() {
        ctx.add(if oc == Criterion::AllOf {
            Type::ProductTypeNarrowed
        } else {
            Type::SumTypeNarrowed
        });
    }
    let mut edges: Vec<Vec<(usize, Vec<Difference>)>> = Vec::new();
    for (i, &a) in os.iter().enumerate() {
        ctx.enter(&format!("{}/{i}", oc.as_str()));
        let mut row = Vec::new();
        for (j, &b) in us.iter().enumerate() {
            if let Some(diffs) = try_compare(sh, ctx, o.at(a), u.at(b)) {
                row.push((j, diffs));
            }
        }
        edges.push(row);
        ctx.leave();
    }
    let matching = maximum_matching(&edges, us.len());
    let matched = matching.len();
    for (i, j) in matching {
        if let Some((_, diffs)) = edges[i].iter().find(|(b, _)| *b == j) {
            ctx.extend(diffs.clone());
        }
    }
    if matched < os.len().min(us.len()) {
        ctx.add(Type::CombinedTypeSubschemasChanged);
    }
}

/// The subschemas without repeats (by their content).
fn distinct(s: S<'_>, subs: &[NodeId]) -> Vec<NodeId> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for &id in subs {
        let print = fingerprint(s.graph, id, 0);
        if !seen.contains(&print) {
            seen.push(print);
            out.push(id);
        }
    }
    out
}

/// A text standing for a subschema's content, to find duplicates (references by target).
fn fingerprint(g: &Graph, id: NodeId, depth: usize) -> String {
    let node = g.node(id);
    if depth > 16 {
        return format!("#{id}");
    }
    let child = |c: &NodeId| fingerprint(g, *c, depth + 1);
    let children = |cs: &[NodeId]| cs.iter().map(child).collect::<Vec<_>>().join(",");
    let kind = match &node.kind {
        Kind::Reference(t) => format!("ref#{t}"),
        Kind::Not(c) => format!("not({})", child(c)),
        Kind::Combined(c, subs) => format!("{}({})", c.as_str(), children(subs)),
        Kind::Object(o) => {
            let props: Vec<String> =
                o.properties.iter().map(|(k, v)| format!("{k}:{}", child(v))).collect();
            format!(
                "object({};{:?};{}{:?};{:?};{:?};{:?};{:?};{:?})",
                props.join(","),
                o.required,
                o.additional_allowed,
                o.additional.map(|a| child(&a)),
                o.pattern_properties.iter().map(|(k, v)| (k, child(v))).collect::<Vec<_>>(),
                o.property_dependencies,
                o.schema_dependencies.iter().map(|(k, v)| (k, child(v))).collect::<Vec<_>>(),
                o.min_properties,
                o.max_properties
            )
        }
        Kind::Array(a) => format!(
            "array({:?};{:?};{};{:?};{:?};{:?};{})",
            a.all_items.map(|c| child(&c)),
            a.item_schemas.as_ref().map(|i| children(i)),
            a.additional_allowed,
            a.additional.map(|c| child(&c)),
            a.min_items,
            a.max_items,
            a.unique_items
        ),
        other => format!("{other:?}"),
    };
    let c = &node.common;
    format!(
        "{kind}|{:?}{:?}{:?}{:?}{:?}{:?}{:?}|{:?}{:?}",
        c.id,
        c.title,
        c.description,
        c.default,
        c.connect_type,
        c.min_contains,
        c.max_contains,
        c.unevaluated_properties.map(|n| fingerprint(g, n, depth + 1)),
        c.unevaluated_items.map(|n| fingerprint(g, n, depth + 1)),
    )
}

/// A maximum matching of the bipartite graph `edges` (left `i` to right `j`), as pairs.
fn maximum_matching(edges: &[Vec<(usize, Vec<Difference>)>], right: usize) -> Vec<(usize, usize)> {
    fn augment(
        i: usize,
        edges: &[Vec<(usize, Vec<Difference>)>],
        seen: &mut [bool],
        owner: &mut [Option<usize>],
    ) -> bool {
        for (j, _) in &edges[i] {
            if seen[*j] {
                continue;
            }
            seen[*j] = true;
            if owner[*j].is_none_or(|k| augment(k, edges, seen, owner)) {
                owner[*j] = Some(i);
                return true;
            }
        }
        false
    }
    let mut owner = vec![None; right];
    for i in 0..edges.len() {
        let mut seen = vec![false; right];
        augment(i, edges, &mut seen, &mut owner);
    }
    let mut pairs: Vec<(usize, usize)> =
        owner.iter().enumerate().filter_map(|(j, i)| i.map(|i| (i, j))).collect();
    pairs.sort();
    pairs
}
