//! The connector's state behind its lock: series, spans waiting for their trace's root, and what went wrong.
//! Synchronous and clock-free (callers pass `now`), so tests and benches drive it directly.
//!
//! Why spans wait: MLflow counts a span's token usage (and cost) only when no ancestor of it carries usage
//! (cost) — frameworks that roll usage up onto a parent span would otherwise be counted twice (see
//! `docs/genai-token-usage.md`). Children end, and so arrive, before their parents, so a trace's GenAI spans
//! (and the plain spans linking them) wait until its root arrives or `trace_wait` ends; then the rule is applied
//! to the spans present, exactly as MLflow's tracking store applies it (a span whose parent is absent counts as
//! a root). Spans arriving after their root are checked against the spans that root's trace covered.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use metrics::Counter;
use spanpipe_spanmetrics::labels::TraceLabels;
use spanpipe_spanmetrics::pending::Pending;
use spanpipe_spanmetrics::series::Symbols;

use crate::config::Settings;
use crate::extract::{BatchFacts, CarriedCost, OpKind, SLOTS, SpanFacts, TOOL_NAME};
use crate::labels::{Metric, TokenType};
use crate::price::{PriceTable, day_of};
use crate::store::{Outcome, PointRef, Store, intern};
use crate::tree::ancestry;
use crate::usage::Usage;

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// Up to this many spans, a trace's spans are looked up by a linear scan rather than a hash map.
const LINEAR_TRACE: usize = 32;

/// Distinct label values interned before the table starts over.
const SYMBOLS: usize = 4096;
/// Distinct `model` label values of `spanpipe_genai_unpriced_spans_total`; later models count as `_other`.
const MAX_UNPRICED_MODELS: usize = 256;

/// Counts of points that lost something (exported as internal metrics by the connector).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Points recorded into an overflow series (`max_series` reached).
    pub overflow_points: u64,
    /// Spans recorded at once (no tags, no ancestor check) because `max_pending_spans` were waiting.
    pub pending_full_spans: u64,
    /// Traces whose root did not arrive within `trace_wait` (their spans recorded without tags).
    pub no_root_traces: u64,
    /// Traces whose root arrived but some span's parent did not within `trace_wait` (recorded with what came).
    pub incomplete_traces: u64,
    /// Series dropped after `series_expiration`.
    pub expired_series: u64,
    /// Spans whose usage was not counted because an ancestor carries usage (MLflow's rule).
    pub rolled_up_spans: u64,
    /// Spans with counted usage and no cost: their model has no price (also by model in
    /// `spanpipe_genai_unpriced_spans_total`).
    pub unpriced_spans: u64,
    /// Carried costs in another currency than the metric's, not counted.
    pub currency_mismatch_spans: u64,
}

/// The GenAI part of a held span, owned.
#[derive(Debug)]
pub struct OwnedGenai {
    op: Option<OpKind>,
    slots: [Option<Arc<str>>; SLOTS],
    price_model: Option<Arc<str>>,
    usage: Option<Usage>,
    carried: Option<CarriedCost>,
    carried_currency: Option<Arc<str>>,
    duration_s: f64,
    day: i64,
}

/// Whether every span's parent is among `spans` (the root has none): MLflow's rule can then see every ancestor.
fn complete(spans: &[Held]) -> bool {
    if spans.len() > LINEAR_TRACE {
        let ids: FastSet<[u8; 8]> = spans.iter().map(|h| h.span_id).collect();
        spans
            .iter()
            .all(|h| h.parent_id.is_none_or(|p| ids.contains(&p)))
    } else {
        spans.iter().all(|h| {
            h.parent_id
                .is_none_or(|p| spans.iter().any(|o| o.span_id == p))
        })
    }
}

/// A span waiting for its trace's root: its place in the tree and, for GenAI spans, what it records.
#[derive(Debug)]
pub struct Held {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent_id: Option<[u8; 8]>,
    genai: Option<Box<OwnedGenai>>,
}

/// What is remembered of a trace whose root arrived, for its late spans.
#[derive(Debug)]
pub struct Finished {
    labels: TraceLabels,
    /// Spans carrying usage, or below one: a late child of one of them is not counted.
    usage_cover: FastSet<[u8; 8]>,
    cost_cover: FastSet<[u8; 8]>,
}

pub struct State {
    settings: Arc<Settings>,
    store: Store,
    pending: Pending<Held, Arc<Finished>>,
    syms: Symbols,
    untagged: TraceLabels,
    /// The unit of `gen_ai.client.cost`.
    pub currency: Arc<str>,
    unpriced: HashMap<Box<str>, Counter>,
    /// Labels of traces whose root arrived while some of their spans' parents had not: they wait on for the
    /// missing links (only traces with spans in `pending`, so bounded with it).
    rooted: FastMap<[u8; 16], TraceLabels>,
    component: String,
    pub counts: Counts,
}

impl State {
    pub fn new(settings: Arc<Settings>, currency: &str, component: &str) -> Self {
        let untagged: TraceLabels = vec![None; settings.labels.label_names.len()].into();
        State {
            store: Store::new(settings.max_series),
            pending: Pending::new(settings.trace_wait, settings.max_pending_spans),
            syms: Symbols::new(SYMBOLS),
            untagged,
            currency: Arc::from(currency),
            unpriced: HashMap::new(),
            rooted: FastMap::default(),
            component: component.to_string(),
            settings,
            counts: Counts::default(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn pending_spans(&self) -> usize {
        self.pending.len()
    }

    fn own(&mut self, s: &SpanFacts<'_>) -> Held {
        let genai = s.genai.as_ref().map(|g| {
            Box::new(OwnedGenai {
                op: g.op,
                slots: intern(&mut self.syms, &g.labels),
                price_model: g.price_model.as_deref().map(|m| self.syms.get(m)),
                usage: g.usage,
                carried: g.carried_cost,
                carried_currency: g.carried_currency.as_deref().map(Arc::from),
                duration_s: s.duration_s,
                day: day_of(s.start_unix_nano),
            })
        });
        Held {
            trace_id: s.trace_id,
            span_id: s.span_id,
            parent_id: s.parent_id,
            genai,
        }
    }

    /// Records a request's spans, holding those of traces whose root may still come.
    pub fn record_batch(
        &mut self,
        facts: &BatchFacts<'_>,
        prices: Option<&PriceTable>,
        now: Instant,
        wall_ns: u64,
    ) {
        if !self.settings.waits() {
            let untagged = self.untagged.clone();
            for s in facts.spans.iter().filter(|s| s.genai.is_some()) {
                let h = self.own(s);
                self.record_span(&h, &untagged, true, true, prices, now, wall_ns);
            }
            return;
        }
        // Traces to look at after the batch: those whose root is in it, and those whose root came earlier but
        // that still wait for a missing parent.
        let mut roots: Vec<[u8; 16]> = Vec::new();
        for s in &facts.spans {
            let root = s.parent_id.is_none();
            if root || self.rooted.contains_key(&s.trace_id) {
                roots.push(s.trace_id);
            }
            if let Some(fin) = self.pending.finished(&s.trace_id).cloned() {
                if s.genai.is_some() {
                    let h = self.own(s);
                    let parent =
                        |cover: &FastSet<[u8; 8]>| h.parent_id.is_some_and(|p| cover.contains(&p));
                    let (u, c) = (!parent(&fin.usage_cover), !parent(&fin.cost_cover));
                    self.record_span(&h, &fin.labels, u, c, prices, now, wall_ns);
                }
                continue;
            }
            if s.genai.is_none() && !root && !self.pending.is_waiting(&s.trace_id) {
                continue;
            }
            let h = self.own(s);
            if let Err(h) = self.pending.hold(s.trace_id, h, now) {
                self.counts.pending_full_spans += 1;
                let untagged = self.untagged.clone();
                self.record_span(&h, &untagged, true, true, prices, now, wall_ns);
            }
        }
        roots.sort_unstable();
        roots.dedup();
        for trace in roots {
            let labels = facts
                .roots
                .iter()
                .find(|(t, _)| *t == trace)
                .map(|(_, l)| l.clone())
                .or_else(|| self.rooted.get(&trace).cloned())
                .unwrap_or_else(|| self.untagged.clone());
            let fin = match self.pending.take(&trace) {
                Some(spans) if !complete(&spans) => {
                    // A link is missing (e.g. a tool span exported after its agent): without it MLflow's rule
                    // would see the calls below it as roots and count rolled-up usage twice. Wait on for it.
                    let mut left = spans.into_iter();
                    let mut full = None;
                    for h in left.by_ref() {
                        if let Err(h) = self.pending.hold(trace, h, now) {
                            full = Some(h);
                            break;
                        }
                    }
                    match full {
                        None => {
                            self.rooted.insert(trace, labels);
                            continue;
                        }
                        Some(h) => {
                            // No room to wait: resolve with what came.
                            self.rooted.remove(&trace);
                            let mut spans = self.pending.take(&trace).unwrap_or_default();
                            spans.push(h);
                            spans.extend(left);
                            self.resolve(&spans, &labels, prices, now, wall_ns)
                        }
                    }
                }
                Some(spans) => {
                    self.rooted.remove(&trace);
                    self.resolve(&spans, &labels, prices, now, wall_ns)
                }
                // A trace without GenAI spans so far: remembered too, so GenAI spans arriving after its root
                // (exported later by another process) get its tags at once instead of waiting out trace_wait.
                None if self.pending.finished(&trace).is_none() => Finished {
                    labels,
                    usage_cover: FastSet::default(),
                    cost_cover: FastSet::default(),
                },
                None => continue,
            };
            self.pending.finish(trace, Arc::new(fin), now);
        }
    }

    /// Applies MLflow's rule to one trace's spans and records them with `labels`.
    fn resolve(
        &mut self,
        spans: &[Held],
        labels: &TraceLabels,
        prices: Option<&PriceTable>,
        now: Instant,
        wall_ns: u64,
    ) -> Finished {
        // Traces are mostly small: a linear scan beats hashing up to a few dozen spans.
        let index: Option<FastMap<[u8; 8], usize>> = (spans.len() > LINEAR_TRACE).then(|| {
            let mut m = FastMap::with_capacity_and_hasher(spans.len(), Default::default());
            m.extend(spans.iter().enumerate().map(|(i, h)| (h.span_id, i)));
            m
        });
        let find = |id: &[u8; 8]| -> Option<usize> {
            match &index {
                Some(m) => m.get(id).copied(),
                None => spans.iter().position(|h| h.span_id == *id),
            }
        };
        let parents: Vec<Option<usize>> = spans
            .iter()
            .map(|h| h.parent_id.and_then(|p| find(&p)))
            .collect();
        let has_usage: Vec<bool> = spans
            .iter()
            .map(|h| {
                h.genai
                    .as_ref()
                    .is_some_and(|g| g.usage.is_some_and(|u| u.is_present()))
            })
            .collect();
        let has_cost: Vec<bool> = spans
            .iter()
            .map(|h| {
                h.genai
                    .as_ref()
                    .is_some_and(|g| self.span_cost(g, prices).is_some())
            })
            .collect();
        let anc = ancestry(&parents, &has_usage, &has_cost);
        let mut fin = Finished {
            labels: labels.clone(),
            usage_cover: FastSet::default(),
            cost_cover: FastSet::default(),
        };
        for (i, h) in spans.iter().enumerate() {
            // Usage (cost) counts when MLflow reaches the span and no ancestor carries usage (cost).
            let (reach, au, ac) = (anc.reachable[i], anc.usage[i], anc.cost[i]);
            if has_usage[i] || au || !reach {
                fin.usage_cover.insert(h.span_id);
            }
            if has_cost[i] || ac || !reach {
                fin.cost_cover.insert(h.span_id);
            }
            if h.genai.is_some() {
                if has_usage[i] && (au || !reach) {
                    self.counts.rolled_up_spans += 1;
                }
                self.record_span(h, labels, reach && !au, reach && !ac, prices, now, wall_ns);
            }
        }
        fin
    }

    /// The span's cost in the metric's currency: the one it carries (when in that currency), else priced.
    fn span_cost(&self, g: &OwnedGenai, prices: Option<&PriceTable>) -> Option<f64> {
        if let Some(c) = g.carried {
            let same = g
                .carried_currency
                .as_deref()
                .is_none_or(|cur| cur.eq_ignore_ascii_case(&self.currency));
            return same.then_some(c.amount);
        }
        let (t, model, usage) = (prices?, g.price_model.as_deref()?, g.usage?);
        let provider = g.slots[crate::extract::PROVIDER].as_deref();
        t.cost(model, provider, g.day, &usage).map(|c| c.total())
    }

    /// Records one span's points; `usage` / `cost`: whether its usage / cost counts (no ancestor has one).
    #[allow(clippy::too_many_arguments)]
    fn record_span(
        &mut self,
        h: &Held,
        trace: &TraceLabels,
        usage: bool,
        cost: bool,
        prices: Option<&PriceTable>,
        now: Instant,
        wall: u64,
    ) {
        let Some(g) = h.genai.as_deref() else {
            return;
        };
        let duration_metric = match g.op {
            Some(OpKind::Client) => Some(Metric::OperationDuration),
            Some(OpKind::Tool) if g.slots[TOOL_NAME].is_some() => Some(Metric::ToolDuration),
            Some(OpKind::Agent) => Some(Metric::AgentDuration),
            _ => None,
        };
        if let Some(m) = duration_metric {
            self.point(m, TokenType::None, g, trace, g.duration_s, now, wall);
        }
        if usage && let Some(u) = g.usage {
            let mut types = vec![(TokenType::Input, u.input), (TokenType::Output, u.output)];
            if self.settings.extra_token_types {
                types.extend([
                    (TokenType::CacheRead, u.cache_read),
                    (TokenType::CacheCreation, u.cache_write),
                    (TokenType::Reasoning, u.reasoning),
                ]);
            }
            for (t, n) in types {
                if let Some(n) = n {
                    self.point(Metric::TokenUsage, t, g, trace, n as f64, now, wall);
                }
            }
        }
        if !cost {
            return;
        }
        if g.carried.is_some()
            && g.carried_currency
                .as_deref()
                .is_some_and(|cur| !cur.eq_ignore_ascii_case(&self.currency))
        {
            self.counts.currency_mismatch_spans += 1;
            return;
        }
        match self.span_cost(g, prices) {
            Some(c) => self.point(Metric::Cost, TokenType::None, g, trace, c, now, wall),
            None if usage && prices.is_some() && g.usage.is_some_and(|u| u.is_present()) => {
                self.counts.unpriced_spans += 1;
                self.count_unpriced(g.price_model.as_deref().unwrap_or("unknown"));
            }
            None => {}
        }
    }

    fn count_unpriced(&mut self, model: &str) {
        let key: &str =
            if self.unpriced.contains_key(model) || self.unpriced.len() < MAX_UNPRICED_MODELS {
                model
            } else {
                "_other"
            };
        if !self.unpriced.contains_key(key) {
            let c = metrics::counter!("spanpipe_genai_unpriced_spans_total",
                "connector" => self.component.clone(), "model" => key.to_string());
            self.unpriced.insert(key.into(), c);
        }
        if let Some(c) = self.unpriced.get(key) {
            c.increment(1);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn point(
        &mut self,
        metric: Metric,
        token: TokenType,
        g: &OwnedGenai,
        trace: &TraceLabels,
        value: f64,
        now: Instant,
        wall: u64,
    ) {
        let p = PointRef {
            metric,
            token,
            slots: &g.slots,
            trace,
        };
        if self.store.record(&p, value, now, wall) == Outcome::Overflow {
            self.counts.overflow_points += 1;
        }
    }

    /// Housekeeping: traces whose wait is over are recorded without tags; idle series are dropped.
    pub fn sweep(&mut self, prices: Option<&PriceTable>, now: Instant, wall_ns: u64) {
        let mut expired = Vec::new();
        self.pending.expire(now, |h| expired.push(h));
        self.resolve_groups(expired, prices, now, wall_ns);
        if let Some(idle) = self.settings.series_expiration {
            self.counts.expired_series += self.store.expire(now, idle) as u64;
        }
    }

    /// Records every waiting span (shutdown: no root will come any more).
    pub fn drain_pending(&mut self, prices: Option<&PriceTable>, now: Instant, wall_ns: u64) {
        let mut all = Vec::new();
        self.pending.drain(|h| all.push(h));
        self.resolve_groups(all, prices, now, wall_ns);
    }

    /// Resolves spans handed over trace by trace (consecutive runs of one trace id), without tags.
    fn resolve_groups(
        &mut self,
        spans: Vec<Held>,
        prices: Option<&PriceTable>,
        now: Instant,
        wall_ns: u64,
    ) {
        let untagged = self.untagged.clone();
        let mut start = 0;
        while start < spans.len() {
            let t = spans[start].trace_id;
            let end = spans[start..]
                .iter()
                .position(|h| h.trace_id != t)
                .map_or(spans.len(), |n| start + n);
            let labels = match self.rooted.remove(&t) {
                Some(l) => {
                    self.counts.incomplete_traces += 1;
                    l
                }
                None => {
                    self.counts.no_root_traces += 1;
                    untagged.clone()
                }
            };
            self.resolve(&spans[start..end], &labels, prices, now, wall_ns);
            start = end;
        }
    }
}

#[cfg(test)]
mod tests;
