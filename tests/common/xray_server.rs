//! Loopback pieces for testing the edge's REALITY + VLESS server against a
//! real Xray 24.11.21 client (TUNNEL.md §6): an `openssl s_server` dest, a
//! TCP and a UDP target, the edge server on its own glommio executor, an
//! Xray client with a SOCKS inbound, and a minimal SOCKS5 client.
//!
//! Outside programs are required, never optional: a missing Xray or OpenSSL
//! panics with what to install. Child processes are killed (by their own
//! pid) when their handle drops.
#![allow(dead_code)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use oxpulse_edge::tunnel::reality::server::RealityServerKeys;
use oxpulse_edge::tunnel::reality::{parse_short_id, Ed25519SigningKey, ServerPolicy};
use oxpulse_edge::tunnel::server_driver::{
    serve_reality_vless, Deadlines, RealityServerConfig, ServerStats, StatsSnapshot,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use x25519_dalek::{PublicKey, StaticSecret};

/// Upper bound for waits that only end early when something is broken;
/// never asserted on.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub const SERVER_NAME: &str = "example.com";

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    SystemRandom::new().fill(&mut out).expect("system CSPRNG");
    out
}

/// Deterministic bytes (xorshift64*), the same for the same seed.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    digest.as_ref().try_into().expect("32-byte digest")
}

/// A port free right now (the OS may hand it out again; good enough on a
/// test host, and the program given it fails loudly if it is taken).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Waits until `addr` accepts TCP, or panics with `what` and `log()`.
pub fn wait_accepting(addr: SocketAddr, what: &str, mut alive: impl FnMut() -> Result<(), String>) {
    let start = Instant::now();
    loop {
        if TcpStream::connect(addr).is_ok() {
            return;
        }
        if let Err(why) = alive() {
            panic!("{what} died before listening on {addr}: {why}");
        }
        assert!(
            start.elapsed() < PATIENCE,
            "{what} never listened on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The REALITY server's X25519 key pair, in Xray's base64url-no-pad form.
pub struct RealityKeys {
    pub secret: StaticSecret,
    pub private_b64: String,
    pub public_b64: String,
}

impl RealityKeys {
    pub fn generate() -> Self {
        let secret = StaticSecret::from(random_bytes::<32>());
        let public = PublicKey::from(&secret);
        let keys = RealityKeys {
            private_b64: URL_SAFE_NO_PAD.encode(secret.to_bytes()),
            public_b64: URL_SAFE_NO_PAD.encode(public.as_bytes()),
            secret,
        };
        // What `xray x25519` would have printed; the client needs the public one.
        eprintln!(
            "REALITY keys: privateKey {} publicKey {}",
            keys.private_b64, keys.public_b64
        );
        keys
    }
}

fn require(program: &str, hint: &str) -> PathBuf {
    let path = PathBuf::from(program);
    let found = if path.is_absolute() {
        path.is_file()
    } else {
        Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(found, "{program} is required for this test: {hint}");
    path
}

/// `target/peers/xray`, installed by `bash scripts/install-peers.sh`.
pub fn xray_bin() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peers/xray");
    require(
        path.to_str().expect("UTF-8 path"),
        "run `bash scripts/install-peers.sh` (Xray 24.11.21)",
    )
}

/// A child process killed when dropped; its output goes to a log file.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
    pub name: &'static str,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> Proc {
        let out = File::create(&log).expect("create a log file");
        let err = out.try_clone().expect("clone the log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc { child, log, name }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `Ok` while running; the exit status and log once it has ended.
    pub fn alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("{status}; log:\n{}", self.log_text())),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- {} log ----\n{}", self.name, self.log_text());
        }
    }
}

/// `openssl s_server -tls1_3 -www` with a fresh self-signed EC certificate
/// for example.com: the site a REALITY server impersonates.
pub struct Dest {
    pub addr: SocketAddr,
    pub cert_der: Vec<u8>,
    pub proc: Proc,
    pub dir: tempfile::TempDir,
}

impl Dest {
    pub fn start() -> Dest {
        require(
            "openssl",
            "apt-get install openssl (or scripts/install-peers.sh)",
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_owned()]).unwrap();
        let key = rcgen::KeyPair::generate().expect("P-256 key");
        let cert = params.self_signed(&key).expect("self-signed certificate");
        let (cert_path, key_path) = (dir.path().join("dest.crt"), dir.path().join("dest.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let mut proc = Proc::spawn(
            "openssl s_server",
            Command::new("openssl").args([
                "s_server",
                "-tls1_3",
                "-accept",
                &addr.to_string(),
                "-cert",
                cert_path.to_str().unwrap(),
                "-key",
                key_path.to_str().unwrap(),
                "-www",
                "-quiet",
            ]),
            dir.path().join("dest.log"),
        );
        wait_accepting(addr, "openssl s_server", || proc.alive());
        Dest {
            addr,
            cert_der: cert.der().to_vec(),
            proc,
            dir,
        }
    }
}

/// A TCP target: reads [`UPLOAD_LEN`] bytes, answers with their SHA-256
/// followed by [`download()`], then closes. Counts its connections.
pub struct TcpTarget {
    pub addr: SocketAddrV4,
    pub connections: Arc<AtomicUsize>,
}

pub const UPLOAD_LEN: usize = 1 << 20;
pub const DOWNLOAD_LEN: usize = 8 << 20;

pub fn upload() -> Vec<u8> {
    pattern(UPLOAD_LEN, 0x0123_4567)
}

pub fn download() -> Vec<u8> {
    pattern(DOWNLOAD_LEN, 0x89ab_cdef)
}

impl TcpTarget {
    pub fn start() -> TcpTarget {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind target");
        let addr = match listener.local_addr().unwrap() {
            SocketAddr::V4(a) => a,
            other => panic!("not IPv4: {other}"),
        };
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        let body = Arc::new(download());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                counted.fetch_add(1, Ordering::SeqCst);
                let body = Arc::clone(&body);
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(PATIENCE));
                    let mut up = vec![0u8; UPLOAD_LEN];
                    if conn.read_exact(&mut up).is_err() {
                        return;
                    }
                    let _ = conn.write_all(&sha256(&up));
                    let _ = conn.write_all(&body);
                    let _ = conn.shutdown(Shutdown::Write);
                    // Drain until the peer closes, so closing sends no reset.
                    let _ = io::copy(&mut conn, &mut io::sink());
                });
            }
        });
        TcpTarget { addr, connections }
    }
}

/// A UDP echo target.
pub fn udp_echo() -> SocketAddrV4 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind UDP echo");
    let addr = match socket.local_addr().unwrap() {
        SocketAddr::V4(a) => a,
        other => panic!("not IPv4: {other}"),
    };
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    });
    addr
}

enum Ctl {
    Stats(mpsc::Sender<StatsSnapshot>),
    Stop,
}

/// The edge's REALITY + VLESS server on a glommio executor of its own.
pub struct EdgeServer {
    pub addr: SocketAddr,
    ctl: flume::Sender<Ctl>,
    thread: Option<glommio::ExecutorJoinHandle<()>>,
}

impl EdgeServer {
    pub fn start(cfg: RealityServerConfig) -> EdgeServer {
        let (addr_tx, addr_rx) = mpsc::channel();
        let (ctl, ctl_rx) = flume::unbounded::<Ctl>();
        let thread = glommio::LocalExecutorBuilder::default()
            .name("reality-edge")
            .io_memory(256 << 10)
            .spawn(move || async move {
                let cfg = std::rc::Rc::new(cfg);
                let listener = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                // Accepting runs in its own task: racing `accept` against the
                // control channel would drop accepts the kernel already made.
                let accepting = cfg.clone();
                glommio::spawn_local(async move {
                    loop {
                        match listener.accept().await {
                            Ok(stream) => {
                                let cfg = accepting.clone();
                                glommio::spawn_local(serve_reality_vless(stream, cfg)).detach();
                            }
                            Err(e) => eprintln!("edge accept failed: {e}"),
                        }
                    }
                })
                .detach();
                while let Ok(ctl) = ctl_rx.recv_async().await {
                    match ctl {
                        Ctl::Stats(reply) => {
                            let _ = reply.send(cfg.stats.snapshot());
                        }
                        Ctl::Stop => break,
                    }
                }
            })
            .expect("start the edge executor");
        let addr = addr_rx
            .recv_timeout(PATIENCE)
            .expect("the edge executor reports its address");
        EdgeServer {
            addr,
            ctl,
            thread: Some(thread),
        }
    }

    /// The server's counters now.
    pub fn stats(&self) -> StatsSnapshot {
        let (tx, rx) = mpsc::channel();
        self.ctl
            .send(Ctl::Stats(tx))
            .expect("edge executor running");
        rx.recv_timeout(PATIENCE)
            .expect("edge answers with its stats")
    }
}

impl Drop for EdgeServer {
    fn drop(&mut self) {
        let _ = self.ctl.send(Ctl::Stop);
        if let Some(thread) = self.thread.take() {
            let joined = thread.join();
            if !std::thread::panicking() {
                joined.expect("edge executor ends cleanly");
            }
        }
    }
}

/// What the Xray client's VLESS + REALITY outbound is told.
pub struct ClientParams<'a> {
    pub server: SocketAddr,
    pub uuid: &'a str,
    pub public_key: &'a str,
    pub short_id: &'a str,
    /// VLESS flow, `""` for none (the only one the edge serves).
    pub flow: &'a str,
}

/// What runs inside the client's REALITY: VLESS directly (`raw`), or
/// VLESS over XHTTP with this path and mode (`stream-up`, `packet-up`).
#[derive(Clone, Copy, Debug)]
pub enum ClientTransport<'a> {
    Raw,
    Xhttp { path: &'a str, mode: &'a str },
}

/// Xray 24.11.21 as a client: SOCKS5 in, VLESS (no flow) over REALITY out.
pub struct XrayClient {
    pub socks: SocketAddr,
    pub proc: Proc,
    pub dir: tempfile::TempDir,
}

impl XrayClient {
    /// `env`: extra environment (e.g. `XRAY_CONE_DISABLED=true`).
    pub fn start(params: &ClientParams<'_>, env: &[(&str, &str)]) -> XrayClient {
        XrayClient::start_with(params, ClientTransport::Raw, env)
    }

    /// As [`XrayClient::start`], over `transport`.
    pub fn start_with(
        params: &ClientParams<'_>,
        transport: ClientTransport<'_>,
        env: &[(&str, &str)],
    ) -> XrayClient {
        let bin = xray_bin();
        let dir = tempfile::tempdir().expect("temp dir");
        let socks = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let mut stream_settings = serde_json::json!({
            "network": "raw", "security": "reality",
            "realitySettings": {
                "show": true, "fingerprint": "chrome", "serverName": SERVER_NAME,
                "publicKey": params.public_key, "shortId": params.short_id,
                "spiderX": "/"
            }
        });
        if let ClientTransport::Xhttp { path, mode } = transport {
            stream_settings["network"] = "xhttp".into();
            stream_settings["xhttpSettings"] = serde_json::json!({"path": path, "mode": mode});
        }
        let config = serde_json::json!({
            "log": {"loglevel": "debug"},
            "inbounds": [{
                "tag": "socks", "listen": "127.0.0.1", "port": socks.port(),
                "protocol": "socks",
                "settings": {"auth": "noauth", "udp": true, "ip": "127.0.0.1"}
            }],
            "outbounds": [{
                "tag": "edge", "protocol": "vless",
                "settings": {"vnext": [{
                    "address": params.server.ip().to_string(),
                    "port": params.server.port(),
                    "users": [{"id": params.uuid, "encryption": "none", "flow": params.flow}]
                }]},
                "streamSettings": stream_settings
            }]
        });
        let path = dir.path().join("client.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let mut cmd = Command::new(&bin);
        cmd.args(["run", "-c", path.to_str().unwrap()]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut proc = Proc::spawn("xray client", &mut cmd, dir.path().join("xray.log"));
        wait_accepting(socks, "xray", || proc.alive());
        XrayClient { socks, proc, dir }
    }
}

fn read_socks_reply(s: &mut TcpStream) -> SocketAddr {
    let mut head = [0u8; 4];
    s.read_exact(&mut head).expect("SOCKS5 reply");
    assert_eq!(head[..2], [5, 0], "SOCKS5 request refused: {head:?}");
    match head[3] {
        1 => {
            let mut rest = [0u8; 6];
            s.read_exact(&mut rest).unwrap();
            let ip = Ipv4Addr::new(rest[0], rest[1], rest[2], rest[3]);
            SocketAddr::from((ip, u16::from_be_bytes([rest[4], rest[5]])))
        }
        4 => {
            let mut rest = [0u8; 18];
            s.read_exact(&mut rest).unwrap();
            let ip: [u8; 16] = rest[..16].try_into().unwrap();
            SocketAddr::from((ip, u16::from_be_bytes([rest[16], rest[17]])))
        }
        other => panic!("unexpected SOCKS5 address type {other}"),
    }
}

fn socks_hello(proxy: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(proxy).expect("connect to the SOCKS port");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(&[5, 1, 0]).unwrap(); // version 5, one method: no auth
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).expect("SOCKS5 method choice");
    assert_eq!(choice, [5, 0], "SOCKS5 no-auth refused");
    s
}

/// SOCKS5 CONNECT to an IPv4 target; the stream then carries the tunnel.
pub fn socks5_connect(proxy: SocketAddr, target: SocketAddrV4) -> TcpStream {
    let mut s = socks_hello(proxy);
    let mut req = vec![5, 1, 0, 1];
    req.extend_from_slice(&target.ip().octets());
    req.extend_from_slice(&target.port().to_be_bytes());
    s.write_all(&req).unwrap();
    read_socks_reply(&mut s);
    s
}

/// SOCKS5 UDP ASSOCIATE: the control stream (keep it open) and the relay.
pub fn socks5_udp_associate(proxy: SocketAddr) -> (TcpStream, SocketAddr) {
    let mut s = socks_hello(proxy);
    s.write_all(&[5, 3, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap();
    let relay = read_socks_reply(&mut s);
    (s, relay)
}

/// A SOCKS5 UDP datagram to `target` (no fragmentation).
pub fn socks5_udp_packet(target: SocketAddrV4, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0, 1];
    out.extend_from_slice(&target.ip().octets());
    out.extend_from_slice(&target.port().to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// Sends `bytes`, half-closes, and returns everything `addr` answers until
/// it closes (or resets: then what arrived before).
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(bytes).unwrap();
    let _ = s.shutdown(Shutdown::Write);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                panic!("{addr} neither answered nor closed within {PATIENCE:?}")
            }
            Err(_) => return got,
        }
    }
}

/// Accepts any certificate and keeps the leaf: a prober's view.
#[derive(Debug, Default)]
pub struct RecordCert(pub Mutex<Option<Vec<u8>>>);

impl ServerCertVerifier for RecordCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.0.lock().unwrap() = Some(end_entity.to_vec());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

pub fn prober_config(verifier: Arc<RecordCert>) -> Arc<ClientConfig> {
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
    Arc::new(config)
}

/// A TLS 1.3 client: handshake with `sni`, `GET /`, read to the end.
/// Returns the leaf certificate and the plaintext answer.
pub fn tls_probe(addr: SocketAddr, sni: &str) -> (Vec<u8>, Vec<u8>) {
    let verifier = Arc::new(RecordCert::default());
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let conn = ClientConnection::new(prober_config(Arc::clone(&verifier)), name).unwrap();
    let sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(PATIENCE)).unwrap();
    finish_probe(conn, sock, &verifier)
}

/// Runs `conn` over `sock` to the end of a `GET /`.
pub fn finish_probe(
    conn: ClientConnection,
    sock: TcpStream,
    verifier: &RecordCert,
) -> (Vec<u8>, Vec<u8>) {
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .expect("TLS handshake and request");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            // openssl may close without close_notify; the answer is complete.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("TLS read failed: {e}"),
        }
    }
    let cert = verifier.0.lock().unwrap().take().expect("a certificate");
    (cert, answer)
}

/// The short id every edge-server test world accepts.
pub const EDGE_SHORT_ID: &str = "0123456789abcdef";

/// The edge's REALITY server as the edge↔edge tests configure it: [`SERVER_NAME`],
/// [`EDGE_SHORT_ID`], `keys`, fallback to `dest`, one VLESS user, raw transport, no
/// VLESS Encryption (callers change the fields they test).
pub fn edge_reality_config(
    dest: SocketAddr,
    keys: &RealityKeys,
    uuid: uuid::Uuid,
) -> RealityServerConfig {
    RealityServerConfig {
        policy: ServerPolicy {
            server_names: vec![SERVER_NAME.to_owned()],
            short_ids: vec![parse_short_id(EDGE_SHORT_ID).unwrap()],
            min_client_ver: None,
            max_client_ver: None,
            max_time_diff_ms: 60_000,
        },
        keys: RealityServerKeys {
            x25519: keys.secret.clone(),
            signer: Ed25519SigningKey::generate().unwrap(),
        },
        dest,
        users: vec![uuid],
        deadlines: Deadlines::default(),
        stats: ServerStats::default(),
        transport: Default::default(),
        decryption: None,
    }
}
