//! The async adapter: runs the handshake over any `futures_lite` byte
//! stream, then frames records both ways. No glommio, no timers: the hello
//! fragments of the padding plan are written as separate writes without the
//! gaps between them (Xray sleeps for the gaps; they only shape timing).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::client::{self, ClientStart, SERVER_HELLO_LEN};
use super::keys::{ClientKeys, ServerKeys};
use super::record::{Receiver, Sender, Session, MAX_PLAINTEXT};
use super::server::{self, AwaitTicket, ServerFirst, TicketOutcome};
use super::tickets::{ClientTickets, ServerTickets, Ticket};
use super::Error;

/// Plaintext accepted per `poll_write` (sealed into at most 8 records).
const WRITE_CHUNK: usize = 8 * MAX_PLAINTEXT;
/// Socket read size when the receiver wants less (headers).
const READ_CHUNK: usize = 32 * 1024;

/// Client handshake. In 1-RTT it writes the hello and reads the server's;
/// in 0-RTT (config `0rtt` and a valid ticket in `tickets`) it returns at
/// once and the hello goes out with the first write (or before the first
/// read). A 0-RTT stream whose server no longer knows the ticket fails its
/// first read with "new handshake needed" ([`super::is_new_handshake_needed`])
/// and drops the ticket, so the next connection does 1-RTT.
pub async fn client_handshake<S>(
    mut io: S,
    keys: &ClientKeys,
    tickets: &ClientTickets,
) -> io::Result<VlessEncStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match client::start(keys, tickets)? {
        ClientStart::ZeroRtt { session, ticket } => Ok(VlessEncStream::new(
            io,
            *session,
            Some((tickets.clone(), ticket)),
        )),
        ClientStart::OneRtt { flight, hello } => {
            for (fragment, _gap) in flight.fragments() {
                io.write_all(fragment).await?;
            }
            io.flush().await?;
            let mut reply = [0u8; SERVER_HELLO_LEN];
            io.read_exact(&mut reply).await?;
            let session = hello.finish(&reply, tickets)?;
            Ok(VlessEncStream::new(io, session, None))
        }
    }
}

/// Server handshake. On an error the peer is not a client with our key (or
/// replays, or its ticket is gone: then the noise was already written); the
/// caller should stop answering and close or drain the connection.
pub async fn server_handshake<S>(
    mut io: S,
    keys: &ServerKeys,
    tickets: &ServerTickets,
) -> io::Result<VlessEncStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut first = vec![0u8; server::first_len(keys)];
    io.read_exact(&mut first).await?;
    match server::read_first(keys, tickets, &first)? {
        ServerFirst::ZeroRtt(await_ticket) => {
            let mut sealed = [0u8; AwaitTicket::LEN];
            io.read_exact(&mut sealed).await?;
            match await_ticket.finish(&sealed, tickets)? {
                TicketOutcome::Accepted(session) => {
                    let mut stream = VlessEncStream::new(io, *session, None);
                    stream.resumed = true;
                    Ok(stream)
                }
                TicketOutcome::Unknown { noise } => {
                    io.write_all(&noise).await?;
                    io.flush().await?;
                    Err(Error::UnknownTicket.into())
                }
            }
        }
        ServerFirst::OneRtt(kex) => {
            let mut sealed = vec![0u8; kex.wants()];
            io.read_exact(&mut sealed).await?;
            let (flight, mut padding) = kex.finish(&sealed, keys, tickets)?;
            for (fragment, _gap) in flight.fragments() {
                io.write_all(fragment).await?;
            }
            io.flush().await?;
            let session = loop {
                let mut unit = vec![0u8; padding.wants()];
                io.read_exact(&mut unit).await?;
                match padding.input(&unit)? {
                    Ok(session) => break session,
                    Err(more) => padding = more,
                }
            };
            Ok(VlessEncStream::new(io, session, None))
        }
    }
}

/// An established VLESS Encryption connection: plaintext in, records out.
pub struct VlessEncStream<S> {
    io: S,
    sender: Sender,
    receiver: Receiver,
    /// Sealed bytes not yet written.
    out: Vec<u8>,
    out_pos: usize,
    /// Received bytes; `in_lo..in_hi` are not consumed yet.
    inbuf: Vec<u8>,
    in_lo: usize,
    in_hi: usize,
    /// Opened plaintext not yet handed out: `inbuf[plain.0..plain.1]`.
    plain: (usize, usize),
    /// Client 0-RTT: the ticket to drop if the server did not know it.
    zero_rtt: Option<(ClientTickets, Ticket)>,
    /// Client 0-RTT: a read sends the pending hello first.
    hello_before_read: bool,
    read_failed: Option<io::ErrorKind>,
    /// This session resumed a ticket (0-RTT) rather than a full exchange.
    resumed: bool,
}

impl<S> std::fmt::Debug for VlessEncStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VlessEncStream")
            .field("sender", &self.sender)
            .field("receiver", &self.receiver)
            .finish_non_exhaustive()
    }
}

impl<S> VlessEncStream<S> {
    fn new(io: S, session: Session, zero_rtt: Option<(ClientTickets, Ticket)>) -> Self {
        VlessEncStream {
            io,
            sender: session.sender,
            receiver: session.receiver,
            out: Vec::new(),
            out_pos: 0,
            inbuf: vec![0; READ_CHUNK],
            in_lo: 0,
            in_hi: 0,
            plain: (0, 0),
            hello_before_read: zero_rtt.is_some(),
            resumed: zero_rtt.is_some(),
            zero_rtt,
            read_failed: None,
        }
    }

    /// Whether the session resumed a ticket (0-RTT) instead of a full
    /// key exchange (1-RTT). For counters and tests.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// The underlying stream (to drain or close after an error).
    pub fn into_inner(self) -> S {
        self.io
    }

    /// Bytes written by the next record first: the 0-RTT hello or server
    /// random, until the first write.
    pub fn pending_pre_write(&self) -> &[u8] {
        self.sender.pending_pre_write()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> VlessEncStream<S> {
    /// Writes out `self.out`; `Ready(Ok)` once it is empty.
    fn poll_drain_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_pos < self.out.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out[self.out_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_pos += n;
        }
        self.out.clear();
        self.out_pos = 0;
        Poll::Ready(Ok(()))
    }

    /// Makes `inbuf[in_lo..in_hi]` hold at least `want` bytes. `Ok(false)`
    /// on end of stream before that.
    fn poll_fill(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<bool>> {
        while self.in_hi - self.in_lo < want {
            if self.in_lo + want > self.inbuf.len() {
                // Move the partial unit to the front, growing for big units
                // (a server padding block may be up to 64 KiB).
                self.inbuf.copy_within(self.in_lo..self.in_hi, 0);
                self.in_hi -= self.in_lo;
                self.in_lo = 0;
                if want > self.inbuf.len() {
                    self.inbuf.resize(want, 0);
                }
            }
            let n = ready!(Pin::new(&mut self.io).poll_read(cx, &mut self.inbuf[self.in_hi..]))?;
            if n == 0 {
                return Poll::Ready(Ok(false));
            }
            self.in_hi += n;
        }
        Poll::Ready(Ok(true))
    }

    fn fail_read(&mut self, e: Error) -> io::Error {
        if matches!(e, Error::NewHandshakeNeeded) {
            if let Some((tickets, ticket)) = self.zero_rtt.take() {
                tickets.forget(&ticket);
            }
        }
        let e: io::Error = e.into();
        self.read_failed = Some(e.kind());
        e
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for VlessEncStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(kind) = this.read_failed {
            return Poll::Ready(Err(kind.into()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // A client's 0-RTT hello must not wait for a first write that may
        // only come after this read: send it alone now. (A server's 0-RTT
        // random waits for its first record, as in Xray.)
        if this.hello_before_read && !this.sender.pending_pre_write().is_empty() {
            let pre = this.sender.take_pre_write();
            this.out.extend_from_slice(&pre);
        }
        if this.out_pos < this.out.len() {
            // Best effort: a blocked write must not block reading.
            if let Poll::Ready(Err(e)) = this.poll_drain_out(cx) {
                return Poll::Ready(Err(e));
            }
        }
        loop {
            let (lo, hi) = this.plain;
            if lo < hi {
                let n = buf.len().min(hi - lo);
                buf[..n].copy_from_slice(&this.inbuf[lo..lo + n]);
                this.plain.0 += n;
                return Poll::Ready(Ok(n));
            }
            let want = this.receiver.wants();
            if !ready!(this.poll_fill(cx, want))? {
                if this.in_hi == this.in_lo && this.receiver.at_record_boundary() {
                    return Poll::Ready(Ok(0));
                }
                let e = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "VLESS Encryption: stream ended inside a record",
                );
                this.read_failed = Some(e.kind());
                return Poll::Ready(Err(e));
            }
            let start = this.in_lo;
            this.in_lo += want;
            let unit = &mut this.inbuf[start..start + want];
            match this.receiver.input(unit) {
                Ok(Some(plain)) => {
                    // Plaintext sits at the start of the opened unit.
                    this.plain = (start, start + plain.len());
                }
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(this.fail_read(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for VlessEncStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain_out(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = buf.len().min(WRITE_CHUNK);
        this.sender.seal(&buf[..n], &mut this.out);
        // The data is ours now; a blocked socket just keeps it in `out`
        // until the next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_drain_out(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain_out(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain_out(cx))?;
        Pin::new(&mut this.io).poll_close(cx)
    }
}
