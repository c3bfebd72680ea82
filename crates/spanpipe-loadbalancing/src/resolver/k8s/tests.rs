//! The k8s resolver against a local HTTP server replaying a recorded EndpointSlice list / watch stream (the API
//! server's JSON), including a watch the server closes (resumed from the last version), a watch `ERROR` event with
//! code 410 and an HTTP 410 on a watch (both: list again).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::test_util::balancer;

/// One scripted answer: status, then body pieces each after a pause; `hang` keeps the connection open.
struct Answer {
    status: &'static str,
    pieces: Vec<String>,
    hang: bool,
}

fn testdata(name: &str) -> String {
    let path = format!(
        "{}/src/resolver/k8s/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn events(name: &str) -> Vec<String> {
    testdata(name).lines().map(|l| format!("{l}\n")).collect()
}

/// Serves `answers` in order, one per connection; records each request line and its authorization header.
async fn api_server(answers: Vec<Answer>) -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        for answer in answers {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&head).to_string();
            let line = text.lines().next().unwrap_or("").to_string();
            let auth = text
                .lines()
                .find_map(|l| l.strip_prefix("authorization: "))
                .unwrap_or("")
                .to_string();
            log.lock().unwrap().push((line, auth));
            let hdr = format!(
                "HTTP/1.1 {}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
                answer.status
            );
            let _ = sock.write_all(hdr.as_bytes()).await;
            for p in &answer.pieces {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let chunk = format!("{:x}\r\n{p}\r\n", p.len());
                let _ = sock.write_all(chunk.as_bytes()).await;
            }
            if answer.hang {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            let _ = sock.write_all(b"0\r\n\r\n").await;
        }
    });
    (base, seen)
}

fn ok(pieces: Vec<String>) -> Answer {
    Answer {
        status: "200 OK",
        pieces,
        hang: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_watch_resume_and_relist_after_410() {
    let mut watch_3000 = ok(vec![]);
    watch_3000.hang = true;
    let (base, seen) = api_server(vec![
        ok(vec![testdata("list-1000.json")]),
        ok(events("watch-1000.jsonl")),
        ok(events("watch-1006.jsonl")),
        ok(vec![testdata("list-2000.json")]),
        Answer {
            status: "410 Gone",
            pieces: vec![testdata("gone-2000.json")],
            hang: false,
        },
        ok(vec![testdata("list-3000.json")]),
        watch_3000,
    ])
    .await;
    let token = std::env::temp_dir().join(format!("lb-k8s-token-{}", std::process::id()));
    std::fs::write(&token, "sa-token-123\n").unwrap();
    let b = balancer(
        "resolver: { k8s: { service: spanpipe-back.observability } }\nprotocol: { otlp: { tls: { insecure: true } } }",
    );
    let watch = EndpointSliceWatch {
        api: ApiClient {
            base,
            token_file: Some(token.clone()),
            http: client(),
        },
        service: "spanpipe-back".into(),
        namespace: "observability".into(),
        ports: vec![4317],
        timeout: Duration::from_secs(2),
        return_hostnames: false,
    };
    let task = tokio::spawn(watch.run(b.clone()));
    // Every distinct membership, in order, until the last expected one (bounded: 15 s).
    let want: Vec<Vec<&str>> = vec![
        vec!["10.244.1.17:4317", "10.244.2.23:4317"],
        vec!["10.244.1.17:4317", "10.244.2.23:4317", "10.244.3.9:4317"],
        vec![
            "10.244.1.17:4317",
            "10.244.2.23:4317",
            "10.244.3.9:4317",
            "10.244.4.31:4317",
        ],
        vec!["10.244.1.17:4317", "10.244.2.23:4317", "10.244.3.9:4317"],
        vec!["10.244.1.17:4317"],
        vec!["10.244.1.17:4317", "10.244.5.4:4317"],
    ];
    let mut states: Vec<Vec<String>> = Vec::new();
    for _ in 0..1500 {
        let now = b.membership().ring.endpoints().to_vec();
        if !now.is_empty() && states.last() != Some(&now) {
            states.push(now);
        }
        if states.len() == want.len() && states.last().map(|s| s.len()) == Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(states, want);
    for _ in 0..500 {
        if seen.lock().unwrap().len() >= 7 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let requests = seen.lock().unwrap().clone();
    let paths: Vec<String> = requests
        .iter()
        .map(|(line, _)| {
            let q = line.split(' ').nth(1).unwrap_or("");
            let rv = q.split("resourceVersion=").nth(1).unwrap_or("");
            match q.contains("watch=true") {
                true => format!("watch {rv}"),
                false => "list".into(),
            }
        })
        .collect();
    assert_eq!(
        paths,
        [
            "list",
            "watch 1000",
            "watch 1006",
            "list",
            "watch 2000",
            "list",
            "watch 3000"
        ]
    );
    for (line, auth) in &requests {
        assert!(
            line.contains("/apis/discovery.k8s.io/v1/namespaces/observability/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dspanpipe-back"),
            "{line}"
        );
        assert_eq!(auth, "Bearer sa-token-123");
    }
    b.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    let _ = std::fs::remove_file(token);
}

#[test]
fn ready_endpoints_as_ips_or_hostnames_for_every_port() {
    let list: EndpointSliceList = serde_json::from_str(&testdata("list-1000.json")).unwrap();
    let slices: BTreeMap<String, EndpointSlice> = list
        .items
        .into_iter()
        .map(|s| (s.metadata.name.clone(), s))
        .collect();
    let mut w = EndpointSliceWatch {
        api: ApiClient {
            base: String::new(),
            token_file: None,
            http: client(),
        },
        service: "spanpipe-back".into(),
        namespace: "observability".into(),
        ports: vec![4317, 14317],
        timeout: Duration::from_secs(1),
        return_hostnames: false,
    };
    assert_eq!(
        w.endpoints(&slices),
        [
            "10.244.1.17:14317",
            "10.244.1.17:4317",
            "10.244.2.23:14317",
            "10.244.2.23:4317"
        ]
    );
    w.return_hostnames = true;
    w.ports = vec![4317];
    assert_eq!(
        w.endpoints(&slices),
        [
            "spanpipe-back-0.spanpipe-back.observability:4317",
            "spanpipe-back-1.spanpipe-back.observability:4317"
        ]
    );
}

#[test]
fn hostile_events_end_the_watch_without_panicking() {
    let w = EndpointSliceWatch {
        api: ApiClient {
            base: String::new(),
            token_file: None,
            http: client(),
        },
        service: "s".into(),
        namespace: "n".into(),
        ports: vec![4317],
        timeout: Duration::from_secs(1),
        return_hostnames: false,
    };
    let mut slices = BTreeMap::new();
    let mut v = String::from("1");
    for bad in [
        &b"{"[..],
        b"\xff\xfe",
        br#"{"type":"ADDED","object":{"metadata":{"name":5}}}"#,
        br#"{"type":"ERROR","object":{"code":500,"message":"boom"}}"#,
        br#"{"type":"WHAT","object":{}}"#,
    ] {
        assert!(matches!(
            w.apply(bad, &mut slices, &mut v),
            Some(WatchEnd::Failed(_))
        ));
    }
    assert_eq!(
        w.apply(
            br#"{"type":"ERROR","object":{"code":410}}"#,
            &mut slices,
            &mut v
        ),
        Some(WatchEnd::Expired)
    );
    // An endpoint with a non-IP address is skipped, not an error.
    assert_eq!(
        w.apply(
            br#"{"type":"ADDED","object":{"metadata":{"name":"x","resourceVersion":"7"},"endpoints":[{"addresses":["not-an-ip"]},{"addresses":["fd00::1"]}]}}"#,
            &mut slices,
            &mut v
        ),
        None
    );
    assert_eq!(v, "7");
    assert_eq!(w.endpoints(&slices), ["[fd00::1]:4317"]);
}

fn client() -> reqwest::Client {
    spanpipe_otlp::exporter::tls::ensure_crypto_provider();
    reqwest::Client::new()
}
