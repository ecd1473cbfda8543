//! Wire's `OptionReader`: `[a = 1, (b).c = "x"]` after a field, `option ... = ...;`
//! statements, and text-format values (`{ key: value ... }`, `[...]`), scalars kept as
//! written with Wire's kind; a key given twice in a `{...}` value collects a list.

use super::super::ast::{OptionElement, OptionValue};
use super::Parser;

impl Parser {
    /// `[a = 1, (b) = 2]` when there, else nothing.
    pub(super) fn options(&mut self) -> Result<Vec<OptionElement>, String> {
        let mut result = Vec::new();
        if !self.peek_is('[')? {
            return Ok(result);
        }
        loop {
            result.push(self.option('=')?);
            if self.peek_is(']')? {
                return Ok(result);
            }
            if !self.peek_is(',')? {
                return Err(self.error("Expected ',' or ']"));
            }
        }
    }

    pub(super) fn option(&mut self, separator: char) -> Result<OptionElement, String> {
        let first = self.peek()?;
        let mut name = self.read_name()?;
        if first == '[' {
            name = format!("[{name}]");
        }
        let mut sub = None;
        let mut c = self.read_char()?;
        if c == '.' {
            sub = Some(self.read_name()?);
            c = self.read_char()?;
        }
        if separator == ':' && c == '{' {
            self.pos -= 1;
        } else if c != separator {
            self.pos -= 1;
            return Err(self.error(&format!("expected '{separator}' in option")));
        }
        let mut value = self.value()?;
        if let Some(sub) = sub {
            value = OptionValue::Option(Box::new(OptionElement {
                name: sub,
                parenthesized: false,
                value,
            }));
        }
        Ok(OptionElement { name, parenthesized: first == '(', value })
    }

    pub(super) fn value(&mut self) -> Result<OptionValue, String> {
        self.enter()?;
        let c = self.peek()?;
        let value = match c {
            '{' => OptionValue::Map(self.map()?),
            '[' => OptionValue::List(self.list()?),
            '"' | '\'' => OptionValue::String(self.read_string()?),
            _ if c.is_ascii_digit() || c == '-' => OptionValue::Number(self.read_word()?),
            _ => match self.read_word()? {
                w if w == "true" || w == "false" => OptionValue::Bool(w),
                w => OptionValue::Enum(w),
            },
        };
        self.depth -= 1;
        Ok(value)
    }

    pub(super) fn map(&mut self) -> Result<Vec<(String, OptionValue)>, String> {
        self.require('{')?;
        let mut result: Vec<(String, OptionValue)> = Vec::new();
        while !self.peek_is('}')? {
            let option = self.option(':')?;
            let (key, value) = match option.value {
                OptionValue::Option(nested) => {
                    let entry = (nested.name, nested.value);
                    match result.iter_mut().find(|(k, _)| *k == option.name) {
                        Some((_, OptionValue::Map(m))) => m.push(entry),
                        _ => result.push((option.name, OptionValue::Map(vec![entry]))),
                    }
                    self.separator()?;
                    continue;
                }
                value => (option.name, value),
            };
            match result.iter_mut().find(|(k, _)| *k == key) {
                None => result.push((key, value)),
                Some((_, previous)) => {
                    let mut list = match std::mem::replace(previous, OptionValue::List(Vec::new()))
                    {
                        OptionValue::List(l) => l,
                        other => vec![other],
                    };
                    match value {
                        OptionValue::List(l) => list.extend(l),
                        v => list.push(v),
                    }
                    *previous = OptionValue::List(list);
                }
            }
            self.separator()?;
        }
        Ok(result)
    }

    pub(super) fn separator(&mut self) -> Result<(), String> {
        if !self.peek_is(',')? {
            self.peek_is(';')?;
        }
        Ok(())
    }

    pub(super) fn list(&mut self) -> Result<Vec<OptionValue>, String> {
        self.require('[')?;
        let mut result = Vec::new();
        loop {
            if self.peek_is(']')? {
                return Ok(result);
            }
            result.push(self.value()?);
            if self.peek_is(',')? {
                continue;
            }
            if self.peek()? != ']' {
                return Err(self.error("expected ',' or ']'"));
            }
        }
    }
}

/// Takes the options named `name` out of `options`; the last one's value as text.
pub(super) fn strip(options: &mut Vec<OptionElement>, name: &str) -> Option<String> {
    let mut result = None;
    options.retain(|o| {
        if o.name != name || o.parenthesized {
            return true;
        }
        result = Some(match &o.value {
            OptionValue::String(s)
            | OptionValue::Bool(s)
            | OptionValue::Number(s)
            | OptionValue::Enum(s) => s.clone(),
            _ => String::new(),
        });
        false
    });
    result
}
