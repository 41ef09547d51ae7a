//! The real `edge` binary carries a loopback forward through REALITY + VLESS to a
//! real Xray 24.11.21 server, under the SNI picked for the day from `[tunnel] sni_pool`.
//!
//! client (std) → edge forward (127.0.0.1) → Xray (REALITY raw) → target (std, 4 MiB)
//!
//! Run `bash scripts/install-peers.sh` first; without Xray this test fails.

mod common;
#[path = "common/xray.rs"]
mod xray;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use common::*;
use oxpulse_edge::front::probe;
use oxpulse_edge::tunnel::sni;

const USER: &str = "5f0b2c1e-7d3a-4e58-9b61-0c2d4e6f8a10";
const POOL: [&str; 5] = [
    "a.example.com",
    "b.example.com",
    "c.example.com",
    "d.example.com",
    "e.example.com",
];
const PAYLOAD: usize = 4 << 20;

fn payload() -> Vec<u8> {
    (0..PAYLOAD)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// How the edge's forward reaches Xray in one test.
#[derive(Clone, Copy, PartialEq)]
enum Carrier {
    Raw,
    /// XHTTP with this client mode; Xray's inbound runs "auto".
    Xhttp(&'static str),
}

/// Sessions opened through the forward, one after another.
const SESSIONS: usize = 4;

/// client (std) → edge forward → Xray → target, `SESSIONS` times, each a 4 MiB download
/// checked by SHA-256. Returns the edge, for the caller's metric checks.
fn forward_through_xray(carrier: Carrier) -> Edge {
    let bin = xray::xray_path();
    let work = tempfile::tempdir().unwrap();
    let dest = xray::start_dest(work.path());
    let keys = xray::reality_keys(&bin);
    // Xray accepts only today's pick for this node, so a wrong SNI would fall back to
    // dest and the tunnel would fail: the test proves the rotation formula is what is sent.
    let pool: Vec<String> = POOL.iter().map(|s| s.to_string()).collect();
    let today = sni::Date::from_unix(probe::unix_now());
    let pick = sni::pick("test-node", today, &pool).to_owned();
    let inbound = xray::RealityInbound {
        uuid: USER,
        private_key: &keys.private,
        dest: dest.addr,
        server_names: &[pick.as_str()],
        short_ids: &["0123456789abcdef"],
    };
    let server = match carrier {
        Carrier::Raw => xray::start_xray(&bin, work.path(), &inbound),
        Carrier::Xhttp(_) => xray::start_xray_xhttp(
            &bin,
            work.path(),
            &inbound,
            &xray::XhttpInbound {
                path: "/xh",
                mode: "auto",
            },
        ),
    };

    // The target behind the core: sends the payload to whoever connects.
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let target_addr = target.local_addr().unwrap();
    let body = payload();
    let sent = body.clone();
    std::thread::spawn(move || {
        for mut s in target.incoming().flatten() {
            let sent = sent.clone();
            std::thread::spawn(move || {
                let _ = s.write_all(&sent);
            });
        }
    });

    let pool = pool
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let transport = match carrier {
        Carrier::Raw => String::new(),
        Carrier::Xhttp(mode) => {
            format!("transport = \"xhttp\"\n\n[tunnel.client.xhttp]\npath = \"/xh\"\nmode = \"{mode}\"\n")
        }
    };
    let extra = format!(
        "[tunnel]\nsni_pool = [{pool}]\n\n[tunnel.client]\nserver = \"{}\"\npublic_key = \"{}\"\nshort_id = \"0123456789abcdef\"\nuuid_file = \"tunnel.uuid\"\n{transport}\n[[tunnel.forward]]\nlisten = \"127.0.0.1:0\"\ntarget = \"{target_addr}\"\n",
        server.addr, keys.public
    );
    let setup = prod_setup("strict", &extra);
    write_secret(&setup.dir.path().join("tunnel.uuid"), USER.as_bytes());
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
        client
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut got = Vec::with_capacity(PAYLOAD);
        client.read_to_end(&mut got).unwrap();
        assert_eq!(
            got.len(),
            PAYLOAD,
            "edge log:\n{}\nxray log:\n{}",
            edge.log(),
            server.peer.log()
        );
        assert_eq!(
            ring::digest::digest(&ring::digest::SHA256, &got).as_ref(),
            ring::digest::digest(&ring::digest::SHA256, &body).as_ref()
        );
    }
    assert_eq!(
        edge.metric("edge_tunnel_sessions_total{result=\"opened\"}"),
        SESSIONS as u64
    );
    assert_eq!(edge.metric("edge_tunnel_shards_down"), 0);
    // The VLESS id is a credential: never in the node's log.
    assert!(!edge.log().contains(USER));
    edge
}

#[test]
fn forward_reaches_the_target_through_xray() {
    let edge = forward_through_xray(Carrier::Raw);
    // Raw REALITY: one dial per session, nothing pooled.
    assert_eq!(
        edge.metric("edge_tunnel_dials_total{result=\"ok\"}"),
        SESSIONS as u64
    );
    assert_eq!(edge.metric("edge_tunnel_reused_total"), 0);
}

/// XHTTP sessions share pooled h2 connections: one dial per shard at most (the test
/// node runs 2), every later session reuses.
fn xhttp_sessions_share_pooled_connections(mode: &'static str) {
    let edge = forward_through_xray(Carrier::Xhttp(mode));
    let dials = edge.metric("edge_tunnel_dials_total{result=\"ok\"}");
    let reused = edge.metric("edge_tunnel_reused_total");
    assert!((1..=2).contains(&dials), "{dials} dials\n{}", edge.log());
    assert_eq!(dials + reused, SESSIONS as u64);
    // The connections stay pooled after their sessions end.
    assert_eq!(edge.metric("edge_tunnel_pool_connections"), dials);
}

#[test]
fn forward_over_xhttp_stream_up_reuses_connections() {
    xhttp_sessions_share_pooled_connections("stream-up");
}

#[test]
fn forward_over_xhttp_packet_up_reuses_connections() {
    xhttp_sessions_share_pooled_connections("packet-up");
}

/// With the core unreachable, the first session of each shard dials and fails; the
/// link goes down and the sessions after it are refused during the back-off without
/// dialing again, so a dead core is not hammered (nor a censor shown a burst).
#[test]
fn a_dead_core_is_not_redialled_during_back_off() {
    // A port with nothing listening: dials are refused at once.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let core = dead.local_addr().unwrap();
    drop(dead);
    let extra = format!(
        "[tunnel]\nsni_pool = [\"a.example.com\"]\n\n[tunnel.client]\nserver = \"{core}\"\npublic_key = \"{}\"\nuuid_file = \"tunnel.uuid\"\n# The first back-off (30-60 s) outlasts this test.\nretry_min_ms = 60000\nretry_max_secs = 3600\n\n[[tunnel.forward]]\nlisten = \"127.0.0.1:0\"\ntarget = \"10.1.2.3:80\"\n",
        "qhNpOesP1lkKONCod9nmWSIEbTyGeeymVESYjLaJr2g"
    );
    let setup = prod_setup("strict", &extra);
    write_secret(&setup.dir.path().join("tunnel.uuid"), USER.as_bytes());
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

    const ATTEMPTS: u64 = 8;
    for _ in 0..ATTEMPTS {
        let mut client = std::net::TcpStream::connect(forward).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        // The edge closes the local connection without a byte.
        let mut got = Vec::new();
        let _ = client.read_to_end(&mut got);
        assert!(got.is_empty());
    }
    let failed = edge.metric("edge_tunnel_sessions_total{result=\"failed\"}");
    let dials = edge.metric("edge_tunnel_dials_total{result=\"failed\"}");
    let refused = edge.metric("edge_tunnel_refused_total{reason=\"backoff\"}");
    let log = edge.log();
    assert_eq!(failed, ATTEMPTS, "{log}");
    // At most one dial per shard (the test node runs 2).
    assert!((1..=2).contains(&dials), "{dials} dials\n{log}");
    assert_eq!(refused, ATTEMPTS - dials, "{log}");
    assert_eq!(edge.metric("edge_tunnel_shards_down"), dials, "{log}");
    assert_eq!(edge.metric("edge_tunnel_dials_total{result=\"ok\"}"), 0);
    drop(log);
    // Each shard says so once, not once per session. (The log is read by another
    // thread: give it a moment to catch up before counting.)
    let said = |log: &str| log.matches("link to the core is down").count() as u64;
    let mut log = edge.log();
    for _ in 0..50 {
        if said(&log) >= dials {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        log = edge.log();
    }
    assert_eq!(said(&log), dials, "{log}");
}
