//! `edge sni` prints the documented daily pick (SHA-256 of "<node>:<date>" mod pool size).

mod common;
use common::*;
use std::process::Command;

fn sni(args: &[&str]) -> std::process::Output {
    Command::new(EDGE).arg("sni").args(args).output().unwrap()
}

#[test]
fn prints_the_golden_pick() {
    let pool =
        "n0.example,n1.example,n2.example,n3.example,n4.example,n5.example,n6.example,n7.example";
    // Expected indexes computed with Python's hashlib (see src/tunnel/sni.rs tests).
    for (date, want) in [("2026-11-28", "n7.example"), ("2026-11-29", "n5.example")] {
        let out = sni(&["--node-id", "edge-fra-1", "--date", date, "--pool", pool]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out).trim(), want);
    }
}

#[test]
fn reads_node_and_pool_from_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[node]\nid = \"node-a\"\ndev = true\n[tunnel]\nsni_pool = [\"a.example\", \"b.example\", \"c.example\", \"d.example\", \"e.example\"]\n",
    )
    .unwrap();
    let out = sni(&["--config", cfg.to_str().unwrap(), "--date", "2026-01-01"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "d.example");
}

#[test]
fn bad_input_is_refused() {
    assert_eq!(
        sni(&["--node-id", "x", "--date", "2026-02-30", "--pool", "a"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        sni(&["--node-id", "x", "--pool", ""]).status.code(),
        Some(2)
    );
}

#[test]
fn every_shard_gets_the_pick_at_start() {
    let setup = prod_setup(
        "strict",
        "[tunnel]\nsni_pool = [\"a.example\", \"b.example\", \"c.example\", \"d.example\", \"e.example\"]\n",
    );
    let cfg = setup.config();
    let edge = start(&["--config", cfg.to_str().unwrap()], setup.dir);
    let mut applied = 0;
    for _ in 0..200 {
        applied = edge.metric("edge_tunnel_sni_rotations_total");
        if applied == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert_eq!(
        applied,
        2,
        "one rotation event per shard; log:\n{}",
        edge.log()
    );
    assert!(!edge.log().contains("a.example") && !edge.log().contains("d.example"));
}
