//! Interop with a WebRTC stack nobody here wrote: an aiortc participant
//! (`tests/fixtures/aiortc_peer.py`) and a `loadgen sfu` participant (str0m, SFrame media)
//! share one room of the real `edge --cores 2`, and media and data-channel messages flow
//! both ways through the edge's str0m rooms.
//!
//! aioice never gathers 127.0.0.1, so the whole test (edge, loadgen, aiortc) runs in a
//! network namespace of its own with one more address, [`MEDIA_IP`], on a veth pair inside
//! it: the edge advertises it as `public_ip`, loadgen binds there (`--media-ip`) and aiortc's
//! ordinary host-candidate gathering finds it. The namespace has no way out, so none of
//! this traffic can leave the machine. Creating it needs root (CI runs as root).
//!
//! Order: aiortc joins first and reports `connected`; then loadgen runs one participant
//! (`--rooms 1 --participants 1 --run-id <id>`, so its room is `lg-<id>-0`, its peer `p0`)
//! to the end of its window and leaves; aiortc leaves when it sees `p0` go. No timing is
//! asserted; every wait is bounded and fails with the logs.

mod common;
use common::*;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Ends with a newline on purpose: edge, loadgen and the fixture all drop one.
const SFU_SECRET: &[u8] = b"sfu aiortc test secret, thirty-two bytes or more\n";
const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/aiortc_peer.py");
const MEDIA_IP: &str = "10.203.0.1";
/// Bound on each participant; generous for a loaded 2-core CI machine.
const LIMIT: Duration = Duration::from_secs(90);

/// A network namespace with `lo` up and [`MEDIA_IP`] on a veth pair; deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Self {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "tests/sfu_aiortc.rs must run as root (CI does): it creates a network namespace \
             with a non-loopback address, because aiortc never uses 127.0.0.1"
        );
        let name = format!("oxp-aiortc-{}", std::process::id());
        // A namespace left by a killed run with a recycled pid.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        // A veth pair rather than a dummy device: the dummy module may be missing (it is
        // on this project's machines), veth is built in. Both ends stay in the namespace.
        ns.ip(&[
            "link", "add", "oxp0", "type", "veth", "peer", "name", "oxp1",
        ]);
        ns.ip(&["addr", "add", &format!("{MEDIA_IP}/24"), "dev", "oxp0"]);
        ns.ip(&["link", "set", "oxp0", "up"]);
        ns.ip(&["link", "set", "oxp1", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// `program` run inside the namespace.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("`ip` is installed (scripts/install-peers.sh installs iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        stderr(&out)
    );
}

/// A child killed on drop (a failed assertion must not leave it running).
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `child` to exit within `limit`; `None` (and killed) if it did not.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Collects a pipe in a thread; the handle's result is everything read.
fn collect(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

/// `target/debug/loadgen` next to the edge binary, built if missing (a plain
/// `cargo test --workspace` builds it; `cargo test --test sfu_aiortc` alone does not).
fn loadgen_binary() -> PathBuf {
    let bin = Path::new(EDGE).with_file_name("loadgen");
    if bin.exists() {
        return bin;
    }
    eprintln!(
        "sfu_aiortc: {} is missing, running `cargo build -p loadgen`",
        bin.display()
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-p", "loadgen"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo build -p loadgen failed");
    assert!(
        bin.exists(),
        "cargo build -p loadgen made no {}",
        bin.display()
    );
    bin
}

/// `edge_sfu_packets_forwarded_total{kind=…}`, 0 before the first packet.
fn forwarded(metrics: &str, kind: &str) -> u64 {
    let series = format!("edge_sfu_packets_forwarded_total{{kind=\"{kind}\"}}");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

#[test]
fn aiortc_and_loadgen_share_a_room_media_both_ways() {
    let probe = Command::new("python3")
        .args(["-c", "import aiortc, websockets"])
        .output()
        .expect("python3 is installed");
    assert!(
        probe.status.success(),
        "aiortc or python-websockets is missing: run scripts/install-peers.sh\n{}",
        stderr(&probe)
    );

    let loadgen = loadgen_binary();
    let ns = Netns::new();
    let setup = prod_setup(
        "strict",
        &format!(
            "[sfu]\nsecret_file = \"sfu.key\"\nmedia_port_base = 0\npublic_ip = \"{MEDIA_IP}\"\n"
        ),
    );
    let secret = setup.dir.path().join("sfu.key");
    write_secret(&secret, SFU_SECRET);
    // loadgen's host name must be a served domain: it resolves `localhost` to the front.
    let cfg = setup.config();
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text.replace(
        "domains = [\"edge.test\"]",
        "domains = [\"edge.test\", \"localhost\"]",
    );
    std::fs::write(&cfg, text).unwrap();
    let edge = start_in_netns(
        &ns.name,
        &["--config", cfg.to_str().unwrap(), "--cores", "2"],
        setup.dir,
        "info,oxpulse_edge::sfu=debug",
    );
    let port = edge.front.port().to_string();
    let before = edge.metrics();

    let run_id = format!("aio{}", std::process::id());
    let room = format!("lg-{run_id}-0");

    // aiortc first; loadgen once aiortc is connected.
    let mut peer = Guard(
        ns.command("python3")
            .args([
                PEER,
                "--port",
                &port,
                "--room",
                &room,
                "--peer",
                "aiortc",
                "--secret-file",
                secret.to_str().unwrap(),
                "--host-ip",
                MEDIA_IP,
                "--duration",
                "60",
                "--expect-from",
                "p0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn python3"),
    );
    let peer_err = collect(peer.0.stderr.take().unwrap());
    let (tx, rx) = mpsc::channel::<Value>();
    let peer_out = peer.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(peer_out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
            lines.push(line);
        }
        lines
    });

    let connected = rx.recv_timeout(Duration::from_secs(60));
    if !matches!(&connected, Ok(v) if v["event"] == "connected") {
        drop(peer);
        panic!(
            "aiortc did not connect: {connected:?}\n--- aiortc stdout:\n{}\n--- aiortc stderr:\n{}\n--- edge log:\n{}",
            reader.join().unwrap().join("\n"),
            peer_err.join().unwrap(),
            edge.log()
        );
    }

    let report_path = edge.dir.path().join("loadgen.json");
    let mut lg = Guard(
        ns.command(loadgen.to_str().unwrap())
            .args([
                "sfu",
                "--url",
                &format!("wss://localhost:{port}"),
                "--secret-file",
                secret.to_str().unwrap(),
                "--rooms",
                "1",
                "--participants",
                "1",
                "--warmup",
                "2",
                "--duration",
                "5",
                "--insecure",
                "--media-ip",
                MEDIA_IP,
                "--run-id",
                &run_id,
                "--json",
                report_path.to_str().unwrap(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn loadgen"),
    );
    let lg_out = collect(lg.0.stdout.take().unwrap());
    let lg_err = collect(lg.0.stderr.take().unwrap());
    let lg_status = wait_bounded(&mut lg.0, LIMIT);
    let peer_status = wait_bounded(&mut peer.0, LIMIT);
    let lg_log = format!("{}{}", lg_out.join().unwrap(), lg_err.join().unwrap());
    let peer_log = peer_err.join().unwrap();
    let peer_lines = reader.join().unwrap();
    let logs = format!(
        "--- loadgen ({lg_status:?}):\n{lg_log}\n--- aiortc ({peer_status:?}) stdout:\n{}\n--- aiortc stderr:\n{peer_log}\n--- edge log:\n{}",
        peer_lines.join("\n"),
        edge.log()
    );

    // loadgen exits 2 ("no media frame received") here by design: the only frames it got
    // are aiortc's plain Opus, which it counts as SFrame decrypt failures.
    let lg_status = lg_status.unwrap_or_else(|| panic!("loadgen did not finish\n{logs}"));
    assert!(
        matches!(lg_status.code(), Some(0 | 2)),
        "loadgen failed\n{logs}"
    );
    let report: Value = serde_json::from_slice(
        &std::fs::read(&report_path).unwrap_or_else(|e| panic!("no loadgen report: {e}\n{logs}")),
    )
    .unwrap();
    let summary = peer_lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "summary")
        .unwrap_or_else(|| panic!("aiortc printed no summary\n{logs}"));
    let peer_status = peer_status.unwrap_or_else(|| panic!("aiortc did not finish\n{logs}"));
    assert!(
        peer_status.success(),
        "aiortc failed: {}\n{logs}",
        summary["errors"]
    );

    // Both joined.
    assert_eq!(report["joined"], 1, "loadgen did not join\n{logs}");
    assert_eq!(summary["joined"], true, "{logs}");
    assert_eq!(summary["peer_joined"][0], "p0", "{logs}");

    // aiortc got RTP audio and video from p0 (counted before its decoders, which cannot
    // read SFrame ciphertext).
    let rtp = summary["rtp"].as_object().unwrap();
    for kind in ["audio", "video"] {
        let packets: u64 = rtp
            .values()
            .filter(|m| m["peer"] == "p0" && m["kind"] == kind)
            .map(|m| m["packets"].as_u64().unwrap())
            .sum();
        assert!(packets > 0, "aiortc received no {kind} RTP from p0\n{logs}");
    }

    // loadgen got aiortc's audio: every packet it received is aiortc's (nobody else
    // sends), and those frames are not SFrame, so they show as decrypt failures.
    let pps_out = report["pps_out"].as_f64().unwrap();
    assert!(pps_out > 0.0, "loadgen received no RTP\n{logs}");
    assert!(
        report["decrypt_failures"].as_u64().unwrap() > 0,
        "loadgen saw no (foreign) frame\n{logs}"
    );
    assert_eq!(report["frames_received"], 0, "{logs}");

    // Data channels, relayed verbatim both ways.
    assert!(
        summary["keys_messages"].as_u64().unwrap() > 0,
        "aiortc got no sframe-keys message\n{logs}"
    );
    let first_key: Value =
        serde_json::from_str(summary["first_keys_message"].as_str().unwrap()).unwrap();
    assert_eq!(first_key["kid"], 0, "p0 announces KID 0: {first_key}");
    assert!(first_key["key_b64"].is_string(), "{first_key}");
    assert!(
        summary["chat_messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "hello from loadgen"),
        "aiortc got no chat from loadgen\n{logs}"
    );
    assert!(
        report["chat_messages"].as_u64().unwrap() > 0,
        "loadgen got no chat from aiortc\n{logs}"
    );

    // The edge forwarded both kinds.
    let after = edge.metrics();
    for kind in ["audio", "video"] {
        assert!(
            forwarded(&after, kind) > forwarded(&before, kind),
            "edge_sfu_packets_forwarded_total{{kind=\"{kind}\"}} did not grow\n{logs}"
        );
    }
    drop(lg);
    drop(peer);
    drop(edge);
    drop(ns);
}
