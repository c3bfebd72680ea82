//! The accept loop both listeners share: serves connections, and while the fault script says "down" closes the
//! port and resets every open connection (TCP RST, as a crashed backend would), then binds the same address again.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::SockRef;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::faults::Faults;

/// How long re-binding the address after a down window may take (another process may briefly hold it).
const REBIND_FOR: Duration = Duration::from_secs(10);

/// Resets one connection when cancelled: handed to the request handlers for `reset` faults.
pub type ConnKill = CancellationToken;

/// Accepts on `listener` until `stop`, serving each connection with `serve(stream, kill)`.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    faults: Arc<Faults>,
    stop: CancellationToken,
    serve: F,
) where
    F: Fn(TcpStream, ConnKill) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let serve = Arc::new(serve);
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("spanpipe-loadgen sink: listener address: {e}");
            return;
        }
    };
    let mut down = faults.down_watch();
    let mut listener = Some(listener);
    // Held while down: keeps the port ours (see `reserve`).
    let mut reserved: Option<socket2::Socket> = None;
    let mut epoch = stop.child_token();
    // Bounded by `stop`, which fires at --max-duration at the latest.
    loop {
        if *down.borrow_and_update() {
            if let Some(l) = listener.take() {
                drop(l);
                reserved = reserve(addr);
                epoch.cancel();
                epoch = stop.child_token();
            }
            tokio::select! {
                _ = down.changed() => continue,
                _ = stop.cancelled() => return,
            }
        }
        let l = match listener.take() {
            Some(l) => l,
            None => match rebind(addr, &stop).await {
                Some(l) => {
                    drop(reserved.take());
                    l
                }
                None => return,
            },
        };
        let accepted = tokio::select! {
            a = l.accept() => a,
            _ = down.changed() => {
                listener = Some(l);
                continue;
            }
            _ = stop.cancelled() => return,
        };
        listener = Some(l);
        let Ok((stream, _)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        let kill = epoch.child_token();
        let serve = serve.clone();
        tokio::spawn(async move {
            // A second handle on the socket, to make its close a reset once the connection is killed.
            let dup = SockRef::from(&stream).try_clone().ok();
            tokio::select! {
                _ = serve(stream, kill.clone()) => {}
                _ = kill.cancelled() => {
                    if let Some(d) = &dup {
                        let _ = d.set_linger(Some(Duration::ZERO));
                    }
                }
            }
        });
    }
}

/// A socket bound to `addr` but not listening, for the length of a down window. Connections to the port are
/// refused as when it is closed, but the kernel no longer hands the port out as the local port of an outgoing
/// connection: a fresh-clone CI run lost its flaky backend for good when, during the 30 s outage, another test's
/// long-lived connection took the port and the sink could not bind it again. `SO_REUSEADDR` on both sockets lets
/// the new listener bind beside it.
fn reserve(addr: SocketAddr) -> Option<socket2::Socket> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .ok()?;
    s.set_reuse_address(true).ok()?;
    match s.bind(&addr.into()) {
        Ok(()) => Some(s),
        Err(e) => {
            eprintln!("spanpipe-loadgen sink: cannot hold {addr} while down: {e}");
            None
        }
    }
}

/// Binds `addr` again after a down window, retrying for [`REBIND_FOR`].
async fn rebind(addr: SocketAddr, stop: &CancellationToken) -> Option<TcpListener> {
    let until = Instant::now() + REBIND_FOR;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Some(l),
            Err(e) if Instant::now() >= until => {
                eprintln!("spanpipe-loadgen sink: cannot bind {addr} again: {e}");
                return None;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            _ = stop.cancelled() => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reserved_port_refuses_connections_and_can_be_listened_on_again() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let held = reserve(addr).expect("port reserved");
        let refused = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        // The sink's re-bind after the window succeeds beside the reservation, and then serves.
        let again = TcpListener::bind(addr)
            .await
            .expect("bind beside the reservation");
        drop(held);
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), again.accept());
        assert!(client.is_ok() && accepted.is_ok());
    }
}
