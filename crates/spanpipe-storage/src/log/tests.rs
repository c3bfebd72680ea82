use std::fs::OpenOptions;

use super::*;

fn opts() -> LogOptions {
    LogOptions {
        fsync: false,
        segment_size: 1 << 20,
        max_bytes: None,
    }
}

fn rec(i: usize) -> Vec<u8> {
    format!("record number {i} ").repeat(1 + i % 3).into_bytes()
}

fn drain(log: &mut SegmentLog) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(r) = log.next().unwrap() {
        log.ack(r.id).unwrap();
        out.push(r.data);
    }
    out
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

#[test]
fn records_come_back_in_order_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
        for i in 0..5 {
            log.append(&rec(i), i as u32).unwrap();
        }
        let s = log.stats();
        assert_eq!((s.records, s.items), (5, 10));
        assert_eq!(
            s.bytes,
            (0..5).map(|i| HEADER + rec(i).len() as u64).sum::<u64>()
        );
    }
    let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
    assert_eq!(log.stats().records, 5);
    for i in 5..8 {
        log.append(&rec(i), 1).unwrap();
    }
    let got = drain(&mut log);
    assert_eq!(got, (0..8).map(rec).collect::<Vec<_>>());
    assert_eq!(log.stats(), StorageStats::default());
}

#[test]
fn acknowledged_records_are_not_handed_out_again_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
        for i in 0..6 {
            log.append(&rec(i), 1).unwrap();
        }
        let a = log.next().unwrap().unwrap();
        let b = log.next().unwrap().unwrap();
        let c = log.next().unwrap().unwrap();
        // Out of order, as concurrent workers do; `b` stays in flight when the process "dies".
        log.ack(c.id).unwrap();
        log.ack(a.id).unwrap();
        assert_eq!(b.data, rec(1));
        assert_eq!(log.stats().records, 4);
    }
    let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
    assert_eq!(log.stats().records, 4);
    assert_eq!(drain(&mut log), vec![rec(1), rec(3), rec(4), rec(5)]);
}

#[test]
fn a_torn_last_record_is_detected_at_every_offset() {
    let full = tempfile::tempdir().unwrap();
    {
        let mut log = SegmentLog::open(full.path(), opts()).unwrap();
        for i in 0..3 {
            log.append(&rec(i), 1).unwrap();
        }
    }
    let seg = log_files(full.path()).remove(0);
    let bytes = std::fs::read(&seg).unwrap();
    let last_start = (0..2)
        .map(|i| HEADER as usize + rec(i).len())
        .sum::<usize>();
    assert_eq!(bytes.len(), last_start + HEADER as usize + rec(2).len());
    for cut in last_start..bytes.len() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(seg.file_name().unwrap()), &bytes[..cut]).unwrap();
        let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
        let torn = u64::from(cut > last_start);
        assert_eq!(log.stats().corrupt, torn, "cut at {cut}");
        assert_eq!(log.stats().records, 2, "cut at {cut}");
        // The torn tail was cut off: the old segment ends at the last whole record.
        let kept = std::fs::metadata(dir.path().join(seg.file_name().unwrap())).unwrap();
        assert_eq!(kept.len() as usize, last_start, "cut at {cut}");
        log.append(b"after", 1).unwrap();
        drop(log);
        let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
        assert_eq!(
            log.stats().corrupt,
            0,
            "cut at {cut}: nothing damaged is left"
        );
        assert_eq!(
            drain(&mut log),
            vec![rec(0), rec(1), b"after".to_vec()],
            "cut at {cut}"
        );
    }
}

#[test]
fn a_checksum_mismatch_skips_only_that_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
        for i in 0..4 {
            log.append(&rec(i), 1).unwrap();
        }
    }
    let seg = log_files(dir.path()).remove(0);
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    // Flip a data byte of record 1.
    let at = HEADER as usize + rec(0).len() + HEADER as usize + 3;
    f.write_all_at(b"\xff", at as u64).unwrap();
    drop(f);
    let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
    assert_eq!(log.stats().corrupt, 1);
    assert_eq!(drain(&mut log), vec![rec(0), rec(2), rec(3)]);
}

#[test]
fn a_damaged_header_costs_only_its_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
        for i in 0..6 {
            log.append(&rec(i), 1).unwrap();
        }
    }
    {
        // A second process run: its records go to a new segment.
        let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
        log.append(b"next run", 1).unwrap();
    }
    let seg = log_files(dir.path()).remove(0);
    let len_before = std::fs::metadata(&seg).unwrap().len();
    let start = |i: usize| (0..i).map(|j| HEADER + rec(j).len() as u64).sum::<u64>();
    // One bit of every header byte in turn: length, items, data CRC, header CRC. Each time exactly record 1 is
    // lost and the scan picks up again at record 2 — not a truncation.
    let original = std::fs::read(&seg).unwrap();
    for byte in 0..HEADER {
        for bit in [0u8, 3, 7] {
            let mut bytes = original.clone();
            bytes[(start(1) + byte) as usize] ^= 1 << bit;
            std::fs::write(&seg, &bytes).unwrap();
            let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
            assert_eq!(log.stats().corrupt, 1, "byte {byte} bit {bit}");
            let mut want: Vec<Vec<u8>> = [0, 2, 3, 4, 5].into_iter().map(rec).collect();
            want.push(b"next run".to_vec());
            let got: Vec<Vec<u8>> = {
                // Read without acknowledging, so the files stay for the next round.
                let mut out = Vec::new();
                while let Some(r) = log.next().unwrap() {
                    out.push(r.data);
                }
                out
            };
            assert_eq!(got, want, "byte {byte} bit {bit}");
            drop(log);
            assert_eq!(
                std::fs::metadata(&seg).unwrap().len(),
                len_before,
                "not truncated"
            );
            // Opening appended an empty segment each time, and acknowledged the damage (so a later open does not
            // count it again); keep the directory as it was.
            for p in log_files(dir.path()).into_iter().skip(2) {
                std::fs::remove_file(p).unwrap();
            }
            let _ = std::fs::remove_file(seg.with_extension("bad"));
        }
    }
}

#[test]
fn damage_in_several_places_is_counted_once_per_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
        for i in 0..10 {
            log.append(&rec(i), 1).unwrap();
        }
    }
    let seg = log_files(dir.path()).remove(0);
    let start = |i: usize| (0..i).map(|j| HEADER + rec(j).len() as u64).sum::<u64>();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[start(1) as usize + 2] ^= 0x10; // header of 1
    bytes[start(2) as usize + 13] ^= 0x01; // header CRC of 2 (adjacent damaged records: one stretch)
    bytes[start(5) as usize + HEADER as usize + 4] ^= 0x80; // data of 5
    bytes[start(7) as usize] ^= 0x01; // header of 7
    std::fs::write(&seg, &bytes).unwrap();
    let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
    // Records 1 and 2 are adjacent: the scan cannot tell one damaged stretch from two, and counts one.
    assert_eq!(log.stats().corrupt, 3);
    assert_eq!(
        drain(&mut log),
        [0, 3, 4, 6, 8, 9].into_iter().map(rec).collect::<Vec<_>>()
    );
}

#[test]
fn damage_is_counted_once_not_at_every_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
        for i in 0..5 {
            log.append(&rec(i), 1).unwrap();
        }
    }
    let seg = log_files(dir.path()).remove(0);
    let start = |i: usize| (0..i).map(|j| HEADER + rec(j).len() as u64).sum::<u64>();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[start(1) as usize + 5] ^= 0x02; // header of 1
    bytes[start(3) as usize + HEADER as usize] ^= 0x02; // data of 3
    std::fs::write(&seg, &bytes).unwrap();
    let log = SegmentLog::open(dir.path(), opts()).unwrap();
    assert_eq!(log.stats().corrupt, 2);
    drop(log);
    let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
    assert_eq!(log.stats().corrupt, 0, "already counted");
    assert_eq!(drain(&mut log), vec![rec(0), rec(2), rec(4)]);
}

#[test]
fn damage_reaching_the_end_is_a_torn_tail_and_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
        for i in 0..4 {
            log.append(&rec(i), 1).unwrap();
        }
    }
    let seg = log_files(dir.path()).remove(0);
    let start = |i: usize| (0..i).map(|j| HEADER + rec(j).len() as u64).sum::<u64>();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[start(3) as usize + 1] ^= 0x04;
    std::fs::write(&seg, &bytes).unwrap();
    let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
    assert_eq!(log.stats().corrupt, 1);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), start(3));
    assert_eq!(drain(&mut log), (0..3).map(rec).collect::<Vec<_>>());
}

#[test]
fn staged_records_are_unseen_until_published_and_withdrawn_ones_never_come_back() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
        let a = log.stage(b"a", 1).unwrap();
        let b = log.stage(b"b", 2).unwrap();
        let c = log.stage(b"c", 3).unwrap();
        assert_eq!(log.stats().records, 3, "staged records are on disk");
        assert!(log.next().unwrap().is_none(), "nothing published yet");
        log.publish(c);
        log.publish(a);
        log.withdraw(b).unwrap();
        assert_eq!(log.stats().records, 2);
        assert_eq!(log.stats().items, 4);
        let first = log.next().unwrap().unwrap();
        assert_eq!(first.data, b"a", "published records keep their order");
        let d = log.stage(b"d", 1).unwrap();
        let _ = d; // staged when the process dies: an ordinary record for the next run
    }
    let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
    assert_eq!(
        drain(&mut log),
        vec![b"a".to_vec(), b"c".to_vec(), b"d".to_vec()]
    );
}

#[test]
fn failed_acknowledgement_writes_are_kept_retried_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let small = LogOptions {
        segment_size: 4096,
        ..opts()
    };
    let mut log = SegmentLog::open(dir.path(), small).unwrap();
    for i in 0..4 {
        log.append(&rec(i), 1).unwrap();
    }
    let seg = log_files(dir.path()).remove(0);
    let ack = seg.with_extension("ack");
    // Every write to the ack file fails with ENOSPC.
    std::os::unix::fs::symlink("/dev/full", &ack).unwrap();
    let r0 = log.next().unwrap().unwrap();
    let r1 = log.next().unwrap().unwrap();
    log.ack(r0.id).unwrap();
    log.ack(r1.id).unwrap();
    assert_eq!(log.stats().ack_write_failures, 2);
    assert_eq!(log.stats().records, 2, "acknowledged in memory");
    // Not handed out again by this process.
    let r2 = log.next().unwrap().unwrap();
    assert_eq!(r2.data, rec(2));
    // Space again: the next acknowledgement writes the owed ones too.
    std::fs::remove_file(&ack).unwrap();
    log.ack(r2.id).unwrap();
    assert_eq!(log.stats().ack_write_failures, 2);
    let acked = record::parse_acks(&std::fs::read(&ack).unwrap());
    assert_eq!(acked.len(), 3, "{acked:?}");
    drop(log);
    let mut log = SegmentLog::open(dir.path(), small).unwrap();
    assert_eq!(drain(&mut log), vec![rec(3)]);
}

#[test]
fn an_emptied_active_segment_is_replaced_when_its_acks_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
    for i in 0..3 {
        log.append(&rec(i), 1).unwrap();
    }
    let seg = log_files(dir.path()).remove(0);
    std::os::unix::fs::symlink("/dev/full", seg.with_extension("ack")).unwrap();
    let got = drain(&mut log);
    assert_eq!(got.len(), 3);
    assert!(log.stats().ack_write_failures > 0);
    // The full segment is gone (its space given back) although no acknowledgement reached the disk.
    assert!(!seg.exists(), "{:?}", log_files(dir.path()));
    log.append(b"after", 1).unwrap();
    drop(log);
    let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
    assert_eq!(drain(&mut log), vec![b"after".to_vec()]);
}

#[test]
fn damage_after_open_is_caught_when_reading() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
    log.append(b"one", 1).unwrap();
    log.append(b"two", 1).unwrap();
    let seg = log_files(dir.path()).remove(0);
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    f.write_all_at(b"X", HEADER).unwrap();
    drop(f);
    assert_eq!(drain(&mut log), vec![b"two".to_vec()]);
    assert_eq!(log.stats().corrupt, 1);
}

#[test]
fn zero_filled_and_torn_ack_entries_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
        for i in 0..3 {
            log.append(&rec(i), 1).unwrap();
        }
        let r = log.next().unwrap().unwrap();
        log.ack(r.id).unwrap();
    }
    let seg = log_files(dir.path()).remove(0);
    let ack = seg.with_extension("ack");
    let mut bytes = std::fs::read(&ack).unwrap();
    assert_eq!(bytes.len(), record::ACK);
    bytes.extend_from_slice(&[0u8; 12]);
    bytes.extend_from_slice(&record::ack_entry(HEADER + rec(0).len() as u64)[..7]);
    std::fs::write(&ack, bytes).unwrap();
    let mut log = SegmentLog::open(dir.path(), opts()).unwrap();
    assert_eq!(drain(&mut log), vec![rec(1), rec(2)]);
}

#[test]
fn delivered_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let small = LogOptions {
        segment_size: 4096,
        ..opts()
    };
    let mut log = SegmentLog::open(dir.path(), small).unwrap();
    let data = vec![7u8; 1000];
    for _ in 0..20 {
        log.append(&data, 1).unwrap();
    }
    assert!(
        log_files(dir.path()).len() >= 5,
        "{:?}",
        log_files(dir.path())
    );
    assert_eq!(drain(&mut log).len(), 20);
    // Only the active segment is left, and no ack file without its log.
    assert_eq!(log_files(dir.path()).len(), 1);
    assert_eq!(log.segment_count(), 1);
    drop(log);
    let log = SegmentLog::open(dir.path(), small).unwrap();
    assert_eq!(log.stats(), StorageStats::default());
    assert_eq!(log_files(dir.path()).len(), 1);
    let acks = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "ack")
        })
        .count();
    assert_eq!(acks, 0);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _log = SegmentLog::open(dir.path(), opts()).unwrap();
    let again = SegmentLog::open(dir.path(), opts());
    let e = again.err().expect("second open must fail").to_string();
    assert!(e.contains("in use"), "{e}");
}

#[test]
fn records_larger_than_a_segment_get_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let small = LogOptions {
        segment_size: 4096,
        ..opts()
    };
    let mut log = SegmentLog::open(dir.path(), small).unwrap();
    log.append(b"a", 1).unwrap();
    log.append(&vec![1u8; 10_000], 1).unwrap();
    log.append(b"b", 1).unwrap();
    assert_eq!(
        drain(&mut log),
        vec![b"a".to_vec(), vec![1u8; 10_000], b"b".to_vec()]
    );
}
