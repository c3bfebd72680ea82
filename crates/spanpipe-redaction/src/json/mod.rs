//! A small strict JSON parser that borrows from its input, and string escaping.
//!
//! Masking and truncation must keep JSON-encoded attribute values (MLflow's `mlflow.spanInputs`) valid JSON and
//! must see through escapes (`\u0040` is `@`). The parser keeps string tokens raw (with quotes) so untouched
//! parts are copied byte for byte and object key order is preserved; nesting deeper than [`MAX_DEPTH`] is
//! treated as "not JSON" so hostile input cannot exhaust the stack.

#[cfg(test)]
mod tests;

use std::borrow::Cow;

/// Deepest nesting parsed.
pub const MAX_DEPTH: usize = 64;

/// A parsed JSON value; strings and scalars are raw slices of the input.
#[derive(Debug, PartialEq)]
pub enum Node<'a> {
    /// Members as (raw key token with quotes, value).
    Object(Vec<(&'a str, Node<'a>)>),
    Array(Vec<Node<'a>>),
    /// A raw string token, quotes included.
    Str(&'a str),
    /// A raw number, `true`, `false` or `null`.
    Scalar(&'a str),
}

/// The text is not (strict) JSON, or nests deeper than [`MAX_DEPTH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not JSON")]
pub struct NotJson;

/// True when the first non-whitespace character opens an object, an array or a string: only such values are
/// worth parsing (a bare number or word is left to plain-text handling).
pub fn looks_like_json(s: &str) -> bool {
    matches!(
        s.bytes().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[' | b'"')
    )
}

/// Parses a complete JSON text (whitespace around it allowed).
pub fn parse(s: &str) -> Result<Node<'_>, NotJson> {
    let mut p = Parser {
        s,
        b: s.as_bytes(),
        pos: 0,
    };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.pos != p.b.len() {
        return Err(NotJson);
    }
    Ok(v)
}

/// The content of a raw string token (`"..."`), unescaped; `None` for escapes that decode to no valid string
/// (a lone surrogate).
pub fn decode_str(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
}

/// Appends `s` as a JSON string token.
pub fn encode_str_into(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            c if (c as u32) < 0x20 => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => out.push_str(&format!("\\u{:04x}", c as u32)),
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// `s` as a JSON string token.
pub fn encode_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    encode_str_into(&mut out, s);
    out
}

/// End (exclusive) of the string token starting at `start` (a `"`), checking escapes and control characters.
pub fn string_end(b: &[u8], start: usize) -> Result<usize, NotJson> {
    if b.get(start) != Some(&b'"') {
        return Err(NotJson);
    }
    let mut i = start + 1;
    loop {
        // Fast skip to the next quote, backslash or control byte.
        match b.get(i..).and_then(|rest| {
            rest.iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        }) {
            None => return Err(NotJson),
            Some(off) => i += off,
        }
        match b[i] {
            b'"' => return Ok(i + 1),
            b'\\' => match b.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => {
                    let hex = b.get(i + 2..i + 6).ok_or(NotJson)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err(NotJson);
                    }
                    i += 6;
                }
                _ => return Err(NotJson),
            },
            _ => return Err(NotJson),
        }
    }
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn slice(&self, start: usize) -> Result<&'a str, NotJson> {
        self.s.get(start..self.pos).ok_or(NotJson)
    }

    fn value(&mut self, depth: usize) -> Result<Node<'a>, NotJson> {
        if depth > MAX_DEPTH {
            return Err(NotJson);
        }
        match self.b.get(self.pos) {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Node::Str),
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'n') => self.literal("null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(NotJson),
        }
    }

    fn string(&mut self) -> Result<&'a str, NotJson> {
        let start = self.pos;
        self.pos = string_end(self.b, start)?;
        self.slice(start)
    }

    fn literal(&mut self, word: &'static str) -> Result<Node<'a>, NotJson> {
        let start = self.pos;
        if self.b.get(start..start + word.len()) != Some(word.as_bytes()) {
            return Err(NotJson);
        }
        self.pos += word.len();
        self.slice(start).map(Node::Scalar)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.b.get(self.pos), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Node<'a>, NotJson> {
        let start = self.pos;
        self.eat(b'-');
        if self.eat(b'0') {
            if matches!(self.b.get(self.pos), Some(b'0'..=b'9')) {
                return Err(NotJson);
            }
        } else if self.digits() == 0 {
            return Err(NotJson);
        }
        if self.eat(b'.') && self.digits() == 0 {
            return Err(NotJson);
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return Err(NotJson);
            }
        }
        self.slice(start).map(Node::Scalar)
    }

    fn array(&mut self, depth: usize) -> Result<Node<'a>, NotJson> {
        self.pos += 1;
        let mut items = Vec::new();
        self.ws();
        if self.eat(b']') {
            return Ok(Node::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth + 1)?);
            self.ws();
            if self.eat(b']') {
                return Ok(Node::Array(items));
            }
            if !self.eat(b',') {
                return Err(NotJson);
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Node<'a>, NotJson> {
        self.pos += 1;
        let mut members = Vec::new();
        self.ws();
        if self.eat(b'}') {
            return Ok(Node::Object(members));
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.ws();
            if !self.eat(b':') {
                return Err(NotJson);
            }
            self.ws();
            members.push((key, self.value(depth + 1)?));
            self.ws();
            if self.eat(b'}') {
                return Ok(Node::Object(members));
            }
            if !self.eat(b',') {
                return Err(NotJson);
            }
        }
    }
}
