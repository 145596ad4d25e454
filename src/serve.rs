//! Serving connections on both listeners (TSH-facing and admin) with every stage bounded:
//!
//! | stage | bound |
//! |---|---|
//! | connections open at once | `server.max_connections` / `admin.max_connections`: beyond it a new connection is closed at once (counted), never queued |
//! | TLS handshake | `server.handshake_timeout_ms`; at most `server.max_handshakes` in progress, and when they are all taken a new connection displaces the oldest unfinished one, so stalled handshakes cannot hold the slots that TSH needs |
//! | request head | `server.header_timeout_ms` (hyper's header-read timeout, which needs a timer: `axum::serve` runs hyper without one) |
//! | idle keep-alive | the same: the next head must arrive whole within that time of the previous answer |
//! | body | inside the call's deadline (`server.request_timeout_ms`; the admin API has the same deadline) |
//!
//! On shutdown, listeners stop accepting, idle connections close, calls in progress finish.

use crate::tls::Reloadable;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

/// Headers hyper parses in one request head (its default is 100).
const MAX_HEADERS_PARSED: usize = 1024;

/// The bounds of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_handshakes: usize,
    pub handshake_timeout: Duration,
    pub header_timeout: Duration,
}

impl Limits {
    /// The TSH-facing listener's bounds.
    pub fn api(config: &crate::config::Config) -> Limits {
        let s = &config.server;
        Limits {
            max_connections: s.max_connections,
            max_handshakes: s.max_handshakes,
            handshake_timeout: Duration::from_millis(s.handshake_timeout_ms),
            header_timeout: Duration::from_millis(s.header_timeout_ms),
        }
    }

    /// The admin listener's bounds: its own connection cap, the same timeouts.
    pub fn admin(config: &crate::config::Config) -> Limits {
        Limits {
            max_connections: config.admin.max_connections,
            ..Limits::api(config)
        }
    }
}

/// Serves `router` on `listener` (with TLS when `tls` is given) until `shutdown` turns true,
/// then drains: returns once every connection has closed.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Reloadable>,
    router: Router,
    limits: Limits,
    name: &'static str,
    mut shutdown: watch::Receiver<bool>,
) {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let handshakes = Arc::new(Handshakes::new(limits.max_handshakes));
    loop {
        let accepted = tokio::select! {
            () = stopped(&mut shutdown) => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(listener = name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            crate::metrics::record_connection_refused(name, "max_connections");
            drop(stream);
            continue;
        };
        let conn = Connection {
            permit,
            peer,
            tls: tls.clone(),
            router: router.clone(),
            limits,
            name,
            handshakes: handshakes.clone(),
            shutdown: shutdown.clone(),
        };
        tokio::spawn(conn.run(stream));
    }
    drop(listener);
    // Every connection holds a permit until it closes: all of them back means drained.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = connections.acquire_many(all).await;
}

/// Resolves once shutdown has started (the guard `wait_for` returns is not `Send`: dropped here).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

struct Connection {
    permit: OwnedSemaphorePermit,
    peer: SocketAddr,
    tls: Option<Reloadable>,
    router: Router,
    limits: Limits,
    name: &'static str,
    handshakes: Arc<Handshakes>,
    shutdown: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        match self.tls.take() {
            None => self.http(stream).await,
            Some(tls) => {
                let handshakes = self.handshakes.clone();
                let slot = handshakes.enter();
                let handshake = tokio::select! {
                    r = tokio::time::timeout(self.limits.handshake_timeout, tls.acceptor().accept(stream)) => r,
                    () = slot.displaced() => {
                        crate::metrics::record_connection_refused(self.name, "handshake_displaced");
                        tracing::info!(peer = %self.peer, "TLS handshake displaced by a newer connection");
                        return;
                    }
                    () = stopped(&mut self.shutdown) => return,
                };
                drop(slot);
                match handshake {
                    Ok(Ok(stream)) => self.http(stream).await,
                    Ok(Err(e)) => {
                        crate::metrics::record_connection_refused(self.name, "handshake_failed");
                        tracing::info!(peer = %self.peer, error = %e, "TLS handshake refused");
                    }
                    Err(_) => {
                        crate::metrics::record_connection_refused(self.name, "handshake_timeout");
                        tracing::info!(peer = %self.peer, "TLS handshake timed out");
                    }
                }
            }
        }
    }

    async fn http<I>(mut self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout)
            // Well above what the API accepts (api::headers: 64 headers, 16 KiB), so that a
            // request with too many headers gets the contract's JSON answer from the API rather
            // than hyper's bare 431; beyond this, hyper's 431 (or, past its buffer, a closed
            // connection) stands.
            .max_headers(MAX_HEADERS_PARSED)
            .keep_alive(true);
        // The peer's address, for the handlers that need it (the console's login throttle).
        let peer = axum::extract::ConnectInfo(self.peer);
        let service = TowerToHyperService::new(tower::util::MapRequest::new(
            self.router.clone(),
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(peer);
                req
            },
        ));
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(listener = self.name, peer = %self.peer, error = %e, "connection closed");
                }
            }
            () = stopped(&mut self.shutdown) => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
        drop(self.permit);
    }
}

/// The TLS handshakes in progress, oldest first. When all slots are taken, a new handshake
/// displaces the oldest: a peer that stalls its handshakes must keep opening connections to
/// hold the slots, and still loses them to every newcomer.
struct Handshakes {
    max: usize,
    next: Mutex<u64>,
    slots: Mutex<VecDeque<(u64, Arc<Notify>)>>,
}

struct Slot<'a> {
    id: u64,
    notify: Arc<Notify>,
    owner: &'a Handshakes,
}

impl Handshakes {
    fn new(max: usize) -> Handshakes {
        Handshakes {
            max,
            next: Mutex::new(0),
            slots: Mutex::new(VecDeque::new()),
        }
    }

    fn enter(&self) -> Slot<'_> {
        let id = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            *next += 1;
            *next
        };
        let notify = Arc::new(Notify::new());
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        while slots.len() >= self.max {
            match slots.pop_front() {
                // notify_one keeps the wake-up even if the displaced task is not waiting yet.
                Some((_, oldest)) => oldest.notify_one(),
                None => break,
            }
        }
        slots.push_back((id, notify.clone()));
        Slot {
            id,
            notify,
            owner: self,
        }
    }
}

impl Slot<'_> {
    async fn displaced(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut slots = self.owner.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|(id, _)| *id != self.id);
    }
}
