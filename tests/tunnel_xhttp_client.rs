//! Interop: the edge's XHTTP client (VLESS over XHTTP over h2 over REALITY) against a real
//! Xray 24.11.21 server.
//!
//! edge client (glommio) → Xray (VLESS + REALITY, `network: xhttp`, path /xh, mode auto,
//! dest = openssl s_server) → a std TCP target that sends 4 MiB of deterministic bytes, then
//! returns the SHA-256 of 1 MiB it receives. Both stream-up and packet-up (Xray 24.11.21 has
//! no stream-one server). With a wrong REALITY public key Xray falls back to dest, whose
//! real certificate the client refuses.
//!
//! Run `bash scripts/install-peers.sh` first; without Xray these tests fail.

#[path = "common/glommio_run.rs"]
mod glommio_run;
#[path = "common/xray.rs"]
mod xray;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;
use std::time::Instant;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio_run::{bounded, on_glommio};
use oxpulse_edge::tunnel::client_driver::ConnectError;
use oxpulse_edge::tunnel::reality::client::{parse_public_key, RealityClientConfig};
use oxpulse_edge::tunnel::reality::parse_short_id;
use oxpulse_edge::tunnel::vless::{Address, Target};
use oxpulse_edge::tunnel::xhttp::{
    connect_xhttp, XhttpClientOptions, XhttpConnection, XhttpError, XhttpMode, XhttpStream,
};
use ring::digest::{digest, Context, SHA256};
use uuid::Uuid;
use xray::{RealityInbound, XhttpInbound, XrayServer, PATIENCE};

const USER: &str = "6f0d2b8e-41c7-4a3e-9d55-0b9e8a7c1f24";
const SHORT_ID: &str = "0123456789abcdef";
const PATH: &str = "/xh";
const DOWNLOAD: usize = 4 << 20;
const UPLOAD: usize = 1 << 20;

/// Deterministic bytes (xorshift64*), different per `seed`.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
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

/// Xray with an XHTTP inbound and its cover site, alive as long as this is.
struct Setup {
    xray: XrayServer,
    _dest: xray::Dest,
    public_key: [u8; 32],
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let bin = xray::xray_path();
    let dir = tempfile::tempdir().unwrap();
    let dest = xray::start_dest(dir.path());
    let keys = xray::reality_keys(&bin);
    let inbound = RealityInbound {
        uuid: USER,
        private_key: &keys.private,
        dest: dest.addr,
        server_names: &["example.com"],
        short_ids: &["", SHORT_ID],
    };
    let xhttp = XhttpInbound {
        path: PATH,
        mode: "auto",
    };
    let xray = xray::start_xray_xhttp(&bin, dir.path(), &inbound, &xhttp);
    Setup {
        xray,
        _dest: dest,
        public_key: parse_public_key(&keys.public).expect("xray's public key parses"),
        _dir: dir,
    }
}

/// The target behind the tunnel: one connection; sends [`DOWNLOAD`] bytes, reads
/// [`UPLOAD`] bytes, answers with their SHA-256 and closes.
fn spawn_target() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + PATIENCE;
        let mut conn = loop {
            match listener.accept() {
                Ok((conn, _)) => break conn,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(
                        Instant::now() < deadline,
                        "no connection reached the target"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("target accept: {e}"),
            }
        };
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(PATIENCE)).unwrap();
        conn.set_write_timeout(Some(PATIENCE)).unwrap();
        conn.write_all(&pattern(DOWNLOAD, 1)).unwrap();
        let mut upload = vec![0u8; UPLOAD];
        conn.read_exact(&mut upload).unwrap();
        conn.write_all(digest(&SHA256, &upload).as_ref()).unwrap();
    });
    (addr, serve)
}

fn loopback(port: u16) -> Target {
    Target {
        addr: Address::Ipv4([127, 0, 0, 1]),
        port,
    }
}

fn reality_config(setup: &Setup) -> RealityClientConfig {
    RealityClientConfig::new(
        "example.com",
        setup.public_key,
        parse_short_id(SHORT_ID).unwrap(),
    )
}

/// Downloads and checks the pattern, uploads, checks the target's digest, closes the uplink,
/// then reads once more: the download must end cleanly (the target closed, so Xray ends
/// the GET). Returns how it ended: `Ok(())` for a clean end, else the error kind.
async fn exchange(mut tunnel: XhttpStream) -> Result<(), io::ErrorKind> {
    let mut hash = Context::new(&SHA256);
    let mut buf = vec![0u8; 64 << 10];
    let mut got = 0;
    while got < DOWNLOAD {
        let want = buf.len().min(DOWNLOAD - got);
        let n = tunnel.read(&mut buf[..want]).await.expect("download");
        assert!(n > 0, "tunnel ended after {got} of {DOWNLOAD} bytes");
        hash.update(&buf[..n]);
        got += n;
    }
    let expected = digest(&SHA256, &pattern(DOWNLOAD, 1));
    assert_eq!(
        hash.finish().as_ref(),
        expected.as_ref(),
        "downloaded bytes differ"
    );

    let upload = pattern(UPLOAD, 2);
    tunnel.write_all(&upload).await.expect("upload");
    tunnel.flush().await.expect("flush the upload");
    let mut answer = [0u8; 32];
    tunnel
        .read_exact(&mut answer)
        .await
        .expect("the target's digest");
    assert_eq!(
        answer,
        digest(&SHA256, &upload).as_ref(),
        "uploaded bytes differ"
    );
    tunnel.close().await.expect("close the uplink");

    match tunnel.read(&mut buf).await {
        Ok(0) => Ok(()),
        Ok(n) => panic!("{n} unexpected bytes after the exchange"),
        Err(e) => Err(e.kind()),
    }
}

fn assert_clean(ending: Result<(), io::ErrorKind>, setup: &Setup) {
    assert!(
        ending == Ok(()),
        "the download did not end cleanly: {ending:?}; Xray log:\n{}",
        setup.xray.peer.log()
    );
}

fn join_target(serve: JoinHandle<()>, setup: &Setup) {
    if serve.join().is_err() {
        panic!("the target failed; Xray log:\n{}", setup.xray.peer.log());
    }
}

/// One tunnel in `mode` through `setup`'s Xray to a fresh target.
fn transfer(setup: &Setup, mode: XhttpMode) {
    let (target, serve) = spawn_target();
    let server = setup.xray.addr;
    let reality = reality_config(setup);
    let ending = on_glommio(move || async move {
        let uuid = Uuid::parse_str(USER).unwrap();
        let opts = XhttpClientOptions::new(PATH, mode);
        let tunnel = bounded(
            "connect",
            connect_xhttp(server, &reality, &opts, uuid, loopback(target.port())),
        )
        .await
        .expect("tunnel through Xray");
        assert_eq!(tunnel.mode(), mode);
        bounded("exchange", exchange(tunnel)).await
    });
    join_target(serve, setup);
    assert_clean(ending, setup);
}

#[test]
fn stream_up_through_xray() {
    let setup = setup();
    transfer(&setup, XhttpMode::StreamUp);
}

#[test]
fn packet_up_through_xray() {
    let setup = setup();
    transfer(&setup, XhttpMode::PacketUp);
}

/// Two tunnels, one after the other, on one h2 connection (what a pool will do).
#[test]
fn two_tunnels_share_one_connection() {
    let setup = setup();
    let server = setup.xray.addr;
    let reality = reality_config(&setup);
    let targets = [spawn_target(), spawn_target()];
    let ports = [targets[0].0.port(), targets[1].0.port()];
    let endings = on_glommio(move || async move {
        let uuid = Uuid::parse_str(USER).unwrap();
        let opts = XhttpClientOptions::new(PATH, XhttpMode::StreamUp);
        let conn = bounded("connect", XhttpConnection::connect(server, &reality, &opts))
            .await
            .expect("h2 connection through Xray");
        assert_eq!(conn.opened(), 0);
        let mut endings = Vec::new();
        for port in ports {
            let tunnel = bounded("open", conn.open(uuid, loopback(port)))
                .await
                .expect("tunnel on the shared connection");
            endings.push(bounded("exchange", exchange(tunnel)).await);
        }
        assert_eq!(conn.opened(), 2);
        assert!(!conn.is_closed(), "the connection outlives its tunnels");
        assert!(conn.tls().key_exchange.is_some());
        endings
    });
    for (_, serve) in targets {
        join_target(serve, &setup);
    }
    for ending in endings {
        assert_clean(ending, &setup);
    }
}

#[test]
fn wrong_public_key_is_refused() {
    let setup = setup();
    let server = setup.xray.addr;
    let mut reality = reality_config(&setup);
    reality.server_public_key[0] ^= 0x40;
    let err = on_glommio(move || async move {
        let uuid = Uuid::parse_str(USER).unwrap();
        let opts = XhttpClientOptions::new(PATH, XhttpMode::StreamUp);
        // Nothing listens there; the tunnel must not get that far.
        let target = loopback(xray::free_port());
        match bounded(
            "connect",
            connect_xhttp(server, &reality, &opts, uuid, target),
        )
        .await
        {
            Ok(_) => panic!("connected through a REALITY server that should have refused"),
            Err(e) => e,
        }
    });
    let cause = err.get_ref().and_then(|e| e.downcast_ref::<ConnectError>());
    assert!(
        matches!(cause, Some(ConnectError::NotAuthenticated { .. })),
        "expected NotAuthenticated, got {err:?}; Xray log:\n{}",
        setup.xray.peer.log()
    );
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
}

/// A path the server does not serve: Xray answers the GET with 404, which the first read
/// reports with the status.
#[test]
fn wrong_path_is_a_status_error() {
    let setup = setup();
    let server = setup.xray.addr;
    let reality = reality_config(&setup);
    let err = on_glommio(move || async move {
        let uuid = Uuid::parse_str(USER).unwrap();
        let opts = XhttpClientOptions::new("/elsewhere", XhttpMode::StreamUp);
        let target = loopback(xray::free_port());
        let mut tunnel = bounded(
            "connect",
            connect_xhttp(server, &reality, &opts, uuid, target),
        )
        .await
        .expect("requests are sent before any answer");
        let mut buf = [0u8; 16];
        match bounded("read", tunnel.read(&mut buf)).await {
            Ok(n) => panic!("read {n} bytes from a refused tunnel"),
            Err(e) => e,
        }
    });
    let cause = err.get_ref().and_then(|e| e.downcast_ref::<XhttpError>());
    assert!(
        matches!(cause, Some(XhttpError::Status { status: 404, .. })),
        "expected a 404 status error, got {err:?}"
    );
    assert!(err.to_string().contains("HTTP status 404"), "{err}");
}
