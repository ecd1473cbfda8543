//! Confluent's `json/diff` (master): a structural diff of the schema that wrote the data
//! (`original`) and the schema that reads it (`update`), each change a [`Difference`] at a
//! path; a change outside the policy's compatible set makes the pair incompatible. Ported
//! from `SchemaDiff`, `Context`, `CombinedSchemaDiff`, `NotSchemaDiff`, `EnumSchemaDiff`,
//! `ConstSchemaDiff`, `NumberSchemaDiff` and `StringSchemaDiff`; combined schemas are in
//! `diff_combined`, objects and arrays in `diff_object`.
//!
//! Like Java, pairs already compared are memoized, a pair met again while it is being
//! compared (a recursive schema) is taken as compatible, and the whole comparison is
//! repeated, feeding back the pairs found incompatible, until that assumption holds.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::difference::{Difference, Policy, Type};
use super::model::{Criterion, Graph, Kind, Node, NodeId, NumberKeywords, StringKeywords};
use crate::json::Json;

/// How deep comparisons may nest: deeper than schemas nest in practice. Recursive schemas
/// compared out of step (cycles of different lengths) get there, and are then treated
/// like a cycle: the differences a pair accumulates grow with its depth.
const MAX_DIFF_DEPTH: usize = 128;

/// A schema of one of the two graphs.
#[derive(Clone, Copy)]
pub(crate) struct S<'g> {
    pub(crate) graph: &'g Graph,
    /// 0: the graph the comparison started with as original, 1: the other.
    side: u8,
    pub(crate) id: NodeId,
}

impl<'g> S<'g> {
    pub(crate) fn node(&self) -> &'g Node {
        self.graph.node(self.id)
    }

    pub(crate) fn kind(&self) -> &'g Kind {
        &self.node().kind
    }

    /// Another schema of the same graph.
    pub(crate) fn at(&self, id: NodeId) -> S<'g> {
        S { id, ..*self }
    }

    /// `SchemaDiff.normalizeSchema`: a reference is replaced by what it refers to (one
    /// level, as in Java).
    fn normalized(self) -> S<'g> {
        match self.kind() {
            Kind::Reference(target) => self.at(*target),
            _ => self,
        }
    }
}

type Key = (u8, NodeId, u8, NodeId);

/// What every context of one comparison shares (Java's memo, in-progress set, seed and
/// optimism flag).
pub(crate) struct Shared {
    policy: Policy,
    memo: HashMap<Key, Rc<Vec<Difference>>>,
    in_progress: HashSet<Key>,
    seed: HashMap<Key, Rc<Vec<Difference>>>,
    optimism: bool,
    depth: usize,
}

impl Shared {
    /// Whether every difference is one the policy allows (`Context.isCompatible`).
    pub(crate) fn compatible(&self, diffs: &[Difference]) -> bool {
        diffs.iter().all(|d| self.policy.allows(d.kind))
    }
}

/// A path and the differences found under it (Java's `Context`, without what is shared).
pub(crate) struct Ctx {
    path: Vec<String>,
    pub(crate) diffs: Vec<Difference>,
}

impl Ctx {
    fn root() -> Ctx {
        Ctx { path: Vec::new(), diffs: Vec::new() }
    }

    /// `getSubcontext`: the same path, no differences yet.
    pub(crate) fn sub(&self) -> Ctx {
        Ctx { path: self.path.clone(), diffs: Vec::new() }
    }

    fn path_string(&self) -> String {
        format!("#/{}", self.path.join("/"))
    }

    pub(crate) fn add(&mut self, kind: Type) {
        let path = self.path_string();
        self.diffs.push(Difference { kind, path });
    }

    /// A difference at `attribute` under the current path.
    pub(crate) fn add_at(&mut self, attribute: &str, kind: Type) {
        self.enter(attribute);
        self.add(kind);
        self.leave();
    }

    pub(crate) fn enter(&mut self, segment: &str) {
        self.path.push(segment.to_string());
    }

    pub(crate) fn leave(&mut self) {
        self.path.pop();
    }

    pub(crate) fn extend(&mut self, diffs: Vec<Difference>) {
        self.diffs.extend(diffs);
    }

    /// `addDifferencesRebased`: differences relative to a pair, moved under the path.
    fn add_rebased(&mut self, relative: &[Difference]) {
        if self.path.is_empty() {
            self.diffs.extend(relative.iter().cloned());
            return;
        }
        let prefix = self.path_string();
        for d in relative {
            let path = match d.path.len() <= 2 {
                true => prefix.clone(),
                false => format!("{prefix}/{}", &d.path[2..]),
            };
            self.diffs.push(Difference { kind: d.kind, path });
        }
    }
}

/// Every difference between `original` (the writer) and `update` (the reader), in Java's
/// order.
pub(crate) fn compare_graphs(policy: Policy, original: &Graph, update: &Graph) -> Vec<Difference> {
    let o = S { graph: original, side: 0, id: original.root };
    let u = S { graph: update, side: 1, id: update.root };
    let mut seed: HashMap<Key, Rc<Vec<Difference>>> = HashMap::new();
    loop {
        let mut sh = Shared {
            policy,
            memo: HashMap::new(),
            in_progress: HashSet::new(),
            seed: seed.clone(),
            optimism: false,
            depth: 0,
        };
        let mut ctx = Ctx::root();
        compare(&mut sh, &mut ctx, Some(o), Some(u));
        let incompatible: HashMap<Key, Rc<Vec<Difference>>> = sh
            .memo
            .iter()
            .filter(|(_, diffs)| !sh.compatible(diffs))
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let same =
            incompatible.len() == seed.len() && incompatible.keys().all(|k| seed.contains_key(k));
        if !sh.optimism || same {
            return ctx.diffs;
        }
        seed = incompatible;
    }
}

/// `SchemaDiff.compare(ctx, original, update)`.
pub(crate) fn compare(
    sh: &mut Shared,
    ctx: &mut Ctx,
    original: Option<S<'_>>,
    update: Option<S<'_>>,
) {
    let (o, u) = match (original, update) {
        (None, None) => return,
        (None, Some(_)) => return ctx.add(Type::SchemaAdded),
        (Some(_), None) => return ctx.add(Type::SchemaRemoved),
        (Some(o), Some(u)) => (o.normalized(), u.normalized()),
    };
    let diffs = compare_memoized(sh, o, u);
    ctx.add_rebased(&diffs);
}

fn compare_memoized(sh: &mut Shared, o: S<'_>, u: S<'_>) -> Rc<Vec<Difference>> {
    let key = (o.side, o.id, u.side, u.id);
    if let Some(cached) = sh.memo.get(&key) {
        return cached.clone();
    }
    if sh.in_progress.contains(&key) {
        if let Some(seeded) = sh.seed.get(&key) {
            return seeded.clone();
        }
        sh.optimism = true;
        return Rc::new(Vec::new());
    }
    if sh.depth >= MAX_DIFF_DEPTH {
        // As deep as only two recursive schemas out of step get: treated like a cycle.
        sh.optimism = true;
        return Rc::new(Vec::new());
    }
    sh.in_progress.insert(key);
    let mut sub = Ctx::root();
    sh.depth += 1;
    compare_types(sh, &mut sub, o, u);
    sh.depth -= 1;
    let result = Rc::new(sub.diffs);
    sh.memo.insert(key, result.clone());
    sh.in_progress.remove(&key);
    result
}

/// Compares in a subcontext; its differences, when compatible.
pub(crate) fn try_compare(
    sh: &mut Shared,
    ctx: &Ctx,
    o: S<'_>,
    u: S<'_>,
) -> Option<Vec<Difference>> {
    let mut sub = ctx.sub();
    compare(sh, &mut sub, Some(o), Some(u));
    sh.compatible(&sub.diffs).then_some(sub.diffs)
}

fn compare_types(sh: &mut Shared, ctx: &mut Ctx, o: S<'_>, u: S<'_>) {
    match (o.kind(), u.kind()) {
        (Kind::Combined(..), Kind::Combined(..)) => {}
        (_, Kind::Combined(criterion, subs)) => {
            if subs.len() == 1 {
                if let Some(diffs) = try_compare(sh, ctx, o, u.at(subs[0])) {
                    return ctx.extend(diffs);
                }
            } else if matches!(criterion, Criterion::AnyOf | Criterion::OneOf) {
                for &s in subs {
                    if let Some(diffs) = try_compare(sh, ctx, o, u.at(s)) {
                        ctx.extend(diffs);
                        return ctx.add(Type::SumTypeExtended);
                    }
                }
            }
        }
        (Kind::Combined(criterion, subs), _) => {
            if subs.len() == 1 {
                if let Some(diffs) = try_compare(sh, ctx, o.at(subs[0]), u) {
                    return ctx.extend(diffs);
                }
            } else if *criterion == Criterion::AllOf {
                for &s in subs {
                    if let Some(diffs) = try_compare(sh, ctx, o.at(s), u) {
                        ctx.extend(diffs);
                        return ctx.add(Type::ProductTypeNarrowed);
                    }
                }
            }
        }
        _ => {}
    }

    let (on, un) = (o.node(), u.node());
    if on.kind.class() != un.kind.class() {
        if matches!(on.kind, Kind::False) || un.kind.is_empty_schema() {
            return;
        }
        let bytes = |n: &Node| n.common.connect_type.as_deref() == Some("bytes");
        if bytes(on) && bytes(un) {
            return;
        }
        return ctx.add(Type::TypeChanged);
    }
    if on.common.id != un.common.id {
        ctx.add(Type::IdChanged);
    }
    if on.common.title != un.common.title {
        ctx.add(Type::TitleChanged);
    }
    if on.common.description != un.common.description {
        ctx.add(Type::DescriptionChanged);
    }
    if !default_equal(on.common.default.as_ref(), un.common.default.as_ref()) {
        ctx.add(Type::DefaultChanged);
    }
    match (&on.kind, &un.kind) {
        (Kind::String(a), Kind::String(b)) => string(ctx, a, b),
        (Kind::Number(a), Kind::Number(b)) => number(ctx, a, b),
        (Kind::Const(a), Kind::Const(b)) if !java_equal(a, b) => {
            ctx.add_at("const", Type::EnumArrayChanged)
        }
        (Kind::Enum(a), Kind::Enum(b)) => enumeration(ctx, a, b),
        (Kind::Combined(oc, os), Kind::Combined(uc, us)) => {
            super::diff_combined::combined(sh, ctx, o, (*oc, os), u, (*uc, us))
        }
        (Kind::Not(a), Kind::Not(b)) => {
            ctx.enter("not");
            // Reversed: what the old schema excluded, the new one must exclude.
            let narrowed = try_compare(sh, ctx, u.at(*b), o.at(*a)).is_some();
            ctx.add(if narrowed { Type::NotTypeNarrowed } else { Type::NotTypeExtended });
            ctx.leave();
        }
        (Kind::Object(a), Kind::Object(b)) => super::diff_object::object(sh, ctx, o, a, u, b),
        (Kind::Array(a), Kind::Array(b)) => super::diff_object::array(sh, ctx, o, a, u, b),
        _ => {}
    }
}

/// `Objects.equals` on everit's defaults: org.json objects and arrays compare by identity,
/// so two of them always differ.
fn default_equal(a: Option<&Json>, b: Option<&Json>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(Json::Object(_) | Json::Array(_)), _)
        | (_, Some(Json::Object(_) | Json::Array(_))) => false,
        (Some(a), Some(b)) => java_equal(a, b),
        _ => false,
    }
}

/// Java's `equals` on the values everit unwraps (maps and lists compare by content; an
/// integer never equals a decimal).
pub(crate) fn java_equal(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => match (x.is_f64(), y.is_f64()) {
            (false, false) => x == y,
            (true, true) => x.as_f64() == y.as_f64(),
            _ => false,
        },
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| java_equal(a, b))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| b.get(k).is_some_and(|w| java_equal(v, w)))
        }
        _ => a == b,
    }
}

/// Every value of `b` is in `a` (`Set.containsAll`).
fn contains_all(a: &[Json], b: &[Json]) -> bool {
    b.iter().all(|x| a.iter().any(|y| java_equal(x, y)))
}

fn enumeration(ctx: &mut Ctx, o: &[Json], u: &[Json]) {
    if contains_all(o, u) && contains_all(u, o) {
        return;
    }
    let kind = if contains_all(u, o) {
        Type::EnumArrayExtended
    } else if contains_all(o, u) {
        Type::EnumArrayNarrowed
    } else {
        Type::EnumArrayChanged
    };
    ctx.add_at("enum", kind);
}

/// The change of a limit: added, removed, increased or decreased.
pub(crate) fn limit(
    ctx: &mut Ctx,
    name: &str,
    o: Option<f64>,
    u: Option<f64>,
    [added, removed, increased, decreased]: [Type; 4],
) {
    let kind = match (o, u) {
        (None, Some(_)) => added,
        (Some(_), None) => removed,
        (Some(a), Some(b)) if a < b => increased,
        (Some(a), Some(b)) if a > b => decreased,
        _ => return,
    };
    ctx.add_at(name, kind);
}

fn string(ctx: &mut Ctx, o: &StringKeywords, u: &StringKeywords) {
    use Type::*;
    let max = [MaxLengthAdded, MaxLengthRemoved, MaxLengthIncreased, MaxLengthDecreased];
    limit(ctx, "maxLength", o.max_length, u.max_length, max);
    let min = [MinLengthAdded, MinLengthRemoved, MinLengthIncreased, MinLengthDecreased];
    limit(ctx, "minLength", o.min_length, u.min_length, min);
    match (&o.pattern, &u.pattern) {
        (None, Some(_)) => ctx.add_at("pattern", PatternAdded),
        (Some(_), None) => ctx.add_at("pattern", PatternRemoved),
        (Some(a), Some(b)) if a != b => ctx.add_at("pattern", PatternChanged),
        _ => {}
    }
}

fn number(ctx: &mut Ctx, o: &NumberKeywords, u: &NumberKeywords) {
    use Type::*;
    let max = [MaximumAdded, MaximumRemoved, MaximumIncreased, MaximumDecreased];
    limit(ctx, "maximum", o.maximum, u.maximum, max);
    let min = [MinimumAdded, MinimumRemoved, MinimumIncreased, MinimumDecreased];
    limit(ctx, "minimum", o.minimum, u.minimum, min);
    // Java compares a lower exclusive maximum with the new `maximum` (a bug kept here); it
    // throws when there is none, where the intended comparison is made instead.
    match (o.exclusive_maximum, u.exclusive_maximum) {
        (None, Some(_)) => ctx.add_at("exclusiveMaximum", ExclusiveMaximumAdded),
        (Some(_), None) => ctx.add_at("exclusiveMaximum", ExclusiveMaximumRemoved),
        (Some(a), Some(b)) if a < b => ctx.add_at("exclusiveMaximum", ExclusiveMaximumIncreased),
        (Some(a), Some(b)) if a > u.maximum.unwrap_or(b) => {
            ctx.add_at("exclusiveMaximum", ExclusiveMaximumDecreased)
        }
        _ => {}
    }
    let emin = [
        ExclusiveMinimumAdded,
        ExclusiveMinimumRemoved,
        ExclusiveMinimumIncreased,
        ExclusiveMinimumDecreased,
    ];
    limit(ctx, "exclusiveMinimum", o.exclusive_minimum, u.exclusive_minimum, emin);
    let (om, um) = (
        o.multiple_of.as_deref().and_then(Decimal::parse),
        u.multiple_of.as_deref().and_then(Decimal::parse),
    );
    match (om, um) {
        (None, None) => {}
        (None, Some(_)) => ctx.add_at("multipleOf", MultipleOfAdded),
        (Some(_), None) => ctx.add_at("multipleOf", MultipleOfRemoved),
        (Some(a), Some(b)) if a == b => {}
        (Some(a), Some(b)) => {
            let kind = if !a.is_zero() && b.is_multiple_of(&a) {
                MultipleOfExpanded
            } else if !b.is_zero() && a.is_multiple_of(&b) {
                MultipleOfReduced
            } else {
                MultipleOfChanged
            };
            ctx.add_at("multipleOf", kind);
        }
    }
    if o.integer != u.integer {
        ctx.add(if o.integer { TypeExtended } else { TypeNarrowed });
    }
}

/// A decimal number, `mantissa * 10^exponent`, without trailing zeros (Java's `BigDecimal`
/// compared with `compareTo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Decimal {
    mantissa: i128,
    exponent: i32,
}

impl Decimal {
    fn parse(text: &str) -> Option<Decimal> {
        let (digits, exp) = match text.split_once(['e', 'E']) {
            Some((d, e)) => (d, e.parse::<i32>().ok()?),
            None => (text, 0),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let mantissa: i128 = format!("{int}{frac}").parse().ok()?;
        let mut d = Decimal { mantissa, exponent: exp - frac.len() as i32 };
        if d.mantissa == 0 {
            d.exponent = 0;
        }
        while d.mantissa != 0 && d.mantissa % 10 == 0 {
            d.mantissa /= 10;
            d.exponent += 1;
        }
        Some(d)
    }

    fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// `self.remainder(other) == 0`.
    fn is_multiple_of(&self, other: &Decimal) -> bool {
        let e = self.exponent.min(other.exponent);
        let scale = |d: &Decimal| {
            10i128.checked_pow(u32::try_from(d.exponent - e).ok()?)?.checked_mul(d.mantissa)
        };
        match (scale(self), scale(other)) {
            (Some(a), Some(b)) if b != 0 => a % b == 0,
            _ => {
                let (a, b) = (self.to_f64(), other.to_f64());
                b != 0.0 && (a / b).fract() == 0.0
            }
        }
    }

    fn to_f64(self) -> f64 {
        self.mantissa as f64 * 10f64.powi(self.exponent)
    }
}
