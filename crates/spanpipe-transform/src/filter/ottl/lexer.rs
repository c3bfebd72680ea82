//! Tokens of the OTTL condition subset.

/// One token and the 1-based column it starts at.
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub kind: Tok,
    pub col: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Op(Op),
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A syntax error at a column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub col: usize,
    pub message: String,
}

impl SyntaxError {
    pub fn new(col: usize, message: impl Into<String>) -> Self {
        SyntaxError {
            col,
            message: message.into(),
        }
    }
}

/// Splits a condition into tokens.
pub fn lex(src: &str) -> Result<Vec<Token>, SyntaxError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        let push = |out: &mut Vec<Token>, kind| out.push(Token { kind, col });
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '(' | ')' | '[' | ']' | ',' | '.' => {
                push(
                    &mut out,
                    match c {
                        '(' => Tok::LParen,
                        ')' => Tok::RParen,
                        '[' => Tok::LBracket,
                        ']' => Tok::RBracket,
                        ',' => Tok::Comma,
                        _ => Tok::Dot,
                    },
                );
                i += 1;
            }
            '=' | '!' | '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('=', Some('=')) => (Op::Eq, 2),
                    ('!', Some('=')) => (Op::Ne, 2),
                    ('<', Some('=')) => (Op::Le, 2),
                    ('>', Some('=')) => (Op::Ge, 2),
                    ('<', _) => (Op::Lt, 1),
                    ('>', _) => (Op::Gt, 1),
                    _ => {
                        return Err(SyntaxError::new(
                            col,
                            format!("unexpected '{c}' (comparisons are == != < <= > >=)"),
                        ));
                    }
                };
                push(&mut out, Tok::Op(op));
                i += len;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(SyntaxError::new(col, "unterminated string")),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some('"') => s.push('"'),
                                Some('\\') => s.push('\\'),
                                Some('n') => s.push('\n'),
                                Some('t') => s.push('\t'),
                                Some(other) => {
                                    // Regular expressions keep their escapes (\d, \.).
                                    s.push('\\');
                                    s.push(*other);
                                }
                                None => return Err(SyntaxError::new(col, "unterminated string")),
                            }
                            i += 2;
                        }
                        Some(ch) => {
                            s.push(*ch);
                            i += 1;
                        }
                    }
                }
                push(&mut out, Tok::Str(s));
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while chars.get(i).is_some_and(|c| c.is_ascii_digit()) {
                    i += 1;
                }
                let mut float = false;
                if chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(char::is_ascii_digit)
                {
                    float = true;
                    i += 1;
                    while chars.get(i).is_some_and(|c| c.is_ascii_digit()) {
                        i += 1;
                    }
                }
                let text: String = chars[start..i].iter().collect();
                let kind = if float {
                    Tok::Float(
                        text.parse()
                            .map_err(|_| SyntaxError::new(col, "bad number"))?,
                    )
                } else {
                    Tok::Int(text.parse().map_err(|_| {
                        SyntaxError::new(col, format!("integer {text} does not fit 64 bits"))
                    })?)
                };
                push(&mut out, kind);
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    i += 1;
                }
                push(&mut out, Tok::Ident(chars[start..i].iter().collect()));
            }
            other => {
                return Err(SyntaxError::new(
                    col,
                    format!("unexpected character '{other}'"),
                ));
            }
        }
    }
    Ok(out)
}
