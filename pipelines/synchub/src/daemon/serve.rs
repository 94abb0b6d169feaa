//! The daemon's HTTP server: HTTP/1.1 connections with a header-read
//! timeout (which is also the idle timeout between keep-alive requests), a
//! cap on open connections, and a shutdown that drains under a deadline.
//!
//! A client that sends half a request cannot keep the daemon alive: on
//! shutdown idle connections close at once, requests in flight get
//! [`Limits::drain`] to finish, and whatever is left is dropped.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The most a connection buffers before the handler reads (headers, so
/// also the largest header block, and
/// body bytes read ahead): hyper's default (about 400 KiB) times a few
/// hundred connections that send a body nobody reads is a lot of memory.
const READ_BUFFER: usize = 16 * 1024;

/// The server's limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Time for a request's headers to arrive, counted from when the
    /// connection is ready for a request (so also the keep-alive idle time).
    pub(crate) header_read: Duration,
    /// Open connections; one more is closed as soon as it is accepted.
    pub(crate) max_connections: usize,
    /// On shutdown, time left to requests in flight.
    pub(crate) drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read: Duration::from_secs(10),
            max_connections: 256,
            drain: Duration::from_secs(5),
        }
    }
}

/// Serves `app` on `listener` until `stop` is cancelled, then drains.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: pause
                        // rather than spin, and keep serving.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                            _ = stop.cancelled() => break,
                        }
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, max = limits.max_connections, "too many open connections; closing a new one");
                    drop(stream);
                    continue;
                };
                let service = TowerToHyperService::new(app.clone());
                let stop = stop.clone();
                connections.spawn(async move {
                    let _slot = slot;
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder
                        .timer(TokioTimer::new())
                        .header_read_timeout(limits.header_read)
                        .max_buf_size(READ_BUFFER);
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stop.cancelled() => {
                            // Idle: closes now; mid-request: finishes it
                            // (bounded by the drain deadline below).
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    let open = connections.len();
    if open > 0 {
        tracing::info!(
            open,
            deadline_seconds = limits.drain.as_secs(),
            "draining open connections"
        );
    }
    let drained = tokio::time::timeout(limits.drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = connections.len(),
            "connections still open at the drain deadline; closing them"
        );
        connections.shutdown().await;
    }
}
