//! A tiny TLS HTTP/1.1 + HTTP/2 server for the loadgen tests, running on its
//! own thread and runtime so the blocking `loadgen::https::run` can be called
//! from the test thread.

pub mod pki;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};
use tokio_rustls::TlsAcceptor;

/// How the server behaves.
#[derive(Clone, Debug)]
pub struct Options {
    pub status: StatusCode,
    /// Offer h2 in ALPN (HTTP/1.1 is always offered).
    pub h2: bool,
    /// Accept TCP connections but never answer, not even the TLS handshake.
    pub stall: bool,
    /// Close connections after every n-th request: HTTP/1.1 answers it with
    /// `Connection: close`, HTTP/2 starts a graceful shutdown (GOAWAY).
    pub close_every: Option<u64>,
    /// Serve one self-signed CA:TRUE certificate for these names instead of
    /// a CA-signed leaf.
    pub self_signed_for: Option<Vec<&'static str>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            status: StatusCode::OK,
            h2: true,
            stall: false,
            close_every: None,
            self_signed_for: None,
        }
    }
}

/// What the server saw.
#[derive(Default)]
pub struct Seen {
    pub connections: AtomicU64,
    pub h1_requests: AtomicU64,
    pub h2_requests: AtomicU64,
    /// Requests carrying the `x-loadgen-test` header.
    pub tagged: AtomicU64,
    pub paths: Mutex<BTreeMap<String, u64>>,
}

impl Seen {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub ca_pem: String,
    pub seen: Arc<Seen>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// A 1 KiB body: bigger than a header-only response, so body draining is
/// exercised, small enough to keep tests quick.
const BODY: &[u8] = &[b'x'; 1024];

impl TestServer {
    pub fn start(options: Options) -> Self {
        let pki = match &options.self_signed_for {
            Some(names) => pki::self_signed_ca(names),
            None => pki::generate(),
        };
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.chain, pki.key)
        .unwrap();
        config.alpn_protocols = if options.h2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        let acceptor = TlsAcceptor::from(Arc::new(config));

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let (shutdown, stop) = oneshot::channel();
        let thread = {
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(serve(listener, acceptor, options, seen, stop));
            })
        };
        Self {
            addr,
            ca_pem: pki.ca_pem,
            seen,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    acceptor: TlsAcceptor,
    options: Options,
    seen: Arc<Seen>,
    mut stop: oneshot::Receiver<()>,
) {
    let listener = TcpListener::from_std(listener).unwrap();
    // Stalled connections are parked here so they stay open until shutdown.
    let mut parked: Vec<TcpStream> = Vec::new();
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                seen.connections.fetch_add(1, Ordering::Relaxed);
                if options.stall {
                    parked.push(tcp);
                    continue;
                }
                tokio::spawn(handle(tcp, acceptor.clone(), options.clone(), Arc::clone(&seen)));
            }
        }
    }
}

async fn handle(tcp: TcpStream, acceptor: TlsAcceptor, options: Options, seen: Arc<Seen>) {
    let Ok(tls) = acceptor.accept(tcp).await else {
        return;
    };
    let is_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    let on_this_conn = Arc::new(AtomicU64::new(0));
    let goaway = Arc::new(Notify::new());
    let service = {
        let goaway = Arc::clone(&goaway);
        service_fn(move |request: Request<Incoming>| {
            record(&seen, &request);
            let nth = on_this_conn.fetch_add(1, Ordering::Relaxed) + 1;
            let closing = options.close_every.is_some_and(|n| nth % n == 0);
            let mut response = Response::builder().status(options.status);
            if closing && is_h2 {
                goaway.notify_one();
            } else if closing {
                response = response.header(http::header::CONNECTION, "close");
            }
            let response = response.body(Full::new(Bytes::from_static(BODY))).unwrap();
            async move { Ok::<_, Infallible>(response) }
        })
    };
    // Errors here are the client going away, which loadgen does on purpose.
    if is_h2 {
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service);
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = goaway.notified() => conn.as_mut().graceful_shutdown(),
        }
        let _ = conn.await;
    } else {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .await;
    }
}

fn record(seen: &Seen, request: &Request<Incoming>) {
    let counter = if request.version() == Version::HTTP_2 {
        &seen.h2_requests
    } else {
        &seen.h1_requests
    };
    counter.fetch_add(1, Ordering::Relaxed);
    if request.headers().contains_key("x-loadgen-test") {
        seen.tagged.fetch_add(1, Ordering::Relaxed);
    }
    *seen
        .paths
        .lock()
        .unwrap()
        .entry(request.uri().path().to_string())
        .or_default() += 1;
}
