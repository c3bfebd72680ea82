//! The `loadbalancing` exporter's DNS resolver end to end: a tiny DNS server on 127.0.0.1 (hickory-proto, run by
//! this test) answers A queries for one name with the addresses the test sets; three back ends listen on the same
//! port at three loopback addresses (127.0.0.1, .2, .3); the front resolves the name every 500 ms through that
//! server (`resolver.dns.nameserver`). The name's records change while clients send:
//!
//! 1. `.1 .2` — every trace whole at .1 or .2, none at .3;
//! 2. `.1 .2 .3` — about a third of new traces go to .3;
//! 3. `.2 .3`, changed while three clients are sending — nothing acknowledged is lost or duplicated;
//! 4. after the change — no new trace at .1.

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use spanpipe_e2e::{Spanpipe, free_ports, tail, wait_until};

#[path = "loadbalancing_support.rs"]
mod support;
use support::{acked, delivered, start_back_on, start_clients, traces_per_back};

const NAME: &str = "backends.lb.test";

/// A DNS server answering A queries for [`NAME`] with `records` (TTL 0), NXDOMAIN for other names.
struct DnsServer {
    port: u16,
    records: Arc<Mutex<Vec<Ipv4Addr>>>,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    fn start(initial: &[Ipv4Addr]) -> DnsServer {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind dns");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let port = sock.local_addr().expect("addr").port();
        let records = Arc::new(Mutex::new(initial.to_vec()));
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, q, s) = (records.clone(), queries.clone(), stop.clone());
        let thread = std::thread::spawn(move || serve(sock, r, q, s));
        DnsServer {
            port,
            records,
            queries,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, ips: &[Ipv4Addr]) {
        *self.records.lock().expect("records") = ips.to_vec();
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    sock: UdpSocket,
    records: Arc<Mutex<Vec<Ipv4Addr>>>,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let Ok(query) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        queries.fetch_add(1, Ordering::Relaxed);
        let mut resp = Message::response(query.metadata.id, query.metadata.op_code);
        resp.metadata.authoritative = true;
        resp.metadata.recursion_desired = query.metadata.recursion_desired;
        resp.add_queries(query.queries.clone());
        for q in &query.queries {
            let name = q.name().to_string();
            if !name.trim_end_matches('.').eq_ignore_ascii_case(NAME) {
                resp.metadata.response_code = ResponseCode::NXDomain;
                continue;
            }
            if q.query_type() == RecordType::A {
                for ip in records.lock().expect("records").iter() {
                    resp.add_answer(Record::from_rdata(q.name().clone(), 0, RData::A(A(*ip))));
                }
            }
        }
        if let Ok(bytes) = resp.to_vec() {
            let _ = sock.send_to(&bytes, peer);
        }
    }
}

fn front_config(port: u16, metrics: u16, dns_port: u16, back_port: u16) -> String {
    format!(
        "\
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{port} }}
exporters:
  loadbalancing:
    protocol:
      otlp:
        tls: {{ insecure: true }}
        compression: none
        retry_on_failure: {{ initial_interval: 200ms, max_interval: 1s }}
    resolver:
      dns:
        hostname: {NAME}
        port: {back_port}
        interval: 500ms
        timeout: 1s
        nameserver: 127.0.0.1:{dns_port}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{metrics} }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [loadbalancing] }}
"
    )
}

/// Waits (bounded) until the front logged `n` membership changes in all.
fn wait_changes(front: &Spanpipe, n: usize) {
    let ok = wait_until(Duration::from_secs(10), || {
        front.stderr_text().matches("backends changed").count() >= n
    });
    assert!(
        ok,
        "the front did not apply the DNS change:\n{}",
        tail(&front.stderr_text(), 4000)
    );
}

#[test]
fn membership_follows_the_dns_records_while_clients_send() {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("spanpipe-lb-dns-")
        .tempdir()
        .expect("tempdir");
    let [front, fm, back_port, m1, m2, m3] = free_ports::<6>();
    let ips: Vec<Ipv4Addr> = (1..=3).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
    let backs: Vec<_> = ips
        .iter()
        .zip([m1, m2, m3])
        .enumerate()
        .map(|(i, (ip, m))| {
            start_back_on(
                &ip.to_string(),
                back_port,
                m,
                dir.path().join(format!("back-{i}.jsonl")),
            )
        })
        .collect();
    let files: Vec<&std::path::Path> = backs.iter().map(|b| b.file.as_path()).collect();
    let dns = DnsServer::start(&ips[..2]);
    let front_sp = Spanpipe::start(&front_config(front, fm, dns.port, back_port), &[front]);
    wait_changes(&front_sp, 1);

    // 1. Two records: .1 and .2 only.
    let sent1 = acked(start_clients(dir.path(), front, "two", 2, 300, 0.0));
    let at = delivered(&files, &sent1, Duration::from_secs(60));
    let per1 = traces_per_back(&sent1, &at);
    assert_eq!(
        per1[2], 0,
        "no trace for a back end DNS does not list: {per1:?}"
    );
    assert!(per1[0] > 0 && per1[1] > 0, "{per1:?}");

    // 2. A third record: about a third of new traces go there.
    dns.set(&ips);
    wait_changes(&front_sp, 2);
    let sent2 = acked(start_clients(dir.path(), front, "three", 3, 400, 0.0));
    let at = delivered(&files, &sent2, Duration::from_secs(60));
    let per2 = traces_per_back(&sent2, &at);
    let share3 = per2[2] as f64 / 1200.0;
    assert!(
        (0.2..=0.47).contains(&share3),
        "share of the added back end {share3}: {per2:?}"
    );

    // 3. The first record removed while three clients send.
    let clients = start_clients(dir.path(), front, "change", 3, 400, 150.0);
    std::thread::sleep(Duration::from_millis(1000));
    let before_removal = spans_at(files[0]);
    dns.set(&ips[1..]);
    wait_changes(&front_sp, 3);
    let sent3 = acked(clients);
    let all: Vec<_> = [sent1.clone(), sent2.clone(), sent3.clone()].concat();
    let at = delivered(&files, &all, Duration::from_secs(60));
    let total: usize = at.iter().map(Vec::len).sum();
    assert_eq!(
        total,
        all.len(),
        "every acknowledged span exactly once, nothing else"
    );
    let at_removed_during = at[0].len() - before_removal;

    // 4. After the change: nothing new for .1.
    let at1_before = at[0].len();
    let sent4 = acked(start_clients(dir.path(), front, "after", 2, 300, 0.0));
    let at = delivered(&files, &sent4, Duration::from_secs(60));
    let per4 = traces_per_back(&sent4, &at);
    assert_eq!(per4[0], 0, "no trace for the removed back end: {per4:?}");
    assert_eq!(at[0].len(), at1_before);
    eprintln!(
        "FIGURES dns: records .1 .2 → traces {per1:?}; .1 .2 .3 → {per2:?} ({:.1}% to .3); .1 removed mid-run: \
         {} spans acknowledged, all delivered once ({at_removed_during} more reached .1 around the change); after \
         → {per4:?}; {} DNS queries; {:.1} s",
        share3 * 100.0,
        sent3.len(),
        dns.queries.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}

fn spans_at(file: &std::path::Path) -> usize {
    support::spans_in(file).len()
}
