//! The `probabilistic_sampler` processor: keeps a configured percentage of traces, deciding from the trace id so
//! that every replica keeps or drops the same traces (the OTel Collector contrib `probabilisticsampler`, traces).
//!
//! It works on the encoded request: trace ids and `tracestate` are read with a scan, dropped spans are left out
//! by copying the others' bytes, and only kept spans whose `tracestate` changes (to record `th`, per the OTel
//! consistent probability sampling spec) are re-encoded. Counts go to
//! `otelcol_processor_probabilistic_sampler_count_spans_processed_total{policy, sampled}`.

mod config;
mod decide;
#[cfg(test)]
mod tests;
pub mod threshold;
pub mod tracestate;

use std::sync::Arc;

use async_trait::async_trait;
use metrics::Counter;
use spanpipe_core::wire::{Field, Reader, WireError, put_bytes_field};
use spanpipe_core::{
    Batch, BuildContext, ConfigError, ConsumeError, Consumer, Node, Processor, ProcessorFactory,
    Signal,
};

pub use config::{ProbabilisticSamplerConfig, SamplerMode};
pub use decide::{Decision, Policy, Sampler};

/// Builds `probabilistic_sampler` processors (traces).
pub struct ProbabilisticSamplerFactory;

impl ProcessorFactory for ProbabilisticSamplerFactory {
    fn type_name(&self) -> &'static str {
        "probabilistic_sampler"
    }

    fn signals(&self) -> &'static [Signal] {
        &[Signal::Traces]
    }

    fn build(
        &self,
        ctx: &BuildContext,
        node: &Node,
        _signal: Signal,
        next: Arc<dyn Consumer>,
    ) -> Result<Arc<dyn Processor>, ConfigError> {
        let cfg: ProbabilisticSamplerConfig = ctx.config(node)?;
        let pct = cfg
            .validate()
            .map_err(|(k, m)| ctx.invalid(node, &[k], m))?;
        let id = ctx.id.to_string();
        let counters = Policy::ALL.map(|p| {
            [false, true].map(|sampled| {
                metrics::counter!(
                    "otelcol_processor_probabilistic_sampler_count_spans_processed_total",
                    "processor" => id.clone(),
                    "policy" => p.name(),
                    "sampled" => if sampled { "true" } else { "false" }
                )
            })
        });
        Ok(Arc::new(ProbabilisticSampler {
            sampler: Sampler::new(&cfg, pct),
            next,
            id,
            counters,
        }))
    }
}

/// One `probabilistic_sampler` instance.
pub struct ProbabilisticSampler {
    sampler: Sampler,
    next: Arc<dyn Consumer>,
    id: String,
    counters: [[Counter; 2]; Policy::ALL.len()],
}

/// Per-batch counts by (policy, sampled), and spans whose sampling information was unusable.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Counts {
    pub by_policy: [[u64; 2]; Policy::ALL.len()],
    pub errors: u64,
    pub kept: usize,
}

/// Result of filtering one encoded request.
pub enum Filtered {
    /// Every span kept with its bytes unchanged.
    Unchanged,
    /// The kept spans (possibly none).
    Changed(Vec<u8>),
}

fn message<'a>(f: Field<'a>) -> Option<&'a [u8]> {
    match f {
        Field::Bytes(b) => Some(b),
        _ => None,
    }
}

/// Rebuilds `buf` keeping or replacing the children of field `child`; other fields are copied as they are.
/// `visit` returns `None` to drop a child, `Some(None)` to keep it as is, `Some(Some(bytes))` to replace its
/// payload. Returns the new message (if anything changed) and how many children were kept.
fn filter_children<'a>(
    buf: &'a [u8],
    child: u32,
    mut visit: impl FnMut(&'a [u8]) -> Result<Option<Option<Vec<u8>>>, WireError>,
) -> Result<(Option<Vec<u8>>, usize), WireError> {
    let mut r = Reader::new(buf);
    let mut out: Option<Vec<u8>> = None;
    let mut kept = 0;
    loop {
        let start = r.position();
        let Some((n, f)) = r.next_field()? else {
            return Ok((out, kept));
        };
        let raw = buf.get(start..r.position()).unwrap_or_default();
        let verdict = match message(f) {
            Some(payload) if n == child => visit(payload)?,
            _ => Some(None),
        };
        match verdict {
            Some(None) => {
                if n == child {
                    kept += 1;
                }
                if let Some(o) = out.as_mut() {
                    o.extend_from_slice(raw);
                }
            }
            Some(Some(new)) => {
                kept += 1;
                let o = out.get_or_insert_with(|| buf.get(..start).unwrap_or_default().to_vec());
                put_bytes_field(o, n, &new);
            }
            None => {
                out.get_or_insert_with(|| buf.get(..start).unwrap_or_default().to_vec());
            }
        }
    }
}

impl ProbabilisticSampler {
    /// Filters an encoded `ExportTraceServiceRequest`; resources and scopes left without spans are removed.
    pub fn filter(
        sampler: &Sampler,
        buf: &[u8],
        counts: &mut Counts,
    ) -> Result<Filtered, WireError> {
        let (out, _) = filter_children(buf, 1, |rs| {
            let (out, scopes) = filter_children(rs, 2, |ss| {
                let (out, spans) = filter_children(ss, 2, |span| {
                    let d = sampler.decide(span)?;
                    counts.by_policy[d.policy as usize][usize::from(d.keep)] += 1;
                    counts.errors += u64::from(d.error);
                    if !d.keep {
                        return Ok(None);
                    }
                    counts.kept += 1;
                    Ok(Some(d.new_span))
                })?;
                Ok(if spans == 0 { None } else { Some(out) })
            })?;
            Ok(if scopes == 0 { None } else { Some(out) })
        })?;
        Ok(match out {
            None => Filtered::Unchanged,
            Some(b) => Filtered::Changed(b),
        })
    }
}

#[async_trait]
impl Consumer for ProbabilisticSampler {
    async fn consume(&self, mut batch: Batch) -> Result<(), ConsumeError> {
        if batch.signal != Signal::Traces {
            return self.next.consume(batch).await;
        }
        let mut counts = Counts::default();
        let filtered = batch.payload.try_map_parts(|part| {
            Ok::<_, WireError>(match Self::filter(&self.sampler, part, &mut counts)? {
                Filtered::Unchanged => None,
                Filtered::Changed(bytes) => Some(bytes),
            })
        });
        match filtered {
            Ok(None) => {}
            Ok(Some(payload)) => {
                batch.payload = payload;
                batch.items = counts.kept;
            }
            Err(e) => {
                return Err(ConsumeError::Rejected {
                    reason: format!("{}: malformed request: {e}", self.id),
                });
            }
        }
        if counts.errors > 0 {
            tracing::debug!(processor = %self.id, spans = counts.errors,
                "spans with missing or inconsistent sampling information");
        }
        if counts.kept > 0 {
            self.next.consume(batch).await?;
        }
        // Counted once the kept spans were accepted, so a refused request retried by the client counts once.
        for (p, row) in counts.by_policy.iter().enumerate() {
            for (s, &n) in row.iter().enumerate() {
                if n > 0 {
                    self.counters[p][s].increment(n);
                }
            }
        }
        Ok(())
    }
}

impl Processor for ProbabilisticSampler {}
