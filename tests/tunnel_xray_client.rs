//! Interop: the edge's REALITY + VLESS client against a real Xray 24.11.21 server.
//!
//! edge client (glommio) → Xray (VLESS + REALITY raw, dest = openssl s_server) → a std TCP
//! target that sends 8 MiB of deterministic bytes, then returns the SHA-256 of 1 MiB it
//! receives. With a wrong REALITY public key Xray falls back to dest, whose real certificate
//! the client refuses.
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
use oxpulse_edge::tunnel::client_driver::{connect, ConnectError, TunnelStream};
use oxpulse_edge::tunnel::reality::client::{parse_public_key, RealityClientConfig};
use oxpulse_edge::tunnel::reality::parse_short_id;
use oxpulse_edge::tunnel::vless::{Address, Target};
use ring::digest::{digest, Context, SHA256};
use uuid::Uuid;
use xray::{RealityInbound, XrayServer, PATIENCE};

const USER: &str = "27848f5e-3c1a-4b9d-8e2f-6a710cd39544";
const SHORT_ID: &str = "0123456789abcdef";
const DOWNLOAD: usize = 8 << 20;
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

/// Xray and its cover site, alive as long as this is.
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
    let xray = xray::start_xray(&bin, dir.path(), &inbound);
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

fn client_config(setup: &Setup, short_id: &str, offer_pq: bool) -> RealityClientConfig {
    RealityClientConfig {
        offer_pq,
        ..RealityClientConfig::new(
            "example.com",
            setup.public_key,
            parse_short_id(short_id).unwrap(),
        )
    }
}

/// How the tunnel ended after the exchange: `Ok(())` for close_notify, else the error kind.
type Ending = Result<(), io::ErrorKind>;

/// Downloads and checks the pattern, uploads, checks the target's digest, then reads once
/// more: the stream must be at its end.
async fn exchange(mut tunnel: TunnelStream) -> Ending {
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

    match tunnel.read(&mut buf).await {
        Ok(0) => Ok(()),
        Ok(n) => panic!("{n} unexpected bytes after the exchange"),
        Err(e) => Err(e.kind()),
    }
}

/// One tunnel through `setup`'s Xray to a fresh target; returns how it ended.
fn transfer(setup: &Setup, cfg: RealityClientConfig) -> Ending {
    let (target, serve) = spawn_target();
    let server = setup.xray.addr;
    let ending = on_glommio(move || async move {
        let uuid = Uuid::parse_str(USER).unwrap();
        let tunnel = bounded(
            "connect",
            connect(server, &cfg, uuid, loopback(target.port())),
        )
        .await
        .expect("tunnel through Xray");
        bounded("exchange", exchange(tunnel)).await
    });
    if serve.join().is_err() {
        panic!("the target failed; Xray log:\n{}", setup.xray.peer.log());
    }
    ending
}

/// The tunnel must end with close_notify: once the target has closed, Xray 24.11.21 ends the
/// VLESS connection (after its `uplinkOnly` idle time) by closing its TLS conn, which sends
/// close_notify before the FIN.
fn assert_ended(ending: Ending, setup: &Setup) {
    assert!(
        ending == Ok(()),
        "the tunnel did not end with close_notify: {ending:?}; Xray log:\n{}",
        setup.xray.peer.log()
    );
}

#[test]
fn eight_mebibytes_down_and_one_up_through_xray() {
    let setup = setup();
    let ending = transfer(&setup, client_config(&setup, SHORT_ID, false));
    assert_ended(ending, &setup);
}

#[test]
fn empty_short_id_with_a_pq_offer_works_too() {
    let setup = setup();
    let ending = transfer(&setup, client_config(&setup, "", true));
    assert_ended(ending, &setup);
}

/// A connect that must fail, and the error it failed with.
fn refused(setup: &Setup, cfg: RealityClientConfig) -> io::Error {
    let server = setup.xray.addr;
    on_glommio(move || async move {
        let uuid = Uuid::parse_str(USER).unwrap();
        // Nothing listens there; the tunnel must not get that far.
        let target = loopback(xray::free_port());
        match bounded("connect", connect(server, &cfg, uuid, target)).await {
            Ok(_) => panic!("connected through a REALITY server that should have refused"),
            Err(e) => e,
        }
    })
}

fn assert_not_authenticated(err: &io::Error, setup: &Setup) {
    let cause = err.get_ref().and_then(|e| e.downcast_ref::<ConnectError>());
    assert!(
        matches!(cause, Some(ConnectError::NotAuthenticated { .. })),
        "expected NotAuthenticated, got {err:?}; Xray log:\n{}",
        setup.xray.peer.log()
    );
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    assert!(
        err.to_string().contains("not the expected REALITY server"),
        "{err}"
    );
}

#[test]
fn wrong_public_key_gets_the_cover_site_and_fails_cleanly() {
    let setup = setup();
    let mut cfg = client_config(&setup, SHORT_ID, false);
    cfg.server_public_key[0] ^= 0x40;
    let err = refused(&setup, cfg);
    assert_not_authenticated(&err, &setup);
}

#[test]
fn unknown_short_id_gets_the_cover_site_and_fails_cleanly() {
    let setup = setup();
    let err = refused(&setup, client_config(&setup, "00000000000000ff", false));
    assert_not_authenticated(&err, &setup);
}
