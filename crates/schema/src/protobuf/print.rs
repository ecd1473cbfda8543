//! The element model back to .proto text as Confluent's `ProtobufSchemaUtils.toString`
//! prints it (the `canonicalString()` the registry stores): `syntax`, `package`, imports,
//! options, messages then enums, extends, services; in a message `reserved`, options,
//! fields, oneofs, groups, extensions, extends, then nested messages and enums. Two spaces
//! of indent, a nested blank line printed as two spaces (Java's `appendIndented`).

use super::ast::*;

/// The canonical text of `file`.
pub(crate) fn print(file: &File) -> String {
    let mut sb = String::new();
    if let Some(syntax) = &file.syntax {
        sb.push_str(&format!("syntax = \"{syntax}\";\n"));
    }
    if let Some(package) = &file.package {
        sb.push_str(&format!("package {package};\n"));
    }
    if !file.imports.is_empty() || !file.public_imports.is_empty() {
        sb.push('\n');
        for i in &file.imports {
            sb.push_str(&format!("import \"{i}\";\n"));
        }
        for i in &file.public_imports {
            sb.push_str(&format!("import public \"{i}\";\n"));
        }
    }
    if !file.options.is_empty() {
        sb.push('\n');
        for o in &file.options {
            sb.push_str(&option_statement(o));
        }
    }
    if !file.types.is_empty() {
        sb.push('\n');
        types(&mut sb, &file.types, false);
    }
    if !file.extends.is_empty() {
        sb.push('\n');
        for e in &file.extends {
            sb.push_str(&extend(e));
        }
    }
    if !file.services.is_empty() {
        sb.push('\n');
        for s in &file.services {
            sb.push_str(&service(s));
        }
    }
    sb
}

/// Messages first, then enums, each kind in declaration order.
fn types(sb: &mut String, types: &[Type], indented: bool) {
    let texts = types
        .iter()
        .filter_map(|t| match t {
            Type::Message(m) => Some(message(m)),
            Type::Enum(_) => None,
        })
        .chain(types.iter().filter_map(|t| match t {
            Type::Enum(e) => Some(enumeration(e)),
            Type::Message(_) => None,
        }));
    for text in texts {
        match indented {
            true => append_indented(sb, &text),
            false => sb.push_str(&text),
        }
    }
}

fn service(s: &Service) -> String {
    let mut sb = format!("service {} {{", s.name);
    if !s.options.is_empty() {
        sb.push('\n');
        for o in &s.options {
            append_indented(&mut sb, &option_statement(o));
        }
    }
    if !s.rpcs.is_empty() {
        sb.push('\n');
        for r in &s.rpcs {
            append_indented(&mut sb, &rpc(r));
        }
    }
    sb.push_str("}\n");
    sb
}

fn rpc(r: &Rpc) -> String {
    let stream = |s: bool| if s { "stream " } else { "" };
    let mut sb = format!(
        "rpc {} ({}{}) returns ({}{})",
        r.name,
        stream(r.request_streaming),
        r.request,
        stream(r.response_streaming),
        r.response
    );
    if !r.options.is_empty() {
        sb.push_str(" {\n");
        for o in &r.options {
            append_indented(&mut sb, &option_statement(o));
        }
        sb.push('}');
    }
    sb.push_str(";\n");
    sb
}

fn enumeration(e: &Enum) -> String {
    let mut sb = format!("enum {} {{", e.name);
    if !e.reserved.is_empty() {
        sb.push('\n');
        for r in &e.reserved {
            append_indented(&mut sb, &reserved(r));
        }
    }
    if e.reserved.is_empty() && (!e.options.is_empty() || !e.constants.is_empty()) {
        sb.push('\n');
    }
    for o in &e.options {
        append_indented(&mut sb, &option_statement(o));
    }
    for c in &e.constants {
        let mut line = format!("{} = {}", c.name, c.tag);
        if !c.options.is_empty() {
            line.push(' ');
            append_options(&mut line, &c.options.iter().map(option).collect::<Vec<_>>());
        }
        line.push_str(";\n");
        append_indented(&mut sb, &line);
    }
    sb.push_str("}\n");
    sb
}

fn message(m: &Message) -> String {
    let mut sb = format!("message {} {{", m.name);
    if !m.reserved.is_empty() {
        sb.push('\n');
        for r in &m.reserved {
            append_indented(&mut sb, &reserved(r));
        }
    }
    if !m.options.is_empty() {
        sb.push('\n');
        for o in &m.options {
            append_indented(&mut sb, &option_statement(o));
        }
    }
    if !m.fields.is_empty() {
        sb.push('\n');
        for f in &m.fields {
            append_indented(&mut sb, &field(f));
        }
    }
    if !m.oneofs.is_empty() {
        sb.push('\n');
        for o in &m.oneofs {
            append_indented(&mut sb, &oneof(o));
        }
    }
    if !m.groups.is_empty() {
        sb.push('\n');
        for g in &m.groups {
            append_indented(&mut sb, &group(g));
        }
    }
    if !m.extensions.is_empty() {
        sb.push('\n');
        for e in &m.extensions {
            let mut line = format!("extensions {}", ranges(&e.values));
            if !e.options.is_empty() {
                line.push(' ');
                append_options(&mut line, &e.options.iter().map(option).collect::<Vec<_>>());
            }
            line.push_str(";\n");
            append_indented(&mut sb, &line);
        }
    }
    if !m.extends.is_empty() {
        sb.push('\n');
        for e in &m.extends {
            append_indented(&mut sb, &extend(e));
        }
    }
    if !m.nested.is_empty() {
        sb.push('\n');
        types(&mut sb, &m.nested, true);
    }
    sb.push_str("}\n");
    sb
}

fn ranges(values: &[Range]) -> String {
    let texts: Vec<String> = values
        .iter()
        .map(|v| match v {
            Range::Name(n) => format!("\"{n}\""),
            Range::Tag(t) => t.to_string(),
            Range::Span(start, end) if *end < MAX_TAG_VALUE => format!("{start} to {end}"),
            Range::Span(start, _) => format!("{start} to max"),
        })
        .collect();
    texts.join(", ")
}

fn reserved(r: &Reserved) -> String {
    format!("reserved {};\n", ranges(&r.0))
}

fn oneof(o: &OneOf) -> String {
    let mut sb = format!("oneof {} {{", o.name);
    if !o.options.is_empty() {
        sb.push('\n');
        for opt in &o.options {
            append_indented(&mut sb, &option_statement(opt));
        }
    }
    if !o.fields.is_empty() {
        sb.push('\n');
        for f in &o.fields {
            append_indented(&mut sb, &field(f));
        }
    }
    if !o.groups.is_empty() {
        sb.push('\n');
        for g in &o.groups {
            append_indented(&mut sb, &group(g));
        }
    }
    sb.push_str("}\n");
    sb
}

fn group(g: &Group) -> String {
    let mut sb = String::new();
    if let Some(label) = g.label {
        sb.push_str(label.as_str());
        sb.push(' ');
    }
    sb.push_str(&format!("group {} = {} {{", g.name, g.tag));
    if !g.fields.is_empty() {
        sb.push('\n');
        for f in &g.fields {
            append_indented(&mut sb, &field(f));
        }
    }
    sb.push_str("}\n");
    sb
}

fn extend(e: &Extend) -> String {
    let mut sb = format!("extend {} {{", e.name);
    if !e.fields.is_empty() {
        sb.push('\n');
        for f in &e.fields {
            append_indented(&mut sb, &field(f));
        }
    }
    sb.push_str("}\n");
    sb
}

fn field(f: &Field) -> String {
    let mut sb = String::new();
    if let Some(label) = f.label {
        sb.push_str(label.as_str());
        sb.push(' ');
    }
    sb.push_str(&format!("{} {} = {}", f.ty, f.name, f.tag));
    let mut options: Vec<String> = f.options.iter().map(option).collect();
    if let Some(default) = &f.default {
        // Confluent's `toKind(fieldType)`: quoted for string only.
        let value = match f.ty.as_str() {
            "string" => OptionValue::String(default.clone()),
            _ => OptionValue::Enum(default.clone()),
        };
        options.push(option(&OptionElement {
            name: "default".into(),
            parenthesized: false,
            value,
        }));
    }
    if let Some(json_name) = &f.json_name {
        options.push(option(&OptionElement {
            name: "json_name".into(),
            parenthesized: false,
            value: OptionValue::String(json_name.clone()),
        }));
    }
    if !options.is_empty() {
        sb.push(' ');
        append_options(&mut sb, &options);
    }
    sb.push_str(";\n");
    sb
}

fn option_statement(o: &OptionElement) -> String {
    format!("option {};\n", option(o))
}

/// Confluent's `toString(OptionElement)`: `name = value`.
fn option(o: &OptionElement) -> String {
    let mut sb = match o.parenthesized {
        true => format!("({})", o.name),
        false => o.name.clone(),
    };
    match &o.value {
        OptionValue::String(s) => sb.push_str(&format!(" = \"{}\"", escape(s))),
        OptionValue::Bool(v) | OptionValue::Enum(v) | OptionValue::Number(v) => {
            sb.push_str(&format!(" = {v}"));
        }
        OptionValue::Option(nested) => {
            sb.push('.');
            sb.push_str(&option(&OptionElement { parenthesized: false, ..(**nested).clone() }));
        }
        OptionValue::Map(map) => {
            sb.push_str(" = {\n");
            option_map(&mut sb, map);
            sb.push('}');
        }
        OptionValue::List(list) => {
            sb.push_str(" = ");
            append_options(&mut sb, &list.iter().map(value).collect::<Vec<_>>());
        }
    }
    sb
}

fn option_map(sb: &mut String, map: &[(String, OptionValue)]) {
    for (i, (key, v)) in map.iter().enumerate() {
        let end = if i + 1 < map.len() { "," } else { "" };
        append_indented(sb, &format!("{key}: {}{end}", value(v)));
    }
}

/// Confluent's `formatOptionMapOrListValue`.
fn value(v: &OptionValue) -> String {
    match v {
        OptionValue::String(s) => format!("\"{}\"", escape(s)),
        OptionValue::Bool(s) | OptionValue::Enum(s) | OptionValue::Number(s) => s.clone(),
        OptionValue::Map(map) => {
            let mut sb = String::from("{\n");
            option_map(&mut sb, map);
            sb.push('}');
            sb
        }
        OptionValue::List(list) => {
            let mut sb = String::from("[\n");
            for (i, item) in list.iter().enumerate() {
                let end = if i + 1 < list.len() { "," } else { "" };
                append_indented(&mut sb, &format!("{}{end}", value(item)));
            }
            sb.push(']');
            sb
        }
        OptionValue::Option(o) => option(o),
    }
}

/// Confluent's `appendOptions`: `[one]`, or one per line.
fn append_options(sb: &mut String, items: &[String]) {
    if items.len() == 1 {
        sb.push('[');
        sb.push_str(&items[0]);
        sb.push(']');
        return;
    }
    sb.push_str("[\n");
    for (i, item) in items.iter().enumerate() {
        let end = if i + 1 < items.len() { "," } else { "" };
        append_indented(sb, &format!("{item}{end}"));
    }
    sb.push(']');
}

/// Java's `appendIndented`: each line (after `split("\n")`, which drops trailing empty
/// ones) with two spaces before it.
fn append_indented(sb: &mut String, value: &str) {
    let mut lines: Vec<&str> = value.split('\n').collect();
    while lines.len() > 1 && lines.last() == Some(&"") {
        lines.pop();
    }
    if lines == [""] {
        // Java's split of "" gives [""]: one indented empty line.
        sb.push_str("  \n");
        return;
    }
    for line in lines {
        sb.push_str("  ");
        sb.push_str(line);
        sb.push('\n');
    }
}

/// Confluent's `escapeChars`.
pub(crate) fn escape(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        match c {
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}
