//! Model-based test of the segment log: random interleavings of append, stage / publish / withdraw, read (`next`),
//! acknowledge, crash-and-reopen and on-disk corruption, checked after every step against a plain in-memory model
//! (a map from append sequence to record).
//!
//! The model's rules, which are the log's contract:
//! - `next` hands out the oldest published, unread record (append order), never a staged one;
//! - an acknowledged or withdrawn record never comes back, not even after a reopen;
//! - a reopen (the process died: nothing more is written) makes every record not acknowledged readable again,
//!   oldest first — in-flight and staged ones included;
//! - one flipped bit anywhere in one record (header or data) loses exactly that record, counted once in
//!   `corrupt`, and nothing else;
//! - `stats` always counts exactly the records not acknowledged.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use proptest::prelude::*;
use spanpipe_core::{RecordId, StorageClient};
use spanpipe_storage::log::{LogOptions, SegmentLog};

/// Bytes of a record header (the format's constant).
const HEADER: u64 = 16;

#[derive(Clone, Debug)]
enum Op {
    Append(usize),
    Stage(usize),
    Publish(usize),
    Withdraw(usize),
    Next,
    Ack(usize),
    Reopen,
    /// Flip bit `bit` of byte `at` (modulo the record's size) of the `pick`-th live record, then reopen.
    Corrupt {
        pick: usize,
        at: usize,
        bit: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..300).prop_map(Op::Append),
        2 => (1usize..300).prop_map(Op::Stage),
        2 => any::<usize>().prop_map(Op::Publish),
        1 => any::<usize>().prop_map(Op::Withdraw),
        6 => Just(Op::Next),
        5 => any::<usize>().prop_map(Op::Ack),
        1 => Just(Op::Reopen),
        1 => (any::<usize>(), any::<usize>(), 0u8..8).prop_map(|(pick, at, bit)| Op::Corrupt { pick, at, bit }),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Staged,
    Unread,
    InFlight,
}

struct Rec {
    id: RecordId,
    data: Vec<u8>,
    items: u32,
    state: State,
}

/// Record contents that differ in every byte position across records, so a mix-up cannot go unnoticed.
fn data(seq: u64, len: usize) -> Vec<u8> {
    let mut d = format!("{seq}:").into_bytes();
    d.extend((0..len).map(|i| (seq as usize * 31 + i) as u8));
    d
}

fn opts() -> LogOptions {
    LogOptions {
        fsync: false,
        // Small: records often straddle segment boundaries and whole segments get deleted.
        segment_size: 700,
        max_bytes: None,
    }
}

fn pick(model: &BTreeMap<u64, Rec>, state: State, n: usize) -> Option<u64> {
    let keys: Vec<u64> = model
        .iter()
        .filter(|(_, r)| r.state == state)
        .map(|(k, _)| *k)
        .collect();
    (!keys.is_empty()).then(|| keys[n % keys.len()])
}

fn check_stats(log: &SegmentLog, model: &BTreeMap<u64, Rec>) -> Result<(), TestCaseError> {
    let s = log.stats();
    prop_assert_eq!(s.records, model.len() as u64);
    prop_assert_eq!(
        s.items,
        model.values().map(|r| u64::from(r.items)).sum::<u64>()
    );
    prop_assert_eq!(
        s.bytes,
        model
            .values()
            .map(|r| HEADER + r.data.len() as u64)
            .sum::<u64>()
    );
    Ok(())
}

fn run(dir: &Path, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut log = SegmentLog::open(dir, opts()).expect("open");
    let mut model: BTreeMap<u64, Rec> = BTreeMap::new();
    let mut seq = 0u64;
    for op in ops {
        match op {
            Op::Append(len) | Op::Stage(len) => {
                let d = data(seq, len);
                let items = (len % 7) as u32;
                let staged = matches!(op, Op::Stage(_));
                let id = match staged {
                    true => log.stage(&d, items),
                    false => log.append(&d, items),
                }
                .expect("write");
                model.insert(
                    seq,
                    Rec {
                        id,
                        data: d,
                        items,
                        state: if staged { State::Staged } else { State::Unread },
                    },
                );
                seq += 1;
            }
            Op::Publish(n) => {
                if let Some(k) = pick(&model, State::Staged, n) {
                    let r = model.get_mut(&k).expect("picked");
                    log.publish(r.id);
                    r.state = State::Unread;
                }
            }
            Op::Withdraw(n) => {
                if let Some(k) = pick(&model, State::Staged, n) {
                    let r = model.remove(&k).expect("picked");
                    log.withdraw(r.id).expect("withdraw");
                }
            }
            Op::Next => {
                let want = model
                    .iter()
                    .find(|(_, r)| r.state == State::Unread)
                    .map(|(k, _)| *k);
                let got = log.next().expect("next");
                match (want, got) {
                    (None, None) => {}
                    (Some(k), Some(rec)) => {
                        let r = model.get_mut(&k).expect("wanted");
                        prop_assert_eq!(rec.id, r.id, "oldest unread first");
                        prop_assert!(rec.data == r.data, "record {} intact", k);
                        prop_assert_eq!(rec.items, r.items);
                        r.state = State::InFlight;
                    }
                    (want, got) => {
                        prop_assert!(
                            false,
                            "model wants {:?}, log gave {:?}",
                            want,
                            got.map(|r| r.id)
                        );
                    }
                }
            }
            Op::Ack(n) => {
                if let Some(k) = pick(&model, State::InFlight, n) {
                    let r = model.remove(&k).expect("picked");
                    log.ack(r.id).expect("ack");
                }
            }
            Op::Reopen => {
                drop(log);
                log = SegmentLog::open(dir, opts()).expect("reopen");
                for r in model.values_mut() {
                    r.state = State::Unread;
                }
                prop_assert_eq!(log.stats().corrupt, 0);
            }
            Op::Corrupt { pick: n, at, bit } => {
                if model.is_empty() {
                    continue;
                }
                drop(log);
                let k = *model.keys().nth(n % model.len()).expect("non-empty");
                let r = model.remove(&k).expect("picked");
                let size = HEADER + r.data.len() as u64;
                let off = r.id.offset + (at as u64 % size);
                let path = dir.join(format!("{:020}.log", r.id.segment));
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .expect("segment");
                let mut b = [0u8; 1];
                f.read_exact_at(&mut b, off).expect("read byte");
                b[0] ^= 1 << bit;
                f.write_all_at(&b, off).expect("write byte");
                drop(f);
                log = SegmentLog::open(dir, opts()).expect("reopen");
                for r in model.values_mut() {
                    r.state = State::Unread;
                }
                prop_assert_eq!(log.stats().corrupt, 1, "exactly the damaged record counted");
            }
        }
        check_stats(&log, &model)?;
    }
    // Finally everything left comes out, oldest first, exactly once.
    drop(log);
    let mut log = SegmentLog::open(dir, opts()).expect("reopen");
    let mut left: Vec<Vec<u8>> = Vec::new();
    for _ in 0..model.len() + 1 {
        match log.next().expect("next") {
            Some(r) => {
                log.ack(r.id).expect("ack");
                left.push(r.data);
            }
            None => break,
        }
    }
    let want: Vec<Vec<u8>> = model.into_values().map(|r| r.data).collect();
    prop_assert!(left == want, "{} left, {} expected", left.len(), want.len());
    prop_assert_eq!(log.stats().records, 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_segment_log_behaves_like_its_model(ops in proptest::collection::vec(op(), 1..120)) {
        let dir = tempfile::tempdir().expect("tempdir");
        run(dir.path(), ops)?;
    }
}
