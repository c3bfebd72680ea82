//! `probabilistic_sampler` settings: the OTel Collector contrib `probabilisticsampler` names (traces only).

use serde::Deserialize;

/// How the decision is computed (all modes are consistent: the same trace gets the same decision everywhere).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SamplerMode {
    /// FNV hash of `hash_seed` and the trace id, 14 bits (the collector's original method).
    HashSeed,
    /// OTel consistent probability sampling: randomness from the trace id's low 56 bits or `rv`; a span already
    /// sampled upstream (`th`) is sampled again by the ratio, so the product is recorded.
    Proportional,
    /// Like proportional, but the configured probability is absolute: spans sampled harder upstream pass through.
    Equalizing,
}

/// The processor's configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProbabilisticSamplerConfig {
    /// Percent of traces kept (0 keeps none, 100 and above keep all). Required.
    pub sampling_percentage: Option<f32>,
    /// Seed of `hash_seed` mode; every collector of a tier must use the same one.
    pub hash_seed: u32,
    /// Unset: `proportional`, or `hash_seed` when `hash_seed` is not 0 (as the OTel collector chooses).
    pub mode: Option<SamplerMode>,
    /// Drop spans whose sampling information is missing or inconsistent (else pass them unchanged).
    pub fail_closed: bool,
    /// Hex digits of the `th` threshold written into `tracestate` (1..=14).
    pub sampling_precision: u32,
}

impl Default for ProbabilisticSamplerConfig {
    fn default() -> Self {
        ProbabilisticSamplerConfig {
            sampling_percentage: None,
            hash_seed: 0,
            mode: None,
            fail_closed: true,
            sampling_precision: 4,
        }
    }
}

impl ProbabilisticSamplerConfig {
    /// The effective mode.
    pub fn mode(&self) -> SamplerMode {
        self.mode.unwrap_or(if self.hash_seed != 0 {
            SamplerMode::HashSeed
        } else {
            SamplerMode::Proportional
        })
    }

    /// Checks values; returns the offending key and why.
    pub fn validate(&self) -> Result<f32, (&'static str, String)> {
        let Some(pct) = self.sampling_percentage else {
            return Err(("sampling_percentage", "required (0 to 100)".into()));
        };
        if !pct.is_finite() || pct < 0.0 {
            return Err((
                "sampling_percentage",
                format!("must be a number from 0 to 100, got {pct}"),
            ));
        }
        if !(1..=14).contains(&self.sampling_precision) {
            return Err((
                "sampling_precision",
                format!(
                    "must be 1 to 14 hex digits, got {}",
                    self.sampling_precision
                ),
            ));
        }
        Ok(pct)
    }
}
