//! How the load generator numbers spans, so that ids are unique across a run (and across runs with distinct seeds)
//! and the sink can check that with an 8-byte key.

/// Span sequence numbers have 48 bits; the top 16 bits of a span id are the seed.
pub const SEQ_BITS: u32 = 48;
/// Largest sequence number (exclusive) a run may use.
pub const SEQ_LIMIT: u64 = 1 << SEQ_BITS;

/// The span id of global span number `seq`: `seed << 48 | (seq + 1)`; never zero, which OTLP treats as invalid.
pub fn span_id(seed: u16, seq: u64) -> u64 {
    (u64::from(seed) << SEQ_BITS) | (seq.wrapping_add(1) & (SEQ_LIMIT - 1))
}

/// The trace id of the trace whose root is span number `root_seq`: the root's span id, then a spread-out mix of
/// the sequence (backends shard and sample on trace id bytes, so they should not all look alike).
pub fn trace_id(seed: u16, root_seq: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&span_id(seed, root_seq).to_be_bytes());
    let mix = root_seq.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    id[8..].copy_from_slice(&mix.to_be_bytes());
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_nonzero() {
        assert_ne!(span_id(0, 0), 0);
        assert_ne!(span_id(1, 5), span_id(2, 5));
        assert_ne!(span_id(1, 5), span_id(1, 6));
        assert_eq!(span_id(7, 5) >> SEQ_BITS, 7);
        assert_ne!(trace_id(1, 0), trace_id(1, 10));
    }
}
