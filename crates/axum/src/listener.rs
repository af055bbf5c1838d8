//! The accept loop: every connection is counted (in total and per client address)
//! before it costs more than an accept, and HTTP/1 connections must send each
//! request's headers within the header timeout, also while idle between requests, so
//! half-open (slowloris) connections are closed rather than held. `axum::serve` sets no
//! timer and so no header timeout; this loop is hyper-util's server with one.

use crate::limits::{Limits, Refusal};
use crate::metrics::Metrics;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt as _;

/// Refused connections being answered at once; past this they are closed unanswered,
/// so a flood of refused connections costs no more than the accepts.
const MAX_REFUSING: usize = 256;
/// How long a refused connection's answer may take to write.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);
/// How long graceful shutdown waits for open requests before it stops anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` completes.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Arc<Limits>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.settings().header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.settings().header_timeout)
        .keep_alive_timeout(limits.settings().header_timeout)
        // CONNECT protocol for WebSockets over HTTP/2, as axum::serve does.
        .enable_connect_protocol();
    let graceful = GracefulShutdown::new();
    let refusing = Arc::new(AtomicUsize::new(0));
    let accept_errors = LogEvery::new(Duration::from_secs(10));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: the connections already
                    // open keep being served; try again shortly.
                    if let Some(held) = accept_errors.ready() {
                        tracing::warn!(error = %e, held_back = held, "accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let permit = match limits.open_connection(peer.ip()) {
            Ok(permit) => permit,
            Err(refusal) => {
                refuse(tcp, refusal, &refusing);
                continue;
            }
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request.map(Body::new))
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Held for the connection's life; a WebSocket keeps its own permit.
            let _permit = permit;
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period");
    }
    drop(metrics);
    Ok(())
}

/// Answers a refused connection with its JSON refusal and closes it, without reading
/// its request; bounded by [`MAX_REFUSING`] at once.
fn refuse(mut tcp: TcpStream, refusal: Refusal, refusing: &Arc<AtomicUsize>) {
    if refusing.fetch_add(1, Ordering::AcqRel) >= MAX_REFUSING {
        refusing.fetch_sub(1, Ordering::AcqRel);
        return; // dropped: closed unanswered
    }
    let refusing = refusing.clone();
    tokio::spawn(async move {
        let body = refusal.to_bad_input().to_message().to_json();
        let status = refusal.status();
        let response = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: {}\r\nconnection: close\r\n\r\n{body}",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len(),
            refusal.retry_after_secs(),
        );
        // Answer, then drain what the client sends until it closes: closing with its
        // request unread would reset the connection and could lose the answer.
        let _ = tokio::time::timeout(REFUSAL_WRITE, async {
            tcp.write_all(response.as_bytes()).await?;
            tcp.shutdown().await?;
            let mut sink = [0u8; 1024];
            while tcp.read(&mut sink).await? > 0 {}
            Ok::<(), std::io::Error>(())
        })
        .await;
        refusing.fetch_sub(1, Ordering::AcqRel);
    });
}

/// Lets a repeated log line through at most once per period, saying how many it held
/// back since the last one. Usable as a `static` at the line's call site.
#[derive(Debug)]
pub(crate) struct LogEvery {
    period: Duration,
    /// When the last line went through, and how many were held back since.
    state: std::sync::Mutex<(Option<Instant>, u64)>,
}

impl LogEvery {
    pub const fn new(period: Duration) -> Self {
        Self {
            period,
            state: std::sync::Mutex::new((None, 0)),
        }
    }

    /// `Some(held back)` when a line may go through now.
    pub fn ready(&self) -> Option<u64> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.0 {
            Some(last) if now.duration_since(last) < self.period => {
                state.1 += 1;
                None
            }
            _ => {
                let held = state.1;
                *state = (Some(now), 0);
                Some(held)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_line_goes_through_once_per_period_with_the_count_held_back() {
        let every = LogEvery::new(Duration::from_secs(3600));
        assert_eq!(every.ready(), Some(0));
        assert_eq!(every.ready(), None);
        assert_eq!(every.ready(), None);
        let every = LogEvery::new(Duration::ZERO);
        assert_eq!(every.ready(), Some(0));
        assert_eq!(
            every.ready(),
            Some(0),
            "a period of zero lets every line through"
        );
    }
}
