//! The XHTTP server on one REALITY connection: hyper's HTTP/2 server (prior
//! knowledge: REALITY negotiates no ALPN, Xray clients speak h2 at once)
//! routing each request to its session.
//!
//! - `GET {path}{sid}`: joins the session, starts its VLESS task, answers
//!   200 with the downlink as the body (SSE-looking headers, as Xray);
//! - `POST {path}{sid}`: the stream-up body is pumped into the session's
//!   uplink; the 200 answer stays open until the body ends, as Xray's does
//!   (a Go client stops sending a body once the response is over);
//! - `POST {path}{sid}/{seq}`: the body (at most `max_each_post_bytes`) is
//!   read, queued for reordering — waiting while the session holds
//!   `max_buffered_posts` unread posts, which is the uplink's backpressure —
//!   and answered 200;
//! - `POST {path}`: stream-one, its own session: body uplink, answer
//!   downlink.
//!
//! Anything else gets a bare 404/400/405, like a web server that simply has
//! no such page.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncWrite};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use ring::rand::{SecureRandom, SystemRandom};
use shards::hyper_io::{GlommioTimer, HyperIo, LocalExec};

use super::pipe::{pipe, PipeBody, PipeWriter};
use super::request::{parse_request, XhttpRequest};
use super::session::{PushError, Session, SessionStream, UpShape};
use super::XhttpServer;
use crate::telemetry::redact::mask_socket_addr;
use crate::tunnel::server_driver::{serve_vless, RealityServerConfig, ServerTransport};

/// Largest request header block (Xray's server allows 8 KiB; padding alone
/// may be 1000 bytes of it).
const MAX_HEADER_LIST: u32 = 16 * 1024;

/// Serves XHTTP on an established (REALITY) TLS stream until the client
/// closes it. `cfg.transport` must be [`ServerTransport::Xhttp`]; with
/// `Raw` this returns at once.
pub async fn serve_xhttp<T>(tls: T, cfg: Rc<RealityServerConfig>, peer: Option<SocketAddr>)
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let ServerTransport::Xhttp(server) = &cfg.transport else {
        return;
    };
    let mut b = hyper::server::conn::http2::Builder::new(LocalExec);
    b.timer(GlommioTimer)
        .max_concurrent_streams(server.options.max_concurrent_streams)
        .max_header_list_size(MAX_HEADER_LIST)
        // Room for a few packet-up posts in flight at once.
        .initial_connection_window_size(4u32 << 20)
        // Finds clients that vanished without a FIN; Xray pings too.
        .keep_alive_interval(Some(cfg.deadlines.idle))
        .keep_alive_timeout(cfg.deadlines.handshake.max(Duration::from_secs(20)));
    let svc_cfg = Rc::clone(&cfg);
    let svc = service_fn(move |req| {
        let cfg = Rc::clone(&svc_cfg);
        async move { Ok::<_, Infallible>(handle(cfg, peer, req).await) }
    });
    if let Err(e) = b.serve_connection(HyperIo(tls), svc).await {
        let client = peer.map(|p| mask_socket_addr(&p).to_string());
        tracing::debug!(client, error = %e, "XHTTP connection ended by error");
    }
}

fn xhttp(cfg: &RealityServerConfig) -> &XhttpServer {
    match &cfg.transport {
        ServerTransport::Xhttp(server) => server,
        // serve_xhttp checked; connections never change transport.
        ServerTransport::Raw => unreachable!("XHTTP request on a raw inbound"),
    }
}

async fn handle(
    cfg: Rc<RealityServerConfig>,
    peer: Option<SocketAddr>,
    req: Request<Incoming>,
) -> Response<PipeBody> {
    let server = xhttp(&cfg);
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or(header(header::HOST));
    let routed = parse_request(
        &server.rules,
        req.method().as_str(),
        req.uri().path(),
        req.uri().query(),
        host,
        header(header::REFERER),
    );
    let routed = match routed {
        Ok(r) => r,
        Err(reject) => {
            cfg.stats.xhttp_rejected();
            tracing::debug!(reason = reject.label(), "XHTTP request refused");
            return bare(StatusCode::from_u16(reject.status()).unwrap_or(StatusCode::NOT_FOUND));
        }
    };
    match routed {
        XhttpRequest::StreamOne => stream_one(cfg, peer, req.into_body()),
        XhttpRequest::Download { sid } => download(cfg, peer, &sid),
        XhttpRequest::StreamUpload { sid } => stream_upload(&cfg, &sid, req.into_body()),
        XhttpRequest::PacketUpload { sid, seq } => {
            packet_upload(&cfg, &sid, seq, req.into_body()).await
        }
    }
}

/// The session `sid` of this shard (made if new); 503 when the table is full.
fn session_of(cfg: &RealityServerConfig, sid: &str) -> Result<Rc<Session>, Response<PipeBody>> {
    let server = xhttp(cfg);
    server
        .table()
        .upsert(sid, server.options.join_timeout)
        .ok_or_else(|| refuse(cfg, StatusCode::SERVICE_UNAVAILABLE, "too many sessions"))
}

fn download(
    cfg: Rc<RealityServerConfig>,
    peer: Option<SocketAddr>,
    sid: &str,
) -> Response<PipeBody> {
    let session = match session_of(&cfg, sid) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let Some(body) = session.take_download() else {
        return refuse(&cfg, StatusCode::CONFLICT, "second GET for a session");
    };
    let table = xhttp(&cfg).table();
    let stream = SessionStream::new(session, Some((table, sid.to_owned())));
    start_tunnel(cfg, peer, stream);
    downlink_response(body)
}

fn stream_one(
    cfg: Rc<RealityServerConfig>,
    peer: Option<SocketAddr>,
    body: Incoming,
) -> Response<PipeBody> {
    let opts = &xhttp(&cfg).options;
    let session = Session::new(opts.max_buffered_posts, opts.max_each_post_bytes);
    session.claim_uplink(UpShape::Stream);
    let down = session
        .take_download()
        .expect("a new session has its download");
    pump(Rc::clone(&session), body, None);
    start_tunnel(cfg, peer, SessionStream::new(session, None));
    downlink_response(down)
}

fn stream_upload(cfg: &RealityServerConfig, sid: &str, body: Incoming) -> Response<PipeBody> {
    let session = match session_of(cfg, sid) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    if !session.claim_uplink(UpShape::Stream) {
        return refuse(cfg, StatusCode::CONFLICT, "second uplink for a session");
    }
    // The answer's body ends when the pump does (Xray holds the POST open
    // the same way).
    let (done, answer) = pipe(0);
    pump(session, body, Some(done));
    padded(Response::new(answer))
}

async fn packet_upload(
    cfg: &RealityServerConfig,
    sid: &str,
    seq: u64,
    body: Incoming,
) -> Response<PipeBody> {
    let session = match session_of(cfg, sid) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    if !session.claim_uplink(UpShape::Packets) {
        return refuse(cfg, StatusCode::CONFLICT, "packets for a stream-up session");
    }
    let max = xhttp(cfg).options.max_each_post_bytes;
    let data = match read_limited(body, max).await {
        Ok(data) => data,
        Err(status) => return refuse(cfg, status, "unreadable or oversized post"),
    };
    match session.push_packet(seq, data).await {
        Ok(()) => padded(Response::new(PipeBody::empty())),
        Err(PushError::Closed) => refuse(
            cfg,
            StatusCode::INTERNAL_SERVER_ERROR,
            "post for a finished session",
        ),
        Err(PushError::Refused(e)) => {
            tracing::debug!(error = %e, "XHTTP post refused");
            refuse(
                cfg,
                StatusCode::BAD_REQUEST,
                "post refused by the reorder buffer",
            )
        }
    }
}

/// A whole POST body, at most `max` bytes: 413 past it (Xray's answer),
/// 400 when the body breaks off.
async fn read_limited(mut body: Incoming, max: usize) -> Result<Bytes, StatusCode> {
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| StatusCode::BAD_REQUEST)?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > max {
                return Err(StatusCode::PAYLOAD_TOO_LARGE);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

/// Moves a streaming request body into the session's uplink, then ends it.
/// `done` (the POST's answer) ends with it.
fn pump(session: Rc<Session>, mut body: Incoming, done: Option<PipeWriter>) {
    glommio::spawn_local(async move {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                tracing::debug!("XHTTP upload body broke off");
                break;
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if session.push_stream_chunk(data).await.is_err() {
                // Over, or refused: the rest of the body has nowhere to go.
                break;
            }
        }
        session.end_uplink();
        drop(done);
    })
    .detach();
}

/// Runs VLESS on a joined session; the session ends with the task.
fn start_tunnel(cfg: Rc<RealityServerConfig>, peer: Option<SocketAddr>, stream: SessionStream) {
    cfg.stats.xhttp_session();
    glommio::spawn_local(async move {
        serve_vless(stream, &cfg, peer).await;
    })
    .detach();
}

/// 200 with the downlink: headers that keep proxies from buffering or
/// caching it (TUNNEL.md §3; Xray sends the same).
fn downlink_response(body: PipeBody) -> Response<PipeBody> {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    padded(resp)
}

/// Adds `X-Padding` of 100–1000 bytes, as Xray answers tunnel requests, so
/// response header sizes vary too.
fn padded(mut resp: Response<PipeBody>) -> Response<PipeBody> {
    let mut r = [0u8; 2];
    let roll = match SystemRandom::new().fill(&mut r) {
        Ok(()) => usize::from(u16::from_le_bytes(r)) % 901,
        Err(_) => 0,
    };
    let value = "0".repeat(100 + roll);
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert("x-padding", v);
    }
    resp
}

fn refuse(cfg: &RealityServerConfig, status: StatusCode, why: &'static str) -> Response<PipeBody> {
    cfg.stats.xhttp_rejected();
    tracing::debug!(status = status.as_u16(), why, "XHTTP request refused");
    bare(status)
}

fn bare(status: StatusCode) -> Response<PipeBody> {
    let mut resp = Response::new(PipeBody::empty());
    *resp.status_mut() = status;
    resp
}
