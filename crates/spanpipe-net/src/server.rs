//! The connection layer every spanpipe server shares (OTLP/gRPC, OTLP/HTTP, health_check, the Prometheus scrape
//! endpoints, internal metrics): accept (at most `max_connections` at a time), TLS handshake,
//! then hyper serves the connection while a watchdog closes it when it has been idle too long, when the client
//! never gets to a first request (slowloris), when it reaches its maximum age, or at shutdown.
//!
//! Limits are enforced per connection without touching requests in flight: an idle or aged connection gets a
//! graceful close (HTTP/1 `Connection: close`, HTTP/2 GOAWAY); only a connection with nothing in flight, or one
//! past its age grace, is cut.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::tls::TlsServer;

/// The client's address, put into every request's extensions (for logs that name the client, e.g. refused logins).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long an idle connection told to close may take to do so before it is cut.
const IDLE_CLOSE_BOUND: Duration = Duration::from_secs(1);

/// Per-connection limits of one server.
#[derive(Clone, Default)]
pub struct ConnLimits {
    /// Concurrent connections; 0 means no limit.
    pub max_connections: u32,
    /// Bound on the TLS handshake.
    pub handshake_timeout: Option<Duration>,
    /// Bound on the time from accept to the first request's headers.
    pub first_request_timeout: Option<Duration>,
    /// Close after this long with no request in flight.
    pub idle_timeout: Option<Duration>,
    /// Close (gracefully) connections older than this ...
    pub max_age: Option<Duration>,
    /// ... and cut them this long after that.
    pub max_age_grace: Option<Duration>,
}

/// What every connection task of one server shares.
pub struct Server<S> {
    /// `OTLP/HTTP` or `OTLP/gRPC`, for logs.
    pub name: &'static str,
    pub builder: auto::Builder<TokioExecutor>,
    pub service: S,
    pub tls: Option<Arc<TlsServer>>,
    pub limits: ConnLimits,
}

/// Accepts until `stop`, then lets connections finish their requests for up to `grace` and cuts the rest.
pub async fn serve<S, B>(
    listener: TcpListener,
    server: Arc<Server<S>>,
    stop: CancellationToken,
    grace: Duration,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let permits = (server.limits.max_connections > 0)
        .then(|| Arc::new(Semaphore::new(server.limits.max_connections as usize)));
    let mut connections = JoinSet::new();
    let mut at_cap_logged = false;
    loop {
        let permit = match &permits {
            None => None,
            Some(sem) => {
                if sem.available_permits() == 0 && !at_cap_logged {
                    tracing::warn!(
                        server = server.name,
                        max_connections = server.limits.max_connections,
                        "connection limit reached; new connections wait"
                    );
                    at_cap_logged = true;
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    p = sem.clone().acquire_owned() => match p {
                        Ok(p) => Some(p),
                        Err(_) => break,
                    },
                }
            }
        };
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let server = server.clone();
                let stop = stop.clone();
                connections.spawn(async move {
                    connection(stream, peer, &server, stop).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!(server = server.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        while connections.try_join_next().is_some() {}
        if permits.as_ref().is_some_and(|s| s.available_permits() > 0) {
            at_cap_logged = false;
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(server = server.name, grace = ?grace, "requests still in flight at shutdown deadline; closing them");
    }
    connections.shutdown().await;
}

/// Serves one connection until it ends, is closed by a limit, or `stop`.
async fn connection<S, B>(
    stream: TcpStream,
    peer: SocketAddr,
    server: &Server<S>,
    stop: CancellationToken,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let _ = stream.set_nodelay(true);
    let accepted_at = Instant::now();
    let io = match &server.tls {
        None => ServerIo::Plain(stream),
        Some(tls) => {
            let handshake = tls.acceptor().accept(stream);
            let bound = server
                .limits
                .handshake_timeout
                .unwrap_or(Duration::from_secs(3600));
            let result = tokio::select! {
                _ = stop.cancelled() => return,
                r = tokio::time::timeout(bound, handshake) => r,
            };
            match result {
                Ok(Ok(s)) => ServerIo::Tls(Box::new(s)),
                Ok(Err(e)) => {
                    tracing::debug!(server = server.name, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(server = server.name, "TLS handshake timed out");
                    return;
                }
            }
        }
    };
    let activity = Arc::new(Activity::new(accepted_at));
    let service = Tracked {
        inner: server.service.clone(),
        activity: activity.clone(),
        peer: PeerAddr(peer),
    };
    let conn = server.builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let limits = &server.limits;
    let age_deadline = limits.max_age.map(|a| accepted_at + a);
    // Set once a close was asked for; `Some(t)`: cut at `t` if it has not finished.
    let mut closing: Option<Option<Instant>> = None;
    loop {
        let idle_deadline = activity.idle_deadline(limits);
        let check = [idle_deadline, age_deadline].into_iter().flatten().min();
        let cut = closing.flatten();
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(server = server.name, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.cancelled(), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some(None);
            }
            _ = sleep_until(check), if closing.is_none() && check.is_some() => {
                let now = Instant::now();
                if age_deadline.is_some_and(|d| d <= now) {
                    tracing::debug!(server = server.name, "closing a connection at max_connection_age");
                    conn.as_mut().graceful_shutdown();
                    closing = Some(limits.max_age_grace.map(|g| now + g));
                } else if activity.idle_deadline(limits).is_some_and(|d| d <= now) {
                    tracing::debug!(server = server.name, "closing an idle connection");
                    conn.as_mut().graceful_shutdown();
                    closing = Some(Some(now + IDLE_CLOSE_BOUND));
                }
            }
            _ = sleep_until(cut), if cut.is_some() => return,
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Requests in flight on one connection and when the last one started or ended.
struct Activity {
    in_flight: AtomicUsize,
    /// (when the last request started or ended, whether any request has started)
    last: Mutex<(Instant, bool)>,
}

impl Activity {
    fn new(accepted_at: Instant) -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            last: Mutex::new((accepted_at, false)),
        }
    }

    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = (Instant::now(), true);
    }

    /// When the connection counts as idle if nothing happens before: from the last activity, with the
    /// first-request bound before any request and the idle bound after. With requests in flight, the check
    /// is only postponed.
    fn idle_deadline(&self, limits: &ConnLimits) -> Option<Instant> {
        let (last, seen) = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        let bound = if seen {
            limits.idle_timeout
        } else {
            limits.first_request_timeout
        }?;
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Some(Instant::now() + bound);
        }
        Some(last + bound)
    }
}

/// The service wrapper that keeps a connection's [`Activity`].
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
    /// Put into every request's extensions (for the auth failure log).
    peer: PeerAddr,
}

struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S, B> hyper::service::Service<Request<B>> for Tracked<S>
where
    S: hyper::service::Service<Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, mut req: Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.peer);
        self.activity.in_flight.fetch_add(1, Ordering::AcqRel);
        self.activity.touch();
        let guard = InFlight(self.activity.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let out = fut.await;
            drop(guard);
            out
        })
    }
}

/// A plain or TLS connection.
enum ServerIo {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for ServerIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ServerIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServerIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ServerIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ServerIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ServerIo::Plain(s) => s.is_write_vectored(),
            ServerIo::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerIo::Plain(s) => Pin::new(s).poll_flush(cx),
            ServerIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ServerIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
