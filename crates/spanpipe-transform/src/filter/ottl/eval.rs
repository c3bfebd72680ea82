//! Evaluation with OTTL's comparison rules: a missing attribute is `nil`; `nil` equals only `nil`; ints and
//! floats compare numerically; strings lexically; booleans with false < true; values of different types are
//! unequal (`!=` true, ordering false). Conditions cannot fail at run time.

use std::borrow::Cow;
use std::cmp::Ordering;

use super::{Expr, Literal, Op, Operand, Path};
use crate::span::SpanRef;
use crate::value::{ValueExt, ValueRef, format_double_plain, hex};

/// A value during evaluation.
#[derive(Debug, PartialEq)]
enum Val<'a> {
    Nil,
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Bytes, arrays and maps: only equal to themselves' encodings; no ordering.
    Other(ValueRef<'a>),
}

fn from_ref(v: Option<ValueRef<'_>>) -> Val<'_> {
    match v {
        None | Some(ValueRef::Empty) => Val::Nil,
        Some(ValueRef::Str(s)) => Val::Str(Cow::Borrowed(s)),
        Some(ValueRef::Int(i)) => Val::Int(i),
        Some(ValueRef::Double(d)) => Val::Float(d),
        Some(ValueRef::Bool(b)) => Val::Bool(b),
        Some(other) => Val::Other(other),
    }
}

fn resolve<'a>(o: &'a Operand, s: &SpanRef<'a>) -> Val<'a> {
    match o {
        Operand::Literal(l) => match l {
            Literal::Nil => Val::Nil,
            Literal::Str(x) => Val::Str(Cow::Borrowed(x)),
            Literal::Int(i) => Val::Int(*i),
            Literal::Float(f) => Val::Float(*f),
            Literal::Bool(b) => Val::Bool(*b),
        },
        Operand::Path(p) => match p {
            Path::Name => Val::Str(Cow::Borrowed(s.name)),
            Path::Kind => Val::Int(s.kind),
            Path::StatusCode => Val::Int(s.status_code),
            Path::StatusMessage => Val::Str(Cow::Borrowed(s.status_message)),
            Path::Attribute(k) => from_ref(s.attribute(k)),
            Path::ResourceAttribute(k) => from_ref(s.resource_attribute(k)),
            Path::ScopeName => Val::Str(Cow::Borrowed(s.scope_field(1))),
            Path::ScopeVersion => Val::Str(Cow::Borrowed(s.scope_field(2))),
            Path::TraceId => Val::Str(Cow::Owned(hex(s.trace_id))),
            Path::SpanId => Val::Str(Cow::Owned(hex(s.span_id))),
            Path::ParentSpanId => Val::Str(Cow::Owned(hex(s.parent_span_id))),
        },
    }
}

fn ordered(ord: Option<Ordering>, op: Op) -> bool {
    let Some(o) = ord else { return op == Op::Ne };
    match op {
        Op::Eq => o == Ordering::Equal,
        Op::Ne => o != Ordering::Equal,
        Op::Lt => o == Ordering::Less,
        Op::Le => o != Ordering::Greater,
        Op::Gt => o == Ordering::Greater,
        Op::Ge => o != Ordering::Less,
    }
}

fn compare(a: &Val<'_>, op: Op, b: &Val<'_>) -> bool {
    match (a, b) {
        (Val::Nil, Val::Nil) => matches!(op, Op::Eq),
        (Val::Nil, _) | (_, Val::Nil) => op == Op::Ne,
        (Val::Str(x), Val::Str(y)) => ordered(Some(x.cmp(y)), op),
        (Val::Int(x), Val::Int(y)) => ordered(Some(x.cmp(y)), op),
        (Val::Int(x), Val::Float(y)) => ordered((*x as f64).partial_cmp(y), op),
        (Val::Float(x), Val::Int(y)) => ordered(x.partial_cmp(&(*y as f64)), op),
        (Val::Float(x), Val::Float(y)) => ordered(x.partial_cmp(y), op),
        (Val::Bool(x), Val::Bool(y)) => ordered(Some(x.cmp(y)), op),
        (Val::Other(x), Val::Other(y)) => match op {
            Op::Eq => x == y,
            Op::Ne => x != y,
            _ => false,
        },
        _ => op == Op::Ne,
    }
}

/// OTTL's string form for `IsMatch`: strings as they are, numbers and booleans printed, bytes as hex, arrays
/// and maps as JSON; `nil` has none.
fn string_like<'a>(v: &'a Val<'a>) -> Option<Cow<'a, str>> {
    Some(match v {
        Val::Nil => return None,
        Val::Str(s) => Cow::Borrowed(s.as_ref()),
        Val::Int(i) => Cow::Owned(i.to_string()),
        Val::Float(f) => Cow::Owned(format_double_plain(*f)),
        Val::Bool(b) => Cow::Owned(b.to_string()),
        Val::Other(ValueRef::Bytes(b)) => Cow::Owned(hex(b)),
        Val::Other(other) => Cow::Owned(other.to_json().to_string()),
    })
}

/// Whether the condition holds for the span.
pub fn eval(e: &Expr, s: &SpanRef<'_>) -> bool {
    match e {
        Expr::Or(items) => items.iter().any(|i| eval(i, s)),
        Expr::And(items) => items.iter().all(|i| eval(i, s)),
        Expr::Not(inner) => !eval(inner, s),
        Expr::Const(b) => *b,
        Expr::Compare(a, op, b) => compare(&resolve(a, s), *op, &resolve(b, s)),
        Expr::IsMatch(target, re) => {
            let v = resolve(target, s);
            string_like(&v).is_some_and(|t| re.is_match(&t))
        }
    }
}
