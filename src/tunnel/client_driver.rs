//! The edge's tunnel client on glommio: TCP to a REALITY server, the REALITY handshake
//! ([`crate::tunnel::reality::client`]) through the generic [`TlsConn`], then a VLESS TCP
//! request (no flow). The result is a plain byte stream to the target.
//!
//! The VLESS response header (`00 <addons_len> <addons>`) is read lazily: the server only
//! sends it with its first payload, so [`connect`] returns as soon as the request is sent, and
//! the first read strips the header.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use rustls::ClientConnection;
use thiserror::Error;
use uuid::Uuid;

use crate::front::tls_stream::TlsConn;
use crate::tunnel::reality::client::{reality_client, RealityClientConfig, RealityClientError};
use crate::tunnel::vless::{decode_response, Command, Decoded, Request, Target, VlessError};

/// Why [`connect`] failed; carried inside the returned `io::Error` (reach it with
/// `err.get_ref()` and `downcast_ref`). Messages name the step, never a key or id.
///
/// The `io::ErrorKind`: transport and TLS failures keep theirs (`ConnectionRefused`,
/// `InvalidData` for a TLS error, `UnexpectedEof` …); a bad config or target is
/// `InvalidInput`; [`ConnectError::NotAuthenticated`] is `PermissionDenied`.
#[derive(Error, Debug)]
pub enum ConnectError {
    #[error("tunnel: TCP connect to {server} failed: {source}")]
    Tcp {
        server: SocketAddr,
        source: io::Error,
    },
    #[error("tunnel: cannot build the REALITY client: {0}")]
    Reality(#[from] RealityClientError),
    /// The server presented a certificate other than REALITY's temporary one for this
    /// connection: a wrong public key, short id, server name or client version, a clock too
    /// far off, or not a REALITY server at all (it fell back to its cover site).
    #[error("tunnel: the server at {server} is not the expected REALITY server")]
    NotAuthenticated { server: SocketAddr },
    #[error("tunnel: TLS handshake with {server} failed: {source}")]
    Handshake {
        server: SocketAddr,
        source: io::Error,
    },
    #[error("tunnel: invalid VLESS request: {0}")]
    Request(#[from] VlessError),
    #[error("tunnel: sending the VLESS request to {server} failed: {source}")]
    Send {
        server: SocketAddr,
        source: io::Error,
    },
}

impl ConnectError {
    fn kind(&self) -> io::ErrorKind {
        match self {
            ConnectError::Tcp { source, .. }
            | ConnectError::Handshake { source, .. }
            | ConnectError::Send { source, .. } => source.kind(),
            ConnectError::Reality(RealityClientError::ServerName)
            | ConnectError::Reality(RealityClientError::PublicKey)
            | ConnectError::Reality(RealityClientError::SmallOrderKey)
            | ConnectError::Request(_) => io::ErrorKind::InvalidInput,
            ConnectError::Reality(_) => io::ErrorKind::Other,
            ConnectError::NotAuthenticated { .. } => io::ErrorKind::PermissionDenied,
        }
    }
}

impl From<ConnectError> for io::Error {
    fn from(err: ConnectError) -> io::Error {
        io::Error::new(err.kind(), err)
    }
}

/// Opens a VLESS TCP tunnel to `target` through the REALITY server at `server`.
pub async fn connect(
    server: SocketAddr,
    reality: &RealityClientConfig,
    vless_uuid: Uuid,
    target: Target,
) -> io::Result<TunnelStream> {
    // Encoded first: a target the server would refuse is the caller's error, found before any
    // packet leaves.
    let mut request = Vec::new();
    Request {
        uuid: vless_uuid,
        flow: None,
        command: Command::Tcp,
        target: Some(target),
    }
    .encode(&mut request)
    .map_err(ConnectError::from)?;

    let mut tls = reality_handshake(server, reality).await?;
    tls.write_all(&request)
        .await
        .map_err(|source| ConnectError::Send { server, source })?;
    tls.flush()
        .await
        .map_err(|source| ConnectError::Send { server, source })?;
    Ok(TunnelStream {
        tls,
        response: ResponseHeader::default(),
    })
}

/// TCP to `server`, then the REALITY handshake to its end: the part of a tunnel that the raw
/// VLESS client and the XHTTP client share. On success the server has proven it holds the
/// REALITY key for this connection; nothing has been sent inside TLS yet.
pub async fn reality_handshake(
    server: SocketAddr,
    reality: &RealityClientConfig,
) -> Result<TlsConn<TcpStream, ClientConnection>, ConnectError> {
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (conn, first_flight) = reality_client(reality, now_unix)?.into_parts();

    let mut tcp = TcpStream::connect(server)
        .await
        .map_err(|e| ConnectError::Tcp {
            server,
            source: e.into(),
        })?;
    // Small records (the hello, the request) should not wait for Nagle.
    tcp.set_nodelay(true).map_err(|e| ConnectError::Tcp {
        server,
        source: e.into(),
    })?;
    // The ClientHello was taken out of `conn` to check its bytes; it goes out first.
    tcp.write_all(&first_flight)
        .await
        .map_err(|source| ConnectError::Handshake { server, source })?;

    let mut tls = TlsConn::from_parts(tcp, conn);
    tls.handshake()
        .await
        .map_err(|source| handshake_error(server, source))?;
    Ok(tls)
}

/// A refused certificate is the REALITY verdict; every other failure is a plain TLS or
/// transport error.
fn handshake_error(server: SocketAddr, source: io::Error) -> ConnectError {
    let cause = source
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    match cause {
        Some(rustls::Error::InvalidCertificate(_)) => ConnectError::NotAuthenticated { server },
        _ => ConnectError::Handshake { server, source },
    }
}

/// Longest response header: version, addons length, 255 bytes of addons.
const MAX_RESPONSE_LEN: usize = 2 + 255;

/// The VLESS response header while it is being read; shared with the XHTTP client, whose
/// downlink starts with the same header.
pub(crate) struct ResponseHeader {
    buf: [u8; MAX_RESPONSE_LEN],
    have: usize,
    done: bool,
}

impl Default for ResponseHeader {
    fn default() -> Self {
        ResponseHeader {
            buf: [0; MAX_RESPONSE_LEN],
            have: 0,
            done: false,
        }
    }
}

impl ResponseHeader {
    /// A stream with no response header to strip (not VLESS at this layer).
    pub(crate) fn none() -> Self {
        ResponseHeader {
            done: true,
            ..ResponseHeader::default()
        }
    }

    /// Whether the whole header has been read.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Reads the response header from `io`, asking for no more than the decoder needs, so
    /// no payload byte is ever taken into the header buffer.
    pub(crate) fn poll_strip<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut R,
    ) -> Poll<io::Result<()>> {
        while !self.done {
            match decode_response(&self.buf[..self.have]) {
                Ok(Decoded::Complete { .. }) => self.done = true,
                Ok(Decoded::Incomplete { need_at_least }) => {
                    let want = &mut self.buf[self.have..need_at_least];
                    let n = ready!(Pin::new(&mut *io).poll_read(cx, want))?;
                    if n == 0 {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "tunnel: closed before the VLESS response header",
                        )));
                    }
                    self.have += n;
                }
                Err(e) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("tunnel: bad VLESS response header: {e}"),
                    )))
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// An open tunnel: bytes written go to the target, bytes read come from it.
pub struct TunnelStream {
    tls: TlsConn<TcpStream, ClientConnection>,
    response: ResponseHeader,
}

impl fmt::Debug for TunnelStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunnelStream")
            .field("response_header_read", &self.response.is_done())
            .finish_non_exhaustive()
    }
}

impl TunnelStream {
    /// The REALITY TLS session (negotiated suite and group, for metrics).
    pub fn tls(&self) -> &ClientConnection {
        self.tls.get_ref().1
    }
}

impl AsyncRead for TunnelStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(this.response.poll_strip(cx, &mut this.tls))?;
        Pin::new(&mut this.tls).poll_read(cx, buf)
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tls).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tls).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tls).poll_close(cx)
    }
}
