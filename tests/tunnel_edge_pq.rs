//! X25519MLKEM768 between the edge's own REALITY client and server (the
//! edge↔edge cascade), while Xray 24.11.21 clients stay on X25519.
//!
//! Each test builds its own loopback world, as tunnel_xray_server does: an
//! `openssl s_server` dest (what non-clients are spliced to), a std TCP
//! target, the edge server on a glommio executor. The edge client runs on a
//! second executor; the Xray case uses Xray's SOCKS5 inbound. The group is
//! checked on both ends: the client's negotiated group and the server's
//! PQ/classical handshake counters. Xray and OpenSSL are required: without
//! them the tests fail, they do not skip.

#[path = "common/glommio_run.rs"]
mod glommio_run;
#[path = "common/xray_server.rs"]
mod xray_server;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio_run::{bounded, on_glommio, spawn_digest_target};
use oxpulse_edge::tunnel::client_driver::connect;
use oxpulse_edge::tunnel::reality::client::{parse_public_key, RealityClientConfig};
use oxpulse_edge::tunnel::reality::parse_short_id;
use oxpulse_edge::tunnel::server_driver::{RealityServerConfig, StatsSnapshot};
use oxpulse_edge::tunnel::vless::{Address, Target};
use rustls::NamedGroup;
use uuid::Uuid;
use xray_server::*;

const SHORT_ID: &str = "0123456789abcdef";
/// Client → target and target → client, each a few MiB.
const UP: usize = 3 << 20;
const DOWN: usize = 5 << 20;

struct World {
    _dest: Dest,
    keys: RealityKeys,
    uuid: Uuid,
    edge: EdgeServer,
}

impl World {
    fn start() -> World {
        let dest = Dest::start();
        let keys = RealityKeys::generate();
        let uuid = Uuid::from_bytes(random_bytes::<16>());
        let cfg = RealityServerConfig {
            transport: Default::default(),
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

    fn client_config(&self, offer_pq: bool) -> RealityClientConfig {
        RealityClientConfig {
            offer_pq,
            ..RealityClientConfig::new(
                SERVER_NAME,
                parse_public_key(&self.keys.public_b64).unwrap(),
                parse_short_id(SHORT_ID).unwrap(),
            )
        }
    }

    /// The edge's counters once a tunnel has finished (its bytes are only
    /// counted at its end), bounded by PATIENCE.
    fn stats_after_one_tunnel(&self) -> StatsSnapshot {
        let start = Instant::now();
        loop {
            let stats = self.edge.stats();
            if stats.bytes_down > 0 {
                return stats;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "the edge never finished the tunnel: {stats:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn upload() -> Vec<u8> {
    pattern(UP, 0x5eed_0001)
}

fn download() -> Vec<u8> {
    pattern(DOWN, 0x5eed_0002)
}

/// The edge client through the edge server to a fresh target: uploads,
/// checks the target's digest and the download, and expects a clean end.
/// Returns the group the client negotiated.
fn edge_tunnel(world: &World, offer_pq: bool) -> NamedGroup {
    let (target, serve) = spawn_digest_target(1, UP, download());
    let (server, cfg, uuid) = (world.edge.addr, world.client_config(offer_pq), world.uuid);
    let group = on_glommio(move || async move {
        let to = Target {
            addr: Address::Ipv4(target.ip().octets()),
            port: target.port(),
        };
        let mut tunnel = bounded("connect", connect(server, &cfg, uuid, to))
            .await
            .expect("tunnel through the edge");
        let group = tunnel
            .tls()
            .negotiated_key_exchange_group()
            .expect("the handshake finished in connect")
            .name();
        bounded("exchange", async {
            tunnel.write_all(&upload()).await.expect("upload");
            tunnel.flush().await.expect("flush the upload");
            let mut got = vec![0u8; 32 + DOWN];
            tunnel
                .read_exact(&mut got)
                .await
                .expect("digest + download");
            assert_eq!(got[..32], sha256(&upload()), "uploaded bytes differ");
            assert_eq!(
                sha256(&got[32..]),
                sha256(&download()),
                "downloaded bytes differ"
            );
            // The target half-closed: the edge ends the TLS stream cleanly.
            let mut rest = [0u8; 1];
            assert_eq!(tunnel.read(&mut rest).await.expect("close_notify"), 0);
        })
        .await;
        group
    });
    serve.join().expect("the target saw the whole exchange");
    group
}

#[test]
fn edge_client_offering_pq_gets_x25519mlkem768() {
    let world = World::start();
    let group = edge_tunnel(&world, true);
    assert_eq!(u16::from(group), 0x11ec, "client side: {group:?}");

    let stats = world.stats_after_one_tunnel();
    assert_eq!((stats.accepted, stats.tunnels), (1, 1), "{stats:?}");
    assert_eq!(
        (stats.pq_handshakes, stats.classical_handshakes),
        (1, 0),
        "server side: {stats:?}"
    );
    assert_eq!(
        (stats.bytes_up, stats.bytes_down),
        (UP as u64, (32 + DOWN) as u64)
    );
    assert_eq!(stats.fallbacks_total() + stats.tls_failed, 0, "{stats:?}");
}

#[test]
fn edge_client_without_pq_gets_x25519() {
    let world = World::start();
    let group = edge_tunnel(&world, false);
    assert_eq!(group, NamedGroup::X25519, "client side");

    let stats = world.stats_after_one_tunnel();
    assert_eq!((stats.accepted, stats.tunnels), (1, 1), "{stats:?}");
    assert_eq!(
        (stats.pq_handshakes, stats.classical_handshakes),
        (0, 1),
        "server side: {stats:?}"
    );
    assert_eq!(
        (stats.bytes_up, stats.bytes_down),
        (UP as u64, (32 + DOWN) as u64)
    );
    assert_eq!(stats.fallbacks_total() + stats.tls_failed, 0, "{stats:?}");
}

/// The PQ-capable server still serves Xray 24.11.21, on a classical group:
/// its uTLS "chrome" hello carries no X25519MLKEM768 share.
#[test]
fn xray_client_still_tunnels_on_a_classical_group() {
    let world = World::start();
    let target = TcpTarget::start();
    let xray = XrayClient::start(
        &ClientParams {
            server: world.edge.addr,
            uuid: &world.uuid.to_string(),
            public_key: &world.keys.public_b64,
            short_id: SHORT_ID,
            flow: "",
        },
        &[],
    );
    let mut s = socks5_connect(xray.socks, target.addr);
    s.write_all(&xray_server::upload()).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("the tunnel's answer");
    assert_eq!(got.len(), 32 + DOWNLOAD_LEN);
    assert_eq!(got[..32], sha256(&xray_server::upload()));
    assert_eq!(sha256(&got[32..]), sha256(&xray_server::download()));
    assert_eq!(target.connections.load(Ordering::SeqCst), 1);

    let stats = world.stats_after_one_tunnel();
    assert_eq!((stats.accepted, stats.tunnels), (1, 1), "{stats:?}");
    assert_eq!(
        (stats.pq_handshakes, stats.classical_handshakes),
        (0, 1),
        "server side: {stats:?}"
    );
}
