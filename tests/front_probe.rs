//! Probe classification through the real binary: strangers and probes get the
//! cover; invite links and signed cookies reach the app route, including
//! Service Worker fetches and WebSocket upgrades.

mod common;
use common::*;
use oxpulse_edge::front::probe::SessionKeys;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Status code and body of a curl call (`-k` since certs are self-signed).
fn status(edge: &Edge, host: &str, path: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec!["-k", "-w", "\n%{http_code}"];
    args.extend_from_slice(extra);
    let out = edge.curl(host, path, &args);
    let text = stdout(&out);
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_string(), body.to_string())
}

#[test]
fn strict_policy_classifies() {
    let setup = prod_setup("strict", "");
    let keys = SessionKeys::new(&setup.secret);
    let cfg = setup.config();
    let edge = start(&["--config", cfg.to_str().unwrap()], setup.dir);
    let cookie = format!(
        "Cookie: theme=dark; oxpulse_session={}",
        keys.mint_cookie(now(), 3600, [7; 16])
    );
    let expired = format!(
        "Cookie: oxpulse_session={}",
        keys.mint_cookie(now() - 7200, 3600, [7; 16])
    );
    let forged = format!(
        "Cookie: oxpulse_session={}",
        SessionKeys::new(&[9u8; 48]).mint_cookie(now(), 3600, [7; 16])
    );

    // A stranger and probes with bad cookies get the cover, byte for byte the same.
    let (code, stranger) = status(&edge, "edge.test", "/", &[]);
    assert_eq!(code, "200");
    for bad in [
        &expired,
        &forged,
        &"Cookie: oxpulse_session=v1.garbage".to_string(),
    ] {
        let (c, b) = status(&edge, "edge.test", "/", &["-H", bad]);
        assert_eq!(
            (c.as_str(), b.as_str()),
            ("200", stranger.as_str()),
            "{bad}"
        );
    }
    let (code, _) = status(&edge, "edge.test", "/api/session", &[]);
    assert_eq!(code, "404", "unknown paths get the cover's 404");

    // A valid cookie reaches the app route (placeholder answers 503 until the proxy lands).
    let (code, body) = status(&edge, "edge.test", "/api/session", &["-H", &cookie]);
    assert_eq!(code, "503");
    assert!(body.contains("app backend"), "{body}");

    // Service Worker precache fetch of "/" with the cookie: app, not the cover.
    let (code, _) = status(
        &edge,
        "edge.test",
        "/",
        &[
            "-H",
            &cookie,
            "-H",
            "Service-Worker: script",
            "-H",
            "Sec-Fetch-Dest: serviceworker",
        ],
    );
    assert_eq!(code, "503");

    // WebSocket upgrade with the cookie is app, without it the cover.
    let ws = [
        "-H",
        "Connection: Upgrade",
        "-H",
        "Upgrade: websocket",
        "-H",
        "Sec-WebSocket-Version: 13",
        "-H",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "--http1.1",
    ];
    let mut with_cookie = ws.to_vec();
    with_cookie.extend_from_slice(&["-H", &cookie]);
    assert_eq!(status(&edge, "edge.test", "/ws", &with_cookie).0, "503");
    assert_eq!(status(&edge, "edge.test", "/ws", &ws).0, "404");

    // An invite sets the cookie and redirects home; a forged invite is a cover 404.
    let invite = keys.mint_invite(now(), 600, [1; 16]);
    let out = edge.curl(
        "edge.test",
        &format!("/invite/{invite}"),
        &["-k", "-D", "-", "-o", "/dev/null"],
    );
    let head = stdout(&out).to_lowercase();
    assert!(
        head.starts_with("http/2 302") || head.starts_with("http/1.1 302"),
        "{head}"
    );
    let set_cookie = head
        .lines()
        .find(|l| l.starts_with("set-cookie:"))
        .expect("set-cookie");
    assert!(
        set_cookie.contains("httponly") && set_cookie.contains("secure"),
        "{set_cookie}"
    );
    let value = set_cookie
        .split_once('=')
        .unwrap()
        .1
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_string();
    // Header names are lowercased above; the value's case matters, so re-read it.
    let raw = stdout(&out);
    let value_exact = raw
        .lines()
        .find(|l| l.to_lowercase().starts_with("set-cookie:"))
        .and_then(|l| l.split_once('=').map(|x| x.1))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(value.len(), value_exact.len());
    let (code, _) = status(
        &edge,
        "edge.test",
        "/",
        &["-H", &format!("Cookie: oxpulse_session={value_exact}")],
    );
    assert_eq!(code, "503", "the cookie from the invite opens the app");
    let forged_invite = SessionKeys::new(&[3u8; 48]).mint_invite(now(), 600, [1; 16]);
    assert_eq!(
        status(&edge, "edge.test", &format!("/invite/{forged_invite}"), &[]).0,
        "404"
    );

    // Unknown SNI: the default route serves only the cover, whatever the cookie.
    let (code, _) = status(&edge, "other.example", "/api/session", &["-H", &cookie]);
    assert_eq!(code, "404");

    assert_eq!(edge.metric("edge_front_requests_total{class=\"app\"}"), 4);
    assert!(edge.metric("edge_front_requests_total{class=\"invite\"}") >= 1);
    assert!(edge.metric("edge_front_routes_total{route=\"default\"}") >= 1);
    // Nothing identifying reached the log.
    let log = edge.log();
    assert!(
        !log.contains(&invite) && !log.contains("oxpulse_session=v1"),
        "{log}"
    );
}

#[test]
fn heuristic_policy_is_the_historical_rule() {
    let setup = prod_setup("heuristic", "");
    let cfg = setup.config();
    let edge = start(&["--config", cfg.to_str().unwrap()], setup.dir);
    assert_eq!(status(&edge, "edge.test", "/", &[]).0, "200");
    assert_eq!(status(&edge, "edge.test", "/api/x", &[]).0, "503");
    assert_eq!(
        status(
            &edge,
            "edge.test",
            "/",
            &["-H", "Origin: https://edge.test"]
        )
        .0,
        "503"
    );
    assert_eq!(
        status(
            &edge,
            "edge.test",
            "/",
            &["-H", "Cookie: oxpulse_session=anything"]
        )
        .0,
        "503"
    );
    assert_eq!(
        status(
            &edge,
            "edge.test",
            "/",
            &["-H", "Origin: https://evil.example"]
        )
        .0,
        "200"
    );
}
