//! The TCP and HTTP/1.1 layer under the router: accepting connections, the per-pod connection
//! cap, the request-head timeout, and graceful shutdown.
//!
//! Owns every socket from accept to close, WebSocket connections included (an upgraded socket
//! keeps its slot until it closes), and hands each request its socket address (`ConnectInfo`).
//! It must not look at requests: routing, auth and errors are the router's.
//!
//! Why not `axum::serve`: it sets no timer, so hyper's header-read timeout never runs and a
//! client that opens a socket and sends nothing (or half a request head) holds it forever, and
//! it has no connection limit (issue 7).

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::error::ApiError;
use crate::metrics;

/// Connections over the cap that are answered 503 at once; beyond this many in flight, further
/// ones are closed without an answer, so refusing cannot itself exhaust the pod.
const REFUSING_MAX: usize = 256;

#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// Open sockets per pod (HTTP and WebSocket); one more gets 503 `unavailable`.
    pub max_connections: usize,
    /// Longest wait for a complete request head: on a new connection and between the
    /// requests of a keep-alive connection.
    pub header_timeout: Duration,
}

/// A socket holding one slot of the connection cap until it is dropped, also after an upgrade
/// hands it to the WebSocket task.
struct Slotted {
    io: TcpStream,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Slotted {
    fn drop(&mut self) {
        metrics::global().http_connections.dec();
    }
}

impl AsyncRead for Slotted {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Slotted {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

fn http1(limits: ListenerLimits) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    b
}

/// Serves `app` until `stop` is cancelled, then lets in-flight requests finish (keep-alive
/// connections close after their current request) and returns.
pub async fn serve(listener: TcpListener, app: Router, limits: ListenerLimits, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(AtomicUsize::new(0));
    let tracker = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Small frames must leave at once: Nagle plus delayed ACKs would add ~40 ms per reply.
        let _ = tcp.set_nodelay(true);
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                metrics::global().http_connections.inc();
                let io = TokioIo::new(Slotted { io: tcp, _slot: slot });
                // The socket's address, for the client address behind proxies (gateway::forwarded).
                let app = app.clone().map_request(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req
                });
                let service = TowerToHyperService::new(app);
                let stop = stop.clone();
                tracker.spawn(async move {
                    let conn = http1(limits).serve_connection(io, service).with_upgrades();
                    tokio::pin!(conn);
                    let result = tokio::select! {
                        r = conn.as_mut() => r,
                        _ = stop.cancelled() => {
                            conn.as_mut().graceful_shutdown();
                            conn.await
                        }
                    };
                    if let Err(e) = result {
                        note_connection_error(&e);
                    }
                });
            }
            Err(_) => refuse(tcp, limits, &refusing, &tracker),
        }
    }
    // Closed at once, not after the drain: a connection attempt is then refused and a proxy
    // retries it on another pod, instead of waiting in this socket's backlog until exit.
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

fn note_connection_error(e: &hyper::Error) {
    if e.is_timeout() {
        metrics::global().http_header_timeouts.inc();
    }
    tracing::debug!(error = %e, "http connection ended with an error");
}

/// Over the cap: one 503 with the JSON error body, then close (the client retries, at best on
/// another pod).
fn refuse(tcp: TcpStream, limits: ListenerLimits, refusing: &Arc<AtomicUsize>, tracker: &TaskTracker) {
    metrics::global().http_connections_refused.inc();
    if refusing.fetch_add(1, Ordering::AcqRel) >= REFUSING_MAX {
        refusing.fetch_sub(1, Ordering::AcqRel);
        return; // dropped: closed without an answer
    }
    let refusing = refusing.clone();
    let max = limits.max_connections;
    tracker.spawn(async move {
        let service = hyper::service::service_fn(move |_req: Request<Incoming>| async move {
            let err = ApiError::unavailable(format!("this pod is at its connection limit ({max}); retry, another pod may have room"));
            // Counted in palaver_http_connections_refused_total, not as a server error: a flood of
            // sockets must not page on-call through PalaverServerErrors.
            let mut resp: Response<axum::body::Body> = err.closing().response();
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Ok::<_, std::convert::Infallible>(resp)
        });
        let mut b = http1(limits);
        b.keep_alive(false);
        if let Err(e) = b.serve_connection(TokioIo::new(tcp), service).await {
            note_connection_error(&e);
        }
        refusing.fetch_sub(1, Ordering::AcqRel);
    });
}
