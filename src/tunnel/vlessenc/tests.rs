//! Client ↔ server over an in-memory duplex pipe (futures-lite executor).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_lite::future::{block_on, zip};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::tickets::tests::{advance, manual_clock};
use super::*;

#[derive(Default)]
struct Pipe {
    buf: VecDeque<u8>,
    closed: bool,
    /// Number of `poll_write` calls that moved bytes.
    writes: usize,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

/// One end of a duplex pipe: reads `rx`, writes `tx`.
struct End {
    rx: Rc<RefCell<Pipe>>,
    tx: Rc<RefCell<Pipe>>,
    cap: usize,
}

fn duplex(cap: usize) -> (End, End) {
    let (x, y) = (Rc::default(), Rc::default());
    (
        End {
            rx: Rc::clone(&x),
            tx: Rc::clone(&y),
            cap,
        },
        End { rx: y, tx: x, cap },
    )
}

fn wake(slot: &mut Option<Waker>) {
    if let Some(w) = slot.take() {
        w.wake();
    }
}

impl Drop for End {
    /// A dropped end closes both directions, as a socket would: the peer
    /// reads end of stream and its writes fail.
    fn drop(&mut self) {
        let mut tx = self.tx.borrow_mut();
        tx.closed = true;
        wake(&mut tx.reader);
        drop(tx);
        let mut rx = self.rx.borrow_mut();
        rx.closed = true;
        wake(&mut rx.writer);
    }
}

impl AsyncRead for End {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut p = self.rx.borrow_mut();
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
        let mut p = self.tx.borrow_mut();
        if p.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let room = self.cap - p.buf.len();
        if room == 0 {
            p.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = room.min(buf.len());
        p.buf.extend(&buf[..n]);
        p.writes += 1;
        wake(&mut p.reader);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut p = self.tx.borrow_mut();
        p.closed = true;
        wake(&mut p.reader);
        Poll::Ready(Ok(()))
    }
}

/// Passes bytes through, but flips one byte at position `at` of the
/// stream it reads.
struct Tamper<S> {
    inner: S,
    at: usize,
    pos: usize,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tamper<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let n = std::task::ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        let (at, pos) = (self.at, self.pos);
        if (pos..pos + n).contains(&at) {
            buf[at - pos] ^= 0x20;
        }
        self.pos += n;
        Poll::Ready(Ok(n))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tamper<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

struct Setup {
    server: ServerKeys,
    client: ClientKeys,
    server_tickets: ServerTickets,
    client_tickets: ClientTickets,
}

fn setup(pair: KeyPair, ticket: &str, rtt: &str) -> Setup {
    let server = ServerKeys::parse(&pair.server_config(ticket)).unwrap();
    let server_tickets = ServerTickets::new(server.tickets);
    Setup {
        server,
        client: ClientKeys::parse(&pair.client_config(rtt)).unwrap(),
        server_tickets,
        client_tickets: ClientTickets::new(),
    }
}

fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// Handshake both ways, send `up` client→server and `down` back, check.
fn round_trip(s: &Setup, up: &[u8], down: &[u8]) {
    let (c_io, s_io) = duplex(4096);
    let client = async {
        let mut c = client_handshake(c_io, &s.client, &s.client_tickets)
            .await
            .unwrap();
        c.write_all(up).await.unwrap();
        c.flush().await.unwrap();
        let mut got = vec![0u8; down.len()];
        c.read_exact(&mut got).await.unwrap();
        got
    };
    let server = async {
        let mut srv = server_handshake(s_io, &s.server, &s.server_tickets)
            .await
            .unwrap();
        let mut got = vec![0u8; up.len()];
        srv.read_exact(&mut got).await.unwrap();
        srv.write_all(down).await.unwrap();
        srv.flush().await.unwrap();
        got
    };
    let (c_got, s_got) = block_on(zip(client, server));
    assert_eq!(sha256(&s_got), sha256(up));
    assert_eq!(sha256(&c_got), sha256(down));
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn one_rtt_x25519() {
    let s = setup(KeyPair::x25519().unwrap(), "600s", "1rtt");
    round_trip(&s, b"VLESS request", b"response");
    // A 1rtt client never caches, but the server issued a ticket.
    assert!(!s.client_tickets.has_ticket());
    assert_eq!(s.server_tickets.len(), 1);
}

#[test]
fn one_rtt_mlkem_seed() {
    let s = setup(KeyPair::mlkem768().unwrap(), "300-600s", "1rtt");
    round_trip(&s, b"hello", b"world");
}

#[test]
fn chacha_client_is_accepted() {
    let mut s = setup(KeyPair::x25519().unwrap(), "600s", "0rtt");
    s.client.cipher = Cipher::ChaCha20Poly1305;
    round_trip(&s, b"1-RTT on ChaCha", b"ok");
    round_trip(&s, b"0-RTT on ChaCha", b"ok");
}

#[test]
fn multi_record_transfers_of_a_mebibyte() {
    let s = setup(KeyPair::x25519().unwrap(), "0s", "1rtt");
    round_trip(&s, &bytes(1 << 20, 1), &bytes((1 << 20) + 12345, 2));
}

#[test]
fn record_boundaries() {
    let s = setup(KeyPair::x25519().unwrap(), "0s", "1rtt");
    for n in [1usize, 8192, 8193, 16384, 16385] {
        round_trip(&s, &bytes(n, 3), &bytes(n, 4));
    }
    // Zero bytes: nothing goes on the wire; the next write still works.
    let (c_io, s_io) = duplex(1 << 16);
    block_on(zip(
        async {
            let mut c = client_handshake(c_io, &s.client, &s.client_tickets)
                .await
                .unwrap();
            assert_eq!(c.write(&[]).await.unwrap(), 0);
            c.write_all(b"x").await.unwrap();
            c.close().await.unwrap();
        },
        async {
            let mut srv = server_handshake(s_io, &s.server, &s.server_tickets)
                .await
                .unwrap();
            let mut all = Vec::new();
            srv.read_to_end(&mut all).await.unwrap();
            assert_eq!(all, b"x");
        },
    ));
}

#[test]
fn zero_rtt_with_ticket_from_one_rtt() {
    let s = setup(KeyPair::mlkem768().unwrap(), "600s", "0rtt");
    round_trip(&s, b"first", b"one");
    assert!(s.client_tickets.has_ticket());

    // No server runs: the 0-RTT handshake completes without a round trip,
    // and hello + first record leave in one write.
    let (c_io, s_io) = duplex(1 << 16);
    let mut c = block_on(client_handshake(c_io, &s.client, &s.client_tickets)).unwrap();
    assert_eq!(s_io.rx.borrow().buf.len(), 0);
    let hello_len = c.pending_pre_write().len();
    assert_eq!(hello_len, 16 + 1088 + 18 + 32);
    block_on(c.write_all(b"early data")).unwrap();
    assert_eq!(s_io.rx.borrow().writes, 1);
    assert_eq!(s_io.rx.borrow().buf.len(), hello_len + 5 + 10 + 16);

    block_on(zip(
        async {
            let mut srv = server_handshake(s_io, &s.server, &s.server_tickets)
                .await
                .unwrap();
            let mut got = [0u8; 10];
            srv.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"early data");
            srv.write_all(b"late data").await.unwrap();
        },
        async {
            let mut got = [0u8; 9];
            c.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"late data");
        },
    ));
    // Many 0-RTT connections on one ticket (each with a fresh nfsKey).
    round_trip(&s, &bytes(100_000, 5), &bytes(3, 6));
    round_trip(&s, b"again", b"fine");
}

#[test]
fn zero_rtt_client_may_read_first() {
    let s = setup(KeyPair::x25519().unwrap(), "600s", "0rtt");
    round_trip(&s, b"first", b"one");
    let (c_io, s_io) = duplex(1 << 16);
    block_on(zip(
        async {
            let mut c = client_handshake(c_io, &s.client, &s.client_tickets)
                .await
                .unwrap();
            let mut got = [0u8; 5];
            c.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"hello");
        },
        async {
            let mut srv = server_handshake(s_io, &s.server, &s.server_tickets)
                .await
                .unwrap();
            srv.write_all(b"hello").await.unwrap();
        },
    ));
}

/// One 0-RTT attempt against the server; returns (client read, server).
fn zero_rtt_attempt(s: &Setup) -> (io::Result<()>, io::Result<()>) {
    let (c_io, s_io) = duplex(1 << 16);
    block_on(zip(
        async {
            let mut c = client_handshake(c_io, &s.client, &s.client_tickets).await?;
            c.write_all(b"request").await?;
            let mut got = [0u8; 2];
            c.read_exact(&mut got).await
        },
        async {
            let mut srv = server_handshake(s_io, &s.server, &s.server_tickets).await?;
            let mut got = [0u8; 7];
            srv.read_exact(&mut got).await?;
            srv.write_all(b"ok").await
        },
    ))
}

#[test]
fn unknown_ticket_means_new_handshake() {
    let (clock, at) = manual_clock();
    let mut s = setup(KeyPair::x25519().unwrap(), "600s", "0rtt");
    s.server_tickets = ServerTickets::with_clock(s.server.tickets, clock);
    round_trip(&s, b"first", b"one");
    assert!(s.client_tickets.has_ticket());
    // The server forgets (restart / expiry) while the client still holds it.
    advance(&at, Duration::from_secs(600) + tickets::SERVER_GRACE);
    let (client, server) = zero_rtt_attempt(&s);
    let e = client.unwrap_err();
    assert!(is_new_handshake_needed(&e), "{e}");
    assert_eq!(e.to_string(), "new handshake needed");
    assert!(server
        .unwrap_err()
        .to_string()
        .contains("unknown or expired"));
    assert!(!s.client_tickets.has_ticket());
    // The next connection does 1-RTT and gets a new ticket.
    round_trip(&s, b"fresh", b"ok");
    assert!(s.client_tickets.has_ticket());
    let (client, server) = zero_rtt_attempt(&s);
    client.unwrap();
    server.unwrap();
}

#[test]
fn client_ticket_expiry_falls_back_to_one_rtt() {
    let (clock, at) = manual_clock();
    let mut s = setup(KeyPair::x25519().unwrap(), "600s", "0rtt");
    s.client_tickets = ClientTickets::with_clock(clock);
    round_trip(&s, b"first", b"one");
    // "600s" gives 50–99 % of 600 s: the first two ticket bytes.
    advance(&at, Duration::from_secs(299));
    assert!(s.client_tickets.has_ticket());
    advance(&at, Duration::from_secs(301));
    assert!(!s.client_tickets.has_ticket());
    let (c_io, _s_io) = duplex(1 << 16);
    let start = client::start(&s.client, &s.client_tickets).unwrap();
    assert!(matches!(start, client::ClientStart::OneRtt { .. }));
    drop(c_io);
}

#[test]
fn replayed_zero_rtt_is_rejected() {
    let s = setup(KeyPair::x25519().unwrap(), "600s", "0rtt");
    round_trip(&s, b"first", b"one");
    // Record a 0-RTT first flight…
    let (c_io, s_io) = duplex(1 << 16);
    let mut c = block_on(client_handshake(c_io, &s.client, &s.client_tickets)).unwrap();
    block_on(c.write_all(b"pay me")).unwrap();
    let flight: Vec<u8> = s_io.rx.borrow().buf.iter().copied().collect();
    // …which the server accepts once…
    let accept = |flight: &[u8]| {
        let (mut attacker, s_io) = duplex(1 << 16);
        block_on(attacker.write_all(flight)).unwrap();
        block_on(server_handshake(s_io, &s.server, &s.server_tickets))
    };
    assert!(accept(&flight).is_ok());
    // …and never again.
    let e = accept(&flight).unwrap_err();
    assert!(e.to_string().contains("replay"), "{e}");
}

#[test]
fn zero_rtt_refused_when_tickets_are_off() {
    let s = setup(KeyPair::x25519().unwrap(), "600s", "0rtt");
    round_trip(&s, b"first", b"one");
    let off = ServerKeys::parse(&format!(
        "mlkem768x25519plus.native.0s.{}",
        s.server_key_string()
    ))
    .unwrap();
    let (c_io, s_io) = duplex(1 << 16);
    let (client, server) = block_on(zip(
        async {
            let mut c = client_handshake(c_io, &s.client, &s.client_tickets).await?;
            c.write_all(b"x").await?;
            let mut b = [0u8; 1];
            c.read_exact(&mut b).await
        },
        async {
            let r = server_handshake(s_io, &off, &ServerTickets::new(off.tickets)).await;
            r.map(drop)
        },
    ));
    assert!(server
        .unwrap_err()
        .to_string()
        .contains("0-RTT is not allowed"));
    assert!(client.is_err());
}

impl Setup {
    fn server_key_string(&self) -> String {
        // Re-derive the server key string from the parsed key for tests.
        match &self.server.key {
            keys::ServerKey::X25519(secret) => {
                use base64::Engine;
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret.to_bytes())
            }
            keys::ServerKey::MlKem768(_) => unreachable!("x25519 only here"),
        }
    }
}

#[test]
fn wrong_server_key_fails_cleanly() {
    let s = setup(KeyPair::x25519().unwrap(), "600s", "1rtt");
    let other = ServerKeys::parse(&KeyPair::x25519().unwrap().server_config("600s")).unwrap();
    let (c_io, s_io) = duplex(1 << 16);
    let (client, server) = block_on(zip(
        async {
            let r = client_handshake(c_io, &s.client, &s.client_tickets).await;
            r.map(drop)
        },
        async {
            let r = server_handshake(s_io, &other, &s.server_tickets).await;
            r.map(drop)
        },
    ));
    assert!(server.unwrap_err().to_string().contains("does not open"));
    assert!(client.is_err());
}

/// Flips one byte at `at` of what the server reads (`to_server`) or what the
/// client reads; the exchange must end in an error on some side, no panic,
/// no hang, and never in corrupted data.
fn tampered_exchange(s: &Setup, to_server: bool, at: usize) {
    let (c_io, s_io) = duplex(1 << 16);
    let (c_io, s_io) = if to_server {
        (
            Tamper {
                inner: c_io,
                at: usize::MAX,
                pos: 0,
            },
            Tamper {
                inner: s_io,
                at,
                pos: 0,
            },
        )
    } else {
        (
            Tamper {
                inner: c_io,
                at,
                pos: 0,
            },
            Tamper {
                inner: s_io,
                at: usize::MAX,
                pos: 0,
            },
        )
    };
    let up = bytes(300, 7);
    let down = bytes(200, 8);
    let (client, server) = block_on(zip(
        async {
            let mut c = client_handshake(c_io, &s.client, &s.client_tickets).await?;
            c.write_all(&up).await?;
            // Half-close (the pipe's close only ends our direction), so a
            // tampered length cannot leave the server waiting forever.
            c.close().await?;
            let mut got = vec![0u8; down.len()];
            c.read_exact(&mut got).await?;
            assert_eq!(got, down);
            Ok::<_, io::Error>(())
        },
        async {
            let mut srv = match server_handshake(s_io, &s.server, &s.server_tickets).await {
                Ok(srv) => srv,
                Err(e) => return Err(e),
            };
            let mut got = vec![0u8; up.len()];
            let r = srv.read_exact(&mut got).await;
            if r.is_ok() {
                assert_eq!(got, up);
                srv.write_all(&down).await?;
            }
            srv.close().await?;
            r
        },
    ));
    if std::env::var_os("VLESSENC_TRACE").is_some() {
        eprintln!("tamper {at} to_server={to_server}: client {client:?} server {server:?}");
    }
    assert!(
        client.is_err() || server.is_err(),
        "tampering byte {at} (to_server {to_server}) went unnoticed"
    );
}

#[test]
fn tampered_byte_anywhere_is_a_clean_error() {
    // Deterministic small padding so every position is known: client hello
    // = 16 + 32 + 18 + 1232 + 35, then the 300-byte record (+21).
    let pair = KeyPair::x25519().unwrap();
    let s = Setup {
        server: ServerKeys::parse(&format!(
            "mlkem768x25519plus.native.600s.100-35-35.{}",
            *pair.server
        ))
        .unwrap(),
        client: ClientKeys::parse(&format!(
            "mlkem768x25519plus.native.1rtt.100-35-35.{}",
            pair.client
        ))
        .unwrap(),
        server_tickets: ServerTickets::new(TicketLifetime { from: 600, to: 0 }),
        client_tickets: ClientTickets::new(),
    };
    let client_flight = 16 + 32 + 18 + 1232 + 35 + 5 + 300 + 16;
    let server_flight = 1136 + 32 + 35 + 5 + 200 + 16;
    // Every byte of the iv, relay, first sealed length and the record;
    // every 5th byte of the long key exchanges and padding in between
    // (all of them take half a minute in a debug build).
    let positions = |len: usize, head: usize, tail: usize| {
        (0..len).filter(move |&i| i < head || i >= len - tail || i % 5 == 0)
    };
    for at in positions(client_flight, 16 + 32 + 18, 5 + 300 + 16 + 35) {
        tampered_exchange(&s, true, at);
    }
    for at in positions(server_flight, 0, 5 + 200 + 16 + 35 + 32) {
        tampered_exchange(&s, false, at);
    }
}

#[test]
fn relay_with_top_bit_set_is_refused() {
    let s = setup(KeyPair::x25519().unwrap(), "600s", "1rtt");
    let client::ClientStart::OneRtt { flight, .. } =
        client::start(&s.client, &s.client_tickets).unwrap()
    else {
        panic!("1rtt")
    };
    let mut first = flight.bytes[..server::first_len(&s.server)].to_vec();
    first[16 + 31] |= 0x80;
    let e = server::read_first(&s.server, &s.server_tickets, &first).unwrap_err();
    assert!(e.to_string().contains("top bit"), "{e}");
}

#[test]
fn garbage_never_panics_the_server() {
    let s = setup(KeyPair::mlkem768().unwrap(), "600s", "1rtt");
    for len in [0usize, 1, 100, 1122, 1200, 3000] {
        let (mut attacker, s_io) = duplex(1 << 16);
        let junk = bytes(len, 9);
        block_on(async {
            attacker.write_all(&junk).await.unwrap();
            attacker.close().await.unwrap();
        });
        assert!(block_on(server_handshake(s_io, &s.server, &s.server_tickets)).is_err());
    }
}

#[test]
fn sans_io_wire_layout() {
    let pair = KeyPair::mlkem768().unwrap();
    let server = ServerKeys::parse(&format!(
        "mlkem768x25519plus.native.600s.100-40-40.{}",
        *pair.server
    ))
    .unwrap();
    let client = ClientKeys::parse(&format!(
        "mlkem768x25519plus.native.0rtt.100-50-50.{}",
        pair.client
    ))
    .unwrap();
    let st = ServerTickets::new(server.tickets);
    let ct = ClientTickets::new();
    let client::ClientStart::OneRtt { flight, hello } = client::start(&client, &ct).unwrap() else {
        panic!("no ticket yet")
    };
    // iv ‖ ML-KEM ct relay ‖ Seal(len) ‖ Seal(ek ‖ x25519) ‖ padding 50.
    assert_eq!(flight.bytes.len(), 16 + 1088 + 18 + 1232 + 50);
    let first = server::first_len(&server);
    assert_eq!(first, 16 + 1088 + 18);
    let server::ServerFirst::OneRtt(kex) =
        server::read_first(&server, &st, &flight.bytes[..first]).unwrap()
    else {
        panic!("1-RTT")
    };
    assert_eq!(kex.wants(), 1232);
    let (reply, mut padding) = kex
        .finish(&flight.bytes[first..first + 1232], &server, &st)
        .unwrap();
    // Seal(MaxNonce, ct ‖ x25519) ‖ Seal(ticket) ‖ padding 40.
    assert_eq!(reply.bytes.len(), 1136 + 32 + 40);
    let mut rest = &flight.bytes[first + 1232..];
    let session = loop {
        let n = padding.wants();
        match padding.input(&rest[..n]).unwrap() {
            Ok(session) => break session,
            Err(more) => padding = more,
        }
        rest = &rest[n..];
    };
    let head: [u8; client::SERVER_HELLO_LEN] =
        reply.bytes[..client::SERVER_HELLO_LEN].try_into().unwrap();
    let mut c = hello.finish(&head, &ct).unwrap();
    assert!(ct.has_ticket());
    assert_eq!(st.len(), 1);
    // The client first opens the server's 22 remaining padding bytes.
    assert_eq!(c.receiver.wants(), 40 - 18);
    let mut pad = reply.bytes[client::SERVER_HELLO_LEN..].to_vec();
    assert_eq!(c.receiver.input(&mut pad).unwrap(), None);
    // Both directions carry records.
    let mut s = session;
    let mut wire = Vec::new();
    s.sender.seal(b"down", &mut wire);
    let mut header = wire[..5].to_vec();
    assert_eq!(c.receiver.input(&mut header).unwrap(), None);
    let mut body = wire[5..].to_vec();
    assert_eq!(c.receiver.input(&mut body).unwrap(), Some(&b"down"[..]));
    // Debug output shows no key material.
    let text = format!("{c:?} {s:?} {server:?} {client:?}");
    assert!(!text.contains(pair.client.as_str()) && !text.contains(pair.server.as_str()));
}
