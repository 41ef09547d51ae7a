//! Opening one load connection — TCP, TLS, then the HTTP/1.1 or HTTP/2
//! client handshake — and sending requests on it.

use std::fmt;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::config::HttpsConfig;

type Body = Empty<Bytes>;

/// Request side of an established connection. The connection itself is
/// driven by a task spawned on the worker's runtime, which ends once this is
/// dropped and the connection has closed.
pub(super) enum Sender {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

/// Why a connection could not be established; each kind is counted
/// separately in the report.
pub(super) enum ConnectError {
    /// TCP connect failed (refused, unreachable, out of ports, …).
    Tcp(std::io::Error),
    /// TLS handshake failed, or the server did not agree to h2 when asked.
    Tls(String),
    /// The HTTP client handshake failed after TLS succeeded.
    Http(hyper::Error),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Tcp(err) => write!(f, "connect: {err}"),
            ConnectError::Tls(err) => write!(f, "tls: {err}"),
            ConnectError::Http(err) => write!(f, "http handshake: {err}"),
        }
    }
}

/// Opens a fresh connection: one full TLS handshake.
pub(super) async fn open(cfg: &HttpsConfig) -> Result<Sender, ConnectError> {
    let tcp = TcpStream::connect(cfg.addr)
        .await
        .map_err(ConnectError::Tcp)?;
    // Requests are small single writes; without NODELAY a response-sized
    // pause (Nagle + delayed ACK) could be added to some requests.
    tcp.set_nodelay(true).map_err(ConnectError::Tcp)?;
    let tls = cfg
        .connector
        .connect(cfg.server_name.clone(), tcp)
        .await
        .map_err(|err| ConnectError::Tls(err.to_string()))?;
    let io = TokioIo::new(tls);
    if cfg.http2 {
        if io.inner().get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(ConnectError::Tls(
                "server did not negotiate h2 via ALPN".to_string(),
            ));
        }
        let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(ConnectError::Http)?;
        tokio::spawn(async move {
            // Errors surface on the request side as failed requests.
            let _ = conn.await;
        });
        Ok(Sender::H2(sender))
    } else {
        let (sender, conn) = http1::handshake(io).await.map_err(ConnectError::Http)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Sender::H1(sender))
    }
}

impl Sender {
    /// Waits until the connection can take the next request; fails when the
    /// connection has closed.
    pub(super) async fn ready(&mut self) -> Result<(), hyper::Error> {
        match self {
            Sender::H1(s) => s.ready().await,
            Sender::H2(s) => s.ready().await,
        }
    }

    /// Sends one request and waits for the response head.
    pub(super) async fn send(
        &mut self,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, SendError> {
        // `try_send_request` tells us whether the request ever reached the
        // connection. It does not when the connection shut down between our
        // `ready()` and the write, e.g. an HTTP/2 GOAWAY from a server's
        // per-connection request limit arriving right after the last response.
        let result = match self {
            Sender::H1(s) => s.try_send_request(request).await,
            Sender::H2(s) => s.try_send_request(request).await,
        };
        result.map_err(|err| {
            if err.message().is_some() {
                SendError::NotSent(err.into_error())
            } else {
                SendError::Failed(err.into_error())
            }
        })
    }
}

/// A request that did not produce a response.
pub(super) enum SendError {
    /// The connection closed before the request was written; the server never
    /// saw it.
    NotSent(hyper::Error),
    /// The request was (at least partly) sent and then failed.
    Failed(hyper::Error),
}

impl From<hyper::Error> for SendError {
    fn from(err: hyper::Error) -> Self {
        SendError::Failed(err)
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotSent(err) => write!(f, "request not sent: {err}"),
            SendError::Failed(err) => write!(f, "request: {err}"),
        }
    }
}
