//! The glommio loop of the front: accept, sniff the ClientHello, TLS, HTTP.
//!
//! Thin on purpose: routing is in `route.rs`, answers in `http.rs`, limits come
//! from config. One `FrontShard` per shard; nothing here is shared across cores.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use http_body_util::Full;
use hyper::service::service_fn;
use rustls::ServerConfig;
use shards::accept::accept_until_drain;
use shards::hyper_io::{GlommioTimer, HyperIo, LocalExec};
use shards::shutdown::{ConnTracker, ShutdownHandle};

use super::errors;
use super::http::Site;
use super::io::{Activity, Linger, Prefixed};
use super::route::{Route, Router, Sniff};
use crate::config::FrontLimits;
use crate::sfu::front_route::{is_sfu_path, FirstAnswer};
use crate::sfu::signalling::SfuShard;
use crate::sfu::upgrade::{self, FirstRequest};
use crate::telemetry::metrics::{Metric, ShardMetrics};
use crate::telemetry::redact::mask_socket_addr;

/// One shard's front: its routing table, TLS config, site and limits.
pub struct FrontShard {
    pub router: Router,
    /// Replaced when certificates are reloaded; open connections keep the old one.
    pub tls: RefCell<Arc<ServerConfig>>,
    pub site: Rc<Site>,
    pub limits: FrontLimits,
    pub metrics: Rc<ShardMetrics>,
    pub conns: ConnTracker,
    /// Group-call signalling (`/sfu/ws/`), when a room-token key is configured.
    pub sfu: Option<Rc<SfuShard>>,
}

/// Runs `fut` until it finishes or `dur` passes.
pub async fn within<T>(dur: Duration, fut: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        glommio::timer::sleep(dur).await;
        None
    })
    .await
}

/// Accepts until the drain starts, then waits for open connections up to the deadline.
pub async fn serve(front: Rc<FrontShard>, listener: TcpListener, shutdown: ShutdownHandle) {
    accept_until_drain(listener, &shutdown, |stream| {
        front.metrics.inc(Metric::ConnAccepted);
        if front.conns.active() as u64 >= front.limits.max_connections {
            front.metrics.inc(Metric::ConnRefusedLimit);
            return;
        }
        let f = front.clone();
        let sd = shutdown.clone();
        glommio::spawn_local(async move { connection(f, stream, sd).await }).detach();
    })
    .await;
    if let Some(deadline) = shutdown.deadline() {
        let clean = front.conns.wait_idle(deadline).await;
        tracing::info!(clean, left = front.conns.active(), "front drained");
    }
}

/// Keeps the active-connection gauge right however a connection ends.
struct Gauge(Rc<ShardMetrics>);
impl Gauge {
    fn new(m: Rc<ShardMetrics>) -> Self {
        m.inc(Metric::ConnActive);
        Gauge(m)
    }
}
impl Drop for Gauge {
    fn drop(&mut self) {
        self.0.dec(Metric::ConnActive);
    }
}

async fn connection(front: Rc<FrontShard>, mut stream: TcpStream, shutdown: ShutdownHandle) {
    let _guard = front.conns.enter();
    let _gauge = Gauge::new(front.metrics.clone());
    let peer = stream.peer_addr().ok();
    let _ = stream.set_nodelay(true);
    let hello_deadline = Duration::from_millis(front.limits.handshake_timeout_ms);
    let started = Instant::now();

    let mut buf = Vec::with_capacity(2048);
    let sniffed = within(hello_deadline, sniff(&front.router, &mut stream, &mut buf)).await;
    let (route, sni) = match sniffed {
        None => {
            front.metrics.inc(Metric::HelloTimeout);
            return;
        }
        Some(None) => return, // peer closed or reset before a full hello
        Some(Some(Sniff::Tls { route, sni })) => (route, sni),
        Some(Some(Sniff::PlainHttp)) => {
            front.metrics.inc(Metric::HelloPlainHttp);
            let date = httpdate::fmt_http_date(std::time::SystemTime::now());
            let answer = errors::plain_http_on_tls_port(front.site_server_name(), &date);
            let mut stream = Linger::new(stream);
            let _ = within(hello_deadline, async {
                stream.write_all(&answer).await?;
                stream.flush().await
            })
            .await;
            front.metrics.status(400);
            return;
        }
        Some(Some(Sniff::Reject(reason))) => {
            front.metrics.inc(reason);
            return;
        }
        Some(Some(Sniff::NeedMore(_))) => return,
    };
    front.metrics.inc(match route {
        Route::Partner => Metric::RoutePartner,
        Route::Default => Metric::RouteDefault,
    });
    let _ = sni; // routing already used it; it is never logged

    let acceptor = futures_rustls::TlsAcceptor::from(front.tls.borrow().clone());
    let remaining = hello_deadline.saturating_sub(started.elapsed());
    let tls = match within(
        remaining,
        acceptor.accept(Prefixed::new(buf, Linger::new(stream))),
    )
    .await
    {
        Some(Ok(tls)) => tls,
        Some(Err(e)) => {
            front.metrics.inc(Metric::TlsFailed);
            if let Some(p) = peer {
                tracing::debug!(client = %mask_socket_addr(&p), error = %e, "TLS handshake failed");
            }
            return;
        }
        None => {
            front.metrics.inc(Metric::TlsFailed);
            return;
        }
    };
    front.metrics.inc(Metric::TlsOk);
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    // The signalling upgrade is judged before hyper (see `sfu::front_route` for why);
    // everything else reaches hyper with the bytes read replayed.
    let (tls, first) = match (&front.sfu, route, h2) {
        (Some(sfu), Route::Partner, false) => {
            match upgrade::first_request(sfu, tls, &front.limits).await {
                FirstRequest::Taken => return,
                FirstRequest::Serve(tls, first) => (tls, first),
            }
        }
        _ => (Prefixed::new(Vec::new(), tls), None),
    };
    http(front, route, tls, h2, first, shutdown).await;
}

/// Reads until the first bytes decide the route. `None` if the peer went away.
async fn sniff(router: &Router, stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Sniff> {
    let mut chunk = [0u8; 2048];
    loop {
        match router.sniff(buf) {
            Sniff::NeedMore(_) => {}
            other => return Some(other),
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A hyper connection that can be asked to finish its current exchange and stop.
trait Graceful: Future<Output = Result<(), hyper::Error>> {
    fn graceful(self: Pin<&mut Self>);
}

impl<I, S> Graceful for hyper::server::conn::http1::Connection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, E> Graceful for hyper::server::conn::http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

async fn http<T>(
    front: Rc<FrontShard>,
    route: Route,
    tls: T,
    h2: bool,
    first: Option<FirstAnswer>,
    shutdown: ShutdownHandle,
) where
    T: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin + 'static,
{
    let (io, last) = Activity::new(tls);
    let io = HyperIo(io);
    let site = front.site.clone();
    let served = Rc::new(std::cell::Cell::new(0u64));
    let max_requests = front.limits.max_requests_per_conn;
    let first = std::cell::Cell::new(first);
    let sfu_on = front.sfu.is_some();
    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let site = site.clone();
        let n = served.get() + 1;
        served.set(n);
        // Only the route's own judgement of a first request upgrades; any other request
        // for it (a later one on this connection, or over h2) is a stranger's.
        let judged = first.take();
        let cover_only = sfu_on && is_sfu_path(req.uri().path());
        async move {
            let mut resp = match judged {
                Some(FirstAnswer::Status(status)) => upgrade::judged_response(&site, status),
                Some(FirstAnswer::Cover) => site.handle(Route::Default, req).await,
                None if cover_only => site.handle(Route::Default, req).await,
                None => site.handle(route, req).await,
            };
            if !h2 && n >= max_requests {
                // nginx's keepalive_requests: the last allowed request closes the connection.
                resp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            Ok::<_, Infallible>(resp.map(Full::new))
        }
    });
    let limits = &front.limits;
    if h2 {
        front.metrics.inc(Metric::Http2);
        let mut b = hyper::server::conn::http2::Builder::new(LocalExec);
        b.timer(GlommioTimer)
            .max_header_list_size(limits.max_header_bytes.min(u32::MAX as u64) as u32)
            .max_concurrent_streams(128);
        let conn = b.serve_connection(io, svc);
        drive(conn, &front, last, shutdown).await;
    } else {
        front.metrics.inc(Metric::Http1);
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(GlommioTimer)
            .header_read_timeout(Duration::from_millis(limits.header_timeout_ms))
            .max_buf_size(limits.max_header_bytes.max(8192) as usize);
        let conn = b.serve_connection(io, svc);
        drive(conn, &front, last, shutdown).await;
    }
}

/// Runs a connection until it ends, goes idle, or the drain deadline passes.
async fn drive<C: Graceful>(
    conn: C,
    front: &FrontShard,
    last: Rc<std::cell::Cell<Instant>>,
    shutdown: ShutdownHandle,
) {
    enum Ev {
        Done,
        Idle,
        Drain,
    }
    let mut conn = std::pin::pin!(conn);
    let idle = Duration::from_millis(front.limits.idle_timeout_ms);
    let watchdog = async {
        loop {
            let due = last.get() + idle;
            let now = Instant::now();
            if now >= due {
                return Ev::Idle;
            }
            glommio::timer::sleep(due - now).await;
        }
    };
    let draining = async {
        shutdown.draining().await;
        Ev::Drain
    };
    let ev = futures_lite::future::or(
        async {
            let _ = conn.as_mut().await;
            Ev::Done
        },
        futures_lite::future::or(watchdog, draining),
    )
    .await;
    match ev {
        Ev::Done => {}
        Ev::Idle => front.metrics.inc(Metric::IdleClosed),
        Ev::Drain => {
            conn.as_mut().graceful();
            let left = shutdown
                .deadline()
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or_default();
            let _ = within(left, conn.as_mut()).await;
        }
    }
}

impl FrontShard {
    fn site_server_name(&self) -> &str {
        self.site
            .server_header
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}
