//! Outside peers for the tunnel interop tests: Xray 24.11.21 (installed under `target/peers`
//! by `scripts/install-peers.sh`) as a VLESS + REALITY server, and `openssl s_server` as its
//! TLS 1.3 cover site (`dest`), per TUNNEL.md §6.
//!
//! Every child is killed (by its own pid) and reaped when its handle drops; every wait is
//! bounded by [`PATIENCE`] and ends in a panic that shows the child's log.
#![allow(dead_code)]

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Upper bound for waits that only end late if something is broken; never asserted on.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The Xray binary; panics (the test must fail, not skip) when it is not installed.
pub fn xray_path() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peers/xray");
    assert!(
        path.is_file(),
        "Xray 24.11.21 not found at {}: run `bash scripts/install-peers.sh` first",
        path.display()
    );
    path
}

/// A port on 127.0.0.1 that was free a moment ago (the child binds it right after).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// A child process with its stdout and stderr in a log file.
pub struct Peer {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Peer {
    fn spawn(name: &'static str, command: &mut Command, log: PathBuf) -> Peer {
        let out = File::create(&log).expect("create the log file");
        let err = out.try_clone().expect("clone the log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Peer { name, child, log }
    }

    /// What the child printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `addr` accepts TCP connections; panics with the log if the child exits
    /// or the wait runs out.
    fn wait_listening(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                panic!(
                    "{} exited ({status}) before listening:\n{}",
                    self.name,
                    self.log()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen on {addr}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Kills only this child, by its pid; an already exited child makes kill fail, fine.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A REALITY key pair as `xray x25519` prints it (base64url, no padding).
pub struct RealityKeys {
    pub private: String,
    pub public: String,
}

pub fn reality_keys(xray: &Path) -> RealityKeys {
    let out = run(xray, &["x25519"]);
    let field = |label: &str| {
        out.lines()
            .find_map(|line| line.strip_prefix(label))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {label:?} in `xray x25519` output:\n{out}"))
    };
    RealityKeys {
        private: field("Private key:"),
        public: field("Public key:"),
    }
}

/// The cover site: `openssl s_server -tls1_3` with a self-signed P-256 certificate for
/// example.com.
pub struct Dest {
    pub peer: Peer,
    pub addr: SocketAddr,
}

pub fn start_dest(dir: &Path) -> Dest {
    let openssl = Path::new("openssl");
    let (crt, key) = (dir.join("dest.crt"), dir.join("dest.key"));
    let (crt_s, key_s) = (crt.to_str().unwrap(), key.to_str().unwrap());
    run(
        openssl,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            key_s,
            "-out",
            crt_s,
            "-days",
            "3650",
            "-subj",
            "/CN=example.com",
            "-addext",
            "subjectAltName=DNS:example.com",
        ],
    );
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let accept = addr.to_string();
    let mut command = Command::new(openssl);
    command.args([
        "s_server",
        "-accept",
        &accept,
        "-cert",
        crt_s,
        "-key",
        key_s,
        "-tls1_3",
        "-alpn",
        "h2,http/1.1",
        "-www",
        "-quiet",
    ]);
    let mut peer = Peer::spawn("openssl s_server", &mut command, dir.join("dest.log"));
    peer.wait_listening(addr);
    Dest { peer, addr }
}

/// One VLESS + REALITY inbound over raw TCP, no flow.
pub struct RealityInbound<'a> {
    pub uuid: &'a str,
    pub private_key: &'a str,
    pub dest: SocketAddr,
    pub server_names: &'a [&'a str],
    pub short_ids: &'a [&'a str],
}

/// A running Xray serving one [`RealityInbound`] with a freedom outbound.
pub struct XrayServer {
    pub peer: Peer,
    pub addr: SocketAddr,
}

pub fn start_xray(xray: &Path, dir: &Path, inbound: &RealityInbound<'_>) -> XrayServer {
    start_xray_with(xray, dir, inbound, None)
}

/// The XHTTP settings of an inbound (`xhttpSettings`), TUNNEL.md §3.
pub struct XhttpInbound<'a> {
    pub path: &'a str,
    /// "auto", "stream-up" or "packet-up" (24.11.21 has no "stream-one").
    pub mode: &'a str,
}

/// Like [`start_xray`], but the inbound runs VLESS + REALITY over XHTTP.
pub fn start_xray_xhttp(
    xray: &Path,
    dir: &Path,
    inbound: &RealityInbound<'_>,
    xhttp: &XhttpInbound<'_>,
) -> XrayServer {
    start_xray_with(xray, dir, inbound, Some(xhttp))
}

fn start_xray_with(
    xray: &Path,
    dir: &Path,
    inbound: &RealityInbound<'_>,
    xhttp: Option<&XhttpInbound<'_>>,
) -> XrayServer {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut stream_settings = serde_json::json!({
        "network": "raw",
        "security": "reality",
        "realitySettings": {
            "show": true,
            "dest": inbound.dest.to_string(),
            "xver": 0,
            "serverNames": inbound.server_names,
            "privateKey": inbound.private_key,
            "shortIds": inbound.short_ids,
            "maxTimeDiff": 60000
        }
    });
    if let Some(xhttp) = xhttp {
        stream_settings["network"] = "xhttp".into();
        stream_settings["xhttpSettings"] = serde_json::json!({
            "path": xhttp.path,
            "mode": xhttp.mode
        });
    }
    let config = serde_json::json!({
        "log": {"loglevel": "debug"},
        "inbounds": [{
            "tag": if xhttp.is_some() { "reality-xhttp" } else { "reality-raw" },
            "listen": "127.0.0.1",
            "port": addr.port(),
            "protocol": "vless",
            "settings": {"clients": [{"id": inbound.uuid}], "decryption": "none"},
            "streamSettings": stream_settings
        }],
        "outbounds": [{"protocol": "freedom", "tag": "direct"}]
    });
    let path = dir.join("xray.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let mut command = Command::new(xray);
    command.arg("run").arg("-c").arg(&path);
    let mut peer = Peer::spawn("xray", &mut command, dir.join("xray.log"));
    peer.wait_listening(addr);
    XrayServer { peer, addr }
}
