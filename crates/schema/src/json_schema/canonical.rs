//! The canonical text of a JSON Schema as Confluent's registry prints it: compact JSON, keys
//! in document order (a repeated key keeps its first place and its last value), strings
//! escaped as Jackson escapes them, and numbers as its JSON Schema mapper keeps them:
//! integers as integers, decimals as exact `BigDecimal`s (`USE_BIG_DECIMAL_FOR_FLOATS`
//! with exact decimals), printed by `BigDecimal.toString()`: `0.10` stays `0.10`, `1e3`
//! becomes `1E+3`. (`crate::json` prints decimals as Java doubles, as Avro's mapper does.)

use crate::json::write_string;

/// The canonical text of `text`, which must be valid JSON (already parsed once).
pub(crate) fn canonical(text: &str) -> Result<String, String> {
    print(text, false)
}

/// The normalized text of `text` (`normalize=true`): the canonical text with every
/// object's keys sorted, as Confluent's normalizing mapper orders them (by UTF-16 code
/// units, Java's `String.compareTo`).
pub(crate) fn normalized(text: &str) -> Result<String, String> {
    print(text, true)
}

fn print(text: &str, sorted: bool) -> Result<String, String> {
    let mut reader = Reader { s: text.as_bytes(), i: 0, sorted };
    let mut out = String::with_capacity(text.len());
    reader.value(&mut out)?;
    Ok(out)
}

struct Reader<'a> {
    s: &'a [u8],
    i: usize,
    sorted: bool,
}

impl Reader<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Result<u8, String> {
        self.skip_ws();
        self.s.get(self.i).copied().ok_or_else(|| "unexpected end of JSON".to_string())
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        match self.peek()? == b {
            true => {
                self.i += 1;
                Ok(())
            }
            false => Err(format!("expected '{}' at {}", b as char, self.i)),
        }
    }

    fn value(&mut self, out: &mut String) -> Result<(), String> {
        match self.peek()? {
            b'{' => self.object(out),
            b'[' => {
                self.i += 1;
                out.push('[');
                if self.peek()? == b']' {
                    self.i += 1;
                } else {
                    loop {
                        self.value(out)?;
                        match self.peek()? {
                            b',' => {
                                self.i += 1;
                                out.push(',');
                            }
                            _ => {
                                self.expect(b']')?;
                                break;
                            }
                        }
                    }
                }
                out.push(']');
                Ok(())
            }
            b'"' => {
                let s = self.string()?;
                write_string(&s, out);
                Ok(())
            }
            b't' | b'f' | b'n' => {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i].is_ascii_alphabetic() {
                    self.i += 1;
                }
                out.push_str(
                    std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?,
                );
                Ok(())
            }
            _ => self.number(out),
        }
    }

    fn object(&mut self, out: &mut String) -> Result<(), String> {
        self.expect(b'{')?;
        let mut members: Vec<(String, String)> = Vec::new();
        if self.peek()? == b'}' {
            self.i += 1;
        } else {
            loop {
                if self.peek()? != b'"' {
                    return Err(format!("expected a key at {}", self.i));
                }
                let key = self.string()?;
                self.expect(b':')?;
                let mut value = String::new();
                self.value(&mut value)?;
                match members.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = value,
                    None => members.push((key, value)),
                }
                match self.peek()? {
                    b',' => self.i += 1,
                    _ => {
                        self.expect(b'}')?;
                        break;
                    }
                }
            }
        }
        if self.sorted {
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
        }
        out.push('{');
        for (n, (k, v)) in members.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            write_string(k, out);
            out.push(':');
            out.push_str(v);
        }
        out.push('}');
        Ok(())
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut units: Vec<u16> = Vec::new();
        let mut out = String::new();
        loop {
            let start = self.i;
            while self.i < self.s.len() && !matches!(self.s[self.i], b'"' | b'\\') {
                self.i += 1;
            }
            if !units.is_empty() && self.i > start {
                out.push_str(&String::from_utf16_lossy(&units));
                units.clear();
            }
            out.push_str(std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?);
            match self.s.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    out.push_str(&String::from_utf16_lossy(&units));
                    return Ok(out);
                }
                Some(b'\\') => {
                    let c = *self.s.get(self.i + 1).ok_or("unterminated string")?;
                    self.i += 2;
                    let simple = match c {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hex = self.s.get(self.i..self.i + 4).ok_or("bad escape")?;
                            let hex = std::str::from_utf8(hex).map_err(|e| e.to_string())?;
                            units.push(u16::from_str_radix(hex, 16).map_err(|e| e.to_string())?);
                            self.i += 4;
                            continue;
                        }
                        other => return Err(format!("bad escape '\\{}'", other as char)),
                    };
                    out.push_str(&String::from_utf16_lossy(&units));
                    units.clear();
                    out.push(simple);
                }
                _ => return Err("unterminated string".into()),
            }
        }
    }

    fn number(&mut self, out: &mut String) -> Result<(), String> {
        let start = self.i;
        while self.i < self.s.len()
            && matches!(self.s[self.i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
        {
            self.i += 1;
        }
        let lexeme = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
        if lexeme.is_empty() {
            return Err(format!("unexpected character at {start}"));
        }
        out.push_str(&number(lexeme));
        Ok(())
    }
}

/// A JSON number as Jackson prints the node it reads it into: an integer as an integer, a
/// decimal by `BigDecimal.toString()`.
fn number(lexeme: &str) -> String {
    let (negative, rest) = match lexeme.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, lexeme),
    };
    let (mantissa, exponent) = match rest.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (rest, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = format!("{int}{frac}").trim_start_matches('0').to_string();
    let zero = digits.is_empty();
    let coeff = if zero { "0".to_string() } else { digits };
    let sign = if negative && !zero { "-" } else { "" };
    if exponent.is_none() && frac.is_empty() && !mantissa.contains('.') {
        return format!("{sign}{coeff}");
    }
    let exp: i64 = exponent.map_or(0, |e| e.parse().unwrap_or(0));
    let scale = frac.len() as i64 - exp;
    if scale == 0 {
        return format!("{sign}{coeff}");
    }
    let adjusted = -scale + (coeff.len() as i64 - 1);
    if scale > 0 && adjusted >= -6 {
        let len = coeff.len() as i64;
        let plain = match len - scale {
            whole if whole > 0 => {
                format!("{}.{}", &coeff[..whole as usize], &coeff[whole as usize..])
            }
            whole => format!("0.{}{coeff}", "0".repeat((-whole) as usize)),
        };
        return format!("{sign}{plain}");
    }
    let mut s = format!("{sign}{}", &coeff[..1]);
    if coeff.len() > 1 {
        s.push('.');
        s.push_str(&coeff[1..]);
    }
    s.push('E');
    if adjusted >= 0 {
        s.push('+');
    }
    s.push_str(&adjusted.to_string());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_print_as_big_decimals() {
        let cases = [
            ("0", "0"),
            ("-0", "0"),
            ("42", "42"),
            ("-7", "-7"),
            ("123456789012345678901234567890", "123456789012345678901234567890"),
            ("1.0", "1.0"),
            ("0.10", "0.10"),
            ("-0.0", "0.0"),
            ("0.05", "0.05"),
            ("100.5", "100.5"),
            ("12345678.9", "12345678.9"),
            ("99999999.99", "99999999.99"),
            ("0.0001", "0.0001"),
            ("1.5e-5", "0.000015"),
            ("1e-7", "1E-7"),
            ("1e3", "1E+3"),
            ("1.0e3", "1.0E+3"),
            ("1E10", "1E+10"),
            ("2.5E+2", "2.5E+2"),
            ("25e-1", "2.5"),
            ("0e3", "0E+3"),
            ("-1.25e2", "-125"),
        ];
        for (input, want) in cases {
            assert_eq!(number(input), want, "{input}");
        }
    }

    #[test]
    fn documents_print_compactly_in_order() {
        let text = "{ \"b\" : [1, 2.50, {\"x\": \"\\u00e9\\/\\n\\ud83d\\ude00\"}], \"a\": true, \"b\": null,\n \"c\": {} , \"d\": [] }";
        assert_eq!(canonical(text).unwrap(), "{\"b\":null,\"a\":true,\"c\":{},\"d\":[]}");
        let text = "[1, 2.50, {\"x\": \"\\u00e9\\/\\n\\ud83d\\ude00\\\"\"}, false]";
        assert_eq!(canonical(text).unwrap(), "[1,2.50,{\"x\":\"é/\\n😀\\\"\"},false]");
    }
}
