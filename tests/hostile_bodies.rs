//! Issue 5, test 5: 10,000 random and mutated bodies at both receivers of the real binary, with valid traffic
//! interleaved. Mutations of valid OTLP protobuf and JSON requests: bit flips, truncation, length-field
//! corruption, huge and overlong varints, deep nesting, wrong types, wrong content types, bad gzip.
//! Issue 12 adds the door's mutations: a byte that breaks UTF-8 put into a string of a valid request (span name,
//! attribute key or value, service name, scope name; protobuf and JSON), and attribute values nested past
//! `max_attribute_depth` (33 to 12,000 levels, arrays or key-value lists, span attribute or `service.name`;
//! protobuf and JSON) — exactly 400 / INVALID_ARGUMENT, never a crash.
//!
//! What must happen, precisely:
//! - HTTP: every hostile body gets 200 (it is still a valid request: a mutation may leave one) or 400 / 413 /
//!   415, with the exact status where the kind of body decides it (wrong content type 415, bad gzip 400, deep
//!   nesting 400, a valid JSON document of the wrong shape 400); never 5xx, never a dropped connection.
//! - gRPC (a real gRPC client framing hostile messages, optionally gzip/zstd compressed): OK or
//!   INVALID_ARGUMENT (RESOURCE_EXHAUSTED only above the size limit); never INTERNAL, UNKNOWN or UNAVAILABLE.
//! - The process stays up with no "panicked" in its stderr, and every valid request interleaved every 50 bodies
//!   is answered OK and its spans all reach the exporter.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use spanpipe_e2e::otlp::{
    CT_JSON, CT_PROTOBUF, TRACE_EXPORT_PATH, grpc_channel, grpc_unary_raw, gzip, hex, http_client,
    http_post, json_request, proto_body, span_id, trace_id, zstd,
};
use spanpipe_e2e::wire::{
    Nest, deep_json_value, deep_value, key_value, request, service_name, span, string_value,
};
use spanpipe_e2e::{Spanpipe, file_exporter_span_ids, free_ports, wait_until};
use tonic::Code;
use tonic::codec::CompressionEncoding;

const BODIES: usize = 10_000;
const VALID_EVERY: usize = 50;
/// Receiver limits (1 MiB), so size-limit answers are cheap to provoke.
const LIMIT: usize = 1 << 20;

/// splitmix64: a seeded, dependency-free RNG, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// What the receiver may answer to a body, by how it was made.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Still possibly valid: 200, or 400 / 413.
    OkOr4xx,
    /// Certainly malformed: exactly 400.
    BadRequest,
    /// Unsupported Content-Type or Content-Encoding: exactly 415.
    Unsupported,
}

struct Hostile {
    what: &'static str,
    body: Vec<u8>,
    content_type: &'static str,
    encoding: Option<&'static str>,
    expect: Expect,
}

fn valid_proto(rng: &mut Rng) -> Vec<u8> {
    let n = 1 + rng.below(5) as u64;
    let base = 0x00ab_0000_0000 + rng.next() % 1_000_000 * 8;
    let ids: Vec<Vec<u8>> = (0..n).map(|i| span_id(base + i)).collect();
    proto_body(&trace_id(rng.next() % 1000), &ids)
}

fn valid_json(rng: &mut Rng) -> Vec<u8> {
    let base = 0x00cd_0000_0000 + rng.next() % 1_000_000 * 8;
    let ids: Vec<String> = (0..1 + rng.below(4) as u64)
        .map(|i| hex(&span_id(base + i)))
        .collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    serde_json::to_vec(&json_request(&hex(&trace_id(rng.next() % 1000)), &refs)).expect("json")
}

/// A varint of 10 bytes (the maximum) or 11 (overlong, invalid).
fn huge_varint(rng: &mut Rng) -> Vec<u8> {
    let mut v = vec![0xff; 9 + rng.below(2)];
    v.push(0x01);
    v
}

/// Mutates a valid encoded request.
fn mutate(rng: &mut Rng, mut b: Vec<u8>) -> (Vec<u8>, &'static str) {
    match rng.below(6) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            (b, "bit flips")
        }
        1 => {
            b.truncate(rng.below(b.len()));
            (b, "truncated")
        }
        2 => {
            // A length (or any) byte set to a large value.
            let i = rng.below(b.len());
            b[i] = [0x7f, 0xff, 0x80, 0x00][rng.below(4)];
            (b, "length field corrupted")
        }
        3 => {
            let i = rng.below(b.len());
            let v = huge_varint(rng);
            b.splice(i..i, v);
            (b, "huge varint inserted")
        }
        4 => {
            let i = rng.below(b.len());
            let n = 1 + rng.below(64);
            let junk = rng.bytes(n);
            b.splice(i..i, junk);
            (b, "junk inserted")
        }
        _ => {
            let mut d = b.clone();
            d.extend_from_slice(&b[..rng.below(b.len())]);
            (d, "duplicated tail")
        }
    }
}

/// Protobuf nested `depth` levels deep through field 1 (ResourceSpans → Resource → ... as length-delimited).
fn deep_proto(depth: usize) -> Vec<u8> {
    let mut b = Vec::new();
    for _ in 0..depth {
        let mut outer = vec![0x0a];
        let mut len = b.len();
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                outer.push(byte);
                break;
            }
            outer.push(byte | 0x80);
        }
        outer.extend_from_slice(&b);
        b = outer;
    }
    b
}

/// Strings of [`valid_proto`] / [`valid_json`] requests: span names, attribute keys and values, the service
/// name, the scope name.
const STRING_MARKERS: [&[u8]; 5] = [
    b"chat e2e",
    b"gen_ai.operation.name",
    b"mlflow.spanType",
    b"spanpipe-e2e",
    b"spanpipe.e2e",
];

/// A valid request with one byte of one of its strings replaced by a byte that can never be (or start) valid
/// UTF-8 there. Lengths are unchanged, so the request stays well-formed apart from the encoding.
fn invalid_utf8(rng: &mut Rng, mut b: Vec<u8>) -> Vec<u8> {
    let marker = STRING_MARKERS[rng.below(STRING_MARKERS.len())];
    let at = b
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("valid requests hold every marker");
    // 0xff/0xfe never occur in UTF-8; 0x80 is a lone continuation byte; 0xc3/0xed followed by ASCII is truncated.
    b[at + rng.below(marker.len())] = [0xff, 0xfe, 0x80, 0xc3, 0xed][rng.below(5)];
    b
}

/// A request whose span attribute `a` or resource `service.name` is nested `depth` levels deep.
fn deep_attribute(rng: &mut Rng, json: bool) -> Vec<u8> {
    let nest = [Nest::Array, Nest::Kvlist][rng.below(2)];
    let depth = 33 + rng.below(12_000 - 33);
    let on_resource = rng.below(2) == 0;
    let sid = span_id(0x00ef_0000_0000 + rng.next() % 1_000_000);
    let tid = trace_id(rng.next() % 1000);
    if json {
        let value = deep_json_value(nest, depth, r#"{"stringValue":"x"}"#);
        let (service, attr) = if on_resource {
            (value, r#"{"stringValue":"flat"}"#.to_string())
        } else {
            (r#"{"stringValue":"svc"}"#.to_string(), value)
        };
        return format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{service}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"{}","spanId":"{}","name":"deep","attributes":[{{"key":"a","value":{attr}}}]}}]}}]}}]}}"#,
            hex(&tid),
            hex(&sid)
        )
        .into_bytes();
    }
    let value = deep_value(nest, depth, &string_value(b"x"));
    let (resource, attr) = if on_resource {
        (
            key_value("service.name", &value),
            key_value("a", &string_value(b"flat")),
        )
    } else {
        (service_name("svc"), key_value("a", &value))
    };
    request(&[resource], &[span(&tid, &sid, None, b"deep", &[attr])])
}

/// Kinds a gRPC receiver must answer with exactly INVALID_ARGUMENT (their message bytes are certainly invalid).
const GRPC_INVALID: [&str; 3] = [
    "huge length varint",
    "invalid UTF-8 in a protobuf string",
    "attribute nested past max_attribute_depth (protobuf)",
];

fn hostile(rng: &mut Rng) -> Hostile {
    let h = |what, body, content_type, encoding, expect| Hostile {
        what,
        body,
        content_type,
        encoding,
        expect,
    };
    match rng.below(16) {
        0 => h(
            "random bytes",
            {
                let n = rng.below(2048);
                rng.bytes(n)
            },
            CT_PROTOBUF,
            None,
            Expect::OkOr4xx,
        ),
        1 | 2 => {
            let (b, what) = {
                let v = valid_proto(rng);
                mutate(rng, v)
            };
            h(what, b, CT_PROTOBUF, None, Expect::OkOr4xx)
        }
        3 | 4 => {
            let (b, what) = {
                let v = valid_json(rng);
                mutate(rng, v)
            };
            h(what, b, CT_JSON, None, Expect::OkOr4xx)
        }
        5 => {
            // Valid JSON of the wrong shape: types, ids, numbers.
            let docs = [
                r#"{"resourceSpans": 7}"#,
                r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 1, "spanId": "00"}]}]}]}"#,
                r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "0102030405060708"}]}]}]}"#,
                r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "startTimeUnixNano": "99999999999999999999999"}]}]}]}"#,
                r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "kind": -1e400}]}]}]}"#,
                r#"[]"#,
                r#""resourceSpans""#,
            ];
            h(
                "wrong JSON shape",
                docs[rng.below(docs.len())].into(),
                CT_JSON,
                None,
                Expect::BadRequest,
            )
        }
        6 => {
            // JSON: serde's recursion limit refuses it (400). Protobuf: the scan does not descend into nested
            // attribute values, so the nesting may stay a valid (empty) request: 200 or 400, and no stack overflow.
            let depth = 1_000 + rng.below(19_000);
            if rng.below(2) == 0 {
                let mut s =
                    r#"{"resourceSpans": [{"resource": {"attributes": [{"key": "k", "value": "#
                        .to_string();
                s.push_str(&"{\"arrayValue\": {\"values\": [".repeat(depth));
                s.push_str(&"]}}".repeat(depth));
                s.push_str("}]}}]}");
                h(
                    "deep JSON nesting",
                    s.into_bytes(),
                    CT_JSON,
                    None,
                    Expect::BadRequest,
                )
            } else {
                h(
                    "deep protobuf nesting",
                    deep_proto(depth),
                    CT_PROTOBUF,
                    None,
                    Expect::OkOr4xx,
                )
            }
        }
        7 => {
            let ct = [
                "text/plain",
                "application/xml",
                "application/grpc",
                "",
                "application/x-protobuf-not",
                "multipart/form-data",
            ];
            h(
                "wrong content type",
                valid_proto(rng),
                ct[rng.below(ct.len())],
                None,
                Expect::Unsupported,
            )
        }
        8 => {
            let enc = ["br", "compress", "x-gzip-not", "identity, gzip, br"];
            h(
                "unsupported content encoding",
                gzip(&valid_proto(rng)),
                CT_PROTOBUF,
                Some(enc[rng.below(enc.len())]),
                Expect::Unsupported,
            )
        }
        9 => {
            // Bad gzip: not gzip at all, gzip truncated, gzip with a corrupted deflate stream or checksum.
            let good = gzip(&valid_proto(rng));
            let body = match rng.below(3) {
                0 => valid_proto(rng),
                1 => good[..good.len() / 2].to_vec(),
                _ => {
                    let mut g = good.clone();
                    let n = g.len();
                    g[n - 5] ^= 0xff; // CRC32
                    g
                }
            };
            h(
                "bad gzip",
                body,
                CT_PROTOBUF,
                Some("gzip"),
                Expect::BadRequest,
            )
        }
        10 => {
            let mut z = zstd(&valid_json(rng));
            let i = rng.below(z.len());
            z.truncate(i.max(1));
            h(
                "truncated zstd",
                z,
                CT_JSON,
                Some("zstd"),
                Expect::BadRequest,
            )
        }
        12 => {
            let v = valid_proto(rng);
            h(
                "invalid UTF-8 in a protobuf string",
                invalid_utf8(rng, v),
                CT_PROTOBUF,
                None,
                Expect::BadRequest,
            )
        }
        13 => {
            let v = valid_json(rng);
            h(
                "invalid UTF-8 in a JSON string",
                invalid_utf8(rng, v),
                CT_JSON,
                None,
                Expect::BadRequest,
            )
        }
        14 => h(
            "attribute nested past max_attribute_depth (protobuf)",
            deep_attribute(rng, false),
            CT_PROTOBUF,
            None,
            Expect::BadRequest,
        ),
        15 => h(
            "attribute nested past max_attribute_depth (JSON)",
            deep_attribute(rng, true),
            CT_JSON,
            None,
            Expect::BadRequest,
        ),
        _ => {
            let mut b = vec![0x0a];
            b.extend(huge_varint(rng));
            b.extend({
                let n = rng.below(32);
                rng.bytes(n)
            });
            h(
                "huge length varint",
                b,
                CT_PROTOBUF,
                None,
                Expect::BadRequest,
            )
        }
    }
}

fn start() -> (Spanpipe, u16, u16, PathBuf) {
    let [grpc, http] = free_ports::<2>();
    let dir = tempfile::Builder::new()
        .prefix("spanpipe-hostile-")
        .tempdir()
        .expect("tempdir")
        .keep();
    let out = dir.join("spans.jsonl");
    let yaml = format!(
        "\
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc}, max_recv_msg_size_mib: 1 }}
      http: {{ endpoint: 127.0.0.1:{http}, max_request_body_size: 1MiB }}
exporters:
  file: {{ path: {out} }}
service:
  pipelines:
    traces: {{ receivers: [otlp], exporters: [file] }}
",
        out = out.display()
    );
    (Spanpipe::start(&yaml, &[grpc, http]), grpc, http, out)
}

/// A valid request whose span ids are recorded: ids 0x7e57_xxxx, distinct from every hostile body's.
fn valid_request(n: u64) -> (Vec<u8>, Vec<String>) {
    let ids: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            (0x7e57_0000_0000_0000u64 | (n * 4 + i))
                .to_be_bytes()
                .to_vec()
        })
        .collect();
    let hexes = ids.iter().map(|i| hex(i)).collect();
    (proto_body(&trace_id(n), &ids), hexes)
}

#[test]
fn hostile_bodies_at_both_receivers() {
    let (mut sp, grpc_port, http_port, out) = start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let mut rng = Rng(0x5eed_0005);
    let mut valid_ids: Vec<String> = Vec::new();
    let (mut http_answers, mut grpc_answers) = (
        std::collections::BTreeMap::new(),
        std::collections::BTreeMap::new(),
    );
    rt.block_on(async {
        let client = http_client();
        let channel = grpc_channel(grpc_port).await;
        for i in 0..BODIES {
            if i % VALID_EVERY == 0 {
                let (body, ids) = valid_request(i as u64);
                let r = http_post(&client, http_port, "/v1/traces", CT_PROTOBUF, None, body.clone()).await;
                assert_eq!(r.status().as_u16(), 200, "valid HTTP request {i} refused");
                valid_ids.extend(ids);
                let (body, ids) = valid_request(i as u64 + BODIES as u64);
                let r = grpc_unary_raw(channel.clone(), TRACE_EXPORT_PATH, body, None).await;
                assert!(r.is_ok(), "valid gRPC request {i} refused: {r:?}");
                valid_ids.extend(ids);
            }
            let b = hostile(&mut rng);
            if i % 2 == 0 {
                let resp = client
                    .post(format!("http://127.0.0.1:{http_port}/v1/traces"))
                    .header(http::header::CONTENT_TYPE, b.content_type)
                    .body(b.body.clone());
                let resp = match b.encoding {
                    Some(e) => resp.header(http::header::CONTENT_ENCODING, e),
                    None => resp,
                };
                let status = match resp.send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(e) => panic!("body {i} ({}): no HTTP answer: {e}", b.what),
                };
                let allowed: &[u16] = match b.expect {
                    Expect::OkOr4xx => &[200, 400, 413],
                    Expect::BadRequest => &[400],
                    Expect::Unsupported => &[415],
                };
                assert!(
                    allowed.contains(&status),
                    "HTTP body {i} ({}, {:?}, {:?}, {} bytes): status {status}, want one of {allowed:?}",
                    b.what, b.content_type, b.encoding, b.body.len()
                );
                *http_answers.entry((b.what, status)).or_insert(0u32) += 1;
            } else {
                // The message itself is hostile; a real client frames (and maybe compresses) it.
                let compression = [None, Some(CompressionEncoding::Gzip), Some(CompressionEncoding::Zstd)][rng.below(3)];
                let code = match grpc_unary_raw(channel.clone(), TRACE_EXPORT_PATH, b.body.clone(), compression).await {
                    Ok(_) => Code::Ok,
                    Err(s) => s.code(),
                };
                // To gRPC every body is just message bytes (content types and encodings are HTTP's): a mutation may
                // stay valid protobuf (OK); a length varint past the end never does.
                let allowed: &[Code] = if b.body.len() > LIMIT {
                    &[Code::ResourceExhausted]
                } else if GRPC_INVALID.contains(&b.what) {
                    &[Code::InvalidArgument]
                } else {
                    &[Code::Ok, Code::InvalidArgument]
                };
                assert!(
                    allowed.contains(&code),
                    "gRPC body {i} ({}, {} bytes, {compression:?}): {code:?}, want one of {allowed:?}",
                    b.what, b.body.len()
                );
                *grpc_answers.entry((b.what, format!("{code:?}"))).or_insert(0u32) += 1;
            }
            if i % 1000 == 999 {
                sp.assert_running();
            }
        }
    });
    println!(
        "{BODIES} hostile bodies in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("HTTP answers (kind, status): {http_answers:?}");
    println!("gRPC answers (kind, code): {grpc_answers:?}");
    sp.assert_running();
    let stderr = sp.stderr_text();
    assert!(
        !stderr.contains("panicked"),
        "collector panicked:\n{stderr}"
    );
    // Every valid span arrives (hostile bodies that stayed valid may add their own ids; they are not counted).
    let want: HashSet<String> = valid_ids.iter().cloned().collect();
    let mut got = HashSet::new();
    let complete = wait_until(Duration::from_secs(20), || {
        got = file_exporter_span_ids(&out)
            .into_iter()
            .filter(|id| id.starts_with("7e57"))
            .collect();
        got.len() >= want.len()
    });
    assert!(
        complete && got == want,
        "valid spans: sent {}, delivered {}",
        want.len(),
        got.len()
    );
    println!(
        "valid spans interleaved: sent {}, delivered {}",
        want.len(),
        got.len()
    );
    let _ = std::fs::remove_dir_all(out.parent().expect("dir"));
}
