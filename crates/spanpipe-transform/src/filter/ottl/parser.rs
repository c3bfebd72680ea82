//! Recursive descent over the tokens: `or` binds loosest, then `and`, then `not`, then comparisons.

use super::lexer::{SyntaxError, Tok, Token, lex};
use super::{Expr, Literal, Operand, Path};

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    end_col: usize,
}

pub fn parse(src: &str) -> Result<Expr, SyntaxError> {
    let toks = lex(src)?;
    if toks.is_empty() {
        return Err(SyntaxError::new(1, "empty condition"));
    }
    let mut p = Parser {
        toks,
        pos: 0,
        end_col: src.chars().count() + 1,
    };
    let e = p.or()?;
    if let Some(t) = p.peek() {
        return Err(SyntaxError::new(
            t.col,
            format!(
                "unexpected {} (expected `and`, `or` or the end)",
                describe(&t.kind)
            ),
        ));
    }
    Ok(e)
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Str(s) => format!("string \"{s}\""),
        Tok::Int(i) => format!("number {i}"),
        Tok::Float(f) => format!("number {f}"),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::LBracket => "`[`".into(),
        Tok::RBracket => "`]`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Dot => "`.`".into(),
        Tok::Op(_) => "a comparison operator".into(),
    }
}

fn is_kw(t: Option<&Token>, kw: &str) -> bool {
    matches!(t, Some(Token { kind: Tok::Ident(s), .. }) if s == kw)
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn peek_at(&self, n: usize) -> Option<&Token> {
        self.toks.get(self.pos + n)
    }

    fn col(&self) -> usize {
        self.peek().map_or(self.end_col, |t| t.col)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<(), SyntaxError> {
        let col = self.col();
        match self.next() {
            Some(t) if t.kind == want => Ok(()),
            Some(t) => Err(SyntaxError::new(
                col,
                format!("expected {what}, found {}", describe(&t.kind)),
            )),
            None => Err(SyntaxError::new(
                col,
                format!("expected {what} before the end"),
            )),
        }
    }

    fn or(&mut self) -> Result<Expr, SyntaxError> {
        let mut items = vec![self.and()?];
        while is_kw(self.peek(), "or") {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, SyntaxError> {
        let mut items = vec![self.not()?];
        while is_kw(self.peek(), "and") {
            self.pos += 1;
            items.push(self.not()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn not(&mut self) -> Result<Expr, SyntaxError> {
        if is_kw(self.peek(), "not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, SyntaxError> {
        let col = self.col();
        match self.peek().map(|t| t.kind.clone()) {
            None => Err(SyntaxError::new(col, "expected a condition before the end")),
            Some(Tok::LParen) => {
                self.pos += 1;
                let e = self.or()?;
                self.expect(Tok::RParen, "`)`")?;
                Ok(e)
            }
            Some(Tok::Ident(name))
                if matches!(
                    self.peek_at(1),
                    Some(Token {
                        kind: Tok::LParen,
                        ..
                    })
                ) =>
            {
                self.function(&name, col)
            }
            Some(Tok::Ident(b))
                if (b == "true" || b == "false")
                    && !matches!(
                        self.peek_at(1),
                        Some(Token {
                            kind: Tok::Op(_),
                            ..
                        })
                    ) =>
            {
                self.pos += 1;
                Ok(Expr::Const(b == "true"))
            }
            Some(_) => {
                let left = self.operand()?;
                let op_col = self.col();
                let op = match self.next() {
                    Some(Token {
                        kind: Tok::Op(op), ..
                    }) => op,
                    _ => {
                        return Err(SyntaxError::new(
                            op_col,
                            "expected a comparison (== != < <= > >=): a value alone is not a condition",
                        ));
                    }
                };
                let right = self.operand()?;
                Ok(Expr::Compare(left, op, right))
            }
        }
    }

    fn function(&mut self, name: &str, col: usize) -> Result<Expr, SyntaxError> {
        if name != "IsMatch" {
            return Err(SyntaxError::new(
                col,
                format!("function {name} is not supported (supported: IsMatch)"),
            ));
        }
        self.pos += 2;
        let target = self.operand()?;
        self.expect(Tok::Comma, "`,`")?;
        let pcol = self.col();
        let pattern = match self.next() {
            Some(Token {
                kind: Tok::Str(p), ..
            }) => p,
            _ => {
                return Err(SyntaxError::new(
                    pcol,
                    "IsMatch needs a string literal pattern",
                ));
            }
        };
        let re = regex::Regex::new(&pattern)
            .map_err(|e| SyntaxError::new(pcol, format!("invalid regular expression: {e}")))?;
        self.expect(Tok::RParen, "`)`")?;
        Ok(Expr::IsMatch(target, re))
    }

    fn operand(&mut self) -> Result<Operand, SyntaxError> {
        let col = self.col();
        let Some(t) = self.next() else {
            return Err(SyntaxError::new(col, "expected a value before the end"));
        };
        Ok(match t.kind {
            Tok::Str(s) => Operand::Literal(Literal::Str(s)),
            Tok::Int(i) => Operand::Literal(Literal::Int(i)),
            Tok::Float(f) => Operand::Literal(Literal::Float(f)),
            Tok::Ident(id) => match id.as_str() {
                "nil" => Operand::Literal(Literal::Nil),
                "true" => Operand::Literal(Literal::Bool(true)),
                "false" => Operand::Literal(Literal::Bool(false)),
                _ => match enum_value(&id) {
                    Some(v) => Operand::Literal(Literal::Int(v)),
                    None => Operand::Path(self.path(id, col)?),
                },
            },
            other => {
                return Err(SyntaxError::new(
                    col,
                    format!("expected a value, found {}", describe(&other)),
                ));
            }
        })
    }

    /// `seg(.seg)*` with an optional `["key"]` after `attributes`.
    fn path(&mut self, first: String, col: usize) -> Result<Path, SyntaxError> {
        let mut segs = vec![first];
        while matches!(self.peek(), Some(Token { kind: Tok::Dot, .. })) {
            self.pos += 1;
            let c = self.col();
            match self.next() {
                Some(Token {
                    kind: Tok::Ident(s),
                    ..
                }) => segs.push(s),
                _ => return Err(SyntaxError::new(c, "expected a name after `.`")),
            }
        }
        if segs.first().is_some_and(|s| s == "span") && segs.len() > 1 {
            segs.remove(0);
        }
        let key = if matches!(
            self.peek(),
            Some(Token {
                kind: Tok::LBracket,
                ..
            })
        ) {
            self.pos += 1;
            let c = self.col();
            let k = match self.next() {
                Some(Token {
                    kind: Tok::Str(k), ..
                }) => k,
                _ => return Err(SyntaxError::new(c, "expected a string key inside [ ]")),
            };
            self.expect(Tok::RBracket, "`]`")?;
            if matches!(
                self.peek(),
                Some(Token {
                    kind: Tok::LBracket,
                    ..
                })
            ) {
                return Err(SyntaxError::new(
                    self.col(),
                    "indexing into nested values is not supported",
                ));
            }
            Some(k)
        } else {
            None
        };
        let joined = segs.join(".");
        let path = match (joined.as_str(), key) {
            ("attributes", Some(k)) => Path::Attribute(k),
            ("resource.attributes", Some(k)) => Path::ResourceAttribute(k),
            ("name", None) => Path::Name,
            ("kind", None) => Path::Kind,
            ("status.code", None) => Path::StatusCode,
            ("status.message", None) => Path::StatusMessage,
            ("instrumentation_scope.name", None) => Path::ScopeName,
            ("instrumentation_scope.version", None) => Path::ScopeVersion,
            ("trace_id.string", None) => Path::TraceId,
            ("span_id.string", None) => Path::SpanId,
            ("parent_span_id.string", None) => Path::ParentSpanId,
            (p, _) => {
                return Err(SyntaxError::new(
                    col,
                    format!(
                        "path `{p}` is not supported (supported: name, kind, status.code, status.message, \
                         attributes[\"k\"], resource.attributes[\"k\"], instrumentation_scope.name, \
                         instrumentation_scope.version, trace_id.string, span_id.string, parent_span_id.string)"
                    ),
                ));
            }
        };
        Ok(path)
    }
}

/// OTTL's enums for spans.
fn enum_value(id: &str) -> Option<i64> {
    Some(match id {
        "SPAN_KIND_UNSPECIFIED" => 0,
        "SPAN_KIND_INTERNAL" => 1,
        "SPAN_KIND_SERVER" => 2,
        "SPAN_KIND_CLIENT" => 3,
        "SPAN_KIND_PRODUCER" => 4,
        "SPAN_KIND_CONSUMER" => 5,
        "STATUS_CODE_UNSET" => 0,
        "STATUS_CODE_OK" => 1,
        "STATUS_CODE_ERROR" => 2,
        _ => return None,
    })
}
