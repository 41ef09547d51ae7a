//! Group calls end to end on the real binary: `edge --cores 2` carries two rooms of six
//! `loadgen sfu` participants (str0m clients, SFrame-encrypted audio and video, keys
//! relayed on the `sframe-keys` data channel). Every participant must join, every frame
//! must decrypt at its receivers (the edge passes the SFrame bytes through untouched), and
//! each publisher's media must reach the five others. Rooms land on both shards.
//!
//! Needs the `loadgen` binary (built by `cargo test --workspace`; built here if missing).

mod common;
use common::*;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const SFU_SECRET: &[u8] = b"sfu test secret for calls: at least thirty-two bytes";

/// `target/<profile>/loadgen`, next to the edge binary under test.
fn loadgen() -> PathBuf {
    let bin = PathBuf::from(EDGE).with_file_name("loadgen");
    if !bin.exists() {
        eprintln!("loadgen is not built; building it (cargo build -p loadgen)");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "loadgen"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo");
        assert!(status.success(), "building loadgen failed");
    }
    assert!(bin.exists(), "no loadgen binary at {}", bin.display());
    bin
}

#[test]
fn two_rooms_of_six_get_decryptable_media_through_two_shards() {
    let setup = prod_setup(
        "strict",
        "[sfu]\nsecret_file = \"sfu.key\"\nmedia_port_base = 0\npublic_ip = \"127.0.0.1\"\n",
    );
    write_secret(&setup.dir.path().join("sfu.key"), SFU_SECRET);
    let cfg = setup.config();
    let edge = start_with_log(
        &["--config", cfg.to_str().unwrap()],
        setup.dir,
        "info,oxpulse_edge::sfu=debug",
    );
    let secret = edge.dir.path().join("sfu.key");
    let ca = edge.dir.path().join("edge.crt");
    let report = edge.dir.path().join("loadgen.json");
    // The node serves edge.test (its certificate's name): dial the front directly.
    let url = format!("wss://edge.test:{}", edge.front.port());
    // A run id whose two rooms (lg-<id>-0, lg-<id>-1) hash to different shards.
    let run_id = (0..)
        .map(|i| format!("calls{i}"))
        .find(|id| {
            shards::shard_of(format!("lg-{id}-0").as_bytes(), 2)
                != shards::shard_of(format!("lg-{id}-1").as_bytes(), 2)
        })
        .unwrap();
    let out = Command::new(loadgen())
        .args(["sfu", "--url", &url, "--connect-to"])
        .arg(edge.front.to_string())
        .arg("--secret-file")
        .arg(&secret)
        .arg("--ca")
        .arg(&ca)
        .args(["--rooms", "2", "--participants", "6", "--duration", "4"])
        .args(["--video-kbps", "300", "--run-id", &run_id, "--json"])
        .arg(&report)
        .output()
        .expect("run loadgen");
    let text = format!(
        "loadgen stdout:\n{}\nloadgen stderr:\n{}\nedge log:\n{}",
        stdout(&out),
        stderr(&out),
        edge.log()
    );
    assert!(out.status.success(), "{text}");
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let n = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {r}"));
    assert_eq!(n("joined"), 12.0, "{text}");
    assert_eq!(n("decrypt_failures"), 0.0, "{text}");
    assert_eq!(n("frames_broken"), 0.0, "{text}");
    // Each publisher reaches the 5 others (a generous bound on loss: this checks fan-out
    // and integrity, not speed; the benchmark measures loss).
    // (The measured window's edges let a few packets sent just before it be counted
    // as received inside it, so the ratio may exceed 5 by a hair.)
    let fanout = n("fanout");
    assert!((4.5..=5.2).contains(&fanout), "fan-out {fanout}\n{text}");
    assert!(n("key_messages") > 0.0, "no sframe-keys relayed\n{text}");
    // Each room's six sessions ran on its owner shard: six on shard 0, six on shard 1.
    let log = edge.log();
    for shard in 0..2 {
        let sessions = log
            .matches(&format!("signalling session started shard={shard}"))
            .count();
        assert_eq!(sessions, 6, "shard {shard}\n{text}");
    }
    assert!(edge.metric("edge_sfu_packets_forwarded_total{kind=\"video\"}") > 0);
    assert!(edge.metric("edge_sfu_packets_forwarded_total{kind=\"audio\"}") > 0);
    // Nothing of a call outlives it: once everyone has left, no room or participant is
    // left on any shard.
    let mut left = (u64::MAX, u64::MAX);
    for _ in 0..100 {
        left = (
            edge.metric("edge_sfu_rooms"),
            edge.metric("edge_sfu_participants"),
        );
        if left == (0, 0) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        left,
        (0, 0),
        "rooms/participants left after the call\n{text}"
    );
}
