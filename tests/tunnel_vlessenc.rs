//! VLESS Encryption (`mlkem768x25519plus`, native) edge to edge, inside the real
//! tunnel stack: REALITY (raw or XHTTP) → VLESS Encryption → VLESS → target.
//! Xray 24.11.21, the only Xray here, predates VLESS Encryption, so both ends
//! are ours; the wire format follows Xray's source (TUNNEL.md §4).
//!
//! - in process: 1-RTT then 0-RTT resumptions on one ticket cache, an ML-KEM
//!   server key with 1-RTT only, a client with the wrong key refused;
//! - the `edge` binary's forward with `encryption = "…0rtt…"`, raw and XHTTP,
//!   against the in-process server: config to wire.
//!
//! OpenSSL is required (the REALITY dest); without it these tests fail.

mod common;
#[path = "common/glommio_run.rs"]
mod glommio_run;
#[path = "common/xray_server.rs"]
mod xray_server;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{prod_setup, start, write_secret};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio_run::{bounded, on_glommio, spawn_digest_target};
use oxpulse_edge::tunnel::client_driver::reality_handshake;
use oxpulse_edge::tunnel::reality::client::{parse_public_key, RealityClientConfig};
use oxpulse_edge::tunnel::reality::parse_short_id;
use oxpulse_edge::tunnel::server_driver::{
    Decryption, RealityServerConfig, ServerTransport, StatsSnapshot,
};
use oxpulse_edge::tunnel::vless::{Address, Target};
use oxpulse_edge::tunnel::vless_stream::open_vless;
use oxpulse_edge::tunnel::vlessenc::{client_handshake, ClientKeys, ClientTickets, KeyPair};
use oxpulse_edge::tunnel::xhttp_server::XhttpServerOptions;
use uuid::Uuid;
use xray_server::*;

const SHORT_ID: &str = "0123456789abcdef";
const UP: usize = 1 << 20;
const DOWN: usize = 2 << 20;

struct World {
    _dest: Dest,
    keys: RealityKeys,
    uuid: Uuid,
    edge: EdgeServer,
}

/// The edge's REALITY server with `decryption` (an Xray server string).
fn world(decryption: &str, xhttp: bool) -> World {
    let dest = Dest::start();
    let keys = RealityKeys::generate();
    let uuid = Uuid::from_bytes(random_bytes::<16>());
    let cfg = RealityServerConfig {
        transport: if xhttp {
            ServerTransport::xhttp(XhttpServerOptions::new("/xh"))
        } else {
            ServerTransport::Raw
        },
        decryption: Some(Decryption::parse(decryption).expect("server decryption string")),
        ..edge_reality_config(dest.addr, &keys, uuid)
    };
    let edge = EdgeServer::start(cfg);
    World {
        _dest: dest,
        keys,
        uuid,
        edge,
    }
}

fn upload() -> Vec<u8> {
    pattern(UP, 0x7e7e_0001)
}

fn download() -> Vec<u8> {
    pattern(DOWN, 0x7e7e_0002)
}

/// The server's counters once `pred` holds, bounded by PATIENCE.
fn stats_when(w: &World, pred: impl Fn(&StatsSnapshot) -> bool) -> StatsSnapshot {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let s = w.edge.stats();
        if pred(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "server counters never settled: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `n` tunnels over raw REALITY, each with its own VLESS Encryption handshake
/// on one shared ticket cache; returns which of them resumed (0-RTT).
fn raw_tunnels(w: &World, client: &str, n: usize) -> Vec<bool> {
    let (target, serve) = spawn_digest_target(n, UP, download());
    let (server, uuid) = (w.edge.addr, w.uuid);
    let reality = RealityClientConfig::new(
        SERVER_NAME,
        parse_public_key(&w.keys.public_b64).unwrap(),
        parse_short_id(SHORT_ID).unwrap(),
    );
    let keys = ClientKeys::parse(client).expect("client encryption string");
    let resumed = on_glommio(move || async move {
        let tickets = ClientTickets::new();
        let mut resumed = Vec::new();
        for _ in 0..n {
            let to = Target {
                addr: Address::Ipv4(target.ip().octets()),
                port: target.port(),
            };
            let tls = bounded("REALITY", reality_handshake(server, &reality))
                .await
                .expect("REALITY to the edge");
            let enc = bounded("VLESS Encryption", client_handshake(tls, &keys, &tickets))
                .await
                .expect("VLESS Encryption handshake");
            resumed.push(enc.resumed());
            let mut tunnel = bounded("VLESS", open_vless(enc, uuid, to))
                .await
                .expect("VLESS");
            bounded("exchange", async {
                tunnel.write_all(&upload()).await.expect("upload");
                tunnel.flush().await.expect("flush");
                let mut got = vec![0u8; 32 + DOWN];
                tunnel
                    .read_exact(&mut got)
                    .await
                    .expect("digest + download");
                assert_eq!(got[..32], sha256(&upload()), "uploaded bytes differ");
                assert!(
                    sha256(&got[32..]) == sha256(&download()),
                    "download differs"
                );
                let mut rest = [0u8; 1];
                assert_eq!(tunnel.read(&mut rest).await.expect("clean end"), 0);
            })
            .await;
        }
        resumed
    });
    serve.join().unwrap();
    resumed
}

#[test]
fn one_rtt_then_zero_rtt_resumptions_over_raw_reality() {
    let pair = KeyPair::x25519().unwrap();
    let w = world(&pair.server_config("600s"), false);
    let resumed = raw_tunnels(&w, &pair.client_config("0rtt"), 3);
    // The first handshake has no ticket; the next ones resume it.
    assert_eq!(resumed, [false, true, true]);
    let s = stats_when(&w, |s| s.tunnels == 3);
    assert_eq!((s.vlessenc_full, s.vlessenc_resumed), (1, 2), "{s:?}");
}

#[test]
fn mlkem_server_key_with_one_rtt_only() {
    let pair = KeyPair::mlkem768().unwrap();
    let w = world(&pair.server_config("600s"), false);
    let resumed = raw_tunnels(&w, &pair.client_config("1rtt"), 2);
    assert_eq!(resumed, [false, false]);
    let s = stats_when(&w, |s| s.tunnels == 2);
    assert_eq!((s.vlessenc_full, s.vlessenc_resumed), (2, 0), "{s:?}");
}

#[test]
fn a_client_with_another_servers_key_is_refused() {
    let ours = KeyPair::x25519().unwrap();
    let theirs = KeyPair::x25519().unwrap();
    let w = world(&ours.server_config("600s"), false);
    let (server, uuid) = (w.edge.addr, w.uuid);
    let reality = RealityClientConfig::new(
        SERVER_NAME,
        parse_public_key(&w.keys.public_b64).unwrap(),
        parse_short_id(SHORT_ID).unwrap(),
    );
    let keys = ClientKeys::parse(&theirs.client_config("1rtt")).unwrap();
    let failed = on_glommio(move || async move {
        let tls = reality_handshake(server, &reality).await.expect("REALITY");
        let tickets = ClientTickets::new();
        let opened = bounded("refusal", async {
            let enc = client_handshake(tls, &keys, &tickets).await?;
            open_vless(
                enc,
                uuid,
                Target {
                    addr: Address::Ipv4([127, 0, 0, 1]),
                    port: 9,
                },
            )
            .await
        })
        .await;
        opened.is_err()
    });
    assert!(failed, "a handshake under the wrong key must fail");
    let s = stats_when(&w, |s| s.refused("encryption") == 1);
    assert_eq!(s.tunnels, 0, "{s:?}");
}

/// The `edge` binary's forward with VLESS Encryption 0-RTT toward the
/// in-process server; `SESSIONS` sequential sessions, each a full upload and
/// download check. Returns the server's counters.
fn forward_with_encryption(xhttp: bool) -> StatsSnapshot {
    const SESSIONS: usize = 4;
    let pair = KeyPair::x25519().unwrap();
    let w = world(&pair.server_config("600s"), xhttp);
    let (target, serve) = spawn_digest_target(SESSIONS, UP, download());
    let transport = if xhttp {
        "transport = \"xhttp\"\n\n[tunnel.client.xhttp]\npath = \"/xh\"\nmode = \"stream-up\"\n"
    } else {
        ""
    };
    let extra = format!(
        "[tunnel]\nsni_pool = [\"{SERVER_NAME}\"]\n\n[tunnel.client]\nserver = \"{}\"\npublic_key = \"{}\"\nshort_id = \"{SHORT_ID}\"\nuuid_file = \"tunnel.uuid\"\nencryption = \"{}\"\n{transport}\n[[tunnel.forward]]\nlisten = \"127.0.0.1:0\"\ntarget = \"{target}\"\n",
        w.edge.addr,
        w.keys.public_b64,
        pair.client_config("0rtt"),
    );
    let setup = prod_setup("strict", &extra);
    write_secret(
        &setup.dir.path().join("tunnel.uuid"),
        w.uuid.to_string().as_bytes(),
    );
    let cfg = setup.config();
    let edge = start(&["--config", cfg.to_str().unwrap()], setup.dir);
    let log = edge.log();
    let forward: std::net::SocketAddr = log
        .lines()
        .find(|l| l.contains("tunnel forward listening"))
        .and_then(|l| l.split("listen=").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no forward address in the log:\n{log}"));
    for _ in 0..SESSIONS {
        let mut client = std::net::TcpStream::connect(forward).unwrap();
        client.set_read_timeout(Some(PATIENCE)).unwrap();
        client.write_all(&upload()).unwrap();
        let mut got = vec![0u8; 32 + DOWN];
        client
            .read_exact(&mut got)
            .unwrap_or_else(|e| panic!("{e}\nedge log:\n{}", edge.log()));
        assert_eq!(got[..32], sha256(&upload()), "uploaded bytes differ");
        assert!(
            sha256(&got[32..]) == sha256(&download()),
            "download differs"
        );
    }
    serve.join().unwrap();
    let s = stats_when(&w, |s| s.tunnels == SESSIONS as u64);
    // Each of the node's 2 shards does one full handshake at most, then
    // resumes its ticket.
    assert!((1..=2).contains(&s.vlessenc_full), "{s:?}");
    assert_eq!(
        s.vlessenc_full + s.vlessenc_resumed,
        SESSIONS as u64,
        "{s:?}"
    );
    assert_eq!(
        edge.metric("edge_tunnel_sessions_total{result=\"opened\"}"),
        SESSIONS as u64
    );
    s
}

#[test]
fn forward_over_raw_with_zero_rtt_encryption() {
    forward_with_encryption(false);
}

#[test]
fn forward_over_xhttp_with_zero_rtt_encryption() {
    let s = forward_with_encryption(true);
    assert!(s.xhttp_sessions >= 4, "{s:?}");
}
