//! One pass over an encoded `ExportTraceServiceRequest`: per span the value and span-level labels, per root span
//! its trace's tag and metadata labels. Runs outside the connector's lock; everything but a root's labels is
//! borrowed from the request.

use std::borrow::Cow;

use spanpipe_core::wire::fields::resource::ATTRIBUTES as RESOURCE_ATTRIBUTES;
use spanpipe_core::wire::{
    AnyValueRef as AttrValue, RawValue, SpanView, WireError, for_each_attr, walk_spans,
};
use spanpipe_core::{Metadata, WireParts};

use crate::config::{ExperimentSource, MAX_EXPERIMENT_SOURCES, MetaKey, Settings};
use crate::labels::{SCHEMA_VERSION, Status, TraceLabels};
use crate::span_type::TypeHints;
use crate::text::{cap_len, decoded, tag_text};

const TRACE_TAG_PREFIX: &[u8] = b"mlflow.traceTag.";

/// What one span contributes, before its trace's labels are known.
#[derive(Clone, Debug)]
pub struct SpanFacts<'a> {
    pub trace_id: [u8; 16],
    /// `(end − start) / 1e6`, 0 when the span ends before it starts.
    pub value_ms: f64,
    pub root: bool,
    pub status: Status,
    pub span_type: Cow<'a, str>,
    pub experiment: Cow<'a, str>,
}

/// Every span of a request, and the labels of each trace whose root span is in it.
#[derive(Debug, Default)]
pub struct BatchFacts<'a> {
    pub spans: Vec<SpanFacts<'a>>,
    pub roots: Vec<([u8; 16], TraceLabels)>,
    /// Label values cut to `max_label_value_length`.
    pub truncated: usize,
}

/// What the spans of one resource share (public for the `genai_metrics` connector, which labels the same way).
pub struct ResourceFacts<'a> {
    /// Address and length of the encoded resource: consecutive spans of one resource share it.
    pub key: (usize, usize),
    /// The value of each `resource_attribute` experiment source, by source position.
    pub experiment: [Option<Cow<'a, str>>; MAX_EXPERIMENT_SOURCES],
    /// The resource attribute of each tag key (`telemetry.sdk.*` and `mlflow.*` never are tags).
    pub tags: Vec<Option<Cow<'a, str>>>,
}

/// Reads every span of `payload`. A request whose structure is malformed is an error (the receiver validated it,
/// so only another feeder could send one); a malformed attribute is skipped and the span still counts.
pub fn extract<'a>(
    s: &'a Settings,
    payload: &'a (impl WireParts + ?Sized),
    metadata: &'a Metadata,
    items_hint: usize,
) -> Result<BatchFacts<'a>, WireError> {
    let mut out = BatchFacts {
        spans: Vec::with_capacity(items_hint),
        roots: Vec::new(),
        truncated: 0,
    };
    let mut res: Option<ResourceFacts<'a>> = None;
    walk_spans(payload, |ctx| {
        let r = ResourceFacts::cached(&mut res, s, ctx.resource);
        let facts = span_facts(s, ctx.raw, r, metadata, &mut out)?;
        out.spans.push(facts);
        Ok(())
    })?;
    Ok(out)
}

impl<'a> ResourceFacts<'a> {
    /// The facts of `resource`, read into `slot` unless it already holds them (consecutive spans share their
    /// resource). Kept in place: they are a few hundred bytes, too many to move per span.
    pub fn cached<'s>(
        slot: &'s mut Option<ResourceFacts<'a>>,
        s: &Settings,
        resource: &'a [u8],
    ) -> &'s ResourceFacts<'a> {
        let key = (resource.as_ptr() as usize, resource.len());
        if slot.as_ref().is_some_and(|r| r.key != key) {
            *slot = None;
        }
        slot.get_or_insert_with(|| resource_facts(s, resource, key))
    }
}

/// Reads a resource's experiment sources and tag attributes once for all its spans.
fn resource_facts<'a>(s: &Settings, resource: &'a [u8], key: (usize, usize)) -> ResourceFacts<'a> {
    let mut r = ResourceFacts {
        key,
        experiment: Default::default(),
        tags: vec![None; s.tag_keys.len()],
    };
    let _ = for_each_attr(resource, RESOURCE_ATTRIBUTES, |k, v| {
        for (i, src) in s.experiment_from.iter().enumerate() {
            if let ExperimentSource::ResourceAttribute(name) = src
                && k == name.as_bytes()
                && let Some(slot) = r.experiment.get_mut(i)
            {
                *slot = decoded(v.get());
            }
        }
        if k.starts_with(b"telemetry.sdk.") || k.starts_with(b"mlflow.") {
            return;
        }
        if let Some(i) = s.tag_keys.iter().position(|t| t.as_bytes() == k) {
            r.tags[i] = tag_text(v.get());
        }
    });
    r
}

/// The root-only attributes: trace tags and the metadata OTLP carries.
#[derive(Default)]
pub struct RootAttrs<'a> {
    tags: Vec<Option<AttrValue<'a>>>,
    user: Option<AttrValue<'a>>,
    session: Option<AttrValue<'a>>,
    conversation: Option<AttrValue<'a>>,
}

impl<'a> RootAttrs<'a> {
    /// Looks at one span attribute; true when it is a tag or metadata source (collected whether or not the
    /// span turns out to be a root: its parent id may come after its attributes).
    #[inline]
    pub fn offer(&mut self, s: &Settings, k: &[u8], v: RawValue<'a>) -> bool {
        match k {
            b"user.id" => self.user = Some(v.get()),
            b"session.id" => self.session = Some(v.get()),
            b"gen_ai.conversation.id" => self.conversation = Some(v.get()),
            _ => {
                let Some(tag) = k.strip_prefix(TRACE_TAG_PREFIX) else {
                    return false;
                };
                let Some(i) = s.tag_keys.iter().position(|t| t.as_bytes() == tag) else {
                    return false;
                };
                if self.tags.is_empty() {
                    self.tags = vec![None; s.tag_keys.len()];
                }
                self.tags[i] = Some(v.get());
            }
        }
        true
    }
}

/// Keeps `v` when `k` is one of the `span_attribute` experiment sources (by source position).
#[inline]
pub fn offer_experiment<'a>(
    s: &Settings,
    k: &[u8],
    v: RawValue<'a>,
    exp: &mut [Option<AttrValue<'a>>; MAX_EXPERIMENT_SOURCES],
) {
    for (i, src) in s.experiment_from.iter().enumerate() {
        if let ExperimentSource::SpanAttribute(name) = src
            && k == name.as_bytes()
            && let Some(slot) = exp.get_mut(i)
        {
            *slot = Some(v.get());
        }
    }
}

/// The experiment id of a span: the first non-empty of `experiment_id_from` (span attributes as collected in
/// `span_sources`, by source position), else the default.
pub fn experiment<'a>(
    s: &'a Settings,
    span_sources: &[Option<AttrValue<'a>>; MAX_EXPERIMENT_SOURCES],
    r: &ResourceFacts<'a>,
    md: &'a Metadata,
) -> Cow<'a, str> {
    s.experiment_from
        .iter()
        .enumerate()
        .find_map(|(i, src)| {
            match src {
                ExperimentSource::SpanAttribute(_) => span_sources[i].and_then(decoded),
                ExperimentSource::ResourceAttribute(_) => r.experiment[i].clone(),
                ExperimentSource::RequestHeader(h) => md.get(h).map(Cow::Borrowed),
            }
            .filter(|v| !v.is_empty())
        })
        .unwrap_or(Cow::Borrowed(s.default_experiment.as_str()))
}

fn span_facts<'a>(
    s: &'a Settings,
    raw: &'a [u8],
    r: &ResourceFacts<'a>,
    md: &'a Metadata,
    out: &mut BatchFacts<'a>,
) -> Result<SpanFacts<'a>, WireError> {
    let mut hints = TypeHints::default();
    let mut exp: [Option<AttrValue<'a>>; MAX_EXPERIMENT_SOURCES] = [None; MAX_EXPERIMENT_SOURCES];
    // Collected whether or not the span turns out to be a root (its parent id may come after its attributes).
    let mut ra = RootAttrs::default();
    let labelled = !s.label_names.is_empty();
    let span = SpanView::read(raw, |k, v| {
        if hints.offer(k, v) {
            return;
        }
        offer_experiment(s, k, v, &mut exp);
        if labelled {
            ra.offer(s, k, v);
        }
    })?;
    let root = span.parent_span_id.is_empty();
    let mut trace_id = [0u8; 16];
    if span.trace_id.len() == 16 {
        trace_id.copy_from_slice(span.trace_id);
    }
    if root && labelled {
        let labels = root_labels(s, &ra, r, &mut out.truncated);
        out.roots.push((trace_id, labels));
    }
    let experiment = experiment(s, &exp, r, md);
    let (experiment, cut_experiment) = cap_len(experiment, s.max_label_len);
    let (span_type, cut_type) = cap_len(hints.resolve(), s.max_label_len);
    out.truncated += usize::from(cut_experiment) + usize::from(cut_type);
    Ok(SpanFacts {
        trace_id,
        value_ms: span
            .end_time_unix_nano
            .saturating_sub(span.start_time_unix_nano) as f64
            / 1e6,
        root,
        status: Status::from_code(span.status_code),
        span_type,
        experiment,
    })
}

/// A root span's trace labels: root-span tags win over resource attributes, as on MLflow's server.
pub fn root_labels(
    s: &Settings,
    ra: &RootAttrs<'_>,
    r: &ResourceFacts<'_>,
    truncated: &mut usize,
) -> TraceLabels {
    let cut = std::cell::Cell::new(0usize);
    let cap = |c: Cow<'_, str>| -> Box<str> {
        let (c, was_cut) = cap_len(c, s.max_label_len);
        cut.set(cut.get() + usize::from(was_cut));
        Box::from(c.as_ref())
    };
    let text = |v: &Option<AttrValue<'_>>| -> Option<Box<str>> {
        v.and_then(decoded).filter(|c| !c.is_empty()).map(cap)
    };
    let mut out: Vec<Option<Box<str>>> = Vec::with_capacity(s.label_names.len());
    for i in 0..s.tag_keys.len() {
        let from_root = ra.tags.get(i).and_then(text);
        let from_resource = r.tags[i].as_deref().filter(|t| !t.is_empty());
        out.push(from_root.or_else(|| from_resource.map(|t| cap(Cow::Borrowed(t)))));
    }
    for m in &s.meta_keys {
        out.push(match m {
            MetaKey::User => text(&ra.user),
            MetaKey::Session => text(&ra.session).or_else(|| text(&ra.conversation)),
            MetaKey::SchemaVersion => Some(SCHEMA_VERSION.into()),
        });
    }
    *truncated += cut.get();
    out.into()
}

#[cfg(test)]
mod tests;
