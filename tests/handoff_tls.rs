//! A TLS connection accepted and handshaken on shard 0 is served by shard 1, mid-connection,
//! with the same TLS session: the way a group-call signalling socket reaches its room's shard.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpListener;
use oxpulse_edge::front::io::Prefixed;
use oxpulse_edge::front::tls_stream::{handoff_tls, resume, HandedTls};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore, ServerConfig};
use shards::{run_on, RuntimeOptions, Shard, Shutdown};

/// Upper bound for waits that only end early if something is broken; never asserted on.
const PATIENCE: Duration = Duration::from_secs(30);
/// Both sides derive this from the session keys; equal values prove one session.
const LABEL: &[u8] = b"EXPORTER-oxpulse-handoff-test";

/// The handed connection, the plaintext the sender already read from it, and the sender.
type Handed = (HandedTls, Vec<u8>, usize);

#[test]
fn tls_session_moves_to_the_owner_shard_mid_connection() {
    let (server_cfg, client_cfg) = configs();
    let (port_tx, port_rx) = mpsc::channel::<u16>();
    let client = std::thread::spawn(move || client(port_rx, client_cfg));

    let shutdown = Shutdown::new(Duration::from_secs(5));
    let finish = shutdown.clone();
    let shard_main = move |shard: Shard<Handed>| {
        let (cfg, port_tx, finish) = (server_cfg.clone(), port_tx.clone(), finish.clone());
        async move {
            if shard.index == 0 {
                bounded(accept_and_hand_over(&shard, cfg, port_tx)).await;
                bounded(shard.shutdown.draining()).await;
            } else {
                bounded(serve_handed(&shard)).await;
                finish.trigger();
            }
        }
    };
    run_on(two_cpus(), options(), &shutdown, shard_main).unwrap();

    let seen = client.join().unwrap();
    let port = seen.client_port;
    let ekm = &seen.ekm;
    let expect = |path: &str| {
        format!("shard 1 served {path} to port {port}; line read by shard 0; ekm {ekm}")
    };
    assert_eq!(
        seen.bodies,
        [expect("/one"), expect("/two"), expect("/three")]
    );
    assert_eq!(
        seen.handshake,
        Some(HandshakeKind::Full),
        "one full handshake, no second one"
    );
}

/// Shard 0: TLS handshake, then only the request line of the first request, then hand-off.
async fn accept_and_hand_over(
    shard: &Shard<Handed>,
    cfg: Arc<ServerConfig>,
    port_tx: mpsc::Sender<u16>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    port_tx.send(listener.local_addr().unwrap().port()).unwrap();
    let stream = listener.accept().await.unwrap();
    let mut tls = futures_rustls::TlsAcceptor::from(cfg)
        .accept(stream)
        .await
        .unwrap();
    // Byte by byte, so the rest of what the client sent stays inside the rustls session.
    let line = read_until(&mut tls, b"\r\n").await;
    assert_eq!(line, b"GET /one HTTP/1.1\r\n");
    let handed = handoff_tls(tls).unwrap();
    assert!(handed.prefix.is_empty(), "futures-rustls keeps no bytes");
    shard.bus.send_to(1, (handed, line, shard.index)).unwrap();
}

/// Shard 1: resumes the session and answers three requests, the last with close_notify.
async fn serve_handed(shard: &Shard<Handed>) {
    let received = futures_lite::future::or(shard.inbox.recv(), async {
        shard.shutdown.draining().await;
        None
    })
    .await;
    let Some((handed, line, from)) = received else {
        return; // shard 0 failed; the runtime reports why
    };
    let (tls, peer) = resume(handed);
    let ekm = exporter(
        tls.get_ref()
            .1
            .export_keying_material([0u8; 32], LABEL, None),
    );
    // The request line shard 0 consumed is replayed in front of the session.
    let mut conn = Prefixed::new(line, tls);
    for n in 1..=3 {
        let head = String::from_utf8(read_until(&mut conn, b"\r\n\r\n").await).unwrap();
        let path = head.split(' ').nth(1).unwrap().to_owned();
        let body = format!(
            "shard {} served {path} to port {}; line read by shard {from}; ekm {ekm}",
            shard.index,
            peer.port(),
        );
        let close = if n == 3 { "Connection: close\r\n" } else { "" };
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{close}\r\n{body}",
            body.len()
        );
        conn.write_all(answer.as_bytes()).await.unwrap();
        conn.flush().await.unwrap();
    }
    conn.close().await.unwrap();
}

/// What the client saw.
struct Seen {
    bodies: Vec<String>,
    ekm: String,
    handshake: Option<HandshakeKind>,
    client_port: u16,
}

/// A plain blocking rustls client on its own thread.
fn client(port_rx: mpsc::Receiver<u16>, cfg: Arc<ClientConfig>) -> Seen {
    let port = port_rx.recv_timeout(PATIENCE).unwrap();
    let sock = StdTcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(PATIENCE)).unwrap();
    sock.set_write_timeout(Some(PATIENCE)).unwrap();
    let client_port = sock.local_addr().unwrap().port();
    let conn = ClientConnection::new(cfg, "localhost".try_into().unwrap()).unwrap();
    let mut reader = BufReader::new(rustls::StreamOwned::new(conn, sock));

    // Pipelined: shard 0 reads only the first line, so the rest of request one and all of
    // request two cross to shard 1 inside the session (or still in the socket).
    let one = "GET /one HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let two = "GET /two HTTP/1.1\r\nHost: localhost\r\n\r\n";
    reader
        .get_mut()
        .write_all(format!("{one}{two}").as_bytes())
        .unwrap();
    let mut bodies = vec![response(&mut reader), response(&mut reader)];
    // Sent only after shard 1 answered: these bytes reach shard 1 through the socket.
    let three = "GET /three HTTP/1.1\r\nHost: localhost\r\n\r\n";
    reader.get_mut().write_all(three.as_bytes()).unwrap();
    bodies.push(response(&mut reader));
    // rustls reports a TCP EOF without close_notify as an error, so Ok means a clean close.
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());

    let tls = reader.into_inner();
    Seen {
        bodies,
        ekm: exporter(tls.conn.export_keying_material([0u8; 32], LABEL, None)),
        handshake: tls.conn.handshake_kind(),
        client_port,
    }
}

/// One HTTP/1.1 response with a Content-Length body; returns the body.
fn response(reader: &mut impl BufRead) -> String {
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.ends_with("\r\n"), "truncated head: {line:?}");
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length: ") {
            length = Some(v.trim().parse::<usize>().unwrap());
        }
    }
    let mut body = vec![0u8; length.expect("Content-Length")];
    reader.read_exact(&mut body).unwrap();
    String::from_utf8(body).unwrap()
}

/// Reads one byte at a time until `end` (inclusive).
async fn read_until(r: &mut (impl AsyncRead + Unpin), end: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut byte = [0u8];
    while !out.ends_with(end) {
        r.read_exact(&mut byte).await.unwrap();
        out.push(byte[0]);
    }
    out
}

fn exporter(ekm: Result<[u8; 32], rustls::Error>) -> String {
    ekm.unwrap().iter().map(|b| format!("{b:02x}")).collect()
}

/// Panics instead of hanging if a step never completes; the runtime then drains the shards.
async fn bounded<T>(fut: impl std::future::Future<Output = T>) -> T {
    futures_lite::future::or(fut, async {
        glommio::timer::sleep(PATIENCE).await;
        panic!("step did not finish within {PATIENCE:?}");
    })
    .await
}

fn configs() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert: CertificateDer<'static> = made.cert.der().clone();
    let key = PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

/// Two distinct allowed CPUs when there are, else the one allowed CPU twice.
fn two_cpus() -> Vec<usize> {
    let allowed = shards::allowed_cpus().expect("read allowed CPUs");
    allowed.iter().cycle().take(2).copied().collect()
}

/// Small executors, so this fits the memlock limit next to other tests.
fn options() -> RuntimeOptions {
    RuntimeOptions {
        cores: None,
        io_memory: 64 << 10,
        ring_depth: 64,
        bus_capacity: 4,
        name: "handoff-tls".to_owned(),
    }
}
