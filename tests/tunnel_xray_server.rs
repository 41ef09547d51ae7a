//! The edge's REALITY + VLESS server against a real Xray 24.11.21 client
//! (TUNNEL.md §6, reversed: Xray is the client, the edge the server).
//!
//! Each test builds its own loopback world: an `openssl s_server` dest with a
//! self-signed example.com certificate, targets, the edge server on a glommio
//! executor, and Xray clients reached through their SOCKS5 inbound. Xray and
//! OpenSSL are required: without them the tests fail, they do not skip.

#[path = "common/xray_server.rs"]
mod xray_server;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxpulse_edge::tunnel::reality::server::RealityServerKeys;
use oxpulse_edge::tunnel::reality::{parse_short_id, Ed25519SigningKey, ServerPolicy};
use oxpulse_edge::tunnel::server_driver::{
    Deadlines, RealityServerConfig, ServerStats, StatsSnapshot,
};
use rustls::pki_types::ServerName;
use rustls::ClientConnection;
use uuid::Uuid;
use xray_server::*;

const SHORT_ID: &str = "0123456789abcdef";

struct World {
    dest: Dest,
    keys: RealityKeys,
    uuid: Uuid,
    edge: EdgeServer,
}

impl World {
    fn start() -> World {
        World::with_deadlines(Deadlines::default())
    }

    fn with_deadlines(deadlines: Deadlines) -> World {
        let dest = Dest::start();
        let keys = RealityKeys::generate();
        let uuid = Uuid::from_bytes(random_bytes::<16>());
        let cfg = RealityServerConfig {
            policy: ServerPolicy {
                server_names: vec![SERVER_NAME.to_owned()],
                short_ids: vec![parse_short_id(SHORT_ID).unwrap()],
                min_client_ver: None,
                max_client_ver: None,
                max_time_diff_ms: 60_000,
            },
            keys: RealityServerKeys {
                x25519: keys.secret.clone(),
                signer: Ed25519SigningKey::generate().unwrap(),
            },
            dest: dest.addr,
            users: vec![uuid],
            deadlines,
            stats: ServerStats::default(),
            transport: Default::default(),
            decryption: None,
        };
        let edge = EdgeServer::start(cfg);
        World {
            dest,
            keys,
            uuid,
            edge,
        }
    }

    /// An Xray client for this edge; `uuid`/`short_id` default to the good ones.
    fn xray(&self, uuid: Option<&str>, short_id: &str, env: &[(&str, &str)]) -> XrayClient {
        let good = self.uuid.to_string();
        XrayClient::start(
            &ClientParams {
                server: self.edge.addr,
                uuid: uuid.unwrap_or(&good),
                public_key: &self.keys.public_b64,
                short_id,
                flow: "",
            },
            env,
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

/// Through SOCKS5 → Xray → edge → target: uploads [`upload()`], half-closes,
/// returns everything that comes back until the end.
fn tunnel_exchange(socks: SocketAddr, target: SocketAddrV4) -> Vec<u8> {
    let mut s = socks5_connect(socks, target);
    // A refused client's Xray may close the SOCKS side before the upload is
    // through; the answer (checked by the caller) is what matters.
    let _ = s.write_all(&upload());
    let _ = s.shutdown(Shutdown::Write);
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => {}
        // Xray resets the SOCKS side when its outbound fails; what arrived counts.
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

#[test]
fn xray_client_tunnels_tcp_through_the_edge() {
    let world = World::start();
    let target = TcpTarget::start();
    let xray = world.xray(None, SHORT_ID, &[]);

    let got = tunnel_exchange(xray.socks, target.addr);
    assert_tunnel_answer(&got);
    assert_eq!(target.connections.load(Ordering::SeqCst), 1);

    let stats = world.stats_once("the finished tunnel", |s| s.bytes_down > 0);
    assert_eq!((stats.accepted, stats.tunnels), (1, 1), "{stats:?}");
    assert_eq!(stats.fallbacks_total(), 0, "{stats:?}");
    assert_eq!(stats.tls_failed, 0, "{stats:?}");
    assert_eq!(stats.bytes_up, UPLOAD_LEN as u64);
    assert_eq!(stats.bytes_down, (32 + DOWNLOAD_LEN) as u64);
}

#[test]
fn a_tls_prober_gets_dests_real_certificate_and_content() {
    let world = World::start();

    let (direct_cert, direct_answer) = tls_probe(world.dest.addr, SERVER_NAME);
    assert_eq!(direct_cert, world.dest.cert_der, "dest serves its own cert");
    assert!(
        direct_answer.starts_with(b"HTTP/1.0 200 ok"),
        "dest answers"
    );

    let (cert, answer) = tls_probe(world.edge.addr, SERVER_NAME);
    assert_eq!(
        cert, world.dest.cert_der,
        "through the REALITY port a prober must see dest's certificate"
    );
    assert!(
        answer.starts_with(b"HTTP/1.0 200 ok"),
        "dest's page through the REALITY port: {:?}",
        String::from_utf8_lossy(&answer[..answer.len().min(64)])
    );

    // Another name is not ours either; still dest's site.
    let (cert, _) = tls_probe(world.edge.addr, "other.example");
    assert_eq!(cert, world.dest.cert_der);

    let stats = world.edge.stats();
    assert_eq!(stats.fallback("open_failed"), 1, "{stats:?}");
    assert_eq!(stats.fallback("server_name"), 1, "{stats:?}");
    assert_eq!((stats.accepted, stats.tunnels), (0, 0), "{stats:?}");
}

/// A prober's connection and the ClientHello it will send first.
fn prober(verifier: &Arc<RecordCert>) -> (ClientConnection, Vec<u8>) {
    let name = ServerName::try_from(SERVER_NAME).unwrap();
    let mut conn = ClientConnection::new(prober_config(Arc::clone(verifier)), name).unwrap();
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).unwrap();
    }
    (conn, hello)
}

#[test]
fn a_hello_too_slow_for_the_deadline_is_spliced_to_dest() {
    let world = World::with_deadlines(Deadlines {
        hello: Duration::from_millis(200),
        ..Deadlines::default()
    });
    let verifier = Arc::new(RecordCert::default());
    let (conn, hello) = prober(&verifier);
    let mut sock = TcpStream::connect(world.edge.addr).unwrap();
    sock.set_read_timeout(Some(PATIENCE)).unwrap();
    // Part of a record: no verdict is possible, only the deadline ends it.
    sock.write_all(&hello[..10]).unwrap();
    world.stats_once("a hello timeout", |s| s.fallback("hello_timeout") == 1);
    // Dest now holds those 10 bytes; the rest completes its handshake.
    sock.write_all(&hello[10..]).unwrap();
    let (cert, answer) = finish_probe(conn, sock, &verifier);
    assert_eq!(cert, world.dest.cert_der);
    assert!(answer.starts_with(b"HTTP/1.0 200 ok"));
    let stats = world.edge.stats();
    assert_eq!(stats.fallbacks_total(), 1, "{stats:?}");
}

#[test]
fn bad_input_falls_back_to_dest_and_the_server_keeps_serving() {
    let world = World::start();
    let target = TcpTarget::start();

    // Random bytes (not starting like TLS): dest stays silent, so must we.
    let mut junk = pattern(300, 0x5eed);
    junk[0] = b'Z';
    assert_eq!(
        exchange(world.edge.addr, &junk),
        exchange(world.dest.addr, &junk),
        "junk through the REALITY port must get dest's own answer"
    );
    // A handshake record holding no valid hello, and a ClientHello cut
    // short: dest answers both with its own alert, which must come through.
    let (_, hello) = prober(&Arc::new(RecordCert::default()));
    let garbled = b"\x16\x03\x01\x00\x05hello".to_vec();
    let cut = hello[..hello.len() / 2].to_vec();
    for (what, bytes) in [("garbled record", garbled), ("truncated hello", cut)] {
        let direct = exchange(world.dest.addr, &bytes);
        assert!(!direct.is_empty(), "dest answers a {what}");
        assert_eq!(
            exchange(world.edge.addr, &bytes),
            direct,
            "a {what} through the REALITY port must get dest's own answer"
        );
    }
    let stats = world.edge.stats();
    assert_eq!(stats.fallback("not_tls"), 2, "{stats:?}");
    assert_eq!(stats.fallback("client_closed"), 1, "{stats:?}");

    // Xray with a short id the server does not know: REALITY fails, the
    // connection goes to dest, Xray sees a real certificate and gives up.
    let stranger = world.xray(None, "fedcba98", &[]);
    let got = tunnel_exchange(stranger.socks, target.addr);
    assert!(got.is_empty(), "no target bytes without REALITY auth");
    world.stats_once("a short-id fallback", |s| s.fallback("short_id") >= 1);

    // REALITY passes, but the VLESS user is unknown: nothing comes back.
    let other_user = Uuid::from_bytes(random_bytes::<16>()).to_string();
    let intruder = world.xray(Some(&other_user), SHORT_ID, &[]);
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

    // Vision is not spoken here: refused, never half-served.
    let vision = XrayClient::start(
        &ClientParams {
            server: world.edge.addr,
            uuid: &world.uuid.to_string(),
            public_key: &world.keys.public_b64,
            short_id: SHORT_ID,
            flow: "xtls-rprx-vision",
        },
        &[],
    );
    let got = tunnel_exchange(vision.socks, target.addr);
    assert!(got.is_empty(), "no target bytes for a Vision client");
    world.stats_once("a flow refusal", |s| s.refused("flow") >= 1);
    assert_eq!(target.connections.load(Ordering::SeqCst), 0);

    // After all that, a good client still gets its tunnel.
    let friend = world.xray(None, SHORT_ID, &[]);
    assert_tunnel_answer(&tunnel_exchange(friend.socks, target.addr));
    let stats = world.edge.stats();
    assert_eq!(stats.tunnels, 1, "{stats:?}");
    assert_eq!(
        stats.accepted,
        stats.refused("unknown_user") + stats.refused("flow") + 1,
        "{stats:?}"
    );
    eprintln!("edge stats after the bad input: {stats:?}");
}

/// Sends `data` to `target` via the SOCKS5 UDP relay until its echo comes
/// back (UDP may drop; bounded by PATIENCE).
fn udp_round_trip(socket: &UdpSocket, relay: SocketAddr, target: SocketAddrV4, data: &[u8]) {
    let packet = socks5_udp_packet(target, data);
    let start = Instant::now();
    let mut buf = vec![0u8; 65_536];
    while start.elapsed() < PATIENCE {
        socket.send_to(&packet, relay).unwrap();
        let Ok((n, _)) = socket.recv_from(&mut buf) else {
            continue; // lost or not yet through; send again
        };
        // Header: RSV(2) FRAG(1) ATYP(1)=IPv4 ADDR(4) PORT(2).
        assert!(n >= 10, "short SOCKS5 UDP reply");
        assert_eq!(buf[3], 1, "reply from an IPv4 source");
        if buf[10..n] == *data {
            return;
        }
    }
    panic!(
        "no echo of a {}-byte datagram within {PATIENCE:?}",
        data.len()
    );
}

#[test]
fn xray_udp_reaches_an_echo_target_through_the_edge() {
    let world = World::start();
    let echo = udp_echo();
    // Xray's default "cone" turns UDP into Mux/XUDP, which this server does
    // not serve; with cone off the client sends VLESS UDP (cmd 2).
    let xray = world.xray(None, SHORT_ID, &[("XRAY_CONE_DISABLED", "true")]);

    let (_control, relay) = socks5_udp_associate(xray.socks);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    for (i, len) in [1usize, 100, 1200, 4000].into_iter().enumerate() {
        udp_round_trip(&socket, relay, echo, &pattern(len, i as u64 + 7));
    }
    let stats = world.edge.stats();
    assert_eq!((stats.accepted, stats.tunnels), (1, 1), "{stats:?}");
    assert_eq!(stats.refused("mux"), 0, "{stats:?}");

    // With Xray's default (cone on), the same traffic arrives as Mux and is
    // refused without an answer.
    let cone = world.xray(None, SHORT_ID, &[]);
    let (_control, relay) = socks5_udp_associate(cone.socks);
    let packet = socks5_udp_packet(echo, b"through mux");
    socket.send_to(&packet, relay).unwrap();
    world.stats_once("a Mux refusal", |s| s.refused("mux") >= 1);
}
