//! The receiver's check of a traces request, in its one scan: after it, every decoder downstream may rely on
//! valid input.
//!
//! Checked: the protobuf structure down to every span; trace and span id lengths; UTF-8 of every field OTLP types
//! as `string` (span name and trace state, status message, event names, link trace states, scope name and
//! version, schema URLs, every attribute key and string value at any depth, on resources, scopes, spans, events
//! and links); the nesting depth of every attribute value. A span is invalid when it, its scope or its resource
//! fails; a request whose framing above the spans is broken (or whose schema URL is not UTF-8) is invalid as a
//! whole.

use super::fields::{
    event as evf, link as lkf, request as rq, resource as resf, resource_spans as rsf,
    scope as scf, scope_spans as ssf, span as sf,
};
// ScopeSpans has the same shape as ResourceSpans (1 message, 2 repeated message, 3 schema URL).
use super::rewrite::{Outcome, SpanEdit, SpanEditor, rewrite_spans};
use super::value::{MAX_DEPTH, check_key_value, check_utf8, key_value, utf8};
use super::{Field, Reader, SpanCtx, SpanView, WireError};

/// What the door found in a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DoorReport {
    /// Spans in the request, valid or not.
    pub spans: usize,
    /// Spans that failed a check (with their scope or resource).
    pub invalid_spans: usize,
    /// The first failure, for the answer to the client.
    pub first_error: Option<WireError>,
}

/// Checks an encoded `ExportTraceServiceRequest`: `Err` when its structure above the spans is broken (nothing in
/// it can be kept), else a report of how many spans are invalid. `max_depth` is capped at [`MAX_DEPTH`].
pub fn check_traces(buf: &[u8], max_depth: usize) -> Result<DoorReport, WireError> {
    check(buf, max_depth, |_| {})
}

/// [`check_traces`], calling `verdict(valid)` for every span in wire order (the order [`rewrite_spans`] visits
/// them in).
fn check(
    buf: &[u8],
    max_depth: usize,
    mut verdict: impl FnMut(bool),
) -> Result<DoorReport, WireError> {
    let depth = max_depth.min(MAX_DEPTH);
    let mut report = DoorReport::default();
    let fail = |report: &mut DoorReport, e: WireError, n: usize| {
        report.invalid_spans += n;
        if report.first_error.is_none() {
            report.first_error = Some(e);
        }
    };
    let mut r = Reader::new(buf);
    while let Some((n, f)) = r.next_field()? {
        if n != rq::RESOURCE_SPANS {
            continue;
        }
        let rs = f.bytes("resource_spans")?;
        let mut resource_ok = Ok(());
        let mut scopes: Vec<&[u8]> = Vec::new();
        let mut r = Reader::new(rs);
        while let Some((n, f)) = r.next_field()? {
            typed(RESOURCE_SPANS, n, f, "resource_spans")?;
            match n {
                rsf::RESOURCE if resource_ok.is_ok() => {
                    resource_ok = check_resource(f.bytes("resource")?, depth);
                }
                rsf::SCOPE_SPANS => scopes.push(f.bytes("scope_spans")?),
                rsf::SCHEMA_URL => {
                    utf8(f.bytes("schema_url")?)
                        .map_err(|_| WireError::new("resource schema_url is not valid UTF-8"))?;
                }
                _ => {}
            }
        }
        let mut resource_has_spans = false;
        for ss in scopes {
            let mut scope_ok = Ok(());
            let mut spans: Vec<&[u8]> = Vec::new();
            let mut r = Reader::new(ss);
            while let Some((n, f)) = r.next_field()? {
                typed(RESOURCE_SPANS, n, f, "scope_spans")?;
                match n {
                    ssf::SCOPE if scope_ok.is_ok() => {
                        scope_ok = check_scope(f.bytes("scope")?, depth);
                    }
                    ssf::SPANS => spans.push(f.bytes("span")?),
                    ssf::SCHEMA_URL => {
                        utf8(f.bytes("schema_url")?)
                            .map_err(|_| WireError::new("scope schema_url is not valid UTF-8"))?;
                    }
                    _ => {}
                }
            }
            if spans.is_empty() {
                // Nothing to drop it with, and a prost decode would fail on it: the request is broken.
                scope_ok?;
                continue;
            }
            resource_has_spans = true;
            let shared = resource_ok.clone().and(scope_ok);
            if let Err(e) = shared {
                fail(&mut report, e, spans.len());
                report.spans += spans.len();
                spans.iter().for_each(|_| verdict(false));
                continue;
            }
            for raw in spans {
                let ok = check_span(raw, report.spans, depth);
                verdict(ok.is_ok());
                if let Err(e) = ok {
                    fail(&mut report, e, 1);
                }
                report.spans += 1;
            }
        }
        if !resource_has_spans {
            // As above: an invalid resource without spans cannot be dropped span by span.
            resource_ok?;
        }
    }
    Ok(report)
}

/// The request without its invalid spans (scopes and resources left empty are removed), and how many were
/// dropped. Only called when [`check_traces`] found some: it redoes the check to learn which spans failed (so it
/// drops exactly those), and replaces an invalid resource that keeps a span-less scope with an empty one.
pub fn drop_invalid_spans(buf: &[u8], max_depth: usize) -> Result<Outcome, WireError> {
    struct Dropper {
        depth: usize,
        valid: Vec<bool>,
        index: usize,
    }
    impl SpanEditor for Dropper {
        fn resource(&mut self, resource: &[u8]) -> Result<Option<Vec<u8>>, WireError> {
            // Its spans are all dropped; what may be left of it (scopes without spans) gets a valid resource.
            Ok(check_resource(resource, self.depth).is_err().then(Vec::new))
        }

        fn span(&mut self, _ctx: &SpanCtx<'_>) -> Result<SpanEdit, WireError> {
            let i = self.index;
            self.index += 1;
            Ok(if self.valid.get(i).copied().unwrap_or(false) {
                SpanEdit::Keep
            } else {
                SpanEdit::Drop
            })
        }
    }
    let mut valid = Vec::new();
    check(buf, max_depth, |ok| valid.push(ok))?;
    rewrite_spans(
        buf,
        &mut Dropper {
            depth: max_depth.min(MAX_DEPTH),
            valid,
            index: 0,
        },
    )
}

/// How OTLP types one field, for the wire-type and UTF-8 checks a prost decode would make.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bytes,
    Varint,
    F64,
    F32,
}

use Kind::{Bytes as B, F32, F64, Str as S, Varint as V};

const RESOURCE_SPANS: &[(u32, Kind)] = &[(1, B), (2, B), (3, S)];
const RESOURCE: &[(u32, Kind)] = &[(1, B), (2, V), (3, B)];
const ENTITY_REF: &[(u32, Kind)] = &[(1, S), (2, S), (3, S), (4, S)];
const SCOPE: &[(u32, Kind)] = &[(1, S), (2, S), (3, B), (4, V)];
const EVENT: &[(u32, Kind)] = &[(1, F64), (2, S), (3, B), (4, V)];
const LINK: &[(u32, Kind)] = &[(1, B), (2, B), (3, S), (4, B), (5, V), (6, F32)];
const STATUS: &[(u32, Kind)] = &[(2, S), (3, V)];

/// The wire type of field `n` matches `spec`, and a string field is UTF-8. Unknown fields pass (prost skips them).
#[inline(always)]
fn typed(spec: &[(u32, Kind)], n: u32, f: Field<'_>, what: &str) -> Result<(), WireError> {
    // The tables list their fields in order, mostly from 1: try the direct slot before searching.
    let slot = spec
        .get((n as usize).wrapping_sub(1))
        .filter(|(m, _)| *m == n)
        .or_else(|| spec.iter().find(|(m, _)| *m == n));
    let Some(&(_, kind)) = slot else {
        return Ok(());
    };
    let ok = match (kind, f) {
        (Kind::Str, Field::Bytes(b)) => {
            if check_utf8(b).is_err() {
                return Err(WireError::new(format!(
                    "{what} field {n} is not valid UTF-8"
                )));
            }
            true
        }
        (Kind::Bytes, Field::Bytes(_))
        | (Kind::Varint, Field::Varint(_))
        | (Kind::F64, Field::Fixed64(_))
        | (Kind::F32, Field::Fixed32(_)) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(WireError::new(format!("{what} field {n}: wrong wire type")))
    }
}

/// Every field of `msg` against `spec`.
fn check_fields(msg: &[u8], spec: &[(u32, Kind)], what: &str) -> Result<(), WireError> {
    let mut r = Reader::new(msg);
    while let Some((n, f)) = r.next_field()? {
        typed(spec, n, f, what)?;
    }
    Ok(())
}

/// One attribute: every key occurrence UTF-8, every value occurrence well-formed, UTF-8 and at most `depth` deep.
#[inline]
fn check_attr(kv: &[u8], depth: usize, what: &str) -> Result<(), WireError> {
    check_key_value(kv, depth).map_err(|e| {
        match key_value(kv)
            .ok()
            .and_then(|(k, _)| std::str::from_utf8(k).ok())
        {
            Some(key) => WireError::new(format!("{what} attribute {key:?}: {e}")),
            None => WireError::new(format!("{what} attribute: {e}")),
        }
    })
}

fn check_resource(res: &[u8], depth: usize) -> Result<(), WireError> {
    let mut r = Reader::new(res);
    while let Some((n, f)) = r.next_field()? {
        typed(RESOURCE, n, f, "resource")?;
        match (n, f) {
            (resf::ATTRIBUTES, Field::Bytes(kv)) => check_attr(kv, depth, "resource")?,
            (3, Field::Bytes(entity)) => check_fields(entity, ENTITY_REF, "resource entity_ref")?,
            _ => {}
        }
    }
    Ok(())
}

fn check_scope(scope: &[u8], depth: usize) -> Result<(), WireError> {
    let mut r = Reader::new(scope);
    while let Some((n, f)) = r.next_field()? {
        typed(SCOPE, n, f, "scope")?;
        if let (scf::ATTRIBUTES, Field::Bytes(kv)) = (n, f) {
            check_attr(kv, depth, "scope")?;
        }
    }
    Ok(())
}

/// One span in one pass: field types, strings, ids, attributes, events, links and status. One `match` on field
/// number and wire type per field (the checks [`typed`] makes for other messages, without its table lookup).
#[inline]
fn check_span(raw: &[u8], index: usize, depth: usize) -> Result<(), WireError> {
    let at = |e: WireError| WireError::new(format!("span {index}: {e}"));
    let mut view = SpanView::default();
    let mut r = Reader::new(raw);
    while let Some((n, f)) = r.next_field().map_err(at)? {
        // Attributes first, with a plain branch (most of a span's fields; see `SpanView::read`).
        if let (sf::ATTRIBUTES, Field::Bytes(b)) = (n, f) {
            check_attr(b, depth, "span").map_err(at)?;
            continue;
        }
        match (n, f) {
            (sf::TRACE_ID, Field::Bytes(b)) => view.trace_id = b,
            (sf::SPAN_ID, Field::Bytes(b)) => view.span_id = b,
            (sf::PARENT_SPAN_ID, Field::Bytes(b)) => view.parent_span_id = b,
            (sf::TRACE_STATE | sf::NAME, Field::Bytes(b)) if check_utf8(b).is_err() => {
                return Err(at(span_field_error(n, "is not valid UTF-8")));
            }
            (sf::TRACE_STATE | sf::NAME, Field::Bytes(_)) => {}
            (sf::EVENTS, Field::Bytes(b)) => {
                let mut er = Reader::new(b);
                while let Some((en, ef)) = er.next_field().map_err(at)? {
                    typed(EVENT, en, ef, "event").map_err(at)?;
                    if let (evf::ATTRIBUTES, Field::Bytes(kv)) = (en, ef) {
                        check_attr(kv, depth, "event").map_err(at)?;
                    }
                }
            }
            (sf::LINKS, Field::Bytes(b)) => {
                let mut lr = Reader::new(b);
                while let Some((ln, lf)) = lr.next_field().map_err(at)? {
                    typed(LINK, ln, lf, "link").map_err(at)?;
                    if let (lkf::ATTRIBUTES, Field::Bytes(kv)) = (ln, lf) {
                        check_attr(kv, depth, "link").map_err(at)?;
                    }
                }
            }
            (sf::STATUS, Field::Bytes(b)) => check_fields(b, STATUS, "status").map_err(at)?,
            (
                SPAN_DROPPED_ATTRIBUTES | SPAN_DROPPED_EVENTS | SPAN_DROPPED_LINKS,
                Field::Varint(_),
            )
            | (sf::KIND, Field::Varint(_))
            | (sf::START_TIME_UNIX_NANO | sf::END_TIME_UNIX_NANO, Field::Fixed64(_))
            | (SPAN_FLAGS, Field::Fixed32(_)) => {}
            (1..=SPAN_FLAGS, _) => return Err(at(span_field_error(n, ": wrong wire type"))),
            _ => {}
        }
    }
    view.check_ids(index)
}

const SPAN_DROPPED_ATTRIBUTES: u32 = 10;
const SPAN_DROPPED_EVENTS: u32 = 12;
const SPAN_DROPPED_LINKS: u32 = 14;
const SPAN_FLAGS: u32 = 16;

/// `span field {n} {what}`, as [`typed`] words it.
#[cold]
fn span_field_error(n: u32, what: &str) -> WireError {
    let sep = if what.starts_with(':') { "" } else { " " };
    WireError::new(format!("span field {n}{sep}{what}"))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod prost_parity_tests;
