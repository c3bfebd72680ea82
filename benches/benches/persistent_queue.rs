//! The persistent sending queue's log (`file_storage`'s segment log): append, read (`next`) and acknowledge, each
//! with and without `fsync`, for 1 KiB and 64 KiB records (a small and a batched request). The log lives in a
//! temporary directory under the target dir (ext4 here, so `fsync` reaches the disk). Runs on a shared machine:
//! figures are indicative.
//! Run: `cargo bench -p spanpipe-benches --bench persistent_queue`.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use spanpipe_core::StorageClient;
use spanpipe_storage::log::{LogOptions, SegmentLog};

fn open(dir: &std::path::Path, fsync: bool) -> SegmentLog {
    SegmentLog::open(
        dir,
        LogOptions {
            fsync,
            segment_size: 8 << 20,
            max_bytes: None,
        },
    )
    .expect("open log")
}

/// Reads and acknowledges everything (untimed cleanup, so the directory stays small).
fn drain(log: &mut SegmentLog) {
    while let Some(r) = log.next().expect("next") {
        log.ack(r.id).expect("ack");
    }
}

fn bench(c: &mut Criterion) {
    let base = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    for size in [1usize << 10, 64 << 10] {
        let data = vec![0x5au8; size];
        for fsync in [false, true] {
            let name = format!("persistent_queue_{}KiB_fsync_{fsync}", size >> 10);
            let mut g = c.benchmark_group(&name);
            g.throughput(Throughput::Bytes(size as u64));
            if fsync {
                g.sample_size(10)
                    .measurement_time(Duration::from_secs(3))
                    .warm_up_time(Duration::from_millis(500));
            }
            let dir = tempfile::tempdir_in(&base).expect("tempdir");
            let mut log = open(dir.path(), fsync);
            g.bench_function(BenchmarkId::from_parameter("append"), |b| {
                b.iter_custom(|iters| {
                    let t = Instant::now();
                    for _ in 0..iters {
                        log.append(&data, 10).expect("append");
                    }
                    let took = t.elapsed();
                    drain(&mut log);
                    took
                })
            });
            // Acknowledgements are never synced: reading and acknowledging cost the same with and without fsync.
            if !fsync {
                g.bench_function(BenchmarkId::from_parameter("next+ack"), |b| {
                    b.iter_custom(|iters| {
                        for _ in 0..iters {
                            log.append(&data, 10).expect("append");
                        }
                        let t = Instant::now();
                        for _ in 0..iters {
                            let r = log.next().expect("next").expect("a record");
                            log.ack(r.id).expect("ack");
                        }
                        t.elapsed()
                    })
                });
            }
            g.bench_function(BenchmarkId::from_parameter("append+next+ack"), |b| {
                b.iter(|| {
                    log.append(&data, 10).expect("append");
                    let r = log.next().expect("next").expect("a record");
                    log.ack(r.id).expect("ack");
                })
            });
            g.finish();
            drop(log);
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
