//! A .proto file as Square Wire's parser (`ProtoFileElement`) holds it, which is what
//! Confluent prints (`canonicalString()`) and diffs: names and option values as written,
//! fields apart from oneofs, reserved statements as written, nested messages and enums in
//! one list in declaration order. Made from text (`parse`) or from a FileDescriptorProto
//! (`descriptor`, as Confluent's `toProtoFile(FileDescriptorProto)` makes it).

/// Wire's `MAX_TAG_VALUE`: a reserved range ending here or later prints as `max`.
pub(crate) const MAX_TAG_VALUE: i64 = 536_870_911;

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct File {
    /// `proto2` or `proto3` when the file says so.
    pub(crate) syntax: Option<String>,
    pub(crate) package: Option<String>,
    pub(crate) imports: Vec<String>,
    pub(crate) public_imports: Vec<String>,
    /// Kept, never printed (as Confluent).
    pub(crate) weak_imports: Vec<String>,
    pub(crate) options: Vec<OptionElement>,
    pub(crate) types: Vec<Type>,
    pub(crate) services: Vec<Service>,
    pub(crate) extends: Vec<Extend>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Type {
    Message(Message),
    Enum(Enum),
}

impl Type {
    pub(crate) fn name(&self) -> &str {
        match self {
            Type::Message(m) => &m.name,
            Type::Enum(e) => &e.name,
        }
    }

    pub(crate) fn nested(&self) -> &[Type] {
        match self {
            Type::Message(m) => &m.nested,
            Type::Enum(_) => &[],
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Message {
    pub(crate) name: String,
    pub(crate) options: Vec<OptionElement>,
    pub(crate) reserved: Vec<Reserved>,
    /// Fields outside oneofs, in declaration order.
    pub(crate) fields: Vec<Field>,
    pub(crate) oneofs: Vec<OneOf>,
    pub(crate) groups: Vec<Group>,
    pub(crate) extensions: Vec<Extensions>,
    pub(crate) extends: Vec<Extend>,
    /// Nested messages and enums, in declaration order.
    pub(crate) nested: Vec<Type>,
}

impl Message {
    /// Whether it is a map's synthetic entry (`option map_entry = true`).
    pub(crate) fn is_map_entry(&self) -> bool {
        self.options.iter().any(|o| {
            o.name == "map_entry" && matches!(&o.value, OptionValue::Bool(v) if v == "true")
        })
    }

    /// A field by name, outside oneofs.
    pub(crate) fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Label {
    Optional,
    Required,
    Repeated,
}

impl Label {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Label::Optional => "optional",
            Label::Required => "required",
            Label::Repeated => "repeated",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field {
    /// As written (none in proto3 without a label, in oneofs and for maps).
    pub(crate) label: Option<Label>,
    /// The type as written: `int32`, `Foo`, `.pkg.Foo`, `map<string, Foo>`.
    pub(crate) ty: String,
    pub(crate) name: String,
    pub(crate) tag: i64,
    /// The `default` option's value, taken out of the options (string values unescaped).
    pub(crate) default: Option<String>,
    /// The `json_name` option's value, taken out of the options.
    pub(crate) json_name: Option<String>,
    pub(crate) options: Vec<OptionElement>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct OneOf {
    pub(crate) name: String,
    pub(crate) options: Vec<OptionElement>,
    pub(crate) fields: Vec<Field>,
    pub(crate) groups: Vec<Group>,
}

/// A proto2 `group`: printed with its fields only, as Wire keeps it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Group {
    pub(crate) label: Option<Label>,
    pub(crate) name: String,
    pub(crate) tag: i64,
    pub(crate) fields: Vec<Field>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Enum {
    pub(crate) name: String,
    pub(crate) options: Vec<OptionElement>,
    pub(crate) constants: Vec<EnumConstant>,
    pub(crate) reserved: Vec<Reserved>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EnumConstant {
    pub(crate) name: String,
    pub(crate) tag: i64,
    pub(crate) options: Vec<OptionElement>,
}

/// One value of a `reserved` or `extensions` statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Range {
    Tag(i64),
    /// Inclusive at both ends.
    Span(i64, i64),
    Name(String),
}

/// One `reserved` statement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reserved(pub(crate) Vec<Range>);

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Extensions {
    pub(crate) values: Vec<Range>,
    pub(crate) options: Vec<OptionElement>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Extend {
    pub(crate) name: String,
    pub(crate) fields: Vec<Field>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Service {
    pub(crate) name: String,
    pub(crate) options: Vec<OptionElement>,
    pub(crate) rpcs: Vec<Rpc>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rpc {
    pub(crate) name: String,
    pub(crate) request: String,
    pub(crate) response: String,
    pub(crate) request_streaming: bool,
    pub(crate) response_streaming: bool,
    pub(crate) options: Vec<OptionElement>,
}

/// Wire's `OptionElement`: `name = value`, `(name) = value`, `(name).sub = value`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OptionElement {
    pub(crate) name: String,
    pub(crate) parenthesized: bool,
    pub(crate) value: OptionValue,
}

/// An option's value with Wire's kind; scalars keep the text as written (strings
/// unescaped).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OptionValue {
    String(String),
    Bool(String),
    Number(String),
    Enum(String),
    /// A text-format message: keys in order (`[ext.name]` for extensions).
    Map(Vec<(String, OptionValue)>),
    List(Vec<OptionValue>),
    /// `(name).sub = value`: the `sub = value` part.
    Option(Box<OptionElement>),
}
