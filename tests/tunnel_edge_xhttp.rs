//! The edge's XHTTP client against the edge's XHTTP server (the edge↔edge
//! cascade): all three modes — stream-one included, which Xray 24.11.21 cannot
//! serve — on one h2 connection each, post-quantum key exchange asserted.
//!
//! World: an `openssl s_server` dest, the edge server (REALITY + XHTTP) on a
//! glommio executor, std TCP targets; the client runs on a second executor.
//! OpenSSL is required (the dest); without it the tests fail.

#[path = "common/glommio_run.rs"]
mod glommio_run;
#[path = "common/xray_server.rs"]
mod xray_server;

use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio_run::{bounded, on_glommio, spawn_digest_target};
use oxpulse_edge::tunnel::reality::client::{parse_public_key, RealityClientConfig};
use oxpulse_edge::tunnel::reality::parse_short_id;
use oxpulse_edge::tunnel::server_driver::{RealityServerConfig, ServerTransport};
use oxpulse_edge::tunnel::vless::{Address, Target};
use oxpulse_edge::tunnel::xhttp::{XhttpClientOptions, XhttpConnection, XhttpMode};
use oxpulse_edge::tunnel::xhttp_server::XhttpServerOptions;
use rustls::NamedGroup;
use uuid::Uuid;
use xray_server::*;

const SHORT_ID: &str = "0123456789abcdef";
const UP: usize = 2 << 20;
const DOWN: usize = 3 << 20;
/// Tunnels opened one after another on the same h2 connection.
const TUNNELS: usize = 2;

struct World {
    _dest: Dest,
    keys: RealityKeys,
    uuid: Uuid,
    edge: EdgeServer,
}

fn world() -> World {
    let dest = Dest::start();
    let keys = RealityKeys::generate();
    let uuid = Uuid::from_bytes(random_bytes::<16>());
    let cfg = RealityServerConfig {
        transport: ServerTransport::xhttp(XhttpServerOptions::new("/xh")),
        decryption: None,
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
    pattern(UP, 0x0e0e_0001)
}

fn download() -> Vec<u8> {
    pattern(DOWN, 0x0e0e_0002)
}

/// [`TUNNELS`] tunnels in `mode` over one PQ h2 connection; each uploads,
/// checks the digest and the download, and sees a clean end. Returns the
/// negotiated group and the tunnels the connection opened.
fn run(mode: XhttpMode) -> (Option<NamedGroup>, u64) {
    let w = world();
    let (target, serve) = spawn_digest_target(TUNNELS, UP, download());
    let server = w.edge.addr;
    let uuid = w.uuid;
    let reality = RealityClientConfig {
        offer_pq: true,
        ..RealityClientConfig::new(
            SERVER_NAME,
            parse_public_key(&w.keys.public_b64).unwrap(),
            parse_short_id(SHORT_ID).unwrap(),
        )
    };
    let result = on_glommio(move || async move {
        let opts = XhttpClientOptions::new("/xh", mode);
        let conn = bounded("connect", XhttpConnection::connect(server, &reality, &opts))
            .await
            .expect("h2 over REALITY to the edge");
        for _ in 0..TUNNELS {
            let to = Target {
                addr: Address::Ipv4(target.ip().octets()),
                port: target.port(),
            };
            let mut tunnel = bounded("open", conn.open(uuid, to)).await.expect("open");
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
                tunnel.close().await.expect("close the uplink");
            })
            .await;
        }
        assert!(!conn.is_closed(), "the connection outlives its tunnels");
        (conn.tls().key_exchange, conn.opened())
    });
    serve.join().unwrap();
    // The server joined one XHTTP session per tunnel, all post-quantum.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let s = w.edge.stats();
        if s.tunnels == TUNNELS as u64 {
            assert_eq!(s.xhttp_sessions, TUNNELS as u64, "{s:?}");
            assert_eq!(s.pq_handshakes, 1, "one REALITY handshake, PQ: {s:?}");
            assert_eq!(s.classical_handshakes, 0, "{s:?}");
            assert_eq!(s.xhttp_rejected, 0, "{s:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server never counted the tunnels: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    result
}

#[test]
fn stream_one_edge_to_edge() {
    let (group, opened) = run(XhttpMode::StreamOne);
    assert_eq!(group, Some(NamedGroup::X25519MLKEM768));
    assert_eq!(opened, TUNNELS as u64);
}

#[test]
fn stream_up_edge_to_edge() {
    let (group, opened) = run(XhttpMode::StreamUp);
    assert_eq!(group, Some(NamedGroup::X25519MLKEM768));
    assert_eq!(opened, TUNNELS as u64);
}

#[test]
fn packet_up_edge_to_edge() {
    let (group, opened) = run(XhttpMode::PacketUp);
    assert_eq!(group, Some(NamedGroup::X25519MLKEM768));
    assert_eq!(opened, TUNNELS as u64);
}
