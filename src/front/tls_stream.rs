//! A TLS stream over any async byte stream that can be rebuilt from its parts, so a session
//! can move to another shard; and the same stream on the client side, for the tunnel.
//!
//! futures-rustls' `TlsStream` can be taken apart (`into_inner`) but not put back together.
//! A group-call signalling socket accepted on one shard belongs to the shard that owns its
//! room, and must keep its TLS session (keys, sequence numbers, buffered plaintext) when it
//! moves. [`TlsConn`] drives a rustls connection with rustls's sans-IO calls, and
//! [`handoff_tls`] / [`resume`] carry a server session across the bus. The tunnel's REALITY
//! client needs the same adoption of a pre-built connection (its ClientHello is crafted before
//! any socket exists), so `TlsConn` is generic over the side: `TlsConn<IO>` is the server
//! stream, `TlsConn<IO, rustls::ClientConnection>` the client one.
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
//! A connection still handshaking is driven forward by any of these calls, or explicitly by
//! [`TlsConn::handshake`].

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::ops::DerefMut;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use rustls::{ConnectionCommon, ServerConnection, SideData};
use shards::handoff::{attach, HandedConn};

use super::io::Prefixed;

/// A TLS session in transit between shards. The rustls state is boxed: it is large (buffers
/// and key schedule inline) and rides a channel slot.
pub type HandedTls = HandedConn<Box<ServerConnection>>;

/// A TLS stream over `IO` that, unlike futures-rustls' streams, can be built from an existing
/// rustls connection. `C` is `ServerConnection` (the default) or `ClientConnection`.
pub struct TlsConn<IO, C = ServerConnection> {
    io: IO,
    conn: C,
    /// The previous owner may have read records into rustls without processing them; the
    /// first read processes them before touching the socket.
    unprocessed: bool,
    /// The fatal TLS error. Kept (rustls errors are `Clone`) so every later call reports it.
    failed: Option<rustls::Error>,
    /// close_notify is queued; writing more would put data after the end of the stream.
    closing: bool,
}

impl<IO, C> TlsConn<IO, C> {
    /// Wraps a session and the transport it runs on. `io` must continue exactly where the
    /// bytes already given to `conn` stopped (and, on the way out, where the bytes already
    /// taken from `conn` with `write_tls` stopped).
    pub fn from_parts(io: IO, conn: C) -> Self {
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
    pub fn into_parts(self) -> (IO, C) {
        (self.io, self.conn)
    }

    /// The transport and the session (ALPN, SNI, exporters).
    pub fn get_ref(&self) -> (&IO, &C) {
        (&self.io, &self.conn)
    }
}

impl<IO, C, SD> TlsConn<IO, C>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    C: DerefMut<Target = ConnectionCommon<SD>> + Unpin,
    SD: SideData,
{
    /// Runs the handshake to its end and sends the last flight, e.g. so that a client learns
    /// whether the server is the one it expects before it sends anything. A TLS error is
    /// `InvalidData` wrapping the `rustls::Error`.
    pub async fn handshake(&mut self) -> io::Result<()> {
        futures_lite::future::poll_fn(|cx| {
            ready!(self.poll_handshake(cx))?;
            if let Some(e) = ready!(self.poll_failure(cx)) {
                return Poll::Ready(Err(e));
            }
            self.poll_send_tls(cx)
        })
        .await
    }

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

impl<IO, C, SD> AsyncRead for TlsConn<IO, C>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    C: DerefMut<Target = ConnectionCommon<SD>> + Unpin,
    SD: SideData,
{
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

impl<IO, C, SD> AsyncWrite for TlsConn<IO, C>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    C: DerefMut<Target = ConnectionCommon<SD>> + Unpin,
    SD: SideData,
{
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

#[cfg(test)]
mod tests {
    //! Two real rustls peers over an in-memory pipe with a small capacity, so back-pressure
    //! and partial writes happen on every test.

    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use std::task::Waker;

    use futures_lite::future::{block_on, zip};
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use rustls::pki_types::{PrivateKeyDer, ServerName};
    use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};

    use super::*;

    /// One direction of the pipe.
    #[derive(Default)]
    struct Pipe {
        buf: VecDeque<u8>,
        closed: bool,
        reader: Option<Waker>,
        writer: Option<Waker>,
    }

    /// One end of an in-memory duplex byte stream holding at most `cap` bytes per direction.
    struct End {
        rx: Arc<Mutex<Pipe>>,
        tx: Arc<Mutex<Pipe>>,
        cap: usize,
    }

    fn duplex(cap: usize) -> (End, End) {
        let (a, b) = (Arc::default(), Arc::default());
        let one = End {
            rx: Arc::clone(&a),
            tx: Arc::clone(&b),
            cap,
        };
        (one, End { rx: b, tx: a, cap })
    }

    fn wake(slot: &mut Option<Waker>) {
        if let Some(waker) = slot.take() {
            waker.wake();
        }
    }

    fn shut(pipe: &Mutex<Pipe>) {
        let mut p = pipe.lock().unwrap();
        p.closed = true;
        wake(&mut p.reader);
        wake(&mut p.writer);
    }

    impl Drop for End {
        /// Like closing a socket: the peer reads EOF and its writes fail.
        fn drop(&mut self) {
            shut(&self.tx);
            shut(&self.rx);
        }
    }

    impl AsyncRead for End {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let mut p = self.rx.lock().unwrap();
            if p.buf.is_empty() {
                if p.closed {
                    return Poll::Ready(Ok(0));
                }
                p.reader = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = buf.len().min(p.buf.len());
            for (dst, src) in buf.iter_mut().zip(p.buf.drain(..n)) {
                *dst = src;
            }
            wake(&mut p.writer);
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for End {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let mut p = self.tx.lock().unwrap();
            if p.closed {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            let n = (self.cap - p.buf.len()).min(buf.len());
            if n == 0 {
                p.writer = Some(cx.waker().clone());
                return Poll::Pending;
            }
            p.buf.extend(&buf[..n]);
            wake(&mut p.reader);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            shut(&self.tx);
            Poll::Ready(Ok(()))
        }
    }

    type ServerTls = futures_rustls::server::TlsStream<End>;
    type ClientTls = futures_rustls::client::TlsStream<End>;

    fn configs(
        version: &'static SupportedProtocolVersion,
    ) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = made.cert.der().clone();
        let key = PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
        let provider = super::super::tls::provider();
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(cert).unwrap();
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    fn connector(client: Arc<ClientConfig>, io: End) -> futures_rustls::Connect<End> {
        let name = ServerName::try_from("localhost").unwrap();
        futures_rustls::TlsConnector::from(client).connect(name, io)
    }

    /// A session established by futures-rustls, as the front's driver establishes them.
    async fn established(version: &'static SupportedProtocolVersion) -> (ServerTls, ClientTls) {
        let (server, client) = configs(version);
        let (s, c) = duplex(4096);
        let acceptor = futures_rustls::TlsAcceptor::from(server);
        let (s, c) = zip(acceptor.accept(s), connector(client, c)).await;
        (s.unwrap(), c.unwrap())
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn unread_plaintext_and_the_session_survive_into_parts() {
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            block_on(async {
                let (mut server, mut client) = established(version).await;
                client.write_all(b"hello world").await.unwrap();
                client.flush().await.unwrap();
                let mut first = [0u8; 5];
                server.read_exact(&mut first).await.unwrap();
                let (io, mut conn) = server.into_inner();
                // The rest of the record is decrypted and waiting inside rustls.
                let state = conn.process_new_packets().unwrap();
                assert_eq!(state.plaintext_bytes_to_read(), 6, "{version:?}");

                let mut tls = TlsConn::from_parts(io, conn);
                let mut rest = [0u8; 6];
                tls.read_exact(&mut rest).await.unwrap();
                assert_eq!(&first, b"hello");
                assert_eq!(&rest, b" world");
                tls.write_all(b"pong").await.unwrap();
                tls.flush().await.unwrap();
                let mut answer = [0u8; 4];
                client.read_exact(&mut answer).await.unwrap();
                assert_eq!(&answer, b"pong");
            });
        }
    }

    #[test]
    fn fresh_session_handshakes_and_moves_a_mebibyte_each_way() {
        let (server, client) = configs(&rustls::version::TLS13);
        let (s, c) = duplex(16 << 10);
        let mut tls = TlsConn::from_parts(s, ServerConnection::new(server).unwrap());
        let big = pattern(1 << 20);
        let serve = async {
            tls.write_all(&big).await.unwrap();
            tls.flush().await.unwrap();
            let mut got = vec![0u8; big.len()];
            tls.read_exact(&mut got).await.unwrap();
            got
        };
        let talk = async {
            let mut client = connector(client, c).await.unwrap();
            let mut got = vec![0u8; big.len()];
            client.read_exact(&mut got).await.unwrap();
            client.write_all(&big).await.unwrap();
            client.flush().await.unwrap();
            (got, client)
        };
        let (server_got, (client_got, _client)) = block_on(zip(serve, talk));
        assert!(client_got == big, "server-to-client bytes differ");
        assert!(server_got == big, "client-to-server bytes differ");
    }

    #[test]
    fn client_side_handshakes_and_moves_a_mebibyte_each_way() {
        let (server, client) = configs(&rustls::version::TLS13);
        let (s, c) = duplex(16 << 10);
        let name = ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(client, name).unwrap();
        let mut tls = TlsConn::from_parts(c, conn);
        let big = pattern(1 << 20);
        let talk = async {
            tls.handshake().await.unwrap();
            assert!(!tls.get_ref().1.is_handshaking());
            tls.write_all(&big).await.unwrap();
            tls.flush().await.unwrap();
            let mut got = vec![0u8; big.len()];
            tls.read_exact(&mut got).await.unwrap();
            got
        };
        let serve = async {
            let mut server = futures_rustls::TlsAcceptor::from(server)
                .accept(s)
                .await
                .unwrap();
            let mut got = vec![0u8; big.len()];
            server.read_exact(&mut got).await.unwrap();
            server.write_all(&big).await.unwrap();
            server.flush().await.unwrap();
            (got, server)
        };
        let (client_got, (server_got, _server)) = block_on(zip(talk, serve));
        assert!(client_got == big, "server-to-client bytes differ");
        assert!(server_got == big, "client-to-server bytes differ");
    }

    #[test]
    fn client_handshake_reports_a_refused_certificate() {
        let (server, _) = configs(&rustls::version::TLS13);
        // Trusts nothing: the server's self-signed certificate is refused.
        let client = ClientConfig::builder_with_provider(super::super::tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
        let (s, c) = duplex(16 << 10);
        let name = ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
        let mut tls = TlsConn::from_parts(c, conn);
        let serve = futures_rustls::TlsAcceptor::from(server).accept(s);
        let (client_result, server_result) = block_on(zip(tls.handshake(), serve));
        let err = client_result.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let cause = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>());
        assert!(
            matches!(cause, Some(rustls::Error::InvalidCertificate(_))),
            "{err}"
        );
        // The alert went out before the error was reported.
        let Err(server_err) = server_result else {
            panic!("the server finished a handshake the client refused");
        };
        assert!(server_err.to_string().contains("alert"), "{server_err}");
    }

    #[test]
    fn queued_records_travel_with_the_session() {
        block_on(async {
            let (server, mut client) = established(&rustls::version::TLS13).await;
            let (io, conn) = server.into_inner();
            let mut tls = TlsConn::from_parts(io, conn);
            let data = pattern(32 << 10);
            // rustls takes all of it (under its 64 KiB limit); the 4 KiB pipe takes a part.
            assert_eq!(tls.write(&data).await.unwrap(), data.len());
            let (io, conn) = tls.into_parts();
            assert!(conn.wants_write(), "some records must still be queued");

            let mut tls = TlsConn::from_parts(io, conn);
            let mut got = vec![0u8; data.len()];
            let (flushed, read) = zip(tls.flush(), client.read_exact(&mut got)).await;
            flushed.unwrap();
            read.unwrap();
            assert!(got == data);
        });
    }

    #[test]
    fn close_notify_is_a_clean_end_and_bare_eof_is_not() {
        block_on(async {
            let (server, mut client) = established(&rustls::version::TLS13).await;
            let (io, conn) = server.into_inner();
            let mut tls = TlsConn::from_parts(io, conn);
            tls.close().await.unwrap();
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
            assert_eq!(
                tls.write(b"late").await.unwrap_err().kind(),
                io::ErrorKind::BrokenPipe
            );
            client.close().await.unwrap();
            let mut buf = [0u8; 8];
            assert_eq!(tls.read(&mut buf).await.unwrap(), 0);

            let (server, client) = established(&rustls::version::TLS13).await;
            let (io, conn) = server.into_inner();
            let mut tls = TlsConn::from_parts(io, conn);
            drop(client.into_inner());
            let err = tls.read(&mut buf).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        });
    }

    #[test]
    fn bad_record_is_invalid_data_and_the_alert_reaches_the_peer() {
        block_on(async {
            let (server, mut client) = established(&rustls::version::TLS13).await;
            let (io, conn) = server.into_inner();
            let mut tls = TlsConn::from_parts(io, conn);
            // An application-data record that cannot decrypt, written past the client's TLS.
            let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x20];
            forged.extend([0u8; 0x20]);
            client.get_mut().0.write_all(&forged).await.unwrap();

            let mut buf = [0u8; 8];
            for _ in 0..2 {
                let err = tls.read(&mut buf).await.unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
            }
            assert_eq!(
                tls.write(b"x").await.unwrap_err().kind(),
                io::ErrorKind::InvalidData
            );
            let err = client.read(&mut buf).await.unwrap_err();
            assert!(err.to_string().contains("alert"), "{err}");
        });
    }

    /// A record sent by the client, taken off the "socket" raw as a sniffing shard would.
    async fn raw_record(io: &mut End, client: &mut ClientTls, text: &[u8]) -> Vec<u8> {
        client.write_all(text).await.unwrap();
        client.flush().await.unwrap();
        let mut raw = vec![0u8; 1024];
        let n = io.read(&mut raw).await.unwrap();
        raw.truncate(n);
        raw
    }

    #[test]
    fn ciphertext_prefix_is_read_before_the_transport() {
        block_on(async {
            let (server, mut client) = established(&rustls::version::TLS13).await;
            let (mut io, conn) = server.into_inner();
            let raw = raw_record(&mut io, &mut client, b"abc").await;
            let mut tls = TlsConn::from_parts(Prefixed::new(raw, io), conn);
            client.write_all(b"def").await.unwrap();
            client.flush().await.unwrap();
            let mut got = [0u8; 6];
            tls.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"abcdef");
        });
    }

    #[test]
    fn records_read_but_not_processed_are_readable_without_more_input() {
        block_on(async {
            let (server, mut client) = established(&rustls::version::TLS13).await;
            let (mut io, mut conn) = server.into_inner();
            let raw = raw_record(&mut io, &mut client, b"abc").await;
            assert_eq!(conn.read_tls(&mut raw.as_slice()).unwrap(), raw.len());
            let mut tls = TlsConn::from_parts(io, conn);
            // Nothing more will arrive, so this must be answered from rustls's own buffer.
            let mut got = [0u8; 8];
            let read = futures_lite::future::poll_once(tls.read(&mut got)).await;
            assert!(matches!(read, Some(Ok(3))), "{read:?}");
            assert_eq!(&got[..3], b"abc");
        });
    }
}
