//! The real binary serves the cover site over TLS 1.3 and 1.2, HTTP/1.1 and h2,
//! and counts what it served.

mod common;
use common::*;

fn dev_edge() -> Edge {
    let dir = tempfile::tempdir().unwrap();
    // The embedded dev config, but on ports chosen now so tests can run in parallel.
    let cfg = dir.path().join("dev.toml");
    std::fs::write(
        &cfg,
        "[node]\nid = \"dev-node\"\ndev = true\n[front]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[runtime]\ncores = 2\n",
    )
    .unwrap();
    start(&["--config", cfg.to_str().unwrap()], dir)
}

#[test]
fn cover_over_every_tls_and_http_version() {
    let edge = dev_edge();
    let cases: [(&[&str], &str, &str); 4] = [
        (&["--http1.1", "--tlsv1.3"], "1.1", "TLSv1.3"),
        (&["--http2", "--tlsv1.3"], "2", "TLSv1.3"),
        (
            &["--http1.1", "--tlsv1.2", "--tls-max", "1.2"],
            "1.1",
            "TLSv1.2",
        ),
        (
            &["--http2", "--tlsv1.2", "--tls-max", "1.2"],
            "2",
            "TLSv1.2",
        ),
    ];
    for (flags, http, tls) in cases {
        let mut args = vec!["-k", "-v", "-w", "\n%{http_code} %{http_version}"];
        args.extend_from_slice(flags);
        let out = edge.curl("localhost", "/", &args);
        let body = stdout(&out);
        let err = stderr(&out);
        assert!(out.status.success(), "curl {flags:?} failed: {err}");
        assert!(body.ends_with(&format!("200 {http}")), "{flags:?}: {body}");
        assert!(body.contains("<html"), "{flags:?}: cover page expected");
        assert!(
            err.contains(&format!("SSL connection using {tls}")),
            "{flags:?}: {err}"
        );
        assert!(err.to_lowercase().contains("server: nginx"), "{err}");
    }
    assert_eq!(edge.metric("edge_front_requests_total{class=\"cover\"}"), 4);
    assert_eq!(
        edge.metric("edge_front_connections_by_protocol_total{proto=\"h2\"}"),
        2
    );
    assert_eq!(
        edge.metric("edge_front_tls_handshakes_total{result=\"ok\"}"),
        4
    );
    assert_eq!(edge.metric("edge_shards"), 2);
}

#[test]
fn conditional_get_head_and_404() {
    let edge = dev_edge();
    let out = edge.curl(
        "localhost",
        "/",
        &["-k", "-sS", "-D", "-", "-o", "/dev/null"],
    );
    let head = stdout(&out).to_lowercase();
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("etag header")
        .trim()
        .to_string();
    let cond = format!("If-None-Match: {etag}");
    let out = edge.curl(
        "localhost",
        "/",
        &["-k", "-H", &cond, "-o", "/dev/null", "-w", "%{http_code}"],
    );
    assert_eq!(stdout(&out), "304");
    let out = edge.curl("localhost", "/", &["-k", "-I", "-w", "%{http_code}"]);
    assert!(stdout(&out).ends_with("200"));
    let out = edge.curl(
        "localhost",
        "/no/such/page",
        &["-k", "-w", "\n%{http_code}"],
    );
    let body = stdout(&out);
    assert!(body.ends_with("404"), "{body}");
    assert!(body.contains("<html"), "the cover's own 404 page");
}

#[test]
fn version_names_the_commit() {
    let out = std::process::Command::new(EDGE)
        .arg("--version")
        .output()
        .unwrap();
    let v = stdout(&out);
    assert!(out.status.success());
    assert!(
        v.contains(env!("CARGO_PKG_VERSION")) && v.contains("git "),
        "{v}"
    );
}
