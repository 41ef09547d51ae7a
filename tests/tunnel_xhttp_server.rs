//! The edge's XHTTP server (VLESS over XHTTP over h2 over REALITY) against
//! a real Xray 24.11.21 client in `stream-up` and `packet-up` modes, plus
//! in-process HTTP/2 checks of what Xray 24.11.21 cannot send (stream-one)
//! or rarely does (posts out of order, bad requests).
//!
//! Xray and OpenSSL are required: without them the tests fail, they do not
//! skip.

#[path = "common/xray_server.rs"]
mod xray_server;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use oxpulse_edge::tunnel::reality::server::RealityServerKeys;
use oxpulse_edge::tunnel::reality::{parse_short_id, Ed25519SigningKey, ServerPolicy};
use oxpulse_edge::tunnel::server_driver::{
    Deadlines, RealityServerConfig, ServerStats, ServerTransport, StatsSnapshot,
};
use oxpulse_edge::tunnel::vless::{Address, Command, Request, Target};
use oxpulse_edge::tunnel::xhttp_server::{serve_xhttp, XhttpServerOptions};
use shards::hyper_io::{HyperIo, LocalExec};
use uuid::Uuid;
use xray_server::*;

const SHORT_ID: &str = "0123456789abcdef";
const PATH: &str = "/xh";

fn config(dest: SocketAddr, secret: x25519_dalek::StaticSecret, uuid: Uuid) -> RealityServerConfig {
    RealityServerConfig {
        policy: ServerPolicy {
            server_names: vec![SERVER_NAME.to_owned()],
            short_ids: vec![parse_short_id(SHORT_ID).unwrap()],
            min_client_ver: None,
            max_client_ver: None,
            max_time_diff_ms: 60_000,
        },
        keys: RealityServerKeys {
            x25519: secret,
            signer: Ed25519SigningKey::generate().unwrap(),
        },
        dest,
        users: vec![uuid],
        deadlines: Deadlines::default(),
        stats: ServerStats::default(),
        transport: ServerTransport::xhttp(XhttpServerOptions::new(PATH)),
        decryption: None,
    }
}

struct World {
    dest: Dest,
    keys: RealityKeys,
    uuid: Uuid,
    edge: EdgeServer,
}

impl World {
    fn start() -> World {
        let dest = Dest::start();
        let keys = RealityKeys::generate();
        let uuid = Uuid::from_bytes(random_bytes::<16>());
        let edge = EdgeServer::start(config(dest.addr, keys.secret.clone(), uuid));
        World {
            dest,
            keys,
            uuid,
            edge,
        }
    }

    fn xray(&self, uuid: Option<&str>, mode: &str) -> XrayClient {
        let good = self.uuid.to_string();
        XrayClient::start_with(
            &ClientParams {
                server: self.edge.addr,
                uuid: uuid.unwrap_or(&good),
                public_key: &self.keys.public_b64,
                short_id: SHORT_ID,
                flow: "",
            },
            ClientTransport::Xhttp { path: PATH, mode },
            &[],
        )
    }

    /// Polls the edge's counters until `done` holds (bounded by PATIENCE).
    fn stats_once(&self, what: &str, done: impl Fn(&StatsSnapshot) -> bool) -> StatsSnapshot {
        let start = Instant::now();
        loop {
            let stats = self.edge.stats();
            if done(&stats) {
                return stats;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "edge never counted {what}: {stats:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// SOCKS5 → Xray → edge → target: uploads [`upload()`], half-closes,
/// returns everything that comes back until the end.
fn tunnel_exchange(socks: SocketAddr, target: SocketAddrV4) -> Vec<u8> {
    let mut s = socks5_connect(socks, target);
    // A refused client's Xray may close the SOCKS side early; the answer
    // (checked by the caller) is what matters.
    let _ = s.write_all(&upload());
    let _ = s.shutdown(Shutdown::Write);
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("reading the tunnel failed after {} bytes: {e}", got.len()),
    }
    got
}

fn assert_tunnel_answer(got: &[u8]) {
    assert_eq!(
        got.len(),
        32 + DOWNLOAD_LEN,
        "upload hash + download expected through the tunnel"
    );
    assert_eq!(
        got[..32],
        sha256(&upload()),
        "the target saw other upload bytes"
    );
    assert_eq!(
        sha256(&got[32..]),
        sha256(&download()),
        "download corrupted in the tunnel"
    );
}

fn xray_tunnels_in(mode: &str) {
    const _: () = assert!(UPLOAD_LEN >= 1 << 20 && DOWNLOAD_LEN >= 4 << 20);
    let world = World::start();
    let target = TcpTarget::start();
    let xray = world.xray(None, mode);

    let got = tunnel_exchange(xray.socks, target.addr);
    assert_tunnel_answer(&got);
    assert_eq!(target.connections.load(Ordering::SeqCst), 1);

    let stats = world.stats_once("the finished tunnel", |s| s.bytes_down > 0);
    assert_eq!(stats.tunnels, 1, "{stats:?}");
    assert!(
        stats.accepted >= 1 && stats.xhttp_sessions >= 1,
        "{stats:?}"
    );
    assert_eq!(stats.fallbacks_total(), 0, "{stats:?}");
    assert_eq!(
        (stats.tls_failed, stats.xhttp_rejected),
        (0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.bytes_up, UPLOAD_LEN as u64, "{stats:?}");
    assert_eq!(stats.bytes_down, (32 + DOWNLOAD_LEN) as u64, "{stats:?}");
    eprintln!("edge stats after {mode}: {stats:?}");
    let log = xray.proc.log_text();
    assert!(
        log.contains(&format!("XHTTP is using mode: {mode}")),
        "Xray did not use {mode}:\n{log}"
    );
}

#[test]
fn xray_stream_up_tunnels_tcp_through_the_edge() {
    xray_tunnels_in("stream-up");
}

#[test]
fn xray_packet_up_tunnels_tcp_through_the_edge() {
    xray_tunnels_in("packet-up");
}

#[test]
fn a_tls_prober_still_gets_dests_certificate() {
    let world = World::start();
    let (cert, answer) = tls_probe(world.edge.addr, SERVER_NAME);
    assert_eq!(
        cert, world.dest.cert_der,
        "through the XHTTP REALITY port a prober must see dest's certificate"
    );
    assert!(
        answer.starts_with(b"HTTP/1.0 200 ok"),
        "dest's page through the REALITY port"
    );
    let stats = world.edge.stats();
    assert_eq!(stats.fallback("open_failed"), 1, "{stats:?}");
    assert_eq!((stats.accepted, stats.xhttp_sessions), (0, 0), "{stats:?}");
}

#[test]
fn an_unknown_user_is_refused_and_a_known_one_still_served() {
    let world = World::start();
    let target = TcpTarget::start();
    let other = Uuid::from_bytes(random_bytes::<16>()).to_string();
    let intruder = world.xray(Some(&other), "stream-up");
    let got = tunnel_exchange(intruder.socks, target.addr);
    assert!(got.is_empty(), "no target bytes for an unknown VLESS user");
    world.stats_once("an unknown-user refusal", |s| {
        s.refused("unknown_user") >= 1
    });
    assert_eq!(
        target.connections.load(Ordering::SeqCst),
        0,
        "the target must not be contacted for refused clients"
    );

    let friend = world.xray(None, "packet-up");
    assert_tunnel_answer(&tunnel_exchange(friend.socks, target.addr));
    let stats = world.edge.stats();
    assert_eq!(stats.tunnels, 1, "{stats:?}");
}

// ---- in process: the XHTTP server on plain TCP, driven by hyper's client ----

/// The edge's XHTTP server on a plain TCP listener (no REALITY: what runs
/// inside TLS is the same), and a hyper HTTP/2 client to it, on one glommio
/// executor. `body` gets the client's request sender and the target.
fn in_process<F, Fut>(body: F)
where
    F: FnOnce(
            hyper::client::conn::http2::SendRequest<Full<Bytes>>,
            Rc<RealityServerConfig>,
            Uuid,
        ) -> Fut
        + Send
        + 'static,
    Fut: std::future::Future<Output = ()>,
{
    in_process_with(XhttpServerOptions::new(PATH), body)
}

/// [`in_process`] with other server options.
fn in_process_with<F, Fut>(options: XhttpServerOptions, body: F)
where
    F: FnOnce(
            hyper::client::conn::http2::SendRequest<Full<Bytes>>,
            Rc<RealityServerConfig>,
            Uuid,
        ) -> Fut
        + Send
        + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let uuid = Uuid::from_bytes(random_bytes::<16>());
    glommio::LocalExecutorBuilder::default()
        .name("xhttp-in-process")
        .spawn(move || async move {
            let secret = x25519_dalek::StaticSecret::from(random_bytes::<32>());
            // dest is never used: nothing here goes through REALITY.
            let mut cfg = config("127.0.0.1:9".parse().unwrap(), secret, uuid);
            cfg.transport = ServerTransport::xhttp(options);
            let cfg = Rc::new(cfg);
            let listener = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let served = Rc::clone(&cfg);
            glommio::spawn_local(async move {
                while let Ok(stream) = listener.accept().await {
                    let cfg = Rc::clone(&served);
                    glommio::spawn_local(serve_xhttp(stream, cfg, None)).detach();
                }
            })
            .detach();
            let tcp = glommio::net::TcpStream::connect(addr).await.unwrap();
            let (sender, conn) = hyper::client::conn::http2::handshake(LocalExec, HyperIo(tcp))
                .await
                .expect("h2 handshake with the XHTTP server");
            glommio::spawn_local(async move {
                let _ = conn.await;
            })
            .detach();
            body(sender, cfg, uuid).await;
        })
        .expect("start the executor")
        .join()
        .expect("the in-process test passes");
}

fn padding() -> String {
    format!("x_padding={}", "0".repeat(321))
}

fn vless_header(uuid: Uuid, target: SocketAddrV4) -> Vec<u8> {
    let mut out = Vec::new();
    Request {
        uuid,
        flow: None,
        command: Command::Tcp,
        target: Some(Target {
            addr: Address::Ipv4(target.ip().octets()),
            port: target.port(),
        }),
    }
    .encode(&mut out)
    .unwrap();
    out
}

fn request(method: &str, path_and_query: &str, body: Vec<u8>) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1{path_and_query}"))
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

async fn collect(resp: http::Response<hyper::body::Incoming>) -> Vec<u8> {
    resp.into_body()
        .collect()
        .await
        .expect("whole body")
        .to_bytes()
        .to_vec()
}

/// The download of a tunnel to [`TcpTarget`]: VLESS `00 00`, then the hash
/// of the upload, then [`download()`].
fn assert_vless_answer(got: &[u8]) {
    assert_eq!(got.len(), 2 + 32 + DOWNLOAD_LEN);
    assert_eq!(got[..2], [0, 0], "VLESS response header");
    assert_tunnel_answer(&got[2..]);
}

/// Sessions the XHTTP server of `cfg` holds on this shard.
fn sessions(cfg: &RealityServerConfig) -> usize {
    match &cfg.transport {
        ServerTransport::Xhttp(server) => server.sessions(),
        ServerTransport::Raw => panic!("not an XHTTP config"),
    }
}

/// Waits (bounded by PATIENCE) until the server holds no session.
async fn no_sessions_left(cfg: &RealityServerConfig) {
    let start = Instant::now();
    while sessions(cfg) > 0 {
        assert!(start.elapsed() < PATIENCE, "sessions never forgotten");
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
}

/// The counters once the tunnel's splice has ended and counted its bytes
/// (the body may end a moment before), and its session is forgotten.
async fn finished(cfg: &RealityServerConfig) -> StatsSnapshot {
    let start = Instant::now();
    loop {
        let stats = cfg.stats.snapshot();
        if stats.bytes_down > 0 {
            no_sessions_left(cfg).await;
            return stats;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the tunnel never ended: {stats:?}"
        );
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn stream_one_carries_a_tunnel_in_one_post() {
    let target = TcpTarget::start();
    in_process(move |mut h2, cfg, uuid| async move {
        let mut up = vless_header(uuid, target.addr);
        up.extend_from_slice(&upload());
        let resp = h2
            .send_request(request("POST", &format!("{PATH}/?{}", padding()), up))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert_eq!(resp.headers()["x-accel-buffering"], "no");
        assert_vless_answer(&collect(resp).await);
        let stats = finished(&cfg).await;
        assert_eq!((stats.xhttp_sessions, stats.tunnels), (1, 1), "{stats:?}");
    });
}

#[test]
fn packet_up_posts_out_of_order_are_put_back_in_order() {
    let target = TcpTarget::start();
    in_process(move |h2, cfg, uuid| async move {
        let sid = "6c0b1ad2-5e36-4a8b-9d0e-2c9f1e2a7b44";
        let mut stream = vless_header(uuid, target.addr);
        stream.extend_from_slice(&upload());
        // Seven posts, sent 3, 1, 0, 2, 6, 5, 4: all within the window.
        let pieces: Vec<Vec<u8>> = stream
            .chunks(stream.len() / 7 + 1)
            .map(<[u8]>::to_vec)
            .collect();
        assert_eq!(pieces.len(), 7);
        for seq in [3usize, 1, 0, 2, 6, 5, 4] {
            let mut h2 = h2.clone();
            let req = request(
                "POST",
                &format!("{PATH}/{sid}/{seq}?{}", padding()),
                pieces[seq].clone(),
            );
            glommio::spawn_local(async move {
                let resp = h2.send_request(req).await.unwrap();
                assert_eq!(resp.status(), 200, "post {seq}");
            })
            .detach();
            glommio::yield_if_needed().await;
        }
        // The GET comes last; the session waited for it.
        let mut get = h2.clone();
        let resp = get
            .send_request(request(
                "GET",
                &format!("{PATH}/{sid}?{}", padding()),
                vec![],
            ))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_vless_answer(&collect(resp).await);
        let stats = finished(&cfg).await;
        assert_eq!(stats.tunnels, 1, "{stats:?}");
        assert_eq!(stats.bytes_up, UPLOAD_LEN as u64, "{stats:?}");
    });
}

#[test]
fn bad_requests_get_plain_http_errors() {
    in_process(|mut h2, cfg, _| async move {
        let sid = "0d9c4f7e-0000-4000-8000-000000000001";
        let cases = [
            ("GET", "/".to_owned(), 404),
            ("GET", format!("/other/{sid}?{}", padding()), 404),
            ("GET", format!("{PATH}/{sid}"), 400),
            ("GET", format!("{PATH}/{sid}?x_padding=00"), 400),
            ("POST", format!("{PATH}/{sid}/x?{}", padding()), 400),
            ("PUT", format!("{PATH}/{sid}?{}", padding()), 405),
        ];
        for (method, path, status) in &cases {
            let resp = h2
                .send_request(request(method, path, vec![]))
                .await
                .unwrap();
            assert_eq!(resp.status(), *status, "{method} {path}");
            assert!(collect(resp).await.is_empty());
        }
        // One post accepted, the same seq again is refused.
        let post = move |seq: u64| {
            request(
                "POST",
                &format!("{PATH}/{sid}/{seq}?{}", padding()),
                b"abc".to_vec(),
            )
        };
        assert_eq!(h2.send_request(post(0)).await.unwrap().status(), 200);
        assert_eq!(h2.send_request(post(0)).await.unwrap().status(), 400);
        // A post larger than the limit: 413, as Xray answers.
        let big = vec![0u8; 1_000_001];
        let resp = h2
            .send_request(request(
                "POST",
                &format!("{PATH}/{sid}/1?{}", padding()),
                big,
            ))
            .await
            .unwrap();
        assert_eq!(resp.status(), 413);
        // A stream-up body for a packet-up session: conflict.
        let resp = h2
            .send_request(request(
                "POST",
                &format!("{PATH}/{sid}?{}", padding()),
                vec![],
            ))
            .await
            .unwrap();
        assert_eq!(resp.status(), 409);
        let stats = cfg.stats.snapshot();
        assert_eq!(stats.xhttp_rejected, cases.len() as u64 + 3, "{stats:?}");
        assert_eq!(stats.xhttp_sessions, 0, "{stats:?}");
    });
}

#[test]
fn a_session_without_its_get_is_reaped() {
    let options = XhttpServerOptions {
        join_timeout: Duration::from_millis(100),
        max_buffered_posts: 2,
        ..XhttpServerOptions::new(PATH)
    };
    in_process_with(options, |mut h2, cfg, _| async move {
        let sid = "5b8e2c1a-0000-4000-8000-00000000000a";
        let post = move |seq: u64| {
            request(
                "POST",
                &format!("{PATH}/{sid}/{seq}?{}", padding()),
                b"abc".to_vec(),
            )
        };
        assert_eq!(h2.send_request(post(0)).await.unwrap().status(), 200);
        // Post 3 lies past the window (post 1 is missing, two may be held):
        // it waits, and the reaper ends both the session and the wait.
        let mut waiting = h2.clone();
        let stuck =
            glommio::spawn_local(
                async move { waiting.send_request(post(3)).await.unwrap().status() },
            );
        assert_eq!(sessions(&cfg), 1);
        no_sessions_left(&cfg).await;
        assert_eq!(stuck.await, 500, "a post for a reaped session");
        // A post for the forgotten id starts afresh (and is reaped in turn).
        assert_eq!(h2.send_request(post(0)).await.unwrap().status(), 200);
        no_sessions_left(&cfg).await;
        assert_eq!(cfg.stats.snapshot().xhttp_sessions, 0);
    });
}
