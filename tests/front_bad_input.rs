//! Malformed input is answered the way nginx answers it, and never crashes the node.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn edge_with(extra: &str) -> Edge {
    let setup = prod_setup("strict", extra);
    let cfg = setup.config();
    start(&["--config", cfg.to_str().unwrap()], setup.dir)
}

fn raw(edge: &Edge, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(edge.front).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[test]
fn garbage_before_tls() {
    let edge = edge_with("");
    let plain = raw(&edge, b"GET / HTTP/1.1\r\nHost: edge.test\r\n\r\n");
    let text = String::from_utf8_lossy(&plain);
    assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("The plain HTTP request was sent to HTTPS port"));
    assert!(text.contains("Server: nginx"));

    // Random bytes, an SSLv2 hello and a truncated hello: closed without an answer.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..512)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    assert!(raw(&edge, &noise).is_empty());
    assert!(raw(&edge, &[0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15]).is_empty());
    {
        // A hello cut short, then the client goes away: nothing is sent back.
        let mut s = TcpStream::connect(edge.front).unwrap();
        s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
            .unwrap();
    }
    assert!(edge.metric("edge_front_hello_rejected_total{reason=\"plain_http\"}") >= 1);
    assert!(edge.metric("edge_front_hello_rejected_total{reason=\"sslv2\"}") >= 1);
    // Still serving.
    let out = edge.curl(
        "edge.test",
        "/",
        &["-k", "-o", "/dev/null", "-w", "%{http_code}"],
    );
    assert_eq!(stdout(&out), "200");
}

#[test]
fn http_limits_like_nginx() {
    let edge = edge_with("[front.limits]\nheader_timeout_ms = 1500\nhandshake_timeout_ms = 1500\nmax_body_bytes = 1048576\n");
    let code = |extra: &[&str], path: &str| {
        let mut a = vec!["-k", "-o", "/dev/null", "-w", "%{http_code}"];
        a.extend_from_slice(extra);
        stdout(&edge.curl("edge.test", path, &a))
    };
    // A 2 MiB body is refused with 413.
    let big = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(big.path(), vec![b'x'; 2 << 20]).unwrap();
    let arg = format!("@{}", big.path().display());
    assert_eq!(code(&["--http1.1", "--data-binary", &arg], "/"), "413");
    // POST and unknown methods on the cover get 405.
    assert_eq!(code(&["-X", "POST", "--data", "a=1"], "/"), "405");
    assert_eq!(code(&["-X", "FOO"], "/"), "405");
    // Huge headers are refused (nginx answers 400; hyper's 431 is equally mainstream).
    let huge = format!("X-Big: {}", "a".repeat(64 * 1024));
    let c = code(&["--http1.1", "-H", &huge], "/");
    assert!(c == "431" || c == "400", "{c}");
    // No Host on HTTP/1.1: 400.
    assert_eq!(code(&["--http1.1", "-H", "Host:"], "/"), "400");
    // HTTP/1.0 without Host is legal and gets the page.
    assert_eq!(code(&["--http1.0", "-H", "Host:"], "/"), "200");
}

/// The first bytes of a real ClientHello for `edge.test`, made by rustls.
fn real_hello() -> Vec<u8> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("edge.test").unwrap();
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

#[test]
fn slowloris_is_cut_off() {
    let edge = edge_with("[front.limits]\nhandshake_timeout_ms = 1000\n");
    // A valid hello sent one byte every 100 ms never completes within the deadline.
    let hello = real_hello();
    let mut s = TcpStream::connect(edge.front).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut closed = false;
    for b in hello.iter().take(60) {
        if s.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !closed {
        let mut buf = [0u8; 16];
        closed = matches!(s.read(&mut buf), Ok(0) | Err(_));
    }
    assert!(closed, "a dribbling client must be disconnected");
    assert_eq!(
        edge.metric("edge_front_hello_rejected_total{reason=\"timeout\"}"),
        1
    );
}
