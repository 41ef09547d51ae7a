//! Start-up checks, drain on SIGTERM, certificate reload on SIGHUP, config errors.

mod common;
use common::*;
use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

#[test]
fn sigterm_drains_and_exits_zero() {
    let setup = prod_setup("strict", "");
    let cfg = setup.config();
    let mut edge = start(&["--config", cfg.to_str().unwrap()], setup.dir);
    // An open connection that has not finished its hello delays the exit until the deadline.
    let mut held = TcpStream::connect(edge.front).unwrap();
    held.write_all(&[0x16, 0x03, 0x01]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    edge.signal("TERM");
    // While draining, readiness is withdrawn and the front stops accepting.
    let mut saw_draining = false;
    for _ in 0..100 {
        match http_get(edge.admin, "/readyz") {
            Ok((503, body)) if body.contains("draining") => {
                saw_draining = true;
                break;
            }
            Err(_) => break,
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    assert!(
        saw_draining,
        "readyz must report draining; log:\n{}",
        edge.log()
    );
    // Each shard closes its listener as it sees the drain start; wait (bounded) for all.
    let mut refused = false;
    for _ in 0..250 {
        if TcpStream::connect_timeout(&edge.front, Duration::from_secs(2)).is_err() {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        refused,
        "the front listener must be closed during the drain"
    );
    drop(held);
    let st = edge
        .wait_exit(Duration::from_secs(30))
        .expect("edge exits after the drain");
    assert!(st.success(), "exit status {st:?}; log:\n{}", edge.log());
    assert!(edge.log().contains("front drained"));
}

#[test]
fn second_signal_exits_at_once() {
    let setup = prod_setup("strict", "");
    // A long drain deadline, so only the second signal can end the run.
    let path = setup.config();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("drain_timeout_secs = 5", "drain_timeout_secs = 600");
    std::fs::write(&path, text).unwrap();
    let mut edge = start(&["--config", path.to_str().unwrap()], setup.dir);
    let mut held = TcpStream::connect(edge.front).unwrap();
    held.write_all(&[0x16, 0x03, 0x01]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    edge.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    assert!(edge.child.try_wait().unwrap().is_none(), "still draining");
    edge.signal("INT");
    let st = edge
        .wait_exit(Duration::from_secs(30))
        .expect("second signal ends the process");
    assert!(!st.success());
}

#[test]
fn memlock_too_low_is_a_clear_error() {
    let setup = prod_setup("strict", "");
    let script = format!(
        "ulimit -l 64 && exec {EDGE} --cores 2 --config {}",
        setup.config().display()
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("edge hung under a low memlock limit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success());
    assert!(err.to_lowercase().contains("memlock"), "{err}");
    assert!(err.contains("ulimit -l"), "the fix must be named: {err}");
}

#[test]
fn too_many_cores_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[node]\ndev = true\n[front]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let allowed = std::thread::available_parallelism().unwrap().get();
    let run = Command::new(EDGE)
        .args([
            "--cores",
            &(allowed + 1).to_string(),
            "--config",
            cfg.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = stderr(&run);
    assert!(err.contains("cores") || err.contains("CPU"), "{err}");
}

#[test]
fn bad_config_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[node]\nid = \"Bad Id!\"\ndev = false\nbogus = 1\n[front]\nlisten = \"nowhere\"\npolicy = \"lax\"\n[front.limits]\nmax_body_bytes = \"big\"\nheader_timout_ms = 5\n",
    )
    .unwrap();
    let out = Command::new(EDGE)
        .args(["check", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for key in [
        "node.bogus",
        "front.listen",
        "front.policy",
        "front.limits.max_body_bytes",
        "front.limits.header_timout_ms",
    ] {
        assert!(err.contains(key), "missing {key} in:\n{err}");
    }
}

#[test]
fn check_prints_config_without_secrets() {
    let setup = prod_setup("strict", "");
    let out = Command::new(EDGE)
        .args(["check", "--config", setup.config().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("edge.test") && text.contains("session.key"));
    let secret_text = String::from_utf8_lossy(&setup.secret).into_owned();
    assert!(!text.contains(&secret_text));
}

#[test]
fn world_readable_secret_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let setup = prod_setup("strict", "");
    let key = setup.dir.path().join("session.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(EDGE)
        .args(["check", "--config", setup.config().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
}

#[test]
fn sighup_reloads_certificates() {
    let setup = prod_setup("strict", "");
    let dir_path = setup.dir.path().to_path_buf();
    // Keep a copy: the original path is overwritten with the new certificate below.
    let ca_old = dir_path.join("old-ca.pem");
    std::fs::copy(&setup.ca_pem, &ca_old).unwrap();
    let cfg = setup.config();
    let edge = start(&["--config", cfg.to_str().unwrap()], setup.dir);
    let ok_with = |ca: &std::path::Path| {
        let out = edge.curl(
            "edge.test",
            "/",
            &[
                "--cacert",
                ca.to_str().unwrap(),
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ],
        );
        stdout(&out) == "200"
    };
    assert!(ok_with(&ca_old));
    // New certificate written in place (same paths), then SIGHUP.
    let fresh = tempfile::tempdir().unwrap();
    let (c, k) = write_cert(fresh.path(), "new", &["edge.test"]);
    std::fs::copy(&c, dir_path.join("edge.crt")).unwrap();
    std::fs::copy(&k, dir_path.join("edge.key")).unwrap();
    edge.signal("HUP");
    // Every shard applies the new set (one reload counted per shard).
    let mut applied = 0;
    for _ in 0..200 {
        applied = edge.metric("edge_tls_cert_reloads_total");
        if applied == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(applied, 2, "log:\n{}", edge.log());
    // New connections, whichever shard takes them, see only the new certificate.
    for _ in 0..6 {
        assert!(
            ok_with(&c),
            "new certificate not served; log:\n{}",
            edge.log()
        );
        assert!(!ok_with(&ca_old), "old certificate still served");
    }
}
