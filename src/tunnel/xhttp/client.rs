//! The XHTTP client driver on glommio: TCP + REALITY (shared with the raw client,
//! [`reality_handshake`]), then HTTP/2 with prior knowledge (REALITY negotiates no ALPN,
//! TUNNEL.md §3 "HTTP version"), then per tunnel the requests of the chosen mode.
//!
//! An [`XhttpConnection`] is one h2 connection; [`XhttpConnection::open`] starts one tunnel
//! on it, so a pool can run several tunnels over one connection. [`connect_xhttp`] is the
//! one-tunnel shortcut.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::uri::Authority;
use http::{HeaderValue, Request, Uri, Version};
use hyper::client::conn::http2::SendRequest;
use ring::rand::{SecureRandom as _, SystemRandom};
use rustls::{CipherSuite, NamedGroup};
use shards::hyper_io::{GlommioTimer, HyperIo, LocalExec};
use thiserror::Error;
use uuid::Uuid;

use super::client_stream::{Downlink, UploadWatch, XhttpStream};
use super::mode::XhttpMode;
use super::packet_up::{PacketUpLimits, PacketUplink};
use super::path::{padding_len, session_id, XhttpPath, XhttpRequest};
use super::uplink::{pipe, UplinkReader, XhttpBody};
use crate::telemetry::redact::mask_socket_addr;
use crate::tunnel::client_driver::{reality_handshake, ConnectError, ResponseHeader};
use crate::tunnel::reality::client::RealityClientConfig;
use crate::tunnel::vless::{Command, Request as VlessRequest, Target};

/// Xray's default `hKeepAlivePeriod`: an h2 PING after this long without frames.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(45);

/// Uplink bytes a tunnel buffers before writes wait: a few h2 frames' worth, enough to keep
/// the stream busy without holding much memory per tunnel.
const UPLINK_PIPE_BYTES: usize = 256 << 10;

/// How to speak XHTTP to the server (an Xray outbound's `xhttpSettings`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XhttpClientOptions {
    /// The server's `path`, e.g. `"/xh"`; normalised as Xray does ([`XhttpPath`]).
    pub path: String,
    /// Host / `:authority`; `None` means the REALITY server name (SNI).
    pub host: Option<String>,
    pub mode: XhttpMode,
    /// packet-up only.
    pub packet_up: PacketUpLimits,
    /// h2 PING after this long without frames; `None` disables keep-alive.
    pub keep_alive: Option<Duration>,
}

impl XhttpClientOptions {
    /// Options with the SNI as host, default packet-up limits and 45 s keep-alive.
    pub fn new(path: impl Into<String>, mode: XhttpMode) -> Self {
        XhttpClientOptions {
            path: path.into(),
            host: None,
            mode,
            packet_up: PacketUpLimits::default(),
            keep_alive: Some(DEFAULT_KEEP_ALIVE),
        }
    }
}

/// Why an XHTTP step failed; carried inside the returned `io::Error` (reach it with
/// `err.get_ref()` and `downcast_ref`). TCP, REALITY and VLESS-encoding failures are
/// [`ConnectError`]s, as for the raw client. Messages never carry a key, uuid, session id
/// or address.
#[derive(Error, Debug)]
pub enum XhttpError {
    #[error("xhttp: host {0:?} is not a valid HTTP authority")]
    Host(String),
    #[error("xhttp: path {0:?} does not make a valid request URI")]
    Path(String),
    #[error("xhttp: system randomness unavailable")]
    Random,
    #[error("xhttp: HTTP/2 handshake failed: {0}")]
    H2Handshake(#[source] hyper::Error),
    #[error("xhttp: the HTTP/2 connection is closed: {0}")]
    Closed(#[source] hyper::Error),
    #[error("xhttp: {request} failed: {source}")]
    Request {
        request: &'static str,
        #[source]
        source: hyper::Error,
    },
    /// The server refused a request, e.g. 404 for a path or Host it does not serve, 400
    /// for a mode it does not allow.
    #[error("xhttp: the server answered the {request} with HTTP status {status}")]
    Status { request: &'static str, status: u16 },
    /// A [`XhttpError::Request`] reported again (hyper's errors cannot be cloned).
    #[error("xhttp: {request} failed: {reason}")]
    Failed {
        request: &'static str,
        reason: String,
    },
}

impl XhttpError {
    /// The same error for a second report: a tunnel reports a broken uplink on every later
    /// call. Only [`XhttpError::Request`]'s source becomes text.
    pub(crate) fn duplicate(&self) -> XhttpError {
        match self {
            XhttpError::Host(h) => XhttpError::Host(h.clone()),
            XhttpError::Path(p) => XhttpError::Path(p.clone()),
            XhttpError::Random => XhttpError::Random,
            XhttpError::Status { request, status } => XhttpError::Status {
                request,
                status: *status,
            },
            XhttpError::Request { request, source } => XhttpError::Failed {
                request,
                reason: source.to_string(),
            },
            XhttpError::Failed { request, reason } => XhttpError::Failed {
                request,
                reason: reason.clone(),
            },
            XhttpError::H2Handshake(e) | XhttpError::Closed(e) => XhttpError::Failed {
                request: "HTTP/2 connection",
                reason: e.to_string(),
            },
        }
    }

    fn kind(&self) -> io::ErrorKind {
        match self {
            XhttpError::Host(_) | XhttpError::Path(_) => io::ErrorKind::InvalidInput,
            XhttpError::Random => io::ErrorKind::Other,
            XhttpError::H2Handshake(_) | XhttpError::Closed(_) => io::ErrorKind::ConnectionAborted,
            XhttpError::Request { .. } | XhttpError::Failed { .. } => {
                io::ErrorKind::ConnectionReset
            }
            XhttpError::Status { .. } => io::ErrorKind::ConnectionRefused,
        }
    }
}

impl From<XhttpError> for io::Error {
    fn from(err: XhttpError) -> io::Error {
        io::Error::new(err.kind(), err)
    }
}

/// Builds the requests of one connection: fixed authority and path, fresh padding each.
struct Requests {
    authority: Authority,
    path: XhttpPath,
    rng: SystemRandom,
}

impl Requests {
    /// Checks the options' host (default: `server_name`) and path by building a request.
    fn new(opts: &XhttpClientOptions, server_name: &str) -> Result<Requests, XhttpError> {
        let host = opts.host.as_deref().unwrap_or(server_name);
        let authority: Authority = host
            .parse()
            .map_err(|_| XhttpError::Host(host.to_owned()))?;
        let requests = Requests {
            authority,
            path: XhttpPath::new(&opts.path),
            rng: SystemRandom::new(),
        };
        requests.build(XhttpRequest::StreamOne, XhttpBody::Empty)?;
        Ok(requests)
    }

    fn build(
        &self,
        what: XhttpRequest<'_>,
        body: XhttpBody,
    ) -> Result<Request<XhttpBody>, XhttpError> {
        let padding = padding_len(self.random()?);
        let uri = Uri::builder()
            // REALITY is TLS to the server, so Xray's clients say https.
            .scheme("https")
            .authority(self.authority.clone())
            .path_and_query(what.path_and_query(&self.path, padding))
            .build()
            .map_err(|_| XhttpError::Path(self.path.path().to_owned()))?;
        let mut request = Request::builder()
            .method(what.method())
            .uri(uri)
            .version(Version::HTTP_2);
        if what.grpc_content_type() {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        }
        request
            .body(body)
            .map_err(|_| XhttpError::Path(self.path.path().to_owned()))
    }

    fn random<const N: usize>(&self) -> Result<[u8; N], XhttpError> {
        let mut out = [0u8; N];
        self.rng.fill(&mut out).map_err(|_| XhttpError::Random)?;
        Ok(out)
    }
}

/// The negotiated REALITY TLS parameters, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsSummary {
    pub cipher_suite: Option<CipherSuite>,
    /// e.g. X25519, or X25519MLKEM768 when the server's `dest` picked it.
    pub key_exchange: Option<NamedGroup>,
}

/// One h2 connection to an XHTTP server over REALITY, able to carry several tunnels.
pub struct XhttpConnection {
    sender: SendRequest<XhttpBody>,
    requests: Rc<Requests>,
    mode: XhttpMode,
    limits: PacketUpLimits,
    tls: TlsSummary,
    opened: Cell<u64>,
}

impl fmt::Debug for XhttpConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XhttpConnection")
            .field("mode", &self.mode)
            .field("opened", &self.opened.get())
            .field("closed", &self.sender.is_closed())
            .finish_non_exhaustive()
    }
}

impl XhttpConnection {
    /// TCP + REALITY to `server`, then an h2 connection (prior knowledge) whose task runs
    /// on the current shard until the connection ends. Must run on a glommio executor.
    pub async fn connect(
        server: SocketAddr,
        reality: &RealityClientConfig,
        opts: &XhttpClientOptions,
    ) -> io::Result<XhttpConnection> {
        // Options are checked before any packet leaves.
        let requests = Requests::new(opts, &reality.server_name)?;
        let tls = reality_handshake(server, reality).await?;
        let session = tls.get_ref().1;
        let summary = TlsSummary {
            cipher_suite: session.negotiated_cipher_suite().map(|s| s.suite()),
            key_exchange: session.negotiated_key_exchange_group().map(|g| g.name()),
        };
        let connection = Self::over(HyperIo(tls), requests, opts, summary).await?;
        tracing::debug!(
            server = %mask_socket_addr(&server),
            mode = %opts.mode,
            group = ?summary.key_exchange,
            "xhttp: h2 connection up"
        );
        Ok(connection)
    }

    /// HTTP/2 with prior knowledge over an established transport; the connection task is
    /// spawned on the current shard. Separate from [`Self::connect`] so the request logic
    /// can be tested without REALITY.
    async fn over<IO>(
        io: IO,
        requests: Requests,
        opts: &XhttpClientOptions,
        tls: TlsSummary,
    ) -> io::Result<XhttpConnection>
    where
        IO: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    {
        let mut builder = hyper::client::conn::http2::Builder::new(LocalExec);
        builder
            .timer(GlommioTimer)
            .keep_alive_interval(opts.keep_alive)
            // A pooled connection idles between tunnels; PINGs keep NATs and the server's
            // idle timer from dropping it.
            .keep_alive_while_idle(true);
        let (sender, connection) = builder
            .handshake::<_, XhttpBody>(io)
            .await
            .map_err(XhttpError::H2Handshake)?;
        glommio::spawn_local(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "xhttp: h2 connection ended");
            }
        })
        .detach();
        Ok(XhttpConnection {
            sender,
            requests: Rc::new(requests),
            mode: opts.mode,
            limits: opts.packet_up,
            tls,
            opened: Cell::new(0),
        })
    }

    /// Opens a VLESS TCP tunnel to `target` on this connection (flow "", the only one
    /// XHTTP allows). Returns once the requests are dispatched; a refusal (non-200 download)
    /// shows up on the first read, because servers may answer only after the uplink starts.
    pub async fn open(&self, vless_uuid: Uuid, target: Target) -> io::Result<XhttpStream> {
        let mut header = Vec::new();
        VlessRequest {
            uuid: vless_uuid,
            flow: None,
            command: Command::Tcp,
            target: Some(target),
        }
        .encode(&mut header)
        .map_err(ConnectError::from)?;
        self.open_session(Some(Bytes::from(header))).await
    }

    /// Opens an XHTTP session that carries bytes as they are: no VLESS
    /// request is written and no response header stripped. For a layer that
    /// runs between XHTTP and VLESS (VLESS Encryption), which then carries
    /// the VLESS request itself.
    pub async fn open_bare(&self) -> io::Result<XhttpStream> {
        self.open_session(None).await
    }

    /// `open` and `open_bare`: `vless` is the request header to send first,
    /// and whether a response header is to be stripped.
    async fn open_session(&self, vless: Option<Bytes>) -> io::Result<XhttpStream> {
        let strip_response = vless.is_some();
        let mut sender = self.sender.clone();
        sender.ready().await.map_err(XhttpError::Closed)?;
        let (uplink, reader) = pipe(UPLINK_PIPE_BYTES);
        if let Some(header) = vless {
            uplink.push_first(header);
        }
        let session = session_id(self.requests.random()?);
        let requests = &self.requests;

        let (downlink, upload) = match self.mode {
            XhttpMode::StreamOne => {
                let what = XhttpRequest::StreamOne;
                let post = requests.build(what, XhttpBody::Stream(reader))?;
                let response = Box::pin(sender.send_request(post));
                (Downlink::new(what.name(), response), UploadWatch::Done)
            }
            XhttpMode::StreamUp => {
                // The GET first: the server starts the tunnel when the download arrives.
                let what = XhttpRequest::Download { session: &session };
                let get = requests.build(what, XhttpBody::Empty)?;
                let download = Downlink::new(what.name(), Box::pin(sender.send_request(get)));
                let post = requests.build(
                    XhttpRequest::Upload { session: &session },
                    XhttpBody::Stream(reader),
                )?;
                let upload = UploadWatch::Waiting(Box::pin(sender.send_request(post)));
                (download, upload)
            }
            XhttpMode::PacketUp => {
                let what = XhttpRequest::Download { session: &session };
                let get = requests.build(what, XhttpBody::Empty)?;
                let download = Downlink::new(what.name(), Box::pin(sender.send_request(get)));
                let task = packet_up_task(
                    reader,
                    PacketUplink::new(self.limits),
                    sender.clone(),
                    Rc::clone(requests),
                    session,
                );
                glommio::spawn_local(task).detach();
                (download, UploadWatch::Done)
            }
        };
        self.opened.set(self.opened.get() + 1);
        Ok(XhttpStream {
            mode: self.mode,
            uplink,
            downlink,
            header: if strip_response {
                ResponseHeader::default()
            } else {
                ResponseHeader::none()
            },
            upload,
            upload_error: None,
            _sender: sender,
        })
    }

    /// Tunnels opened on this connection so far.
    pub fn opened(&self) -> u64 {
        self.opened.get()
    }

    /// Whether the h2 connection has ended (no new tunnel can open).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Whether a new tunnel could open now.
    pub fn is_ready(&self) -> bool {
        self.sender.is_ready()
    }

    pub fn mode(&self) -> XhttpMode {
        self.mode
    }

    pub fn tls(&self) -> TlsSummary {
        self.tls
    }
}

/// Opens one VLESS TCP tunnel to `target` over XHTTP through the REALITY server at `server`:
/// [`XhttpConnection::connect`], then one [`XhttpConnection::open`].
pub async fn connect_xhttp(
    server: SocketAddr,
    reality: &RealityClientConfig,
    opts: &XhttpClientOptions,
    vless_uuid: Uuid,
    target: Target,
) -> io::Result<XhttpStream> {
    let connection = XhttpConnection::connect(server, reality, opts).await?;
    // The stream keeps its own handle on the connection.
    connection.open(vless_uuid, target).await
}

/// packet-up's uplink: takes the tunnel's writes from the pipe, cuts them into POSTs with
/// [`PacketUplink`] and sends them one after another, each after the previous one was
/// answered (so the server never has to reorder). Ends when the tunnel closes its uplink
/// and everything is sent, or at the first failed POST, which breaks the tunnel's writes.
async fn packet_up_task(
    reader: UplinkReader,
    mut core: PacketUplink,
    mut sender: SendRequest<XhttpBody>,
    requests: Rc<Requests>,
    session: String,
) {
    loop {
        if core.buffered() == 0 {
            match reader.recv().await {
                Some(piece) => core.push(&piece),
                None => return,
            }
        }
        take_ready(&reader, &mut core);
        let mut writer_open = true;
        // While the interval runs, keep taking writes: they join this POST, and the writer
        // is not held up by the pipe's small bound.
        while let Some(at) = core.not_before() {
            let now = Instant::now();
            if at <= now {
                break;
            }
            if writer_open && core.wants_more() {
                let next = futures_lite::future::or(async { Some(reader.recv().await) }, async {
                    glommio::timer::sleep(at - now).await;
                    None
                });
                match next.await {
                    Some(Some(piece)) => {
                        core.push(&piece);
                        take_ready(&reader, &mut core);
                    }
                    Some(None) => writer_open = false,
                    None => {}
                }
            } else {
                glommio::timer::sleep(at - now).await;
            }
        }
        let Some(post) = core.poll_post(Instant::now()) else {
            continue;
        };
        let what = XhttpRequest::Packet {
            session: &session,
            seq: post.seq,
        };
        let result = match requests.build(what, XhttpBody::Full(Some(post.body))) {
            Ok(request) => {
                sender
                    .send_request(request)
                    .await
                    .map_err(|source| XhttpError::Request {
                        request: what.name(),
                        source,
                    })
            }
            Err(e) => Err(e),
        };
        let failure = match result {
            Ok(response) if response.status().is_success() => continue,
            Ok(response) => XhttpError::Status {
                request: what.name(),
                status: response.status().as_u16(),
            },
            Err(e) => e,
        };
        tracing::debug!(error = %failure, "xhttp: packet-up uplink failed");
        reader.fail(failure);
        return;
    }
}

/// Moves queued writes into the next POST while it has room.
fn take_ready(reader: &UplinkReader, core: &mut PacketUplink) {
    while core.wants_more() {
        match reader.try_recv() {
            Some(piece) => core.push(&piece),
            None => break,
        }
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod driver_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn requests(host: &str, path: &str) -> Requests {
        Requests {
            authority: host.parse().unwrap(),
            path: XhttpPath::new(path),
            rng: SystemRandom::new(),
        }
    }

    fn padding(uri: &Uri) -> usize {
        uri.query()
            .and_then(|q| q.strip_prefix("x_padding="))
            .map(str::len)
            .expect("x_padding query")
    }

    const SID: &str = "5d1f6c2e-8f1a-4c1b-a9a2-3d4e5f607182";

    #[test]
    fn stream_one_request_shape() {
        let r = requests("example.com", "/xh");
        let req = r.build(XhttpRequest::StreamOne, XhttpBody::Empty).unwrap();
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(req.version(), Version::HTTP_2);
        assert_eq!(req.uri().scheme_str(), Some("https"));
        assert_eq!(req.uri().authority().unwrap().as_str(), "example.com");
        assert_eq!(req.uri().path(), "/xh/");
        assert!((100..=1000).contains(&padding(req.uri())));
        assert_eq!(req.headers()[CONTENT_TYPE], "application/grpc");
    }

    #[test]
    fn stream_up_and_packet_up_request_shapes() {
        let r = requests("cdn.example.com:8443", "xh");
        let get = r
            .build(XhttpRequest::Download { session: SID }, XhttpBody::Empty)
            .unwrap();
        assert_eq!(get.method(), http::Method::GET);
        assert_eq!(get.uri().path(), format!("/xh/{SID}"));
        assert_eq!(
            get.uri().authority().unwrap().as_str(),
            "cdn.example.com:8443"
        );
        assert!(get.headers().get(CONTENT_TYPE).is_none());

        let post = r
            .build(XhttpRequest::Upload { session: SID }, XhttpBody::Empty)
            .unwrap();
        assert_eq!(post.method(), http::Method::POST);
        assert_eq!(post.uri().path(), format!("/xh/{SID}"));
        assert_eq!(post.headers()[CONTENT_TYPE], "application/grpc");

        let packet = r
            .build(
                XhttpRequest::Packet {
                    session: SID,
                    seq: 7,
                },
                XhttpBody::Full(Some(Bytes::from_static(b"abc"))),
            )
            .unwrap();
        assert_eq!(packet.uri().path(), format!("/xh/{SID}/7"));
        assert!(packet.headers().get(CONTENT_TYPE).is_none());
        assert!((100..=1000).contains(&padding(packet.uri())));
    }

    #[test]
    fn every_request_gets_fresh_padding() {
        let r = requests("example.com", "/xh");
        let lens: std::collections::HashSet<usize> = (0..32)
            .map(|_| {
                let req = r.build(XhttpRequest::StreamOne, XhttpBody::Empty).unwrap();
                padding(req.uri())
            })
            .collect();
        assert!(lens.len() > 1, "padding never varied: {lens:?}");
    }

    #[test]
    fn bad_hosts_and_paths_are_input_errors() {
        let mut opts = XhttpClientOptions::new("/xh", XhttpMode::StreamUp);
        assert!(Requests::new(&opts, "example.com").is_ok());
        opts.host = Some("exa mple.com".into());
        let Err(err) = Requests::new(&opts, "example.com") else {
            panic!("a host with a space was taken");
        };
        assert!(matches!(err, XhttpError::Host(_)), "{err}");
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::InvalidInput);
        let opts = XhttpClientOptions::new("/x h", XhttpMode::StreamUp);
        let Err(err) = Requests::new(&opts, "example.com") else {
            panic!("a path with a space made a URI");
        };
        assert!(matches!(err, XhttpError::Path(_)), "{err}");
        let err = io::Error::from(err);
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let status = io::Error::from(XhttpError::Status {
            request: "download GET",
            status: 404,
        });
        assert_eq!(
            status.to_string(),
            "xhttp: the server answered the download GET with HTTP status 404"
        );
    }

    #[test]
    fn options_default_to_xrays() {
        let o = XhttpClientOptions::new("/xh", XhttpMode::PacketUp);
        assert_eq!(o.host, None);
        assert_eq!(o.keep_alive, Some(Duration::from_secs(45)));
        assert_eq!(o.packet_up, PacketUpLimits::default());
    }
}
