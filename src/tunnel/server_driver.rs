//! The REALITY + VLESS server on glommio: one task per accepted TCP
//! connection, from its first byte to the end of its tunnel or fallback.
//!
//! 1. Read until [`decide`] has a verdict (within `deadlines.hello`).
//! 2. Not ours → connect to `dest`, replay the bytes read, splice both ways:
//!    a prober gets dest's real certificate and content. A client that sends
//!    nothing, too little or closes early is spliced too, so dest's own
//!    timeouts and answers are what it observes.
//! 3. Ours → feed the unchanged bytes to a rustls session presenting the
//!    temporary certificate, finish the handshake and read the VLESS request
//!    (within `deadlines.handshake`). An unknown user, a flow we do not
//!    speak, Mux, or a malformed header gets nothing back: the connection
//!    just closes.
//! 4. TCP: connect to the target, splice (the `00 00` response header rides
//!    on the first downlink bytes, as Xray sends it). UDP: a connected UDP
//!    socket to the one target, frames `len | payload` both ways.
//!
//! With [`ServerTransport::Xhttp`], step 3 stops after the TLS handshake:
//! the connection carries HTTP/2 ([`crate::tunnel::xhttp_server`]), and
//! every XHTTP session on it goes through steps 3 (the VLESS part) and 4
//! via [`serve_vless`], the same code the raw transport runs.
//!
//! Domain targets are resolved with the system resolver on glommio's
//! blocking thread pool (`spawn_blocking`): glommio has no asynchronous
//! DNS, and `getaddrinfo` on the shard thread would stall every connection
//! of the shard. A lookup that outlives `deadlines.connect` is abandoned
//! (its thread finishes on its own).

mod response_header;
mod stats;
mod udp;

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use uuid::Uuid;

use crate::front::driver::within;
use crate::front::io::Prefixed;
use crate::front::tls_stream::TlsConn;
use crate::telemetry::redact::mask_socket_addr;
use crate::tunnel::reality::server::{
    decide, server_connection, Decision, KeyExchange, RealityServerKeys,
};
use crate::tunnel::reality::ServerPolicy;
use crate::tunnel::splice::{
    splice_with_idle, splice_with_limits, IdleLimits, SpliceCounters, SpliceEnd,
};
use crate::tunnel::vless::{authorize, Address, Command, Decoded, Request, Target};
use crate::tunnel::vlessenc::{
    server_handshake, Error as VlessEncError, ServerKeys, ServerTickets,
};
use crate::tunnel::xhttp_server::{serve_xhttp, XhttpServer, XhttpServerOptions};

pub use response_header::WithResponseHeader;
pub use stats::{FallbackCause, ServerStats, StatsSnapshot, VlessRefusal};
pub use udp::FramedUdp;

/// Time limits of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    /// From accept to a verdict on the first bytes.
    pub hello: Duration,
    /// From the verdict to a decoded VLESS request (TLS handshake included).
    pub handshake: Duration,
    /// Each outgoing connection (dest, target), name resolution included.
    pub connect: Duration,
    /// A tunnel or fallback in which no byte moves this long is closed.
    pub idle: Duration,
    /// A tunnel with one direction ended and no byte moving this long is
    /// closed (Xray's uplink-/downlink-only timeouts). Fallbacks use `idle`
    /// throughout: they must not end sooner than dest would end them.
    pub half_closed_idle: Duration,
}

impl Default for Deadlines {
    /// Xray's defaults where it has one (4 s handshake, 300 s idle, 5 s
    /// downlink-only).
    fn default() -> Self {
        Deadlines {
            hello: Duration::from_secs(4),
            handshake: Duration::from_secs(4),
            connect: Duration::from_secs(10),
            idle: Duration::from_secs(300),
            half_closed_idle: Duration::from_secs(5),
        }
    }
}

/// One shard's server: what a REALITY inbound with VLESS users configures,
/// plus this shard's counters.
#[derive(Debug)]
pub struct RealityServerConfig {
    pub policy: ServerPolicy,
    pub keys: RealityServerKeys,
    /// Where everything that is not ours goes (Xray's `dest`/`target`).
    pub dest: SocketAddr,
    /// VLESS users allowed through; they must use no flow.
    pub users: Vec<Uuid>,
    pub deadlines: Deadlines,
    pub stats: ServerStats,
    /// What runs inside TLS: VLESS directly, or VLESS over XHTTP.
    pub transport: ServerTransport,
    /// VLESS Encryption between the transport and VLESS (Xray's
    /// `decryption`); `None` is Xray's "none".
    pub decryption: Option<Decryption>,
}

/// The inbound's VLESS Encryption: its key and its 0-RTT ticket cache.
#[derive(Debug)]
pub struct Decryption {
    pub keys: ServerKeys,
    pub tickets: ServerTickets,
}

impl Decryption {
    /// From Xray's `decryption` string (`mlkem768x25519plus.native.…`).
    pub fn parse(config: &str) -> Result<Decryption, VlessEncError> {
        let keys = ServerKeys::parse(config)?;
        let tickets = ServerTickets::new(keys.tickets);
        Ok(Decryption { keys, tickets })
    }
}

/// The inbound's transport (Xray's `streamSettings.network`).
#[derive(Debug, Default)]
pub enum ServerTransport {
    /// VLESS right inside TLS (`raw`, formerly `tcp`).
    #[default]
    Raw,
    /// VLESS over XHTTP over HTTP/2 (`xhttp`). Boxed: it is much larger
    /// than `Raw`.
    Xhttp(Box<XhttpServer>),
}

impl ServerTransport {
    pub fn xhttp(options: XhttpServerOptions) -> Self {
        ServerTransport::Xhttp(Box::new(XhttpServer::new(options)))
    }
}

/// Serves one accepted connection to its end. Never panics on peer input;
/// every outcome is counted in `cfg.stats`.
pub async fn serve_reality_vless(stream: TcpStream, cfg: Rc<RealityServerConfig>) {
    let _ = stream.set_nodelay(true);
    let mut stream = stream;
    let mut seen = Vec::with_capacity(2048);
    let opening = within(
        cfg.deadlines.hello,
        read_opening(&cfg, &mut stream, &mut seen),
    )
    .await
    .unwrap_or(Opening::Fallback(FallbackCause::HelloTimeout));
    match opening {
        Opening::Accept(auth_key) => {
            cfg.stats.accepted();
            tunnel(stream, seen, &auth_key, cfg).await;
        }
        Opening::Fallback(cause) => {
            cfg.stats.fallback(cause);
            fall_back(stream, seen, &cfg).await;
        }
        Opening::Failed => {}
    }
}

enum Opening {
    Accept([u8; 32]),
    Fallback(FallbackCause),
    /// The socket failed (reset): there is nothing left to mirror.
    Failed,
}

/// Reads into `seen` until the first bytes decide the connection.
async fn read_opening(
    cfg: &RealityServerConfig,
    stream: &mut TcpStream,
    seen: &mut Vec<u8>,
) -> Opening {
    let mut chunk = [0u8; 4096];
    loop {
        match decide(&cfg.keys, &cfg.policy, seen, now_unix_ms()) {
            Decision::NeedMore(_) => {}
            Decision::Accept { auth_key, .. } => return Opening::Accept(auth_key),
            Decision::Fallback { reason } => {
                return Opening::Fallback(
                    reason.map_or(FallbackCause::NotTls, FallbackCause::Rejected),
                )
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) => return Opening::Fallback(FallbackCause::ClientClosed),
            Ok(n) => seen.extend_from_slice(&chunk[..n]),
            Err(_) => return Opening::Failed,
        }
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX))
}

/// Splices the client to `dest`, replaying what was read from it first.
async fn fall_back(client: TcpStream, seen: Vec<u8>, cfg: &RealityServerConfig) {
    let peer = client.peer_addr().ok();
    let Ok(mut dest) = connect_tcp(cfg.dest, cfg.deadlines.connect).await else {
        cfg.stats.dest_unreachable();
        tracing::debug!("REALITY fallback: dest unreachable");
        return;
    };
    let mut client = Prefixed::new(seen, client);
    let counters = SpliceCounters::default();
    let end = splice_with_idle(&mut client, &mut dest, cfg.deadlines.idle, &counters).await;
    log_end("fallback", peer, &end);
}

/// The authenticated path: TLS, then the VLESS request and the relay (raw),
/// or the XHTTP server whose sessions each carry one (xhttp).
async fn tunnel(
    client: TcpStream,
    seen: Vec<u8>,
    auth_key: &[u8; 32],
    cfg: Rc<RealityServerConfig>,
) {
    let peer = client.peer_addr().ok();
    let conn = match server_connection(&cfg.keys.signer, auth_key) {
        Ok(conn) => conn,
        Err(e) => {
            cfg.stats.tls_failed();
            tracing::warn!(error = %e, "REALITY: cannot build the TLS session");
            return;
        }
    };
    let mut tls = TlsConn::from_parts(Prefixed::new(seen, client), conn);
    if let ServerTransport::Xhttp(_) = cfg.transport {
        // Flushing drives the handshake to its end (TlsConn's contract).
        let done = within(cfg.deadlines.handshake, tls.flush()).await;
        count_handshake(&cfg, &tls);
        match done {
            Some(Ok(())) => serve_xhttp(tls, cfg, peer).await,
            Some(Err(e)) => {
                cfg.stats.tls_failed();
                tracing::debug!(error = %e, "REALITY: handshake failed");
            }
            None => cfg.stats.tls_failed(),
        }
        return;
    }
    if cfg.decryption.is_some() {
        // VLESS Encryption runs inside TLS: finish TLS, then the shared path.
        let done = within(cfg.deadlines.handshake, tls.flush()).await;
        count_handshake(&cfg, &tls);
        match done {
            Some(Ok(())) => serve_vless(tls, &cfg, peer).await,
            Some(Err(_)) | None => cfg.stats.tls_failed(),
        }
        return;
    }
    let opened = within(cfg.deadlines.handshake, open_request(&mut tls)).await;
    count_handshake(&cfg, &tls);
    if let Some((request, payload)) = settle(&cfg, opened) {
        relay(tls, request, payload, &cfg, peer).await;
    }
}

/// Counted once the handshake is through, whatever the request turns out
/// to be: how many sessions are post-quantum is a property of TLS.
fn count_handshake<S>(cfg: &RealityServerConfig, tls: &TlsConn<S>) {
    if let Some(kx) = KeyExchange::of(tls.get_ref().1) {
        cfg.stats.handshake(kx);
    }
}

type Opened = Option<io::Result<Result<(Request, Vec<u8>), VlessRefusal>>>;

/// The request out of [`open_request`] under a deadline, or `None` with the
/// outcome counted.
fn settle(cfg: &RealityServerConfig, opened: Opened) -> Option<(Request, Vec<u8>)> {
    match opened {
        Some(Ok(Ok(opened))) => Some(opened),
        Some(Ok(Err(refusal))) => {
            refuse(cfg, refusal);
            None
        }
        Some(Err(e)) => {
            cfg.stats.tls_failed();
            tracing::debug!(error = %e, "REALITY: handshake or request read failed");
            None
        }
        None => {
            cfg.stats.tls_failed();
            None
        }
    }
}

/// VLESS on an established byte stream (one XHTTP session, or anything
/// else that behaves like the inside of TLS): reads the request within
/// `deadlines.handshake`, authorizes, refuses flows and Mux, resolves,
/// connects and splices, counting every outcome in `cfg.stats`.
/// `peer` only feeds (masked) logs.
pub async fn serve_vless<S>(stream: S, cfg: &RealityServerConfig, peer: Option<SocketAddr>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(dec) = &cfg.decryption else {
        return serve_plain_vless(stream, cfg, peer).await;
    };
    let opened = within(
        cfg.deadlines.handshake,
        server_handshake(stream, &dec.keys, &dec.tickets),
    )
    .await;
    match opened {
        Some(Ok(inner)) => {
            cfg.stats.vlessenc(inner.resumed());
            serve_plain_vless(inner, cfg, peer).await
        }
        // Not a client holding our key, a replay, or a forgotten ticket
        // (its noise is already written): say nothing more and close, as
        // for any other refused request.
        Some(Err(e)) => {
            tracing::debug!(error = %e, "VLESS Encryption handshake refused");
            refuse(cfg, VlessRefusal::Encryption);
        }
        None => refuse(cfg, VlessRefusal::Encryption),
    }
}

/// [`serve_vless`] once any VLESS Encryption is peeled off.
async fn serve_plain_vless<S>(mut stream: S, cfg: &RealityServerConfig, peer: Option<SocketAddr>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let opened = within(cfg.deadlines.handshake, open_request(&mut stream)).await;
    if let Some((request, payload)) = settle(cfg, opened) {
        relay(stream, request, payload, cfg, peer).await;
    }
}

/// Everything after the request header: the checks, the target, the splice.
async fn relay<S>(
    stream: S,
    request: Request,
    payload: Vec<u8>,
    cfg: &RealityServerConfig,
    peer: Option<SocketAddr>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if authorize(&request, &cfg.users).is_err() {
        return refuse(cfg, VlessRefusal::UnknownUser);
    }
    if request.flow.is_some() {
        return refuse(cfg, VlessRefusal::Flow);
    }
    let command = request.command;
    if command == Command::Mux {
        return refuse(cfg, VlessRefusal::Mux);
    }
    // The decoder gives TCP and UDP requests a target; this is a guard only.
    let Some(target) = request.target else {
        return refuse(cfg, VlessRefusal::Malformed);
    };
    let Ok(addr) = resolve(&target, cfg.deadlines.connect).await else {
        cfg.stats.target_unreachable();
        return;
    };
    // The first payload (bytes after the header) goes out before anything
    // else read from the client; the response header before anything else
    // written to it.
    let mut client = Prefixed::new(payload, WithResponseHeader::new(stream));
    let counters = SpliceCounters::default();
    let limits = IdleLimits {
        open: cfg.deadlines.idle,
        half_closed: cfg.deadlines.half_closed_idle,
    };
    let end = match command {
        Command::Udp => match within(cfg.deadlines.connect, FramedUdp::connect(addr)).await {
            Some(Ok(mut udp)) => {
                cfg.stats.tunnel();
                splice_with_limits(&mut client, &mut udp, limits, &counters).await
            }
            _ => return cfg.stats.target_unreachable(),
        },
        _ => match connect_tcp(addr, cfg.deadlines.connect).await {
            Ok(mut upstream) => {
                cfg.stats.tunnel();
                splice_with_limits(&mut client, &mut upstream, limits, &counters).await
            }
            Err(_) => return cfg.stats.target_unreachable(),
        },
    };
    cfg.stats.tunnel_bytes(counters.a_to_b(), counters.b_to_a());
    log_end("tunnel", peer, &end);
}

fn refuse(cfg: &RealityServerConfig, why: VlessRefusal) {
    cfg.stats.refused(why);
    tracing::debug!(reason = why.label(), "VLESS request refused");
}

/// Finishes the TLS handshake and reads the VLESS request header. The outer
/// error is the transport's or TLS's; the inner one a refusal. Returns the
/// request and the payload bytes that came after it.
async fn open_request<S>(tls: &mut S) -> io::Result<Result<(Request, Vec<u8>), VlessRefusal>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Flushing drives the handshake to its end (TlsConn's contract).
    tls.flush().await?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 2048];
    loop {
        match Request::decode(&buf) {
            Ok(Decoded::Complete { value, consumed }) => {
                buf.drain(..consumed);
                return Ok(Ok((value, buf)));
            }
            Ok(Decoded::Incomplete { .. }) => {}
            Err(_) => return Ok(Err(VlessRefusal::Malformed)),
        }
        let n = tls.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn connect_tcp(addr: SocketAddr, limit: Duration) -> io::Result<TcpStream> {
    let stream = within(limit, TcpStream::connect(addr))
        .await
        .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The socket address of a VLESS target. IP literals need no lookup;
/// names go to the system resolver off the shard thread (module docs).
async fn resolve(target: &Target, limit: Duration) -> io::Result<SocketAddr> {
    let port = target.port;
    let name = match &target.addr {
        Address::Ipv4(ip) => return Ok(SocketAddr::from((*ip, port))),
        Address::Ipv6(ip) => return Ok(SocketAddr::from((Ipv6Addr::from(*ip), port))),
        Address::Domain(name) => name,
    };
    // The codec admits IPv6 literals, bracketed or not, as domains.
    let bare = name
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(name);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let name = name.clone();
    let lookup = glommio::executor().spawn_blocking(move || {
        (name.as_str(), port)
            .to_socket_addrs()
            .map(|mut found| found.next())
    });
    match within(limit, lookup).await {
        Some(Ok(Some(addr))) => Ok(addr),
        Some(Ok(None)) => Err(io::ErrorKind::NotFound.into()),
        Some(Err(e)) => Err(e),
        None => Err(io::ErrorKind::TimedOut.into()),
    }
}

fn log_end(what: &'static str, peer: Option<SocketAddr>, end: &SpliceEnd) {
    let client = peer.map(|p| mask_socket_addr(&p).to_string());
    match end {
        SpliceEnd::Done => tracing::trace!(what, client, "splice done"),
        SpliceEnd::Idle => tracing::debug!(what, client, "splice idle, closed"),
        SpliceEnd::Failed(e) => tracing::debug!(what, client, error = %e, "splice ended by error"),
    }
}
