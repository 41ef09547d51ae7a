//! End-to-end tests of `loadgen https` against an in-process TLS server.
//! They assert on correctness of the counting, never on speed.

mod test_server;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser as _;
use http::StatusCode;
use loadgen::https::{self, HttpsArgs, HttpsConfig, Report};
use test_server::{Options, Seen, TestServer};

/// Builds a config exactly as the CLI would from `args` (after `https`).
fn config(args: &[&str]) -> HttpsConfig {
    let argv = std::iter::once("https").chain(args.iter().copied());
    HttpsConfig::from_args(&HttpsArgs::try_parse_from(argv).unwrap()).unwrap()
}

fn run(args: &[&str]) -> Report {
    https::run(&config(args)).unwrap()
}

fn assert_clean(report: &Report) {
    assert!(report.requests > 0, "{report:#?}");
    assert_eq!(report.errors, 0, "{report:#?}");
    assert_eq!(report.status_errors, 0, "{report:#?}");
    assert!(report.requests_per_sec > 0.0);
    assert!(report.p50_ms > 0.0 && report.p50_ms <= report.max_ms);
}

#[test]
fn h1_keepalive_reuses_one_connection_per_worker() {
    let server = TestServer::start(Options::default());
    let url = server.url("/hello");
    let report = run(&["--url", &url, "-d", "1", "-c", "4", "-t", "2", "--insecure"]);
    assert_clean(&report);
    assert_eq!(report.handshakes, 4);
    assert_eq!(report.connections, 4);
    assert_eq!(report.threads, 2);
    assert_eq!(
        (report.mode.as_str(), report.http.as_str()),
        ("keepalive", "1.1")
    );
    assert_eq!(Seen::get(&server.seen.connections), 4);
    assert_eq!(Seen::get(&server.seen.h2_requests), 0);
    assert!(Seen::get(&server.seen.h1_requests) >= report.requests);
}

#[test]
fn h2_keepalive_speaks_http2() {
    let server = TestServer::start(Options::default());
    let url = server.url("/");
    let report = run(&["--url", &url, "-d", "1", "-c", "3", "--h2", "--insecure"]);
    assert_clean(&report);
    assert_eq!(report.handshakes, 3);
    assert_eq!(report.http, "2");
    assert_eq!(Seen::get(&server.seen.h1_requests), 0);
    assert!(Seen::get(&server.seen.h2_requests) >= report.requests);
}

#[test]
fn new_conn_does_a_full_handshake_per_request() {
    let server = TestServer::start(Options::default());
    let url = server.url("/");
    let report = run(&[
        "--url",
        &url,
        "-d",
        "1",
        "-c",
        "2",
        "--new-conn",
        "--insecure",
    ]);
    assert_clean(&report);
    assert_eq!(report.mode, "new-conn");
    assert_eq!(report.handshakes, report.requests);
    assert!(Seen::get(&server.seen.connections) >= report.requests);
}

#[test]
fn new_conn_over_h2() {
    let server = TestServer::start(Options::default());
    let url = server.url("/");
    let report = run(&["--url", &url, "-d", "1", "--new-conn", "--h2", "--insecure"]);
    assert_clean(&report);
    assert_eq!(report.handshakes, report.requests);
    assert!(Seen::get(&server.seen.h2_requests) >= report.requests);
}

#[test]
fn json_report_has_the_documented_fields() {
    let server = TestServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let args = HttpsArgs::try_parse_from([
        "https",
        "--url",
        &server.url("/"),
        "-d",
        "0.5",
        "--insecure",
        "--json",
        json.to_str().unwrap(),
    ])
    .unwrap();
    let report = https::run_cli(&args).unwrap();
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for field in [
        "requests_per_sec",
        "handshakes_per_sec",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "max_ms",
        "errors",
        "status_errors",
        "requests",
        "handshakes",
        "duration_s",
        "connections",
        "mode",
        "http",
        "loadgen_cpu_s",
    ] {
        assert!(value.get(field).is_some(), "missing {field} in {value}");
    }
    assert_eq!(value["requests"], report.requests);
    assert_eq!(value["mode"], "keepalive");
    assert_eq!(value["http"], "1.1");
    assert!(value["loadgen_cpu_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn server_errors_count_as_status_errors() {
    let server = TestServer::start(Options {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        ..Options::default()
    });
    let url = server.url("/");
    let report = run(&["--url", &url, "-d", "1", "-c", "2", "--insecure"]);
    assert!(report.requests > 0);
    assert_eq!(report.status_errors, report.requests);
    assert_eq!(report.errors, 0, "{report:#?}");
}

#[test]
fn closed_port_counts_errors_and_terminates() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("https://127.0.0.1:{port}/");
    let started = Instant::now();
    let report = run(&["--url", &url, "-d", "1", "-c", "2", "--insecure"]);
    assert!(started.elapsed() < Duration::from_secs(11));
    assert_eq!(report.requests, 0);
    assert!(report.connect_errors > 0, "{report:#?}");
    assert_eq!(report.errors, report.connect_errors);
    assert!(report.first_error.as_deref().unwrap().contains("connect"));
}

#[test]
fn stalled_server_is_abandoned_at_the_hard_cap() {
    let server = TestServer::start(Options {
        stall: true,
        ..Options::default()
    });
    let mut cfg = config(&[
        "--url",
        &server.url("/"),
        "-d",
        "0.5",
        "-c",
        "2",
        "--insecure",
    ]);
    cfg.grace = Duration::from_millis(500);
    let started = Instant::now();
    let report = https::run(&cfg).unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(report.requests, 0);
    assert_eq!(report.timeouts, 2, "{report:#?}");
    assert_eq!(report.errors, 2);
}

#[test]
fn ca_file_is_trusted() {
    let server = TestServer::start(Options::default());
    let (_dir, ca) = ca_file(&server);
    let url = server.url("/");
    let report = run(&["--url", &url, "-d", "0.5", "--ca", &ca]);
    assert_clean(&report);
}

/// Write the server's trust PEM to a temp dir and return (dir, path).
fn ca_file(server: &TestServer) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, &server.ca_pem).unwrap();
    let path = path.to_str().unwrap().to_string();
    (dir, path)
}

#[test]
fn self_signed_ca_certificate_can_be_pinned() {
    let server = TestServer::start(Options {
        self_signed_for: Some(vec!["127.0.0.1"]),
        ..Options::default()
    });
    let (_dir, ca) = ca_file(&server);
    let url = server.url("/");
    let report = run(&["--url", &url, "-d", "0.5", "--ca", &ca, "--h2"]);
    assert_clean(&report);
}

#[test]
fn pinned_certificate_must_match_the_host_name() {
    let server = TestServer::start(Options {
        self_signed_for: Some(vec!["other.example"]),
        ..Options::default()
    });
    let (_dir, ca) = ca_file(&server);
    let url = server.url("/");
    let report = run(&["--url", &url, "-d", "0.3", "--ca", &ca]);
    assert_eq!(report.requests, 0);
    assert!(report.tls_errors > 0, "{report:#?}");
    assert_eq!(report.errors, report.tls_errors);
}

#[test]
fn untrusted_certificate_is_a_tls_error() {
    let server = TestServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, test_server::pki::generate().ca_pem).unwrap();
    let url = server.url("/");
    let report = run(&[
        "--url",
        &url,
        "-d",
        "0.5",
        "--ca",
        other_ca.to_str().unwrap(),
    ]);
    assert_eq!(report.requests, 0);
    assert!(report.tls_errors > 0, "{report:#?}");
    assert_eq!(report.errors, report.tls_errors);
    assert!(report.first_error.as_deref().unwrap().starts_with("tls:"));
}

#[test]
fn h2_without_server_support_is_a_tls_error() {
    let server = TestServer::start(Options {
        h2: false,
        ..Options::default()
    });
    let url = server.url("/");
    let report = run(&["--url", &url, "-d", "0.5", "--h2", "--insecure"]);
    assert_eq!(report.requests, 0);
    assert!(report.tls_errors > 0, "{report:#?}");
    // rustls servers refuse the handshake outright (no_application_protocol
    // alert); others complete it without ALPN and loadgen rejects it.
    let err = report.first_error.as_deref().unwrap();
    assert!(
        err.contains("ApplicationProtocol") || err.contains("h2"),
        "{err}"
    );
}

#[test]
fn server_closing_kept_alive_connections_is_not_an_error() {
    let server = TestServer::start(Options {
        close_every: Some(5),
        ..Options::default()
    });
    let url = server.url("/");
    for protocol in [None, Some("--h2")] {
        let mut args = vec!["--url", &url, "-d", "0.5", "-c", "2", "--insecure"];
        args.extend(protocol);
        let report = run(&args);
        assert_clean(&report);
        assert!(report.handshakes > 2, "{report:#?}");
    }
}

#[test]
fn path_list_and_headers_are_sent() {
    let server = TestServer::start(Options::default());
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("paths.txt");
    std::fs::write(&list, "/a\n# skipped\n/b?q=1\n").unwrap();
    let url = server.url("/ignored");
    let report = run(&[
        "--url",
        &url,
        "-d",
        "0.5",
        "--insecure",
        "--path-list",
        list.to_str().unwrap(),
        "-H",
        "X-Loadgen-Test: yes",
    ]);
    assert_clean(&report);
    let paths = server.seen.paths.lock().unwrap().clone();
    assert_eq!(paths.keys().collect::<Vec<_>>(), ["/a", "/b"]);
    assert!(paths["/a"].abs_diff(paths["/b"]) <= 1, "{paths:?}");
    assert_eq!(
        server.seen.tagged.load(Ordering::Relaxed),
        paths.values().sum::<u64>()
    );
}

#[test]
fn warmup_is_not_measured() {
    let server = TestServer::start(Options::default());
    let url = server.url("/");
    let report = run(&["--url", &url, "--warmup", "0.5", "-d", "0.5", "--insecure"]);
    assert_clean(&report);
    // The only connection was opened during warm-up.
    assert_eq!(report.handshakes, 0);
    assert!(
        (report.duration_s - 0.5).abs() < 0.01,
        "{}",
        report.duration_s
    );
    assert!(Seen::get(&server.seen.h1_requests) > report.requests);
}

#[test]
fn missing_trust_choice_is_refused() {
    let args = HttpsArgs::try_parse_from(["https", "--url", "https://127.0.0.1:1/"]).unwrap();
    let err = HttpsConfig::from_args(&args).err().unwrap().to_string();
    assert!(err.contains("--ca") && err.contains("--insecure"), "{err}");
}
