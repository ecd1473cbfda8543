//! .proto text to the element model, reading as Square Wire's `ProtoParser`,
//! `SyntaxReader` and `OptionReader` read: words are runs of letters, digits, `_`, `-`
//! and `.`; names, types and scalar option values are kept as written; `default` and
//! `json_name` are taken out of a field's options. It checks structure only: protox
//! validates the file (names, numbers, imports) beside it.

use super::ast::*;

mod options;

use self::options::strip;

/// Parses `text`; the error says what was expected, and where (1-based line and column).
pub(crate) fn parse(text: &str) -> Result<File, String> {
    let mut p = Parser { data: text.chars().collect(), pos: 0, declarations: 0, depth: 0 };
    p.file()
}

/// How deep messages and option values may nest: the text is network input, and the
/// reader, printer and diff recurse (protobuf's own parsers stop at 100 too).
const MAX_DEPTH: usize = 100;

struct Parser {
    data: Vec<char>,
    pos: usize,
    declarations: usize,
    depth: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Context {
    File,
    Message,
    Enum,
    Service,
    Extend,
}

enum Declaration {
    None,
    Type(Type),
    Service(Service),
    Option(OptionElement),
    Extend(Extend),
    Field(Field),
    OneOf(OneOf),
    Group(Group),
    Reserved(Reserved),
    Extensions(Extensions),
    Constant(EnumConstant),
    Rpc(Rpc),
}

impl Parser {
    // --- Wire's SyntaxReader ---------------------------------------------------------

    fn error(&self, message: &str) -> String {
        let before = &self.data[..self.pos.min(self.data.len())];
        let line = before.iter().filter(|&&c| c == '\n').count() + 1;
        let column = before.iter().rev().take_while(|&&c| c != '\n').count() + 1;
        format!("Syntax error in line {line}, column {column}: {message}")
    }

    fn skip_whitespace(&mut self) -> Result<(), String> {
        while self.pos < self.data.len() {
            let c = self.data[self.pos];
            if c.is_whitespace() {
                self.pos += 1;
            } else if c == '/' && self.data.get(self.pos + 1) == Some(&'/') {
                while self.pos < self.data.len() && self.data[self.pos] != '\n' {
                    self.pos += 1;
                }
            } else if c == '/' && self.data.get(self.pos + 1) == Some(&'*') {
                self.pos += 2;
                loop {
                    if self.pos + 1 >= self.data.len() {
                        return Err(self.error("unterminated comment"));
                    }
                    if self.data[self.pos] == '*' && self.data[self.pos + 1] == '/' {
                        self.pos += 2;
                        break;
                    }
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
        Ok(())
    }

    fn exhausted(&mut self) -> Result<bool, String> {
        self.skip_whitespace()?;
        Ok(self.pos >= self.data.len())
    }

    fn peek(&mut self) -> Result<char, String> {
        self.skip_whitespace()?;
        self.data.get(self.pos).copied().ok_or_else(|| self.error("unexpected end of file"))
    }

    /// Consumes `c` when it is next.
    fn peek_is(&mut self, c: char) -> Result<bool, String> {
        if self.peek()? == c {
            self.pos += 1;
            return Ok(true);
        }
        Ok(false)
    }

    fn read_char(&mut self) -> Result<char, String> {
        let c = self.peek()?;
        self.pos += 1;
        Ok(c)
    }

    fn require(&mut self, c: char) -> Result<(), String> {
        if self.read_char()? != c {
            self.pos -= 1;
            return Err(self.error(&format!("expected '{c}'")));
        }
        Ok(())
    }

    fn read_word(&mut self) -> Result<String, String> {
        self.skip_whitespace()?;
        let start = self.pos;
        while let Some(&c) = self.data.get(self.pos) {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                self.pos += 1;
            } else {
                break;
            }
        }
        if start == self.pos {
            return Err(self.error("expected a word"));
        }
        Ok(self.data[start..self.pos].iter().collect())
    }

    /// A name, or `(name)` and `[name]` with the brackets dropped.
    fn read_name(&mut self) -> Result<String, String> {
        let close = match self.peek()? {
            '(' => ')',
            '[' => ']',
            _ => return self.read_word(),
        };
        self.pos += 1;
        let name = self.read_word()?;
        self.require(close)?;
        Ok(name)
    }

    fn read_int(&mut self) -> Result<i64, String> {
        let word = self.read_word()?;
        parse_int(&word).ok_or_else(|| self.error(&format!("expected an integer but was {word}")))
    }

    fn read_data_type(&mut self) -> Result<String, String> {
        let word = self.read_word()?;
        self.data_type(word)
    }

    fn data_type(&mut self, word: String) -> Result<String, String> {
        if word != "map" || self.peek()? != '<' {
            return Ok(word);
        }
        self.require('<')?;
        let key = self.read_data_type()?;
        self.require(',')?;
        let value = self.read_data_type()?;
        self.require('>')?;
        Ok(format!("map<{key}, {value}>"))
    }

    /// A quoted string (adjacent ones concatenated), else a word.
    fn read_string(&mut self) -> Result<String, String> {
        match self.peek()? {
            '"' | '\'' => self.read_quoted_string(),
            _ => self.read_word(),
        }
    }

    fn read_quoted_string(&mut self) -> Result<String, String> {
        let mut quote = self.read_char()?;
        let mut out = String::new();
        loop {
            let Some(&c) = self.data.get(self.pos) else {
                return Err(self.error("unterminated string"));
            };
            self.pos += 1;
            if c == quote {
                // Adjacent strings are concatenated.
                self.skip_whitespace()?;
                match self.data.get(self.pos) {
                    Some(&q) if q == '"' || q == '\'' => {
                        self.pos += 1;
                        quote = q;
                        continue;
                    }
                    _ => return Ok(out),
                }
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some(&e) = self.data.get(self.pos) else {
                return Err(self.error("unterminated string"));
            };
            self.pos += 1;
            out.push(match e {
                'a' => '\u{7}',
                'b' => '\u{8}',
                'f' => '\u{c}',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'v' => '\u{b}',
                'x' | 'X' => self.numeric_escape(16, 2)?,
                '0'..='7' => {
                    self.pos -= 1;
                    self.numeric_escape(8, 3)?
                }
                other => other,
            });
        }
    }

    fn numeric_escape(&mut self, radix: u32, max: usize) -> Result<char, String> {
        let mut value = 0u32;
        let mut n = 0;
        while n < max {
            let Some(d) = self.data.get(self.pos).and_then(|c| c.to_digit(radix)) else {
                break;
            };
            value = value * radix + d;
            self.pos += 1;
            n += 1;
        }
        if n == 0 {
            return Err(self.error("expected a digit after \\x or \\X"));
        }
        Ok(char::from_u32(value).unwrap_or('\u{fffd}'))
    }

    // --- Wire's ProtoParser ----------------------------------------------------------

    fn file(&mut self) -> Result<File, String> {
        let mut file = File::default();
        while !self.exhausted()? {
            match self.declaration(Context::File, &mut file)? {
                Declaration::Type(t) => file.types.push(t),
                Declaration::Service(s) => file.services.push(s),
                Declaration::Option(o) => file.options.push(o),
                Declaration::Extend(e) => file.extends.push(e),
                Declaration::None => {}
                _ => return Err(self.error("unexpected declaration at the top level")),
            }
        }
        Ok(file)
    }

    fn declaration(&mut self, context: Context, file: &mut File) -> Result<Declaration, String> {
        let index = self.declarations;
        self.declarations += 1;
        if self.peek_is(';')? {
            return Ok(Declaration::None);
        }
        let start = self.pos;
        let label = self.read_word()?;
        let top = context == Context::File;
        Ok(match label.as_str() {
            "package" if top => {
                if file.package.is_some() {
                    return Err(self.error("too many package names"));
                }
                file.package = Some(self.read_name()?);
                self.require(';')?;
                Declaration::None
            }
            "import" if top => {
                let name = self.read_string()?;
                let (list, name) = match name.as_str() {
                    "public" => (&mut file.public_imports, self.read_string()?),
                    "weak" => (&mut file.weak_imports, self.read_string()?),
                    _ => (&mut file.imports, name),
                };
                if !list.contains(&name) {
                    list.push(name);
                }
                self.require(';')?;
                Declaration::None
            }
            "syntax" if top => {
                self.require('=')?;
                if index != 0 {
                    self.pos = start;
                    return Err(
                        self.error("'syntax' element must be the first declaration in a file")
                    );
                }
                let syntax = self.read_quoted_string()?;
                if syntax != "proto2" && syntax != "proto3" {
                    return Err(self.error(&format!("unexpected syntax: {syntax}")));
                }
                file.syntax = Some(syntax);
                self.require(';')?;
                Declaration::None
            }
            "edition" if top => return Err(self.error("editions are not supported")),
            "option" => {
                let option = self.option('=')?;
                self.require(';')?;
                Declaration::Option(option)
            }
            "reserved" if matches!(context, Context::Message | Context::Enum) => {
                Declaration::Reserved(self.reserved()?)
            }
            "message" if matches!(context, Context::File | Context::Message) => {
                Declaration::Type(Type::Message(self.message(file)?))
            }
            "enum" if matches!(context, Context::File | Context::Message) => {
                Declaration::Type(Type::Enum(self.enumeration(file)?))
            }
            "service" if top => Declaration::Service(self.service(file)?),
            "extend" if matches!(context, Context::File | Context::Message) => {
                Declaration::Extend(self.extend(file)?)
            }
            "rpc" if context == Context::Service => Declaration::Rpc(self.rpc(file)?),
            "oneof" if context == Context::Message => Declaration::OneOf(self.oneof()?),
            "extensions" if context == Context::Message => {
                Declaration::Extensions(self.extensions()?)
            }
            _ if matches!(context, Context::Message | Context::Extend) => self.field(label)?,
            _ if context == Context::Enum => Declaration::Constant(self.constant(label)?),
            _ => {
                self.pos = start;
                return Err(self.error(&format!("unexpected label: {label}")));
            }
        })
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(&format!("nested more than {MAX_DEPTH} levels deep")));
        }
        Ok(())
    }

    fn message(&mut self, file: &mut File) -> Result<Message, String> {
        self.enter()?;
        let mut message = Message { name: self.read_name()?, ..Message::default() };
        self.require('{')?;
        while !self.peek_is('}')? {
            match self.declaration(Context::Message, file)? {
                Declaration::Field(f) => message.fields.push(f),
                Declaration::OneOf(o) => message.oneofs.push(o),
                Declaration::Group(g) => message.groups.push(g),
                Declaration::Type(t) => message.nested.push(t),
                Declaration::Extensions(e) => message.extensions.push(e),
                Declaration::Option(o) => message.options.push(o),
                Declaration::Extend(e) => message.extends.push(e),
                Declaration::Reserved(r) => message.reserved.push(r),
                _ => {}
            }
        }
        self.depth -= 1;
        Ok(message)
    }

    fn extend(&mut self, file: &mut File) -> Result<Extend, String> {
        let mut extend = Extend { name: self.read_name()?, fields: Vec::new() };
        self.require('{')?;
        while !self.peek_is('}')? {
            if let Declaration::Field(f) = self.declaration(Context::Extend, file)? {
                extend.fields.push(f);
            }
        }
        Ok(extend)
    }

    fn service(&mut self, file: &mut File) -> Result<Service, String> {
        let mut service = Service { name: self.read_name()?, ..Service::default() };
        self.require('{')?;
        while !self.peek_is('}')? {
            match self.declaration(Context::Service, file)? {
                Declaration::Rpc(r) => service.rpcs.push(r),
                Declaration::Option(o) => service.options.push(o),
                _ => {}
            }
        }
        Ok(service)
    }

    fn enumeration(&mut self, file: &mut File) -> Result<Enum, String> {
        let mut e = Enum { name: self.read_name()?, ..Enum::default() };
        self.require('{')?;
        while !self.peek_is('}')? {
            match self.declaration(Context::Enum, file)? {
                Declaration::Constant(c) => e.constants.push(c),
                Declaration::Option(o) => e.options.push(o),
                Declaration::Reserved(r) => e.reserved.push(r),
                _ => {}
            }
        }
        Ok(e)
    }

    fn constant(&mut self, name: String) -> Result<EnumConstant, String> {
        self.require('=')?;
        let tag = self.read_int()?;
        let options = self.options()?;
        self.require(';')?;
        Ok(EnumConstant { name, tag, options })
    }

    fn field(&mut self, word: String) -> Result<Declaration, String> {
        let (label, ty) = match word.as_str() {
            "required" => (Some(Label::Required), self.read_data_type()?),
            "optional" => (Some(Label::Optional), self.read_data_type()?),
            "repeated" => (Some(Label::Repeated), self.read_data_type()?),
            _ => (None, self.data_type(word)?),
        };
        if ty == "group" {
            return Ok(Declaration::Group(self.group(label)?));
        }
        Ok(Declaration::Field(self.field_rest(label, ty)?))
    }

    fn field_rest(&mut self, label: Option<Label>, ty: String) -> Result<Field, String> {
        let name = self.read_name()?;
        self.require('=')?;
        let tag = self.read_int()?;
        let mut options = self.options()?;
        let default = strip(&mut options, "default");
        let json_name = strip(&mut options, "json_name");
        self.require(';')?;
        Ok(Field { label, ty, name, tag, default, json_name, options })
    }

    fn oneof(&mut self) -> Result<OneOf, String> {
        let mut oneof = OneOf { name: self.read_name()?, ..OneOf::default() };
        self.require('{')?;
        while !self.peek_is('}')? {
            if self.peek_is(';')? {
                continue;
            }
            let word = self.read_word()?;
            if word == "option" {
                let option = self.option('=')?;
                self.require(';')?;
                oneof.options.push(option);
                continue;
            }
            let ty = self.data_type(word)?;
            if ty == "group" {
                oneof.groups.push(self.group(None)?);
            } else {
                oneof.fields.push(self.field_rest(None, ty)?);
            }
        }
        Ok(oneof)
    }

    fn group(&mut self, label: Option<Label>) -> Result<Group, String> {
        let name = self.read_word()?;
        self.require('=')?;
        let tag = self.read_int()?;
        let mut group = Group { label, name, tag, fields: Vec::new() };
        let _ = self.options()?;
        self.require('{')?;
        while !self.peek_is('}')? {
            if self.peek_is(';')? {
                continue;
            }
            let word = self.read_word()?;
            if let Declaration::Field(f) = self.field(word)? {
                group.fields.push(f);
            }
        }
        Ok(group)
    }

    fn ranges(&mut self, names: bool) -> Result<Vec<Range>, String> {
        let mut values = Vec::new();
        loop {
            match self.peek()? {
                '"' | '\'' if names => values.push(Range::Name(self.read_quoted_string()?)),
                _ => {
                    let start = self.read_int()?;
                    match self.peek()? {
                        ',' | ';' | '[' => values.push(Range::Tag(start)),
                        _ => {
                            if self.read_word()? != "to" {
                                return Err(self.error("expected ',', ';', or 'to'"));
                            }
                            let end = match self.read_word()?.as_str() {
                                "max" => MAX_TAG_VALUE,
                                word => parse_int(word)
                                    .ok_or_else(|| self.error("expected an integer"))?,
                            };
                            values.push(Range::Span(start, end));
                        }
                    }
                }
            }
            if !self.peek_is(',')? {
                return Ok(values);
            }
        }
    }

    fn reserved(&mut self) -> Result<Reserved, String> {
        let values = self.ranges(true)?;
        self.require(';')?;
        Ok(Reserved(values))
    }

    fn extensions(&mut self) -> Result<Extensions, String> {
        let values = self.ranges(false)?;
        let options = self.options()?;
        self.require(';')?;
        Ok(Extensions { values, options })
    }

    fn rpc(&mut self, file: &mut File) -> Result<Rpc, String> {
        let name = self.read_name()?;
        let stream_and_type = |p: &mut Parser| -> Result<(bool, String), String> {
            p.require('(')?;
            let mut ty = p.read_data_type()?;
            let streaming = ty == "stream";
            if streaming {
                ty = p.read_data_type()?;
            }
            p.require(')')?;
            Ok((streaming, ty))
        };
        let (request_streaming, request) = stream_and_type(self)?;
        if self.read_word()? != "returns" {
            return Err(self.error("expected 'returns'"));
        }
        let (response_streaming, response) = stream_and_type(self)?;
        let mut options = Vec::new();
        if self.peek_is('{')? {
            while !self.peek_is('}')? {
                if let Declaration::Option(o) = self.declaration(Context::Service, file)? {
                    options.push(o);
                }
            }
        } else {
            self.require(';')?;
        }
        Ok(Rpc { name, request, response, request_streaming, response_streaming, options })
    }
}

/// A decimal, hexadecimal (`0x`) or octal (leading `0`) integer, maybe negative.
pub(crate) fn parse_int(word: &str) -> Option<i64> {
    let (negative, digits) = match word.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, word),
    };
    let value = if let Some(hex) = digits.strip_prefix("0x").or(digits.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse::<i64>().ok()?
    };
    Some(if negative { -value } else { value })
}
