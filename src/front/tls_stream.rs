//! A server TLS stream that can be rebuilt from its parts, so a session can move to another
//! shard.
//!
//! futures-rustls' `TlsStream` can be taken apart (`into_inner`) but not put back together.
//! A group-call signalling socket accepted on one shard belongs to the shard that owns its
//! room, and must keep its TLS session (keys, sequence numbers, buffered plaintext) when it
//! moves. [`TlsConn`] drives a `rustls::ServerConnection` over any async byte stream with
//! rustls's sans-IO calls, and [`handoff_tls`] / [`resume`] carry it across the bus.
//!
//! Semantics a caller can rely on:
//! - plaintext the previous owner decrypted but did not read is returned first;
//! - a TLS error (bad record, fatal alert from the peer) becomes `InvalidData`, returned only
//!   once the alert rustls queued for the peer has been written, and on every later call;
//! - a close_notify reads as end of stream (`Ok(0)`); a TCP EOF without one is
//!   `UnexpectedEof` (a truncation the application must not take for a complete message);
//! - `poll_write` encrypts and starts sending at once; `poll_flush` returns only when every
//!   record has been handed to the socket; `poll_close` sends close_notify, then shuts down the
//!   write side.
//!
//! A connection still handshaking is driven forward by any of these calls, but the intended
//! use is established sessions.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use rustls::ServerConnection;
use shards::handoff::{attach, HandedConn};

use super::io::Prefixed;

/// A TLS session in transit between shards. The rustls state is boxed: it is several KiB and
/// rides a bounded channel slot.
pub type HandedTls = HandedConn<Box<ServerConnection>>;

/// A server-side TLS stream over `IO` that, unlike futures-rustls' stream, can be built from
/// an existing `ServerConnection`.
pub struct TlsConn<IO> {
    io: IO,
    conn: ServerConnection,
    /// The previous owner may have read records into rustls without processing them; the
    /// first read processes them before touching the socket.
    unprocessed: bool,
    /// The fatal TLS error. Kept (rustls errors are `Clone`) so every later call reports it.
    failed: Option<rustls::Error>,
    /// close_notify is queued; writing more would put data after the end of the stream.
    closing: bool,
}

impl<IO> TlsConn<IO> {
    /// Wraps a session and the transport it runs on. `io` must continue exactly where the
    /// bytes already given to `conn` stopped.
    pub fn from_parts(io: IO, conn: ServerConnection) -> Self {
        TlsConn {
            io,
            conn,
            unprocessed: true,
            failed: None,
            closing: false,
        }
    }

    /// The transport and the session, e.g. to hand them to another shard. Records rustls has
    /// queued but not yet sent stay inside the session and go out on the next owner's first
    /// read, write or flush.
    pub fn into_parts(self) -> (IO, ServerConnection) {
        (self.io, self.conn)
    }

    /// The transport and the session (ALPN, SNI, exporters).
    pub fn get_ref(&self) -> (&IO, &ServerConnection) {
        (&self.io, &self.conn)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> TlsConn<IO> {
    /// Writes queued TLS records until none are left or the transport would block.
    fn poll_send_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.conn.wants_write() {
            let mut io = SyncIo {
                io: &mut self.io,
                cx,
            };
            match self.conn.write_tls(&mut io) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Reads one chunk of ciphertext into rustls and processes it. `Ok(0)` is TCP EOF, which
    /// rustls also records, so its reader then reports a clean or an unclean end.
    fn poll_recv_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut io = SyncIo {
            io: &mut self.io,
            cx,
        };
        let n = match self.conn.read_tls(&mut io) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
            Err(e) => return Poll::Ready(Err(e)),
        };
        self.process();
        Poll::Ready(Ok(n))
    }

    fn process(&mut self) {
        self.unprocessed = false;
        if let Err(e) = self.conn.process_new_packets() {
            self.failed = Some(e);
        }
    }

    /// After a TLS error: sends the alert rustls queued, then reports the error. A transport
    /// error while sending the alert is dropped, since the TLS error is the cause.
    fn poll_failure(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Error>> {
        let Some(err) = self.failed.clone() else {
            return Poll::Ready(None);
        };
        if self.poll_send_tls(cx).is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(Some(io::Error::new(io::ErrorKind::InvalidData, err)))
    }

    /// Drives an unfinished handshake; plaintext written meanwhile waits inside rustls.
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.conn.is_handshaking() {
            if let Some(e) = ready!(self.poll_failure(cx)) {
                return Poll::Ready(Err(e));
            }
            ready!(self.poll_send_tls(cx))?;
            if ready!(self.poll_recv_tls(cx))? == 0 && self.failed.is_none() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "peer closed during the TLS handshake",
                )));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsConn<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            if let Some(e) = ready!(this.poll_failure(cx)) {
                return Poll::Ready(Err(e));
            }
            if this.unprocessed {
                this.process();
                continue;
            }
            // Ok(0) here means close_notify; UnexpectedEof means TCP EOF without one.
            match this.conn.reader().read(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            // Records rustls queued on its own (handshake flight, key update, session
            // tickets) go out first. A full socket only stalls reading when rustls says it
            // must not read before sending (mid-handshake); the write waker is registered.
            let sent = this.poll_send_tls(cx);
            if let Poll::Ready(Err(e)) = sent {
                return Poll::Ready(Err(e));
            }
            if sent.is_pending() && !this.conn.wants_read() {
                return Poll::Pending;
            }
            // Pending registers the read waker; each Ready moves bytes or reaches EOF, so the
            // loop cannot spin.
            ready!(this.poll_recv_tls(cx))?;
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsConn<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = ready!(this.poll_failure(cx)) {
            return Poll::Ready(Err(e));
        }
        if this.closing {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "TLS stream already closed for writing",
            )));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(this.poll_handshake(cx))?;
        loop {
            let n = this.conn.writer().write(buf)?;
            if n > 0 {
                // Start sending now; what the socket does not take yet stays queued in rustls
                // and goes out on the next write or flush.
                if let Poll::Ready(Err(e)) = this.poll_send_tls(cx) {
                    return Poll::Ready(Err(e));
                }
                return Poll::Ready(Ok(n));
            }
            if !this.conn.wants_write() {
                // rustls refuses plaintext with nothing to drain: its buffer limit is zero.
                // Waiting could never help, so say so instead of looping.
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            // rustls's outgoing buffer is at its limit: wait until the socket takes some.
            ready!(this.poll_send_tls(cx))?;
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = ready!(this.poll_failure(cx)) {
            return Poll::Ready(Err(e));
        }
        ready!(this.poll_handshake(cx))?;
        ready!(this.poll_send_tls(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = ready!(this.poll_failure(cx)) {
            return Poll::Ready(Err(e));
        }
        if !this.closing {
            this.conn.send_close_notify();
            this.closing = true;
        }
        ready!(this.poll_send_tls(cx))?;
        Pin::new(&mut this.io).poll_close(cx)
    }
}

/// Blocking-style `Read`/`Write` over an async transport for rustls's `read_tls` and
/// `write_tls`: `Pending` becomes `WouldBlock`, with the waker already registered by the
/// transport, so the caller can return `Pending` in turn.
struct SyncIo<'a, 'b, IO> {
    io: &'a mut IO,
    cx: &'a mut Context<'b>,
}

impl<IO: AsyncRead + Unpin> Read for SyncIo<'_, '_, IO> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_read(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl<IO: AsyncWrite + Unpin> Write for SyncIo<'_, '_, IO> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write_vectored(self.cx, bufs) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// rustls never needs the transport flushed mid-write; `poll_flush` flushes it.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Detaches an established futures-rustls connection from this shard, session included.
///
/// futures-rustls keeps no bytes of its own (ciphertext read and plaintext not yet read are
/// both inside the `ServerConnection`), so nothing is lost; the prefix is empty. A stream
/// whose transport buffered socket bytes (e.g. the front's `Prefixed`) must use
/// [`handoff_parts`] with those bytes instead.
pub fn handoff_tls(tls: futures_rustls::server::TlsStream<TcpStream>) -> io::Result<HandedTls> {
    let (stream, conn) = tls.into_inner();
    handoff_parts(stream, Vec::new(), conn)
}

/// Like [`handoff_tls`] from loose parts: `unread` is ciphertext already taken from the
/// socket but not yet given to `conn`; the receiving shard feeds it to rustls first.
pub fn handoff_parts(
    stream: TcpStream,
    unread: Vec<u8>,
    conn: ServerConnection,
) -> io::Result<HandedTls> {
    HandedConn::new(stream, unread, Box::new(conn))
}

/// Takes over a handed TLS connection on the current shard (must run on a glommio executor).
/// The socket's prefix is replayed into rustls before the socket is read.
pub fn resume(handed: HandedTls) -> (TlsConn<Prefixed<TcpStream>>, SocketAddr) {
    let HandedConn {
        fd,
        prefix,
        peer,
        state,
    } = handed;
    let io = Prefixed::new(prefix, attach(fd));
    (TlsConn::from_parts(io, *state), peer)
}
