//! Span-id bookkeeping: reading the id files written by the Python scripts and the `file` exporter's
//! OTLP/JSON lines, and comparing what was sent with what a backend received.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

/// The complete lines of `path` (a trailing line without `\n` is still being written and is ignored).
/// A missing file reads as empty.
fn complete_lines(path: &Path) -> Vec<String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("reading {}: {e}", path.display()),
    };
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    String::from_utf8_lossy(&bytes[..end])
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Hex span ids, one per line (as written by `send_spans.py --ids-out` and `grpc_sink.py --ids-out`).
pub fn read_ids(path: &Path) -> Vec<String> {
    complete_lines(path)
}

/// Occurrences of each id.
pub fn count_ids(ids: &[String]) -> HashMap<String, usize> {
    let mut counts = HashMap::with_capacity(ids.len());
    for id in ids {
        *counts.entry(id.clone()).or_insert(0) += 1;
    }
    counts
}

fn is_hex_id(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b.to_ascii_lowercase()))
}

/// Parses JSON without serde_json's recursion limit of 128: an OTLP/JSON line holding an attribute as deep as the
/// receiver accepts (32 key-value-list levels, four JSON levels each) is deeper than that. Only for the test's own
/// files (written by spanpipe, bounded by its receiver's depth limit).
pub fn parse_deep_json(text: &str) -> serde_json::Result<serde_json::Value> {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    let v = serde_json::Value::deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// Span ids from the `file` exporter's output: one OTLP/JSON `ExportTraceServiceRequest` per line, walking
/// `resourceSpans[].scopeSpans[].spans[].spanId`. Ids are returned lowercased. Panics when a complete line is not
/// valid OTLP/JSON of that shape or an id is not hex of the right length (8-byte span id, 16-byte trace id).
pub fn file_exporter_span_ids(path: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    for (n, line) in complete_lines(path).iter().enumerate() {
        let v: serde_json::Value = parse_deep_json(line).unwrap_or_else(|e| {
            panic!(
                "{} line {}: not JSON ({e}): {}",
                path.display(),
                n + 1,
                crate::tail(line, 300)
            )
        });
        let resource_spans = v
            .get("resourceSpans")
            .and_then(|r| r.as_array())
            .unwrap_or_else(|| panic!("{} line {}: no resourceSpans array", path.display(), n + 1));
        for rs in resource_spans {
            for ss in rs
                .get("scopeSpans")
                .and_then(|s| s.as_array())
                .into_iter()
                .flatten()
            {
                for span in ss
                    .get("spans")
                    .and_then(|s| s.as_array())
                    .into_iter()
                    .flatten()
                {
                    let sid = span
                        .get("spanId")
                        .and_then(|s| s.as_str())
                        .unwrap_or_default();
                    let tid = span
                        .get("traceId")
                        .and_then(|s| s.as_str())
                        .unwrap_or_default();
                    assert!(
                        is_hex_id(sid, 16) && is_hex_id(tid, 32),
                        "{} line {}: span with non-hex or wrong-length ids (spanId={sid:?}, traceId={tid:?})",
                        path.display(),
                        n + 1
                    );
                    ids.push(sid.to_ascii_lowercase());
                }
            }
        }
    }
    ids
}

/// Difference between the ids sent and the ids a backend received.
#[derive(Debug, Default)]
pub struct IdDiff {
    pub expected: usize,
    pub received: usize,
    /// Sent but never received.
    pub missing: Vec<String>,
    /// Received more than once: (id, times).
    pub duplicated: Vec<(String, usize)>,
    /// Received but never sent.
    pub unexpected: Vec<String>,
}

impl IdDiff {
    /// Compares `received` against `expected` (which must itself be duplicate-free).
    pub fn compute(expected: &[String], received: &[String]) -> IdDiff {
        let want = count_ids(expected);
        assert_eq!(
            want.len(),
            expected.len(),
            "the expected id list itself has duplicates"
        );
        let got = count_ids(received);
        let mut missing: Vec<String> = want
            .keys()
            .filter(|id| !got.contains_key(*id))
            .cloned()
            .collect();
        let mut unexpected: Vec<String> = got
            .keys()
            .filter(|id| !want.contains_key(*id))
            .cloned()
            .collect();
        let dup: BTreeMap<String, usize> = got
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        missing.sort();
        unexpected.sort();
        IdDiff {
            expected: expected.len(),
            received: received.len(),
            missing,
            duplicated: dup.into_iter().collect(),
            unexpected,
        }
    }

    /// Every sent id received exactly once and nothing else.
    pub fn is_exact(&self) -> bool {
        self.missing.is_empty() && self.duplicated.is_empty() && self.unexpected.is_empty()
    }
}

impl fmt::Display for IdDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "expected {} ids, received {}: {} missing, {} duplicated, {} unexpected",
            self.expected,
            self.received,
            self.missing.len(),
            self.duplicated.len(),
            self.unexpected.len()
        )?;
        let show = |v: &[String]| v.iter().take(5).cloned().collect::<Vec<_>>().join(",");
        if !self.missing.is_empty() {
            write!(f, "; missing e.g. [{}]", show(&self.missing))?;
        }
        if !self.duplicated.is_empty() {
            let d: Vec<String> = self
                .duplicated
                .iter()
                .take(5)
                .map(|(id, n)| format!("{id}x{n}"))
                .collect();
            write!(f, "; duplicated e.g. [{}]", d.join(","))?;
        }
        if !self.unexpected.is_empty() {
            write!(f, "; unexpected e.g. [{}]", show(&self.unexpected))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn diff_reports_missing_duplicated_and_unexpected() {
        let d = IdDiff::compute(&s(&["a", "b", "c"]), &s(&["a", "a", "c", "z"]));
        assert_eq!(d.missing, s(&["b"]));
        assert_eq!(d.duplicated, vec![("a".to_string(), 2)]);
        assert_eq!(d.unexpected, s(&["z"]));
        assert!(!d.is_exact());
        assert!(
            d.to_string()
                .contains("1 missing, 1 duplicated, 1 unexpected"),
            "{d}"
        );
        assert!(IdDiff::compute(&s(&["a", "b"]), &s(&["b", "a"])).is_exact());
    }

    #[test]
    fn partial_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ids.txt");
        std::fs::write(&p, "aaaa\nbbbb\ncc").unwrap();
        assert_eq!(read_ids(&p), s(&["aaaa", "bbbb"]));
        assert!(read_ids(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn file_exporter_lines_are_walked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.jsonl");
        let line = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"A1A2A3A4A5A6A7A8"},{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"b1b2b3b4b5b6b7b8"}]}]}]}"#;
        std::fs::write(&p, format!("{line}\n{line}\n{{\"resourceSp")).unwrap();
        assert_eq!(
            file_exporter_span_ids(&p),
            s(&[
                "a1a2a3a4a5a6a7a8",
                "b1b2b3b4b5b6b7b8",
                "a1a2a3a4a5a6a7a8",
                "b1b2b3b4b5b6b7b8"
            ])
        );
    }

    #[test]
    #[should_panic(expected = "non-hex or wrong-length")]
    fn base64_ids_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.jsonl");
        let line = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"AQIDBAUGBwgJCgsMDQ4PEA==","spanId":"obKztLW2t7g="}]}]}]}"#;
        std::fs::write(&p, format!("{line}\n")).unwrap();
        file_exporter_span_ids(&p);
    }
}
