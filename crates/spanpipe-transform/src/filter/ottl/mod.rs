//! A documented subset of OTTL conditions in the span context, parsed once at build and evaluated against the
//! encoded span without decoding it.
//!
//! Supported: paths `name`, `kind`, `status.code`, `status.message`, `attributes["k"]`,
//! `resource.attributes["k"]`, `instrumentation_scope.name` / `.version`, `trace_id.string`, `span_id.string`,
//! `parent_span_id.string` (each also with a `span.` prefix); literals: strings, ints, floats, `true`, `false`,
//! `nil`, `SPAN_KIND_*`, `STATUS_CODE_*`; comparisons `==`, `!=`, `<`, `<=`, `>`, `>=` with OTTL's typing rules;
//! `IsMatch(<value>, "<regexp>")`; `and`, `or`, `not` and parentheses. Anything else is a config error.

mod eval;
mod lexer;
mod parser;
#[cfg(test)]
mod tests;

use regex::Regex;

pub use lexer::{Op, SyntaxError};

/// A field of the span or its context.
#[derive(Clone, Debug, PartialEq)]
pub enum Path {
    Name,
    Kind,
    StatusCode,
    StatusMessage,
    Attribute(String),
    ResourceAttribute(String),
    ScopeName,
    ScopeVersion,
    TraceId,
    SpanId,
    ParentSpanId,
}

/// A literal value.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Nil,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// Either side of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    Path(Path),
    Literal(Literal),
}

/// A boolean expression.
#[derive(Clone, Debug)]
pub enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Compare(Operand, Op, Operand),
    IsMatch(Operand, Regex),
    Const(bool),
}

/// Parses one condition.
pub fn parse(src: &str) -> Result<Expr, SyntaxError> {
    parser::parse(src)
}

pub use eval::eval;
