//! Cost per span of the `probabilistic_sampler` processor on realistic agent spans (~500 B each, traces of 10):
//! proportional 25% (trace-id scan, drop by not copying, `th` written into kept spans), 100% (every span
//! rewritten with `th:0`), 0% (everything dropped), and `hash_seed` 25%.
//! Run: `cargo bench -p spanpipe-benches --bench sampler`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use spanpipe_benches::agent_request;
use spanpipe_processors::probabilistic_sampler::{
    Counts, ProbabilisticSampler, ProbabilisticSamplerConfig, Sampler,
};

const SPANS: u64 = 500;

fn sampler(yaml: &str) -> Sampler {
    let node = spanpipe_config::load_str("bench.yaml", yaml).expect("yaml");
    let cfg: ProbabilisticSamplerConfig = node
        .deserialize("processors.probabilistic_sampler")
        .expect("config");
    let pct = cfg.validate().expect("valid");
    Sampler::new(&cfg, pct)
}

fn per_span(c: &mut Criterion) {
    // 50 traces of 10 spans; trace ids spread so about a quarter of the traces pass 25%.
    let mut req = agent_request(1, 50, 10);
    for rs in &mut req.resource_spans {
        for ss in &mut rs.scope_spans {
            for s in &mut ss.spans {
                let t = u64::from_be_bytes(s.trace_id[8..16].try_into().expect("16 bytes"));
                s.trace_id[8..]
                    .copy_from_slice(&t.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
            }
        }
    }
    let bytes = req.encode_to_vec();
    let mut g = c.benchmark_group("sampler_500_agent_spans");
    g.throughput(Throughput::Elements(SPANS));
    for (name, yaml) in [
        ("proportional_25pct", "sampling_percentage: 25\n"),
        ("proportional_100pct", "sampling_percentage: 100\n"),
        ("proportional_0pct", "sampling_percentage: 0\n"),
        ("hash_seed_25pct", "sampling_percentage: 25\nhash_seed: 7\n"),
    ] {
        let s = sampler(yaml);
        let mut probe = Counts::default();
        ProbabilisticSampler::filter(&s, &bytes, &mut probe).expect("valid");
        eprintln!("{name}: keeps {} of {SPANS} spans", probe.kept);
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut counts = Counts::default();
                ProbabilisticSampler::filter(&s, &bytes, &mut counts).map(|_| counts.kept)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, per_span);
criterion_main!(benches);
