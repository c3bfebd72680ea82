//! HTTPS + bearer token, as in front of the OpenShift MLflow gateway: nginx terminates TLS with a certificate
//! from a CA this test generates (openssl CLI) and only proxies to MLflow when `Authorization: Bearer <token>`
//! matches. spanpipe uses `tls.ca_file` and `token_file`. With a wrong token nothing is lost silently (the 401 is
//! logged and the spans are counted as failed in the metrics); rewriting the token file is picked up without a
//! restart. Needs nginx (`apt-get install nginx`; scripts/test.sh installs it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use spanpipe_e2e::mlflow::{mlflow_server, unique_suffix};
use spanpipe_e2e::process::{run_bounded, terminate};
use spanpipe_e2e::{Spanpipe, free_ports, port_open, run_python, tail, wait_until};

const GOOD: &str = "s3cr3t-good-token";
const TRACES: usize = 10;
const SPANS_PER_TRACE: usize = 4;

fn nginx_bin() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("nginx not found: install it (`apt-get install nginx`; scripts/test.sh does)")
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = run_bounded(
        Command::new("openssl").args(args).current_dir(dir),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "openssl {args:?}: {}", out.stderr);
}

/// A CA and a server certificate for 127.0.0.1 signed by it; returns the CA's PEM path.
fn make_certs(dir: &Path) -> PathBuf {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=spanpipe test CA",
        "-keyout",
        "ca.key",
    ];
    ca.extend(ec);
    ca.extend([
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    openssl(dir, &ca);
    let mut csr = vec![
        "req",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ];
    csr.extend(ec);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext.cnf");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
    );
    dir.join("ca.pem")
}

/// nginx in the foreground (one process), TLS on `port`, proxying to `upstream` only with the good token.
struct Nginx {
    child: Option<Child>,
    dir: PathBuf,
}

impl Nginx {
    fn start(dir: &Path, port: u16, upstream: &str) -> Nginx {
        let d = dir.display();
        let conf = format!(
            "\
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log {d}/access.log;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  client_max_body_size 32m;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {d}/server.pem;
    ssl_certificate_key {d}/server.key;
    location / {{
      if ($http_authorization != \"Bearer {GOOD}\") {{ return 401; }}
      proxy_pass {upstream};
    }}
  }}
}}
"
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
        let child = Command::new(nginx_bin())
            .args([
                "-e",
                &format!("{d}/error.log"),
                "-p",
                &d.to_string(),
                "-c",
                &format!("{d}/nginx.conf"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let mut n = Nginx {
            child: Some(child),
            dir: dir.to_path_buf(),
        };
        let up = wait_until(Duration::from_secs(20), || port_open(port));
        assert!(up, "nginx did not listen on {port}:\n{}", n.log());
        if let Some(c) = n.child.as_mut() {
            assert!(
                c.try_wait().ok().flatten().is_none(),
                "nginx exited:\n{}",
                n.log()
            );
        }
        n
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    fn statuses(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = terminate(&mut c, Duration::from_secs(5));
        }
    }
}

fn send(http: u16, run: &str, dir: &Path) -> usize {
    let args: Vec<String> = vec![
        "--endpoint".into(),
        format!("http://127.0.0.1:{http}/v1/traces"),
        "--traces".into(),
        TRACES.to_string(),
        "--spans-per-trace".into(),
        SPANS_PER_TRACE.to_string(),
        "--run-id".into(),
        run.into(),
        "--service-name".into(),
        run.into(),
        "--ids-out".into(),
        dir.join(format!("{run}.ids")).display().to_string(),
    ];
    let out = run_python("mlflow_otel_workload.py", &args, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "workload failed:\n{}",
        tail(&out.stderr, 3000)
    );
    TRACES * SPANS_PER_TRACE
}

/// The value of `otelcol_exporter_<what>_spans{exporter="mlflow"}` on spanpipe's /metrics.
fn metric(port: u16, what: &str) -> Option<u64> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).ok()?;
    let name = format!("otelcol_exporter_{what}_spans");
    text.lines()
        .find(|l| l.starts_with(&name) && l.contains("exporter=\"mlflow\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}

#[test]
fn tls_with_ca_file_and_a_rotating_token_file() {
    let server = mlflow_server();
    let mlflow = server.client();
    let work = tempfile::Builder::new()
        .prefix("spanpipe-mlflow-tls-")
        .tempdir()
        .expect("tempdir");
    let ca = make_certs(work.path());
    let [https, http, metrics] = free_ports::<3>();
    let nginx = Nginx::start(work.path(), https, &server.uri);
    let token = work.path().join("token");
    std::fs::write(&token, "wrong-token\n").expect("token");
    let experiment = format!("tls-token-{}", unique_suffix());
    let experiment_id = mlflow.create_experiment(&experiment);
    let mut sp = Spanpipe::start(
        &format!(
            "\
receivers:
  otlp:
    protocols:
      http: {{ endpoint: 127.0.0.1:{http} }}
processors:
  batch: {{ timeout: 100ms }}
exporters:
  mlflow:
    tracking_uri: https://127.0.0.1:{https}
    experiment_id: \"{experiment_id}\"
    token_file: {token}
    tls: {{ ca_file: {ca} }}
    retry_on_failure: {{ initial_interval: 200ms, max_interval: 2s }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics} }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [mlflow] }}
",
            token = token.display(),
            ca = ca.display()
        ),
        &[http],
    );

    // A wrong token: refused (401), logged, counted as failed — not silently lost, not retried forever.
    let refused = send(http, "wrong-token", work.path());
    let counted = wait_until(Duration::from_secs(30), || {
        metric(metrics, "send_failed") == Some(refused as u64)
    });
    let log = sp.stderr_text();
    assert!(
        counted,
        "send_failed = {:?}, expected {refused}\nspanpipe:\n{}\nnginx:\n{}",
        metric(metrics, "send_failed"),
        tail(&log, 3000),
        tail(&nginx.statuses(), 2000)
    );
    assert!(
        log.contains("http 401") && log.contains("permanent error"),
        "{}",
        tail(&log, 3000)
    );
    assert!(
        !log.contains("wrong-token") && !log.contains(GOOD),
        "a token leaked into the logs"
    );

    // The file is rewritten (rotation): picked up without a restart, and delivery over TLS works.
    std::fs::write(&token, format!("{GOOD}\n")).expect("token");
    let delivered = send(http, "good-token", work.path());
    let n = mlflow.wait_for_spans(&experiment_id, delivered, Duration::from_secs(60));
    assert_eq!(
        n,
        delivered,
        "spans in MLflow\nspanpipe:\n{}\nnginx:\n{}",
        tail(&sp.stderr_text(), 3000),
        nginx.log()
    );
    assert!(wait_until(Duration::from_secs(10), || metric(
        metrics, "sent"
    ) == Some(
        delivered as u64
    )));
    let services: Vec<String> = mlflow
        .trace_infos(&experiment_id)
        .iter()
        .filter_map(|t| t["tags"]["service.name"].as_str().map(str::to_string))
        .collect();
    assert!(
        services.iter().all(|s| s == "good-token"),
        "only the accepted run is in MLflow: {services:?}"
    );
    assert!(nginx.statuses().contains(" 401 ") && nginx.statuses().contains(" 200 "));
    assert!(sp.stop_gracefully().success());
}
