//! Structural truncation of a parsed JSON value within a byte budget.
//!
//! Values are written in document order, compactly, while they fit in a content budget. The first value that
//! does not fit is cut: a string keeps its longest fitting prefix with the marker appended inside the string; a
//! number or literal is replaced by the marker as a string; between elements the marker becomes one more array
//! element (or an object member `"<marker>": null`). Then every open container is closed. The budget keeps room
//! for that one marker and the closers, so the result is valid JSON no longer than `max` (when `max` is too small
//! for even that, the result is the marker alone as a JSON string).

use crate::json::{Node, decode_str, encode_str, encode_str_into};

/// Writes `node` truncated to at most `max` bytes (see the module doc).
pub fn truncate(node: &Node<'_>, max: usize, marker: &str) -> String {
    let marker_tok = encode_str(marker);
    let reserve = 2 * depth(node) + marker_tok.len() + 8;
    let Some(budget) = max.checked_sub(reserve) else {
        return marker_tok;
    };
    let mut w = Writer {
        out: String::with_capacity(max),
        budget,
        marker,
        marker_tok: &marker_tok,
    };
    w.emit(node);
    w.out
}

fn depth(node: &Node<'_>) -> usize {
    match node {
        Node::Object(m) => 1 + m.iter().map(|(_, v)| depth(v)).max().unwrap_or(0),
        Node::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// JSON-escaped length of one character.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

struct Writer<'m> {
    out: String,
    budget: usize,
    marker: &'m str,
    marker_tok: &'m str,
}

impl Writer<'_> {
    fn fits(&self, n: usize) -> bool {
        self.out.len() + n <= self.budget
    }

    /// Writes `node`; false once the budget ran out (the marker has then been written).
    fn emit(&mut self, node: &Node<'_>) -> bool {
        match node {
            Node::Scalar(raw) | Node::Str(raw) if self.fits(raw.len()) => {
                self.out.push_str(raw);
                true
            }
            Node::Str(raw) => {
                self.cut_string(raw);
                false
            }
            Node::Scalar(_) => {
                self.out.push_str(self.marker_tok);
                false
            }
            Node::Array(items) => {
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    let sep = usize::from(i > 0);
                    if !self.fits(sep + 1) {
                        if i > 0 {
                            self.out.push(',');
                        }
                        self.out.push_str(self.marker_tok);
                        self.out.push(']');
                        return false;
                    }
                    if i > 0 {
                        self.out.push(',');
                    }
                    if !self.emit(item) {
                        self.out.push(']');
                        return false;
                    }
                }
                self.out.push(']');
                true
            }
            Node::Object(members) => {
                self.out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    let sep = usize::from(i > 0);
                    if !self.fits(sep + key.len() + 2) {
                        if i > 0 {
                            self.out.push(',');
                        }
                        self.out.push_str(self.marker_tok);
                        self.out.push_str(":null}");
                        return false;
                    }
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.out.push_str(key);
                    self.out.push(':');
                    if !self.emit(value) {
                        self.out.push('}');
                        return false;
                    }
                }
                self.out.push('}');
                true
            }
        }
    }

    /// Writes the longest prefix of the string that fits, with the marker inside the quotes.
    fn cut_string(&mut self, raw: &str) {
        let Some(text) = decode_str(raw) else {
            self.out.push_str(self.marker_tok);
            return;
        };
        let room = self.budget.saturating_sub(self.out.len() + 2);
        let mut used = 0;
        let mut end = 0;
        for (i, c) in text.char_indices() {
            let n = escaped_len(c);
            if used + n > room {
                break;
            }
            used += n;
            end = i + c.len_utf8();
        }
        let mut kept = String::with_capacity(end + self.marker.len());
        kept.push_str(&text[..end]);
        kept.push_str(self.marker);
        encode_str_into(&mut self.out, &kept);
    }
}
