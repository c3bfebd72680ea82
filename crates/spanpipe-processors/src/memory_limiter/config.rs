//! `processors.memory_limiter`: the OTel Collector's option names, defaults and validation.

use serde::Deserialize;
use spanpipe_config::Duration;

const MIB: u64 = 1 << 20;

/// `memory_limiter`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryLimiterConfig {
    /// How often memory use is measured (required, greater than 0).
    pub check_interval: Duration,
    /// Hard limit of the process's resident memory, in MiB.
    pub limit_mib: u64,
    /// Headroom below `limit_mib` for growth between two checks (default 20% of the limit). Data is refused
    /// from `limit - spike` on (the soft limit).
    pub spike_limit_mib: u64,
    /// Hard limit as a percentage of the memory available: the cgroup's `memory.max` (containers), else the
    /// machine's total memory.
    pub limit_percentage: u64,
    /// `spike_limit_mib` as a percentage of the same total.
    pub spike_limit_percentage: u64,
}

/// The hard and soft limits in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub hard: u64,
    pub soft: u64,
}

impl MemoryLimiterConfig {
    /// What serde cannot check; returns the offending key and a message.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.check_interval.0.is_zero() {
            return Err(("check_interval", "must be greater than 0".into()));
        }
        match (self.limit_mib > 0, self.limit_percentage > 0) {
            (false, false) => {
                return Err((
                    "limit_mib",
                    "set limit_mib or limit_percentage (greater than 0)".into(),
                ));
            }
            (true, true) => {
                return Err((
                    "limit_percentage",
                    "set either limit_mib or limit_percentage, not both".into(),
                ));
            }
            (true, false) => {
                if self.spike_limit_percentage > 0 {
                    let m = "goes with limit_percentage; use spike_limit_mib with limit_mib";
                    return Err(("spike_limit_percentage", m.into()));
                }
                if self.spike_limit_mib >= self.limit_mib {
                    let m = "must be smaller than limit_mib";
                    return Err(("spike_limit_mib", m.into()));
                }
            }
            (false, true) => {
                if self.limit_percentage > 100 {
                    return Err(("limit_percentage", "must be at most 100".into()));
                }
                if self.spike_limit_mib > 0 {
                    let m = "goes with limit_mib; use spike_limit_percentage with limit_percentage";
                    return Err(("spike_limit_mib", m.into()));
                }
                if self.spike_limit_percentage >= self.limit_percentage {
                    let m = "must be smaller than limit_percentage";
                    return Err(("spike_limit_percentage", m.into()));
                }
            }
        }
        Ok(())
    }

    /// The limits in bytes; `total` (the memory available, in bytes) is needed only for percentages.
    pub fn limits(&self, total: impl FnOnce() -> Result<u64, String>) -> Result<Limits, String> {
        let (hard, spike) = if self.limit_mib > 0 {
            (self.limit_mib * MIB, self.spike_limit_mib * MIB)
        } else {
            let total = total()?;
            (
                total / 100 * self.limit_percentage,
                total / 100 * self.spike_limit_percentage,
            )
        };
        // OTel's default spike limit: 20% of the hard limit.
        let spike = if spike == 0 { hard / 5 } else { spike };
        Ok(Limits {
            hard,
            soft: hard.saturating_sub(spike),
        })
    }
}
