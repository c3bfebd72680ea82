//! Base-2 exponential histograms as OTLP defines them (`ExponentialHistogramDataPoint`), for
//! `histogram.exponential`: bucket `i` at scale `s` holds values in `(2^(i·2^-s), 2^((i+1)·2^-s)]`; recording
//! starts at the finest scale (20) and halves the resolution whenever the buckets in use would exceed
//! `max_size`, as the OTel SDKs do. Durations are never negative: zero goes to `zero_count`.

/// The finest scale used (the SDKs' `MaxScale`).
pub const MAX_SCALE: i32 = 20;

/// One exponential histogram's state.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpHistogram {
    pub scale: i32,
    /// Index of `counts[0]`.
    pub offset: i64,
    pub counts: Vec<u64>,
    pub zero_count: u64,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    max_size: usize,
}

/// The bucket index of `v > 0` at `scale` (upper bounds inclusive).
fn index(v: f64, scale: i32) -> i64 {
    let (mantissa, exp) = frexp(v);
    // Exact powers of two sit on a bucket's upper bound.
    if mantissa == 0.5 {
        return (((i64::from(exp) - 1) << scale.max(0)) - 1) >> (-scale).max(0);
    }
    if scale <= 0 {
        return (i64::from(exp) - 1) >> -scale;
    }
    let factor = f64::from(1u32 << scale.min(30)) / std::f64::consts::LN_2;
    ((v.ln() * factor).ceil() as i64) - 1
}

/// `v = mantissa · 2^exp` with `mantissa` in `[0.5, 1)` (C's `frexp`, for normal positive `v`).
fn frexp(v: f64) -> (f64, i32) {
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if exp == 0 {
        // Subnormal: scale up first.
        let (m, e) = frexp(v * f64::from(1u32 << 30) * f64::from(1u32 << 24));
        return (m, e - 54);
    }
    let mantissa = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (mantissa, exp - 1022)
}

impl ExpHistogram {
    pub fn new(max_size: usize) -> Self {
        ExpHistogram {
            scale: MAX_SCALE,
            offset: 0,
            counts: Vec::new(),
            zero_count: 0,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            max_size: max_size.max(2),
        }
    }

    pub fn record(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if v <= 0.0 || !v.is_finite() {
            self.zero_count += 1;
            return;
        }
        let mut i = index(v, self.scale);
        if self.counts.is_empty() {
            self.offset = i;
            self.counts.push(1);
            return;
        }
        let (lo, hi) = (
            self.offset.min(i),
            (self.offset + self.counts.len() as i64 - 1).max(i),
        );
        let mut shift = 0;
        while ((hi >> shift) - (lo >> shift) + 1) as usize > self.max_size {
            shift += 1;
        }
        if shift > 0 {
            self.downscale(shift);
            i = index(v, self.scale);
        }
        if i < self.offset {
            let grow = (self.offset - i) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = i;
        }
        let at = (i - self.offset) as usize;
        if at >= self.counts.len() {
            self.counts.resize(at + 1, 0);
        }
        self.counts[at] += 1;
    }

    /// Halves the resolution `shift` times, merging buckets.
    fn downscale(&mut self, shift: u32) {
        let mut merged: Vec<u64> = Vec::new();
        let new_offset = self.offset >> shift;
        for (k, c) in self.counts.iter().enumerate() {
            let at = (((self.offset + k as i64) >> shift) - new_offset) as usize;
            if at >= merged.len() {
                merged.resize(at + 1, 0);
            }
            merged[at] += c;
        }
        self.counts = merged;
        self.offset = new_offset;
        self.scale -= shift as i32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lower and upper bound of bucket `i` at `scale`.
    fn bounds(i: i64, scale: i32) -> (f64, f64) {
        let base = 2f64.powf(2f64.powi(-scale));
        (base.powf(i as f64), base.powf(i as f64 + 1.0))
    }

    #[test]
    fn values_land_in_their_buckets() {
        for scale in [-2, 0, 1, 3, 10, 20] {
            for v in [0.001, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 100.0, 12345.678] {
                let i = index(v, scale);
                let (lo, hi) = bounds(i, scale);
                assert!(
                    v > lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9),
                    "{v} at {scale}: {i} ({lo}, {hi}]"
                );
            }
        }
        assert_eq!(index(1.0, 0), -1, "1 is the upper bound of (0.5, 1]");
        assert_eq!(index(4.0, 1), 3);
    }

    #[test]
    fn downscales_to_max_size_and_keeps_every_count() {
        let mut h = ExpHistogram::new(10);
        let values = [0.0, 1.0, 2.0, 5.0, 100.0, 250.0, 1000.0, 0.25];
        for v in values {
            h.record(v);
        }
        assert!(h.counts.len() <= 10, "{h:?}");
        assert!(h.scale < MAX_SCALE);
        assert_eq!(
            h.counts.iter().sum::<u64>() + h.zero_count,
            values.len() as u64
        );
        assert_eq!(h.zero_count, 1);
        assert_eq!(h.count, 8);
        for v in values.iter().filter(|v| **v > 0.0) {
            let at = index(*v, h.scale) - h.offset;
            assert!(
                at >= 0 && (at as usize) < h.counts.len() && h.counts[at as usize] > 0,
                "{v}"
            );
        }
    }
}
