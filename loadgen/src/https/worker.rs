//! One closed-loop worker: it owns one connection at a time and sends the next
//! request as soon as the previous response body has been read completely.
//!
//! The loop does no logging and no formatting (except for the first error),
//! and clones prebuilt requests, so the generator's cost per request is close
//! to what hyper and rustls need anyway.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::CONNECTION;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt as _, Empty};

use super::config::HttpsConfig;
use super::conn::{self, ConnectError, SendError, Sender};
use super::stats::{Window, WorkerStats};

/// Pause after a failed connection attempt. Without it a refused or
/// TLS-rejecting server turns every worker into a busy loop that measures
/// nothing, burns the generator's core and floods the server's accept queue.
const RETRY_PAUSE: Duration = Duration::from_millis(10);

/// Runs worker `id` until the window's deadline and returns what it counted.
/// Always returns by the hard deadline, however the server behaves.
pub(super) async fn run(cfg: Arc<HttpsConfig>, window: Window, id: usize) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let hard = tokio::time::Instant::from_std(window.hard_deadline);
    let work = drive(&cfg, &window, id, &mut stats);
    if tokio::time::timeout_at(hard, work).await.is_err() {
        stats.timeouts += 1;
        stats.note(&"still waiting on the server at the hard time cap");
    }
    stats
}

async fn drive(cfg: &HttpsConfig, window: &Window, id: usize, stats: &mut WorkerStats) {
    let requests = &cfg.requests;
    // Start workers at different paths so a path list is spread evenly even
    // over short runs.
    let mut next = id % requests.len();
    let mut conn: Option<Sender> = None;
    loop {
        let started = Instant::now();
        if started >= window.deadline {
            return;
        }
        // Everything an iteration does (handshake, request, errors) is
        // attributed to the moment it started, so an iteration is counted
        // whole or not at all: in new-conn mode handshakes == requests exactly.
        let counted = window.counts(started);
        let fresh = conn.is_none();
        if fresh {
            match conn::open(cfg).await {
                Ok(sender) => {
                    if counted {
                        stats.handshakes += 1;
                    }
                    conn = Some(sender);
                }
                Err(err) => {
                    if counted {
                        match &err {
                            ConnectError::Tcp(_) => stats.connect_errors += 1,
                            ConnectError::Tls(_) => stats.tls_errors += 1,
                            ConnectError::Http(_) => stats.request_errors += 1,
                        }
                        stats.note(&err);
                    }
                    pause(window).await;
                    continue;
                }
            }
        }
        let Some(sender) = conn.as_mut() else {
            continue;
        };

        if let Err(err) = sender.ready().await {
            conn = None;
            stale_or_failed(fresh, counted, SendError::NotSent(err), stats);
            if fresh {
                pause(window).await;
            }
            continue;
        }

        // Keep-alive latency is the request alone (connection set-up is a
        // one-off, visible in the handshake count); in new-conn mode the
        // connect + handshake is the work being measured, so it is included.
        let started = if cfg.new_conn {
            started
        } else {
            Instant::now()
        };
        let result = exchange(sender, &requests[next]).await;
        let done = Instant::now();
        match result {
            Ok(reply) => {
                if counted {
                    stats.requests += 1;
                    stats.latency.record(done - started);
                    if !reply.status_ok {
                        stats.status_errors += 1;
                    }
                }
                if cfg.new_conn || reply.server_closing {
                    conn = None;
                }
            }
            Err(err) => {
                // Whatever state the connection is in, it cannot be trusted
                // for the next request.
                conn = None;
                let not_sent = matches!(err, SendError::NotSent(_));
                stale_or_failed(fresh, counted, err, stats);
                if not_sent {
                    // Retry the same path on the next connection.
                    continue;
                }
            }
        }
        next += 1;
        if next == requests.len() {
            next = 0;
        }
    }
}

/// Accounts for a request that got no response. A request the server never
/// saw, on a connection that already served requests, means the server
/// closed a kept-alive connection (idle timeout, per-connection request
/// limit); browsers silently reopen in that case, so it only counts as a
/// reconnect. On a fresh connection, or once sent, it is an error.
fn stale_or_failed(fresh: bool, counted: bool, err: SendError, stats: &mut WorkerStats) {
    if !counted {
        return;
    }
    if !fresh && matches!(err, SendError::NotSent(_)) {
        stats.reconnects += 1;
    } else {
        stats.request_errors += 1;
        stats.note(&err);
    }
}

/// The parts of a response the worker acts on.
struct Reply {
    /// 2xx or 3xx.
    status_ok: bool,
    /// The server announced it closes the connection after this response.
    server_closing: bool,
}

/// Sends one request and reads the whole response body.
async fn exchange(
    sender: &mut Sender,
    template: &Request<Empty<Bytes>>,
) -> Result<Reply, SendError> {
    let response = sender.send(template.clone()).await?;
    let status = response.status();
    let reply = Reply {
        status_ok: status.is_success() || status.is_redirection(),
        server_closing: announces_close(response.headers()),
    };
    let mut body = response.into_body();
    // Drain frame by frame: the body is only needed to have been received,
    // so nothing is buffered or concatenated.
    while let Some(frame) = body.frame().await {
        frame?;
    }
    Ok(reply)
}

/// Whether the `Connection` header lists the `close` token.
fn announces_close(headers: &HeaderMap) -> bool {
    headers.get_all(CONNECTION).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

async fn pause(window: &Window) {
    let resume = (Instant::now() + RETRY_PAUSE).min(window.deadline);
    tokio::time::sleep_until(tokio::time::Instant::from_std(resume)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn detects_connection_close_token() {
        let mut h = HeaderMap::new();
        assert!(!announces_close(&h));
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive"));
        assert!(!announces_close(&h));
        h.insert(CONNECTION, HeaderValue::from_static("Keep-Alive, Close"));
        assert!(announces_close(&h));
        h.insert(CONNECTION, HeaderValue::from_static("closed"));
        assert!(!announces_close(&h));
    }
}
