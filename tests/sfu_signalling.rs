//! Group-call signalling on the real binary, spoken to by python-websockets (a client
//! nobody here wrote): authentication answers, the WebSocket codec, the turn rules that
//! work without rooms, and that each room is served by its owner shard.

mod common;
use common::*;

use std::process::Command;

use oxpulse_edge::sfu::jwt::{mint, sign_parts, Claims};
use serde_json::Value;

const SFU_SECRET: &[u8] = b"sfu test secret: thirty-two bytes or more, of course";
const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ws_client.py");

fn sfu_edge() -> Edge {
    let setup = prod_setup(
        "strict",
        "[sfu]\nsecret_file = \"sfu.key\"\noffer_timeout_secs = 1\nmedia_port_base = 0\n",
    );
    write_secret(&setup.dir.path().join("sfu.key"), SFU_SECRET);
    let cfg = setup.config();
    start_with_log(
        &["--config", cfg.to_str().unwrap()],
        setup.dir,
        "info,oxpulse_edge::sfu=debug",
    )
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(room: &str, sub: &str, exp: u64) -> String {
    let claims = Claims {
        room: room.into(),
        sub: sub.into(),
        exp,
        nbf: None,
        iat: Some(now()),
    };
    mint(&claims, SFU_SECRET)
}

/// Runs the python client; returns its events.
fn ws(edge: &Edge, path: &str, args: &[&str]) -> Vec<Value> {
    let probe = Command::new("python3")
        .args(["-c", "import websockets"])
        .output()
        .expect("python3 is installed (scripts/install-peers.sh)");
    assert!(
        probe.status.success(),
        "python-websockets is missing: run scripts/install-peers.sh"
    );
    let port = edge.front.port().to_string();
    let ca = edge.dir.path().join("edge.crt");
    let mut all = vec![
        CLIENT,
        "--port",
        &port,
        "--path",
        path,
        "--cafile",
        ca.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let out = Command::new("python3").args(&all).output().unwrap();
    assert!(out.status.success(), "client failed: {}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn events(evs: &[Value]) -> Vec<String> {
    evs.iter()
        .map(|e| match e["event"].as_str().unwrap() {
            "open" => format!("open {}", e["subprotocol"]),
            "recv" => format!("recv {}", e["data"].as_str().unwrap()),
            "close" => format!("close {}", e["code"]),
            "rejected" => format!("rejected {}", e["status"]),
            other => other.to_owned(),
        })
        .collect()
}

/// (status, body) of a plain HTTP/1.1 request with the WebSocket headers, via curl.
fn curl_upgrade(edge: &Edge, path: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "-k",
        "--http1.1",
        "-w",
        "\n%{http_code} %{content_type}",
        "-H",
        "Upgrade: websocket",
        "-H",
        "Connection: Upgrade",
        "-H",
        "Sec-WebSocket-Version: 13",
        "-H",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ];
    args.extend_from_slice(extra);
    let out = edge.curl("edge.test", path, &args);
    let text = stdout(&out);
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.to_owned(), body.to_owned())
}

#[test]
fn strangers_get_the_cover_404_and_refused_tokens_a_401() {
    let edge = sfu_edge();
    let unknown = edge.curl(
        "edge.test",
        "/no-such-page",
        &["-k", "--http1.1", "-w", "\n%{http_code} %{content_type}"],
    );
    let unknown = stdout(&unknown);
    let (cover_body, cover_status) = unknown.rsplit_once('\n').unwrap();
    assert!(cover_status.starts_with("404 "), "{cover_status}");

    let forged = mint(
        &Claims {
            room: "room1".into(),
            sub: "eve".into(),
            exp: now() + 60,
            nbf: None,
            iat: None,
        },
        b"not the node's secret, but long enough",
    );
    let payload = serde_json::json!({"room": "room1", "sub": "eve", "exp": now() + 60});
    let payload = serde_json::to_vec(&payload).unwrap();
    let alg_none = sign_parts(br#"{"alg":"none"}"#, &payload, SFU_SECRET);
    let none_unsigned = {
        let (body, _) = alg_none.rsplit_once('.').unwrap();
        format!("{body}.")
    };
    let good = token("room1", "alice", now() + 60);
    for (what, headers) in [
        ("no token", vec![]),
        ("forged", vec![format!("Authorization: Bearer {forged}")]),
        (
            "alg none",
            vec![format!("Authorization: Bearer {alg_none}")],
        ),
        (
            "alg none unsigned",
            vec![format!(
                "Sec-WebSocket-Protocol: oxpulse-sfu.v1, bearer.{none_unsigned}"
            )],
        ),
        ("garbage", vec!["Authorization: Bearer x.y.z".to_owned()]),
    ] {
        let mut extra = Vec::new();
        for h in &headers {
            extra.extend(["-H", h.as_str()]);
        }
        let (status, body) = curl_upgrade(&edge, "/sfu/ws/room1", &extra);
        assert_eq!(status, cover_status, "{what}");
        assert_eq!(body, cover_body, "{what}: not the cover's 404 bytes");
    }
    // Over h2 even a good token gets the cover (no RFC 8441).
    let h2 = edge.curl(
        "edge.test",
        "/sfu/ws/room1",
        &[
            "-k",
            "--http2",
            "-w",
            "\n%{http_code} %{content_type}",
            "-H",
            &format!("Authorization: Bearer {good}"),
        ],
    );
    let h2 = stdout(&h2);
    let (body, status) = h2.rsplit_once('\n').unwrap();
    assert_eq!((status, body), (cover_status, cover_body));

    // python-websockets sees the same 404.
    let evs = ws(&edge, "/sfu/ws/room1", &["--auth", &forged]);
    assert_eq!(events(&evs), ["rejected 404"]);
    assert_eq!(evs[0]["body"].as_str().unwrap(), cover_body);

    let expired = token("room1", "alice", now() - 3600);
    assert_eq!(
        events(&ws(&edge, "/sfu/ws/room1", &["--auth", &expired])),
        ["rejected 401"]
    );
    assert_eq!(
        events(&ws(&edge, "/sfu/ws/room2", &["--proto", &good])),
        ["rejected 401"],
        "wrong room"
    );
    assert_eq!(
        edge.metric("edge_sfu_ws_upgrades_total{result=\"unauthenticated\"}"),
        6
    );
    assert_eq!(
        edge.metric("edge_sfu_ws_upgrades_total{result=\"refused\"}"),
        2
    );
    assert_eq!(edge.metric("edge_sfu_ws_upgrades_total{result=\"ok\"}"), 0);
    let log = edge.log();
    assert!(
        !log.contains(&good) && !log.contains(&forged),
        "a token reached the log"
    );
}

#[test]
fn signalling_over_a_real_websocket_client() {
    let edge = sfu_edge();
    let t = token("room1", "alice", now() + 60);
    // Authorization header; "v=0" is no SDP offer the rooms can read: error 4002, then
    // close 4002.
    let evs = ws(
        &edge,
        "/sfu/ws/room1",
        &["--auth", &t, "--send", r#"{"type":"offer","sdp":"v=0"}"#],
    );
    assert_eq!(
        events(&evs),
        [
            "open null",
            r#"recv {"type":"error","code":4002,"message":"bad offer"}"#,
            "close 4002"
        ]
    );
    // Subprotocol token: the server selects oxpulse-sfu.v1; WebSocket pings are answered;
    // garbage closes with 4000.
    let evs = ws(
        &edge,
        "/sfu/ws/room1",
        &["--proto", &t, "--ws-ping", "--send", "{not json"],
    );
    assert_eq!(
        events(&evs),
        [
            "open \"oxpulse-sfu.v1\"",
            "pong",
            r#"recv {"type":"error","code":4000,"message":"not a signalling message"}"#,
            "close 4000"
        ]
    );
    // A ping message before the offer is out of turn.
    let evs = ws(
        &edge,
        "/sfu/ws/room1",
        &["--auth", &t, "--send", r#"{"type":"ping"}"#],
    );
    assert_eq!(events(&evs).last().unwrap(), "close 4000");
    // No offer within offer_timeout_secs (1 s here): 4001.
    let evs = ws(&edge, "/sfu/ws/room1", &["--auth", &t]);
    assert_eq!(
        events(&evs),
        [
            "open null",
            r#"recv {"type":"error","code":4001,"message":"no offer in time"}"#,
            "close 4001"
        ]
    );
    // `leave` closes with 1000.
    let evs = ws(
        &edge,
        "/sfu/ws/room1",
        &["--auth", &t, "--send", r#"{"type":"leave"}"#],
    );
    assert_eq!(events(&evs), ["open null", "close 1000"]);

    assert_eq!(edge.metric("edge_sfu_ws_upgrades_total{result=\"ok\"}"), 5);
    assert_eq!(edge.metric("edge_sfu_closes_total{code=\"4002\"}"), 1);
    assert_eq!(edge.metric("edge_sfu_closes_total{code=\"4000\"}"), 2);
    assert_eq!(edge.metric("edge_sfu_closes_total{code=\"4001\"}"), 1);
    assert_eq!(edge.metric("edge_sfu_closes_total{code=\"1000\"}"), 1);
    assert_eq!(edge.metric("edge_sfu_signalling_sessions"), 0);
    let log = edge.log();
    assert!(!log.contains(&t), "the token reached the log");
    assert!(!log.contains("room1"), "a room id reached the log");
}

#[test]
fn each_room_is_served_by_its_owner_shard() {
    let edge = sfu_edge();
    // One room owned by each of the two shards.
    let room_on = |shard: usize| {
        (0..)
            .map(|i| format!("room-{i}"))
            .find(|r| shards::shard_of(r.as_bytes(), 2) == shard)
            .unwrap()
    };
    let started = |edge: &Edge, shard: usize| {
        edge.log()
            .matches(&format!("signalling session started shard={shard}"))
            .count()
    };
    const TRIES: usize = 6;
    for owner in [0, 1] {
        let room = room_on(owner);
        let path = format!("/sfu/ws/{room}");
        let t = token(&room, "alice", now() + 60);
        let before = (started(&edge, 0), started(&edge, 1));
        // Several connections, so the kernel's reuseport hashing lands some on the other
        // shard; each must still be served by the owner.
        for _ in 0..TRIES {
            let evs = ws(
                &edge,
                &path,
                &["--auth", &t, "--send", r#"{"type":"leave"}"#],
            );
            assert_eq!(events(&evs), ["open null", "close 1000"]);
        }
        // Debug lines are written as the sessions start; allow the log thread to catch up.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let after = loop {
            let after = (started(&edge, 0), started(&edge, 1));
            if after.0 + after.1 >= before.0 + before.1 + TRIES
                || std::time::Instant::now() > deadline
            {
                break after;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let on_owner = if owner == 0 {
            after.0 - before.0
        } else {
            after.1 - before.1
        };
        let elsewhere = if owner == 0 {
            after.1 - before.1
        } else {
            after.0 - before.0
        };
        assert_eq!(
            (on_owner, elsewhere),
            (TRIES, 0),
            "room owned by shard {owner}"
        );
    }
    assert_eq!(
        edge.metric("edge_sfu_closes_total{code=\"1000\"}"),
        2 * TRIES as u64
    );
    // Sessions accepted by the other shard crossed the bus. How many depends on the
    // kernel's reuseport hashing of each connection, so keep connecting until one has
    // (each connection lands on the non-owner with probability 1/2).
    let room = room_on(0);
    let t = token(&room, "alice", now() + 60);
    for _ in 0..40 {
        if edge.metric("edge_sfu_handoffs_total") > 0 {
            break;
        }
        ws(
            &edge,
            &format!("/sfu/ws/{room}"),
            &["--auth", &t, "--send", r#"{"type":"leave"}"#],
        );
    }
    assert!(
        edge.metric("edge_sfu_handoffs_total") > 0,
        "no session was handed over"
    );
    assert_eq!(started(&edge, 1), TRIES, "shard 1 served only its own room");
}
