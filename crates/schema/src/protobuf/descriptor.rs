//! A FileDescriptorProto to the element model, as Confluent's
//! `ProtobufSchema.toProtoFile(FileDescriptorProto)` converts one (a schema registered in
//! its serialized, base64 form): type names fully qualified as the descriptor has them
//! (`.pkg.Msg`), map fields as their `...Entry` messages with `option map_entry = true`,
//! every reserved range its own statement, the standard options in Confluent's order.
//! Custom options (extensions of the option messages) are not carried: prost drops them
//! when it decodes.

use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    ServiceDescriptorProto, field_descriptor_proto, field_options, file_options, method_options,
};

use super::ast::*;

pub(crate) fn file(fd: &FileDescriptorProto) -> File {
    let syntax = match fd.syntax() {
        s @ ("proto2" | "proto3") => Some(s.to_string()),
        _ => None,
    };
    let proto3 = fd.syntax() == "proto3";
    let mut file =
        File { syntax, package: fd.package.clone().filter(|p| !p.is_empty()), ..File::default() };
    for (i, dep) in fd.dependency.iter().enumerate() {
        let i = i as i32;
        let list = if fd.public_dependency.contains(&i) {
            &mut file.public_imports
        } else if fd.weak_dependency.contains(&i) {
            &mut file.weak_imports
        } else {
            &mut file.imports
        };
        list.push(dep.clone());
    }
    file.types = fd.message_type.iter().map(|m| Type::Message(message(m, proto3))).collect();
    file.types.extend(fd.enum_type.iter().map(|e| Type::Enum(enumeration(e))));
    file.services = fd.service.iter().map(service).collect();
    file.extends = extends(&fd.extension, proto3);
    if let Some(o) = &fd.options {
        let mut opts = Options::default();
        opts.string("java_package", &o.java_package);
        opts.string("java_outer_classname", &o.java_outer_classname);
        opts.bool("java_multiple_files", o.java_multiple_files);
        #[allow(deprecated)]
        let equals_and_hash = o.java_generate_equals_and_hash;
        opts.bool("java_generate_equals_and_hash", equals_and_hash);
        opts.bool("java_string_check_utf8", o.java_string_check_utf8);
        if let Some(mode) = o.optimize_for {
            let name = file_options::OptimizeMode::try_from(mode)
                .map(|m| m.as_str_name().to_string())
                .unwrap_or_else(|_| mode.to_string());
            opts.enumeration("optimize_for", name);
        }
        opts.string("go_package", &o.go_package);
        opts.bool("cc_generic_services", o.cc_generic_services);
        opts.bool("java_generic_services", o.java_generic_services);
        opts.bool("py_generic_services", o.py_generic_services);
        opts.bool("deprecated", o.deprecated);
        opts.bool("cc_enable_arenas", o.cc_enable_arenas);
        opts.string("objc_class_prefix", &o.objc_class_prefix);
        opts.string("csharp_namespace", &o.csharp_namespace);
        opts.string("swift_prefix", &o.swift_prefix);
        opts.string("php_class_prefix", &o.php_class_prefix);
        opts.string("php_namespace", &o.php_namespace);
        opts.string("php_metadata_namespace", &o.php_metadata_namespace);
        opts.string("ruby_package", &o.ruby_package);
        file.options = opts.0;
    }
    file
}

#[derive(Default)]
struct Options(Vec<OptionElement>);

impl Options {
    fn push(&mut self, name: &str, value: OptionValue) {
        self.0.push(OptionElement { name: name.to_string(), parenthesized: false, value });
    }

    fn string(&mut self, name: &str, value: &Option<String>) {
        if let Some(v) = value {
            self.push(name, OptionValue::String(v.clone()));
        }
    }

    fn bool(&mut self, name: &str, value: Option<bool>) {
        if let Some(v) = value {
            self.push(name, OptionValue::Bool(v.to_string()));
        }
    }

    fn enumeration(&mut self, name: &str, value: String) {
        self.push(name, OptionValue::Enum(value));
    }
}

fn message(d: &DescriptorProto, proto3: bool) -> Message {
    let mut m = Message { name: d.name().to_string(), ..Message::default() };
    let mut oneofs: Vec<OneOf> = d
        .oneof_decl
        .iter()
        .map(|o| OneOf { name: o.name().to_string(), ..OneOf::default() })
        .collect();
    for f in &d.field {
        match f.oneof_index {
            Some(i) if !f.proto3_optional() && (i as usize) < oneofs.len() => {
                oneofs[i as usize].fields.push(field(f, proto3, true));
            }
            _ => m.fields.push(field(f, proto3, false)),
        }
    }
    m.oneofs = oneofs.into_iter().filter(|o| !o.fields.is_empty()).collect();
    m.nested = d.nested_type.iter().map(|n| Type::Message(message(n, proto3))).collect();
    m.nested.extend(d.enum_type.iter().map(|e| Type::Enum(enumeration(e))));
    // Inclusive start, exclusive end.
    for r in &d.reserved_range {
        m.reserved.push(Reserved(vec![range(r.start(), r.end().saturating_sub(1))]));
    }
    for n in &d.reserved_name {
        m.reserved.push(Reserved(vec![Range::Name(n.clone())]));
    }
    for r in &d.extension_range {
        m.extensions.push(Extensions {
            values: vec![range(r.start(), r.end().saturating_sub(1))],
            options: vec![],
        });
    }
    if let Some(o) = &d.options {
        let mut opts = Options::default();
        opts.bool("no_standard_descriptor_accessor", o.no_standard_descriptor_accessor);
        opts.bool("deprecated", o.deprecated);
        opts.bool("map_entry", o.map_entry);
        m.options = opts.0;
    }
    m.extends = extends(&d.extension, proto3);
    m
}

fn range(start: i32, end: i32) -> Range {
    match start == end {
        true => Range::Tag(start.into()),
        false => Range::Span(start.into(), end.into()),
    }
}

fn enumeration(d: &EnumDescriptorProto) -> Enum {
    let constants = d
        .value
        .iter()
        .map(|v| {
            let mut opts = Options::default();
            if let Some(o) = &v.options {
                opts.bool("deprecated", o.deprecated);
            }
            EnumConstant { name: v.name().to_string(), tag: v.number().into(), options: opts.0 }
        })
        .collect();
    let mut reserved: Vec<Reserved> =
        d.reserved_range.iter().map(|r| Reserved(vec![range(r.start(), r.end())])).collect();
    reserved.extend(d.reserved_name.iter().map(|n| Reserved(vec![Range::Name(n.clone())])));
    let mut opts = Options::default();
    if let Some(o) = &d.options {
        opts.bool("allow_alias", o.allow_alias);
        opts.bool("deprecated", o.deprecated);
    }
    Enum { name: d.name().to_string(), options: opts.0, constants, reserved }
}

fn service(d: &ServiceDescriptorProto) -> Service {
    let rpcs = d
        .method
        .iter()
        .map(|m| {
            let mut opts = Options::default();
            if let Some(o) = &m.options {
                opts.bool("deprecated", o.deprecated);
                if let Some(level) = o.idempotency_level {
                    let name = method_options::IdempotencyLevel::try_from(level)
                        .map(|l| l.as_str_name().to_string())
                        .unwrap_or_else(|_| level.to_string());
                    opts.enumeration("idempotency_level", name);
                }
            }
            Rpc {
                name: m.name().to_string(),
                request: m.input_type().to_string(),
                response: m.output_type().to_string(),
                request_streaming: m.client_streaming(),
                response_streaming: m.server_streaming(),
                options: opts.0,
            }
        })
        .collect();
    let mut opts = Options::default();
    if let Some(o) = &d.options {
        opts.bool("deprecated", o.deprecated);
    }
    Service { name: d.name().to_string(), options: opts.0, rpcs }
}

/// Extension fields grouped by their (fully qualified) extendee, first seen first.
fn extends(fields: &[FieldDescriptorProto], proto3: bool) -> Vec<Extend> {
    let mut out: Vec<Extend> = Vec::new();
    for f in fields {
        let field = field(f, proto3, false);
        match out.iter_mut().find(|e| e.name == f.extendee()) {
            Some(e) => e.fields.push(field),
            None => out.push(Extend { name: f.extendee().to_string(), fields: vec![field] }),
        }
    }
    out
}

fn field(f: &FieldDescriptorProto, proto3: bool, in_oneof: bool) -> Field {
    use field_descriptor_proto::Label as L;
    let mut opts = Options::default();
    if let Some(o) = &f.options {
        if let Some(c) = o.ctype {
            let name = field_options::CType::try_from(c)
                .map(|c| c.as_str_name().to_string())
                .unwrap_or_else(|_| c.to_string());
            opts.enumeration("ctype", name);
        }
        opts.bool("packed", o.packed);
        if let Some(j) = o.jstype {
            let name = field_options::JsType::try_from(j)
                .map(|j| j.as_str_name().to_string())
                .unwrap_or_else(|_| j.to_string());
            opts.enumeration("jstype", name);
        }
        opts.bool("deprecated", o.deprecated);
    }
    let label = match (in_oneof, f.proto3_optional(), f.label()) {
        (true, _, _) => None,
        (false, true, _) => Some(Label::Optional),
        (false, false, L::Repeated) => Some(Label::Repeated),
        (false, false, _) if proto3 => None,
        (false, false, L::Required) => Some(Label::Required),
        (false, false, L::Optional) => Some(Label::Optional),
    };
    let ty = match &f.type_name {
        Some(name) => name.clone(),
        None => f.r#type().as_str_name().trim_start_matches("TYPE_").to_ascii_lowercase(),
    };
    Field {
        label,
        ty,
        name: f.name().to_string(),
        tag: f.number().into(),
        default: f.default_value.clone().filter(|_| !proto3),
        json_name: f.json_name.clone(),
        options: opts.0,
    }
}
