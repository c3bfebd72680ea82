//! Receiver security with real clients: TLS and mTLS on both protocols (the Python OTel SDK exporters with their
//! certificate options, reqwest), a certificate renewed on disk while running, bearer-token authentication
//! (`bearertokenauth` with a token file rotated while running: 401 / UNAUTHENTICATED for the rest, tokens never
//! in the logs), and slow or greedy clients: a slowloris cut off after `read_header_timeout` while valid traffic
//! goes on, idle connections closed, and `max_connections` holding new connections back until one closes.
//! Certificates come from a CA the test makes with the `openssl` CLI.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use prost::Message;
use spanpipe_e2e::otlp::{
    CT_PROTOBUF, RpcStatus, TRACE_EXPORT_PATH, grpc_export_raw, grpc_unary_raw, hex, http_client,
    http_post, proto_body, span_id, trace_id,
};
use spanpipe_e2e::process::run_bounded;
use spanpipe_e2e::{
    IdDiff, Spanpipe, file_exporter_span_ids, free_ports, run_python, tail, time_to_close,
    wait_until,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = run_bounded(
        Command::new("openssl").args(args).current_dir(dir),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "openssl {args:?}: {}", out.stderr);
}

const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// A CA `<name>.pem` / `<name>.key`.
fn make_ca(dir: &Path, name: &str) {
    let (pem, key, subj) = (
        format!("{name}.pem"),
        format!("{name}.key"),
        format!("/CN={name}"),
    );
    let mut args = vec![
        "req", "-x509", "-days", "2", "-subj", &subj, "-keyout", &key, "-out", &pem,
    ];
    args.extend(EC);
    args.extend([
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &args);
}

/// A leaf `<name>.pem` / `<name>.key` signed by CA `ca`, for `usage` serverAuth or clientAuth.
fn make_leaf(dir: &Path, ca: &str, name: &str, usage: &str) {
    let (pem, key, csr) = (
        format!("{name}.pem"),
        format!("{name}.key"),
        format!("{name}.csr"),
    );
    let mut args = vec![
        "req",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &key,
        "-out",
        &csr,
    ];
    args.extend(EC);
    openssl(dir, &args);
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        format!("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage={usage}\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"),
    )
    .expect("ext");
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-extfile",
            &ext,
        ],
    );
}

fn read(p: PathBuf) -> Vec<u8> {
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One export with the Python SDK (`secure_send.py`); returns whether it succeeded and the span ids exported
/// (its stderr is printed, for failures).
fn sdk_send(args: &[String]) -> (bool, Vec<String>) {
    let out = run_python("secure_send.py", args, Duration::from_secs(90));
    println!("secure_send.py {args:?}: {}", tail(&out.stderr, 2000));
    let line = out.stdout.lines().last().unwrap_or_default().to_string();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
        panic!(
            "secure_send.py printed {line:?} ({e}); stderr:\n{}",
            tail(&out.stderr, 4000)
        )
    });
    let ids = v["ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    (v["result"] == "SUCCESS", ids)
}

fn s(x: impl ToString) -> String {
    x.to_string()
}

fn https_client(ca: &[u8], identity: Option<Vec<u8>>) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = reqwest::Certificate::from_pem_bundle(ca).expect("ca");
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only(certs)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10));
    if let Some(pem) = identity {
        b = b.identity(reqwest::Identity::from_pem(&pem).expect("identity"));
    }
    b.build().expect("client")
}

fn body(base: u64, n: u64) -> (Vec<u8>, Vec<String>) {
    let ids: Vec<Vec<u8>> = (0..n).map(|i| span_id(base + i)).collect();
    let hexes = ids.iter().map(|i| hex(i)).collect();
    (proto_body(&trace_id(base), &ids), hexes)
}

#[test]
fn tls_and_mtls_on_both_protocols_with_certificate_reload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    make_ca(d, "ca");
    make_leaf(d, "ca", "server", "serverAuth");
    make_leaf(d, "ca", "client", "clientAuth");
    make_ca(d, "ca2");
    make_leaf(d, "ca2", "server2", "serverAuth");
    let [grpc, http] = free_ports::<2>();
    let out = d.join("spans.jsonl");
    let tls = format!(
        "{{ cert_file: {0}/server.pem, key_file: {0}/server.key, client_ca_file: {0}/ca.pem, reload_interval: 200ms }}",
        d.display()
    );
    let yaml = format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc: {{ endpoint: 127.0.0.1:{grpc}, tls: {tls} }}\n      \
         http: {{ endpoint: 127.0.0.1:{http}, tls: {tls} }}\nexporters:\n  file: {{ path: {} }}\n\
         service:\n  telemetry: {{ metrics: {{ level: none }} }}\n  pipelines:\n    traces: {{ receivers: [otlp], exporters: [file] }}\n",
        out.display()
    );
    let mut sp = Spanpipe::start(&yaml, &[grpc, http]);
    let p = |f: &str| s(d.join(f).display());
    let mtls = |protocol: &str, endpoint: String, cert: bool| {
        let mut a = vec![
            s("--protocol"),
            s(protocol),
            s("--endpoint"),
            endpoint,
            s("--ca"),
            p("ca.pem"),
        ];
        if cert {
            a.extend([
                s("--client-cert"),
                p("client.pem"),
                s("--client-key"),
                p("client.key"),
            ]);
        }
        a.extend([s("--attempt-timeout"), s(3)]);
        a
    };

    // The Python SDK with its certificate options: accepted over gRPC and HTTPS.
    let (ok_grpc, mut sent) = sdk_send(&mtls("grpc", format!("localhost:{grpc}"), true));
    assert!(
        ok_grpc,
        "SDK over gRPC with a client certificate failed:\n{}",
        tail(&sp.stderr_text(), 3000)
    );
    let (ok_http, ids) = sdk_send(&mtls("http", format!("https://localhost:{http}"), true));
    assert!(
        ok_http,
        "SDK over HTTPS with a client certificate failed:\n{}",
        tail(&sp.stderr_text(), 3000)
    );
    sent.extend(ids);
    // Without a client certificate: refused by mTLS on both.
    let (ok, _) = sdk_send(&mtls("grpc", format!("localhost:{grpc}"), false));
    assert!(!ok, "gRPC without a client certificate was accepted");
    let (ok, _) = sdk_send(&mtls("http", format!("https://localhost:{http}"), false));
    assert!(!ok, "HTTPS without a client certificate was accepted");

    let rt = runtime();
    let identity = [read(d.join("client.pem")), read(d.join("client.key"))].concat();
    rt.block_on(async {
        let url = format!("https://localhost:{http}/v1/traces");
        let (b, hexes) = body(1_000, 3);
        // reqwest: no client certificate → handshake refused; with one → 200.
        let anonymous = https_client(&read(d.join("ca.pem")), None);
        let r = anonymous
            .post(&url)
            .header("content-type", CT_PROTOBUF)
            .body(b.clone())
            .send()
            .await;
        assert!(r.is_err(), "no client certificate but {r:?}");
        let with_cert = https_client(&read(d.join("ca.pem")), Some(identity.clone()));
        let r = with_cert
            .post(&url)
            .header("content-type", CT_PROTOBUF)
            .body(b)
            .send()
            .await
            .expect("mTLS POST");
        assert_eq!(r.status(), 200);
        sent.extend(hexes);
        // Plaintext at a TLS port gets no OTLP answer.
        let plain = http_client()
            .post(format!("http://127.0.0.1:{http}/v1/traces"))
            .header("content-type", CT_PROTOBUF)
            .body(body(2_000, 1).0)
            .send()
            .await;
        assert!(plain.is_err(), "plaintext at the TLS port: {plain:?}");
        assert!(grpc_export_raw(grpc, body(3_000, 1).0, None).await.is_err());

        // Renew the server certificate on disk (now from another CA): new connections get it, unrestarted.
        std::fs::copy(d.join("server2.key"), d.join("server.key")).expect("copy key");
        std::fs::copy(d.join("server2.pem"), d.join("server.pem")).expect("copy cert");
        let renewed = https_client(&read(d.join("ca2.pem")), Some(identity.clone()));
        let deadline = Instant::now() + Duration::from_secs(15);
        let (b, hexes) = body(4_000, 2);
        loop {
            let r = renewed
                .post(&url)
                .header("content-type", CT_PROTOBUF)
                .body(b.clone())
                .send()
                .await;
            if let Ok(r) = r {
                assert_eq!(r.status(), 200);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "renewed certificate not served within 15 s: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        sent.extend(hexes);
    });
    sp.assert_running();
    let mut got = Vec::new();
    let complete = wait_until(Duration::from_secs(15), || {
        got = file_exporter_span_ids(&out);
        got.len() >= sent.len()
    });
    let diff = IdDiff::compute(&sent, &got);
    assert!(complete && diff.is_exact(), "{diff:?}");
    assert!(sp.stderr_text().contains("TLS certificate files changed"));
}

/// Tokens the logs must never show.
const TOKEN_A: &str = "tok-A-3f9c1d2e";
const TOKEN_B: &str = "tok-B-77aa5c01";

#[test]
fn bearer_token_auth_with_a_rotated_token_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("tokens");
    std::fs::write(&token_file, format!("{TOKEN_A}\n")).expect("token file");
    let [grpc, http] = free_ports::<2>();
    let out = dir.path().join("spans.jsonl");
    let yaml = format!(
        "extensions:\n  bearertokenauth/in:\n    filename: {}\nreceivers:\n  otlp:\n    protocols:\n      \
         grpc: {{ endpoint: 127.0.0.1:{grpc}, include_metadata: true, auth: {{ authenticator: bearertokenauth/in }} }}\n      \
         http: {{ endpoint: 127.0.0.1:{http}, include_metadata: true, auth: {{ authenticator: bearertokenauth/in }} }}\n\
         exporters:\n  file: {{ path: {} }}\n  debug: {{ verbosity: detailed }}\n\
         service:\n  extensions: [bearertokenauth/in]\n  pipelines:\n    traces: {{ receivers: [otlp], exporters: [file, debug] }}\n  \
         telemetry: {{ logs: {{ level: debug }}, metrics: {{ level: none }} }}\n",
        token_file.display(),
        out.display()
    );
    let mut sp = Spanpipe::start(&yaml, &[grpc, http]);
    let mut sent = Vec::new();

    // The Python SDK with its `headers` option, both protocols; a wrong token fails the export.
    let sdk = |protocol: &str, token: &str| {
        let endpoint = match protocol {
            "grpc" => format!("127.0.0.1:{grpc}"),
            _ => format!("http://127.0.0.1:{http}"),
        };
        let mut args = vec![
            s("--protocol"),
            s(protocol),
            s("--endpoint"),
            endpoint,
            s("--attempt-timeout"),
            s(3),
        ];
        if protocol == "grpc" {
            args.push(s("--plaintext"));
        }
        args.extend([s("--header"), format!("authorization=Bearer {token}")]);
        sdk_send(&args)
    };
    for protocol in ["grpc", "http"] {
        let (ok, ids) = sdk(protocol, TOKEN_A);
        assert!(
            ok,
            "SDK ({protocol}) with the token failed:\n{}",
            tail(&sp.stderr_text(), 3000)
        );
        sent.extend(ids);
        let (ok, _) = sdk(protocol, "wrong");
        assert!(!ok, "SDK ({protocol}) with a wrong token was accepted");
    }

    let rt = runtime();
    rt.block_on(async {
        let client = http_client();
        let post = |token: Option<String>, base: u64| {
            let client = client.clone();
            async move {
                let (b, hexes) = body(base, 2);
                let mut req = client
                    .post(format!("http://127.0.0.1:{http}/v1/traces"))
                    .header("content-type", CT_PROTOBUF)
                    .body(b);
                if let Some(t) = token {
                    req = req.header("authorization", t);
                }
                (req.send().await.expect("POST"), hexes)
            }
        };
        let grpc_call = |token: Option<&'static str>, base: u64| async move {
            let (b, hexes) = body(base, 2);
            let channel = spanpipe_e2e::otlp::grpc_channel(grpc).await;
            let mut req = tonic::Request::new(b);
            if let Some(t) = token {
                req.metadata_mut()
                    .insert("authorization", t.parse().expect("metadata"));
            }
            let mut client = tonic::client::Grpc::new(channel);
            client.ready().await.expect("ready");
            let res = client
                .unary(
                    req,
                    http::uri::PathAndQuery::from_static(TRACE_EXPORT_PATH),
                    spanpipe_e2e::otlp::RawCodec,
                )
                .await;
            (res, hexes)
        };

        // HTTP: 401 with a google.rpc.Status UNAUTHENTICATED body, with and without a (wrong) token.
        for token in [
            None,
            Some(s("Bearer nope")),
            Some(format!("Basic {TOKEN_A}")),
        ] {
            let (r, _) = post(token.clone(), 10).await;
            assert_eq!(r.status(), 401, "{token:?}");
            let st = RpcStatus::decode(r.bytes().await.expect("body")).expect("status body");
            assert_eq!(st.code, 16, "{st:?}");
        }
        let (r, hexes) = post(Some(format!("Bearer {TOKEN_A}")), 100).await;
        assert_eq!(r.status(), 200);
        sent.extend(hexes);
        // gRPC: UNAUTHENTICATED, then accepted with the token (tonic, raw bytes).
        let (res, _) = grpc_call(None, 20).await;
        assert_eq!(
            res.expect_err("no token").code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            grpc_unary_raw(
                spanpipe_e2e::otlp::grpc_channel(grpc).await,
                TRACE_EXPORT_PATH,
                body(30, 1).0,
                None
            )
            .await
            .expect_err("no token")
            .code(),
            tonic::Code::Unauthenticated
        );
        let (res, hexes) = grpc_call(Some(leak(format!("Bearer {TOKEN_A}"))), 200).await;
        res.expect("gRPC with the token");
        sent.extend(hexes);

        // Rotate the token file while running: B is accepted within seconds, then A is refused.
        std::fs::write(&token_file, format!("{TOKEN_B}\n")).expect("rotate");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (r, hexes) = post(Some(format!("Bearer {TOKEN_B}")), 300).await;
            if r.status() == 200 {
                sent.extend(hexes);
                break;
            }
            assert_eq!(r.status(), 401);
            assert!(
                Instant::now() < deadline,
                "rotated token not accepted within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (r, _) = post(Some(format!("Bearer {TOKEN_A}")), 400).await;
        assert_eq!(r.status(), 401, "the old token still works");
        let (res, _) = grpc_call(Some(leak(format!("Bearer {TOKEN_A}"))), 500).await;
        assert_eq!(
            res.expect_err("old token").code(),
            tonic::Code::Unauthenticated
        );
        let (res, hexes) = grpc_call(Some(leak(format!("Bearer {TOKEN_B}"))), 600).await;
        res.expect("gRPC with the new token");
        sent.extend(hexes);
    });
    sp.assert_running();
    let mut got = Vec::new();
    let complete = wait_until(Duration::from_secs(15), || {
        got = file_exporter_span_ids(&out);
        got.len() >= sent.len()
    });
    let diff = IdDiff::compute(&sent, &got);
    assert!(complete && diff.is_exact(), "{diff:?}");
    // Debug logs and the detailed debug exporter (with include_metadata on) never show a token.
    let logs = sp.stderr_text();
    assert!(logs.contains("token file changed"), "{}", tail(&logs, 3000));
    for secret in [TOKEN_A, TOKEN_B] {
        assert!(!logs.contains(secret), "a token appears in the logs");
        assert!(
            !std::fs::read_to_string(&out)
                .unwrap_or_default()
                .contains(secret)
        );
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[test]
fn slow_clients_are_cut_off_and_connections_capped() {
    let [grpc, http, capped] = free_ports::<3>();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("spans.jsonl");
    let yaml = format!(
        "receivers:\n  otlp/slow:\n    protocols:\n      \
         grpc: {{ endpoint: 127.0.0.1:{grpc}, keepalive: {{ server_parameters: {{ max_connection_idle: 2s }} }} }}\n      \
         http: {{ endpoint: 127.0.0.1:{http}, read_header_timeout: 1s, idle_timeout: 2s }}\n  \
         otlp/capped:\n    protocols:\n      http: {{ endpoint: 127.0.0.1:{capped}, max_connections: 3, read_header_timeout: 30s }}\n\
         exporters:\n  file: {{ path: {} }}\n\
         service:\n  telemetry: {{ metrics: {{ level: none }} }}\n  pipelines:\n    traces: {{ receivers: [otlp/slow, otlp/capped], exporters: [file] }}\n",
        out.display()
    );
    let mut sp = Spanpipe::start(&yaml, &[grpc, http, capped]);
    let connect = |port: u16| TcpStream::connect(("127.0.0.1", port)).expect("connect");

    // A slowloris sends half a header and stalls; another client sends nothing at all.
    let mut loris = connect(http);
    loris
        .write_all(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: app")
        .expect("write");
    let mut silent = connect(http);
    let mut silent_grpc = connect(grpc);
    let rt = runtime();
    let mut sent = Vec::new();
    // Valid traffic keeps flowing meanwhile.
    let served = rt.block_on(async {
        let client = http_client();
        let mut n = 0;
        for i in 0..10u64 {
            let (b, hexes) = body(10_000 + i * 10, 2);
            let r = http_post(&client, http, "/v1/traces", CT_PROTOBUF, None, b).await;
            assert_eq!(r.status(), 200);
            sent.extend(hexes);
            n += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        n
    });
    assert_eq!(served, 10);
    let loris_closed = time_to_close(&mut loris, Duration::from_secs(10))
        .expect("slowloris still connected after 10 s");
    let silent_closed = time_to_close(&mut silent, Duration::from_secs(10))
        .expect("silent client still connected after 10 s");
    let grpc_closed = time_to_close(&mut silent_grpc, Duration::from_secs(10))
        .expect("idle gRPC connection still open after 10 s");
    println!(
        "slowloris closed after {loris_closed:?} more, silent after {silent_closed:?}, idle gRPC after {grpc_closed:?}"
    );

    // An idle keep-alive connection is closed after idle_timeout (2s), after having served a request.
    let mut keepalive = connect(http);
    let (b, hexes) = body(20_000, 1);
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: {CT_PROTOBUF}\r\nContent-Length: {}\r\n\r\n",
        b.len()
    );
    keepalive.write_all(head.as_bytes()).expect("write");
    keepalive.write_all(&b).expect("write");
    sent.extend(hexes);
    let mut first = [0u8; 12];
    keepalive.read_exact(&mut first).expect("response");
    assert_eq!(&first, b"HTTP/1.1 200");
    let idle_closed =
        time_to_close(&mut keepalive, Duration::from_secs(10)).expect("idle connection still open");
    assert!(idle_closed < Duration::from_secs(5), "{idle_closed:?}");

    // max_connections: 3 connections that send nothing hold every slot; a 4th client's complete request waits
    // in the listen backlog, unanswered, until one of them closes, and is then served.
    let holders: Vec<TcpStream> = (0..3).map(|_| connect(capped)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut fourth = connect(capped);
    let (b, hexes) = body(30_000, 1);
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: {CT_PROTOBUF}\r\nContent-Length: {}\r\n\r\n",
        b.len()
    );
    fourth.write_all(head.as_bytes()).expect("write");
    fourth.write_all(&b).expect("write");
    fourth
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("timeout");
    let mut first = [0u8; 12];
    let early = fourth.read(&mut first);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "served beyond max_connections: {early:?}"
    );
    drop(holders);
    fourth
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    fourth
        .read_exact(&mut first)
        .expect("response once a slot is free");
    assert_eq!(&first, b"HTTP/1.1 200");
    sent.extend(hexes);
    sp.assert_running();
    assert!(
        sp.stderr_text().contains("connection limit reached"),
        "{}",
        tail(&sp.stderr_text(), 3000)
    );
    let mut got = Vec::new();
    let complete = wait_until(Duration::from_secs(15), || {
        got = file_exporter_span_ids(&out);
        got.len() >= sent.len()
    });
    let diff = IdDiff::compute(&sent, &got);
    assert!(complete && diff.is_exact(), "{diff:?}");
}

/// The `otlp` exporter's `tls.ca_file` against this receiver's TLS: spanpipe A (plaintext in) exports over
/// TLS to spanpipe B (TLS in, `file` out); an exporter trusting only the system roots fails and counts it.
#[test]
fn otlp_exporter_ca_file_reaches_a_tls_receiver() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    make_ca(d, "ca");
    make_leaf(d, "ca", "server", "serverAuth");
    let [a_grpc, b_grpc] = free_ports::<2>();
    let out = d.join("spans.jsonl");
    let b_yaml = format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc: {{ endpoint: 127.0.0.1:{b_grpc}, tls: {{ cert_file: {0}/server.pem, key_file: {0}/server.key }} }}\n\
         exporters:\n  file: {{ path: {1} }}\n\
         service:\n  telemetry: {{ metrics: {{ level: none }} }}\n  pipelines:\n    traces: {{ receivers: [otlp], exporters: [file] }}\n",
        d.display(),
        out.display()
    );
    let _b = Spanpipe::start(&b_yaml, &[b_grpc]);
    let a_yaml = format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc: {{ endpoint: 127.0.0.1:{a_grpc} }}\n\
         exporters:\n  otlp/trusted:\n    endpoint: localhost:{b_grpc}\n    tls: {{ ca_file: {0}/ca.pem }}\n  \
         otlp/untrusted:\n    endpoint: localhost:{b_grpc}\n    retry_on_failure: {{ enabled: false }}\n\
         service:\n  telemetry: {{ metrics: {{ level: none }} }}\n  pipelines:\n    traces: {{ receivers: [otlp], exporters: [otlp/trusted, otlp/untrusted] }}\n",
        d.display()
    );
    let a = Spanpipe::start(&a_yaml, &[a_grpc]);
    let (b, sent) = body(50_000, 4);
    runtime().block_on(async {
        grpc_export_raw(a_grpc, b, None).await.expect("export to A");
    });
    let mut got = Vec::new();
    let complete = wait_until(Duration::from_secs(15), || {
        got = file_exporter_span_ids(&out);
        got.len() >= sent.len()
    });
    assert!(
        complete,
        "nothing arrived through the exporter with ca_file"
    );
    // Both exporters of A send the same spans; only the one with ca_file gets through.
    let failed = |t: &str| {
        t.lines().any(|l| {
            l.contains("otlp/untrusted") && l.contains("WARN")
                || l.contains("otlp/untrusted") && l.contains("ERROR")
        })
    };
    assert!(
        wait_until(Duration::from_secs(10), || failed(&a.stderr_text())),
        "the untrusted exporter's failure is not logged:\n{}",
        tail(&a.stderr_text(), 3000)
    );
    println!("{}", tail(&a.stderr_text(), 1500));
    let diff = IdDiff::compute(&sent, &file_exporter_span_ids(&out));
    assert!(diff.is_exact(), "{diff:?}");
}
