//! Starting the real `edge` binary on loopback for integration tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const EDGE: &str = env!("CARGO_BIN_EXE_edge");

/// A running edge with its captured stderr.
pub struct Edge {
    pub child: Child,
    pub front: SocketAddr,
    pub admin: SocketAddr,
    pub log: Arc<Mutex<String>>,
    pub dir: tempfile::TempDir,
    /// The network namespace the edge runs in (`ip netns exec`), if any: its loopback
    /// listeners are then reached through `ip netns exec … curl`.
    pub netns: Option<String>,
}

/// A config directory with a 0600 session secret, certificates and a config file.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub secret: Vec<u8>,
    pub ca_pem: PathBuf,
}

pub fn write_secret(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Writes a self-signed cert for `names` as cert.pem/key.pem under `dir`.
pub fn write_cert(dir: &Path, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
    // A distinct subject per certificate: two self-signed certificates with the
    // same subject confuse OpenSSL's issuer lookup in curl's --cacert check.
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    let serial: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{stem}-{serial}"));
    let signing_key = rcgen::KeyPair::generate().unwrap();
    let c = params.self_signed(&signing_key).unwrap();
    let cert = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    std::fs::write(&cert, c.pem()).unwrap();
    write_secret(&key, signing_key.serialize_pem().as_bytes());
    (cert, key)
}

/// A production-shaped config (dev = false) serving `edge.test` with its own cert.
pub fn prod_setup(policy: &str, extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let secret: Vec<u8> = (0..48u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    write_secret(&dir.path().join("session.key"), &secret);
    let (cert, key) = write_cert(dir.path(), "edge", &["edge.test"]);
    let cfg = format!(
        r#"
[node]
id = "test-node"
dev = false

[runtime]
cores = 2

[front]
listen = "127.0.0.1:0"
domains = ["edge.test"]
policy = "{policy}"

[[front.certs]]
cert = "{cert}"
key = "{key}"

[front.session]
secret_file = "session.key"

[admin]
listen = "127.0.0.1:0"

[shutdown]
drain_timeout_secs = 5
{extra}
"#,
        cert = cert.display(),
        key = key.display(),
    );
    std::fs::write(dir.path().join("edge.toml"), cfg).unwrap();
    Setup {
        ca_pem: cert,
        dir,
        secret,
    }
}

impl Setup {
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("edge.toml")
    }
}

/// Starts `edge` with `args` and waits for its "edge listening" line.
pub fn start(args: &[&str], dir: tempfile::TempDir) -> Edge {
    start_with_log(args, dir, "info")
}

/// As [`start`], with a tracing filter (`RUST_LOG`) such as `info,oxpulse_edge::sfu=debug`.
pub fn start_with_log(args: &[&str], dir: tempfile::TempDir, filter: &str) -> Edge {
    spawn(Command::new(EDGE), args, dir, filter, None)
}

/// As [`start_with_log`], inside the network namespace `netns` (`ip netns exec`, as root).
pub fn start_in_netns(netns: &str, args: &[&str], dir: tempfile::TempDir, filter: &str) -> Edge {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", netns, EDGE]);
    spawn(cmd, args, dir, filter, Some(netns.to_owned()))
}

fn spawn(
    mut cmd: Command,
    args: &[&str],
    dir: tempfile::TempDir,
    filter: &str,
    netns: Option<String>,
) -> Edge {
    let mut child = cmd
        .args(args)
        .env("RUST_LOG", filter)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn edge");
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel::<(SocketAddr, SocketAddr)>();
    let stderr = child.stderr.take().unwrap();
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("edge listening") {
                let front = field(&line, "front=");
                let admin = field(&line, "admin=");
                if let (Some(f), Some(a)) = (front, admin) {
                    let _ = tx.send((f, a));
                }
            }
            let mut l = log2.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let (front, admin) = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(v) => v,
        Err(_) => {
            let _ = child.kill();
            panic!("edge did not start; log:\n{}", log.lock().unwrap());
        }
    };
    let e = Edge {
        child,
        front,
        admin,
        log,
        dir,
        netns,
    };
    e.wait_ready();
    e
}

fn field(line: &str, key: &str) -> Option<SocketAddr> {
    let start = line.find(key)? + key.len();
    let rest = &line[start..];
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    rest[..end].trim_matches('"').parse().ok()
}

impl Edge {
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(body) = self.admin_get("/readyz") {
                if body.0 == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "edge never became ready; log:\n{}",
            self.log.lock().unwrap()
        );
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for exit, killing after `limit` so a hung node fails the test instead of CI.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        None
    }

    pub fn metrics(&self) -> String {
        self.admin_get("/metrics").unwrap().1
    }

    /// GET on the admin listener: directly, or through `curl` inside the edge's namespace.
    pub fn admin_get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let Some(ns) = &self.netns else {
            return http_get(self.admin, path);
        };
        let url = format!("http://{}{path}", self.admin);
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "curl", "-sS", "--max-time", "10"])
            .args(["-w", "\n%{http_code}", &url])
            .output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(stderr(&out)));
        }
        let text = stdout(&out);
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        Ok((status.trim().parse().unwrap_or(0), body.to_owned()))
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.front.port())
    }

    /// `curl` resolving `host` to the front's loopback address.
    pub fn curl(&self, host: &str, path: &str, extra: &[&str]) -> Output {
        let resolve = format!("{host}:{}:127.0.0.1", self.front.port());
        let url = format!("https://{host}:{}{path}", self.front.port());
        let mut args = vec!["-sS", "--max-time", "20", "--resolve", &resolve];
        args.extend_from_slice(extra);
        args.push(&url);
        Command::new("curl")
            .args(&args)
            .output()
            .expect("curl is installed (scripts/test.sh installs it)")
    }

    /// The value of one Prometheus series, summed lines matching exactly.
    pub fn metric(&self, series: &str) -> u64 {
        let text = self.metrics();
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Minimal plain-HTTP GET for the admin listener (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
