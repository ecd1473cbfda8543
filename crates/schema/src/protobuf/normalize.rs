//! Confluent's normalized form of a Protobuf schema (`ProtobufSchemaUtils.toNormalizedString`,
//! what `normalize=true` registers and looks up): the element model rewritten so that
//! `print` prints it as Confluent's normalizing printer does. No `syntax = "proto2"`;
//! imports sorted without duplicates; options by name, custom ones by their extension's
//! full name, with the `(a).b = 1, (a).c = 2` of one non-repeated extension merged into
//! one `(a) = { b: 1 c: 2 }`, message literals' keys sorted and numbers re-printed; fields,
//! groups, extensions, reserved values and enum constants by number; oneofs by their first
//! field's; types fully qualified with a leading dot, map entries as `map<K, V>`. Messages
//! and enums keep their order: clients number messages by their place in the schema.

use std::collections::BTreeMap;

use super::ast::*;
use super::scope::{SCALARS, Scope, Side, is_map};

/// The normalized element model of `side`'s file.
pub(crate) fn normalize(side: &Side<'_>) -> Result<File, String> {
    let scope = Scope::collect(side);
    let mut n = Normalizer { scope: &scope, full_name: Vec::new() };
    n.file(side.file)
}

struct Normalizer<'s, 'a> {
    scope: &'s Scope<'a>,
    /// The enclosing messages (and enum) of what is being normalized.
    full_name: Vec<String>,
}

impl Normalizer<'_, '_> {
    fn file(&mut self, file: &File) -> Result<File, String> {
        Ok(File {
            syntax: file.syntax.clone().filter(|s| s == "proto3"),
            package: file.package.clone(),
            imports: sorted_unique(&file.imports),
            public_imports: sorted_unique(&file.public_imports),
            weak_imports: file.weak_imports.clone(),
            options: self.options(&file.options),
            types: self.types(&file.types)?,
            services: file.services.iter().map(|s| self.service(s)).collect::<Result<_, _>>()?,
            extends: self.extends(&file.extends)?,
        })
    }

    /// Confluent's `filterTypes` (no synthetic map entries), each in its own scope.
    fn types(&mut self, types: &[Type]) -> Result<Vec<Type>, String> {
        let mut out = Vec::with_capacity(types.len());
        for ty in types {
            if matches!(ty, Type::Message(_))
                && self.scope.get_type(ty.name(), &self.full_name).is_some_and(|t| t.map.is_some())
            {
                continue;
            }
            self.full_name.push(ty.name().to_string());
            let normalized = match ty {
                Type::Message(m) => self.message(m).map(Type::Message),
                Type::Enum(e) => Ok(Type::Enum(self.enumeration(e))),
            };
            self.full_name.pop();
            out.push(normalized?);
        }
        Ok(out)
    }

    fn message(&mut self, m: &Message) -> Result<Message, String> {
        let mut oneofs = Vec::new();
        for o in m.oneofs.iter().filter(|o| !o.fields.is_empty()) {
            oneofs.push(OneOf {
                name: o.name.clone(),
                options: self.options(&o.options),
                fields: self.fields(&o.fields)?,
                groups: self.groups(&o.groups)?,
            });
        }
        oneofs.sort_by_key(|o| o.fields[0].tag);
        let mut extensions: Vec<Extensions> = m
            .extensions
            .iter()
            .flat_map(|e| {
                e.values.iter().map(|v| Extensions {
                    values: vec![v.clone()],
                    options: self.options(&e.options),
                })
            })
            .collect();
        extensions.sort_by_key(|e| range_start(&e.values[0]));
        for e in &mut extensions {
            e.values = e.values.iter().map(single).collect();
        }
        Ok(Message {
            name: m.name.clone(),
            options: self.options(&m.options),
            reserved: reserved(&m.reserved),
            fields: self.fields(&m.fields)?,
            oneofs,
            groups: self.groups(&m.groups)?,
            extensions,
            extends: self.extends(&m.extends)?,
            nested: self.types(&m.nested)?,
        })
    }

    fn enumeration(&self, e: &Enum) -> Enum {
        let mut constants: Vec<EnumConstant> = e
            .constants
            .iter()
            .map(|c| EnumConstant {
                name: c.name.clone(),
                tag: c.tag,
                options: self.options(&c.options),
            })
            .collect();
        constants.sort_by(|a, b| a.tag.cmp(&b.tag).then_with(|| a.name.cmp(&b.name)));
        Enum {
            name: e.name.clone(),
            options: self.options(&e.options),
            constants,
            reserved: reserved(&e.reserved),
        }
    }

    fn service(&self, s: &Service) -> Result<Service, String> {
        let rpcs = s
            .rpcs
            .iter()
            .map(|r| {
                Ok(Rpc {
                    request: self.qualified(&r.request)?,
                    response: self.qualified(&r.response)?,
                    options: self.options(&r.options),
                    ..r.clone()
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Service { name: s.name.clone(), options: self.options(&s.options), rpcs })
    }

    /// The extends grouped by the full name of what they extend, in order of appearance.
    fn extends(&self, extends: &[Extend]) -> Result<Vec<Extend>, String> {
        let mut out: Vec<Extend> = Vec::new();
        for e in extends {
            let name = self.qualified(&e.name)?;
            let fields = self.fields(&e.fields)?;
            match out.iter_mut().find(|x| x.name == name) {
                Some(x) => {
                    x.fields.extend(fields);
                    x.fields.sort_by_key(|f| f.tag);
                }
                None => out.push(Extend { name, fields }),
            }
        }
        Ok(out)
    }

    fn groups(&self, groups: &[Group]) -> Result<Vec<Group>, String> {
        let mut out = groups
            .iter()
            .map(|g| Ok(Group { fields: self.fields(&g.fields)?, ..g.clone() }))
            .collect::<Result<Vec<_>, String>>()?;
        out.sort_by_key(|g| g.tag);
        Ok(out)
    }

    /// Fields by number, each normalized.
    fn fields(&self, fields: &[Field]) -> Result<Vec<Field>, String> {
        let mut out = fields.iter().map(|f| self.field(f)).collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|f| f.tag);
        Ok(out)
    }

    /// The type fully qualified (a map entry as `map<K, V>`, its value qualified), no label
    /// on a map, and `default` and `json_name` sorted in with the other options.
    fn field(&self, f: &Field) -> Result<Field, String> {
        let mut ty = f.ty.clone();
        let mut label = f.label;
        if !SCALARS.contains(&ty.as_str()) && !is_map(&ty) {
            ty = self.qualified(&ty)?;
            if let Some(map) = self.scope.types.get(&ty[1..]).and_then(|t| t.map.clone()) {
                ty = map;
            }
        }
        if let Some((key, value)) = map_key_value(&ty) {
            if let Some(full) = self.scope.resolve(value, &self.full_name) {
                ty = format!("map<{key}, .{full}>");
            }
            label = None;
        }
        let mut options = f.options.clone();
        if let Some(default) = &f.default {
            let simple = ty.rsplit('.').next().unwrap_or(&ty);
            let value = match simple {
                "bool" => OptionValue::Bool(default.clone()),
                // Confluent's `toKind` makes a bytes default a number, printed unquoted,
                // which protoc refuses; quoted, the normalized schema compiles.
                "string" | "bytes" => OptionValue::String(default.clone()),
                s if SCALARS.contains(&s) => OptionValue::Number(default.clone()),
                _ => OptionValue::Enum(default.clone()),
            };
            options.push(OptionElement { name: "default".into(), parenthesized: false, value });
        }
        if let Some(json_name) = &f.json_name {
            options.push(OptionElement {
                name: "json_name".into(),
                parenthesized: false,
                value: OptionValue::String(json_name.clone()),
            });
        }
        Ok(Field {
            label,
            ty,
            name: f.name.clone(),
            tag: f.tag,
            default: None,
            json_name: None,
            options: self.options(&options),
        })
    }

    /// `.full.Name` of the type `name` refers to here; Confluent's error when none.
    fn qualified(&self, name: &str) -> Result<String, String> {
        match self.scope.resolve(name, &self.full_name) {
            Some(full) => Ok(format!(".{full}")),
            None => Err(format!("Could not resolve type: {name}")),
        }
    }

    /// Confluent's `FormatContext.filterOptions` when normalizing, then the values as its
    /// printer re-writes them.
    fn options(&self, options: &[OptionElement]) -> Vec<OptionElement> {
        let mut named: Vec<OptionElement> = options
            .iter()
            .map(|o| match o.parenthesized {
                true => match self.scope.resolve_extend(&o.name, &self.full_name) {
                    Some(name) => transform(OptionElement { name, ..o.clone() }),
                    None => o.clone(),
                },
                false => o.clone(),
            })
            .collect();
        named.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out: Vec<OptionElement> = Vec::new();
        let mut i = 0;
        while i < named.len() {
            let same = named[i..].iter().take_while(|o| o.name == named[i].name).count();
            let group = &named[i..i + same];
            match self.scope.extend_fields.get(&named[i].name) {
                Some(field) if field.label != Some(Label::Repeated) => {
                    let mut merged = group[0].clone();
                    for next in &group[1..] {
                        merged = self.merge_option(field, merged, next.clone());
                    }
                    out.push(merged);
                }
                _ => out.extend_from_slice(group),
            }
            i += same;
        }
        out.into_iter().map(|o| self.option(o)).collect()
    }

    fn merge_option(
        &self,
        field: &Field,
        existing: OptionElement,
        replacement: OptionElement,
    ) -> OptionElement {
        let replacement = transform(replacement);
        match (existing.value, replacement.value) {
            (OptionValue::Map(a), OptionValue::Map(b)) => OptionElement {
                value: OptionValue::Map(self.merge_maps(Some(field), a, b)),
                ..replacement
            },
            (_, value) => OptionElement { value, ..replacement },
        }
    }

    /// Confluent's `mergeOptionMaps`: `b`'s entries into `a`, a key in both merged.
    fn merge_maps(
        &self,
        container: Option<&Field>,
        a: Vec<(String, OptionValue)>,
        b: Vec<(String, OptionValue)>,
    ) -> Vec<(String, OptionValue)> {
        let container_type = container.and_then(|f| self.message_type(f));
        let mut merged = a;
        for (key, value) in b {
            let nested = container_type.and_then(|m| {
                m.fields
                    .iter()
                    .chain(m.oneofs.iter().flat_map(|o| &o.fields))
                    .find(|f| f.name == key)
            });
            match merged.iter_mut().find(|(k, _)| *k == key) {
                Some((_, existing)) => {
                    let old = std::mem::replace(existing, OptionValue::List(Vec::new()));
                    *existing = self.merge_values(nested, old, value);
                }
                None => merged.push((key, value)),
            }
        }
        merged
    }

    /// Confluent's `mergeOptionValues`: a singular message field's literals merged, a
    /// singular scalar's last value, a repeated (or unknown) field's values listed once.
    fn merge_values(&self, field: Option<&Field>, a: OptionValue, b: OptionValue) -> OptionValue {
        let singular = field.is_some_and(|f| f.label != Some(Label::Repeated));
        if singular
            && field.and_then(|f| self.message_type(f)).is_some()
            && let (OptionValue::Map(a), OptionValue::Map(b)) = (&a, &b)
        {
            return OptionValue::Map(self.merge_maps(field, a.clone(), b.clone()));
        }
        if singular {
            return b;
        }
        let mut list: Vec<OptionValue> = Vec::new();
        for v in [a, b] {
            let items = match v {
                OptionValue::List(items) => items,
                v => vec![v],
            };
            for item in items {
                if !list.contains(&item) {
                    list.push(item);
                }
            }
        }
        OptionValue::List(list)
    }

    fn message_type(&self, field: &Field) -> Option<&Message> {
        match self.scope.get_type(&field.ty, &self.full_name)?.ty {
            Type::Message(m) => Some(m),
            Type::Enum(_) => None,
        }
    }

    /// An option as Confluent's normalizing printer writes it: numbers re-printed, message
    /// literals normalized.
    fn option(&self, o: OptionElement) -> OptionElement {
        let value = match o.value {
            OptionValue::Number(n) => OptionValue::Number(format_number(&n)),
            OptionValue::Option(nested) => OptionValue::Option(Box::new(self.option(*nested))),
            OptionValue::Map(map) => OptionValue::Map(self.literal(map)),
            OptionValue::List(items) => {
                OptionValue::List(items.into_iter().map(|v| self.value(v)).collect())
            }
            v => v,
        };
        OptionElement { value, ..o }
    }

    /// Confluent's `formatOptionMapOrListValue`: a one-item list as its item.
    fn value(&self, v: OptionValue) -> OptionValue {
        match v {
            OptionValue::Number(n) => OptionValue::Number(format_number(&n)),
            OptionValue::Map(map) => OptionValue::Map(self.literal(map)),
            OptionValue::List(mut items) if items.len() == 1 => self.value(items.remove(0)),
            OptionValue::List(items) => {
                OptionValue::List(items.into_iter().map(|v| self.value(v)).collect())
            }
            OptionValue::Option(o) => OptionValue::Option(Box::new(self.option(*o))),
            v => v,
        }
    }

    /// Confluent's `formatOptionMap`: no empty lists, extension keys by full name, keys
    /// sorted (the first of a repeated key kept).
    fn literal(&self, map: Vec<(String, OptionValue)>) -> Vec<(String, OptionValue)> {
        let mut sorted: BTreeMap<String, OptionValue> = BTreeMap::new();
        for (key, value) in map {
            if matches!(&value, OptionValue::List(l) if l.is_empty()) {
                continue;
            }
            let key = match key.strip_prefix('[').and_then(|k| k.strip_suffix(']')) {
                Some(name) => match self.scope.resolve_extend(name, &self.full_name) {
                    Some(full) => format!("[{full}]"),
                    None => key,
                },
                None => key,
            };
            sorted.entry(key).or_insert(value);
        }
        sorted.into_iter().map(|(k, v)| (k, self.value(v))).collect()
    }
}

/// Confluent's `ProtobufSchema.transform`: `(a).b.c = v` as the message literal
/// `(a) = { b: { c: v } }`.
fn transform(o: OptionElement) -> OptionElement {
    fn literal(nested: OptionElement) -> Vec<(String, OptionValue)> {
        let value = match nested.value {
            OptionValue::Option(inner) => OptionValue::Map(literal(*inner)),
            v => v,
        };
        // Wire splits `b.c` into one level per name.
        let mut parts = nested.name.rsplit('.');
        let last = parts.next().unwrap_or_default().to_string();
        let mut entry = (last, value);
        for part in parts {
            entry = (part.to_string(), OptionValue::Map(vec![entry]));
        }
        vec![entry]
    }
    match o.value {
        OptionValue::Option(nested) => {
            OptionElement { value: OptionValue::Map(literal(*nested)), ..o }
        }
        _ => o,
    }
}

fn sorted_unique(items: &[String]) -> Vec<String> {
    let mut out = items.to_vec();
    out.sort();
    out.dedup();
    out
}

/// Reserved values one per statement, by number (names last, by name), `5 to 5` as `5`.
fn reserved(reserved: &[Reserved]) -> Vec<Reserved> {
    let mut values: Vec<&Range> = reserved.iter().flat_map(|r| &r.0).collect();
    values.sort_by(|a, b| {
        range_start(a).cmp(&range_start(b)).then_with(|| java_text(a).cmp(&java_text(b)))
    });
    values.into_iter().map(|v| Reserved(vec![single(v)])).collect()
}

fn range_start(r: &Range) -> i64 {
    match r {
        Range::Tag(t) | Range::Span(t, _) => *t,
        Range::Name(_) => i64::from(i32::MAX),
    }
}

/// A value as Java's `toString` gives it (the tie-break of Confluent's sort).
fn java_text(r: &Range) -> String {
    match r {
        Range::Tag(t) => t.to_string(),
        Range::Span(a, b) => format!("{a}..{b}"),
        Range::Name(n) => n.clone(),
    }
}

fn single(r: &Range) -> Range {
    match r {
        Range::Span(a, b) if a == b => Range::Tag(*a),
        r => r.clone(),
    }
}

/// `map<K, V>`'s key and value.
fn map_key_value(ty: &str) -> Option<(&str, &str)> {
    let inner = ty.strip_prefix("map<")?.strip_suffix('>')?;
    let (key, value) = inner.split_once(',')?;
    Some((key.trim(), value.trim()))
}

/// Confluent's `formatNumber` when normalizing: the number as commons-lang's
/// `createNumber` reads it (hex, octal, decimal; a short decimal fraction as a `float`)
/// printed by Java's `DecimalFormat` without grouping: integers in full, fractions to at
/// most 3 digits (half even). What does not read as a number (`inf`, `nan`) stays.
pub(crate) fn format_number(text: &str) -> String {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let sign = if negative { "-" } else { "" };
    let integer = if let Some(hex) = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X"))
    {
        u128::from_str_radix(hex, 16).ok()
    } else if digits.len() > 1
        && digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        u128::from_str_radix(&digits[1..], 8).ok()
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        match digits.parse::<u128>() {
            Ok(v) => Some(v),
            // Larger than any primitive: Java's BigInteger prints it in full.
            Err(_) => return format!("{sign}{}", digits.trim_start_matches('0')),
        }
    } else {
        None
    };
    if let Some(v) = integer {
        return match v {
            0 => "0".to_string(),
            v => format!("{sign}{v}"),
        };
    }
    let numeric = |b: u8| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-');
    if digits.is_empty() || !digits.bytes().all(numeric) {
        return text.to_string();
    }
    let significant =
        digits.bytes().take_while(|b| *b != b'e' && *b != b'E').filter(u8::is_ascii_digit).count();
    let value = match significant <= 7 {
        true => digits.parse::<f32>().ok().filter(|f| f.is_finite()).map(f64::from),
        false => digits.parse::<f64>().ok().filter(|f| f.is_finite()),
    };
    let Some(value) = value else {
        return text.to_string();
    };
    let shortest = format!("{value}");
    let printed = match shortest.split_once('.') {
        Some((_, fraction)) if fraction.len() > 3 => format!("{value:.3}"),
        _ => shortest,
    };
    let printed = match printed.contains('.') {
        true => printed.trim_end_matches('0').trim_end_matches('.').to_string(),
        false => printed,
    };
    format!("{sign}{printed}")
}
