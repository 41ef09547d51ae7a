//! End-to-end tests of `loadgen bulk` against in-test TCP sources. They check
//! the counting and that every run ends by itself, never the speed.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::thread;

use clap::Parser as _;
use loadgen::bulk::{self, BulkArgs, Report};

/// What a source sends to each connection.
#[derive(Clone, Copy)]
enum Source {
    /// An endless stream, until the reader goes away.
    Endless,
    /// Exactly this many bytes, then close.
    Closing(usize),
}

/// Starts a source on an ephemeral port; one thread per connection. The
/// accept thread lives as long as the test process.
fn start(source: Source) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            thread::spawn(move || {
                let chunk: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 + 3) as u8).collect();
                match source {
                    // Ends with an error once loadgen closes the connection.
                    Source::Endless => while conn.write_all(&chunk).is_ok() {},
                    Source::Closing(n) => {
                        let _ = conn.write_all(&chunk[..n]);
                    }
                }
            });
        }
    });
    addr
}

fn args(addr: SocketAddr, extra: &[&str]) -> BulkArgs {
    let addr = addr.to_string();
    let argv = ["bulk", "--addr", &addr]
        .into_iter()
        .chain(extra.iter().copied());
    BulkArgs::try_parse_from(argv).unwrap()
}

fn run(addr: SocketAddr, extra: &[&str]) -> Report {
    bulk::run(&args(addr, extra)).unwrap()
}

#[test]
fn endless_source_is_read_over_every_connection() {
    let addr = start(Source::Endless);
    let report = run(addr, &["-c", "3", "-d", "0.5"]);
    assert!(report.bytes > 0, "{report:#?}");
    assert_eq!(report.errors, 0, "{report:#?}");
    assert_eq!(report.first_error, None);
    assert_eq!(report.connections, 3);
    // The source never closes, so nobody reconnects.
    assert_eq!(report.connects, 3, "{report:#?}");
    assert!(report.slot_bytes_min > 0, "{report:#?}");
    assert!(report.slot_bytes_min <= report.slot_bytes_max);
    assert!(report.slot_bytes_max <= report.bytes);
    assert!(report.mb_per_sec > 0.0);
    let expected = report.bytes as f64 / report.duration_s / 1e6;
    assert!((report.mb_per_sec - expected).abs() < 1e-9 * expected.max(1.0));
}

#[test]
fn closing_source_is_reconnected_and_every_byte_counted() {
    const PER_CONN: usize = 1000;
    let addr = start(Source::Closing(PER_CONN));
    let report = run(addr, &["-c", "2", "-d", "0.5"]);
    assert_eq!(report.errors, 0, "{report:#?}");
    assert!(report.connects > 2, "{report:#?}");
    // Every finished connection gave exactly PER_CONN bytes; the deadline
    // can cut at most one unfinished connection per slot.
    let whole = report.bytes / PER_CONN as u64;
    assert!(whole <= report.connects, "{report:#?}");
    assert!(whole + 2 >= report.connects, "{report:#?}");
    // The connections that got bytes timed their first one.
    assert!(report.first_byte_max_ms >= report.first_byte_p50_ms);
    assert!(report.first_byte_p50_ms > 0.0, "{report:#?}");
}

#[test]
fn warmup_bytes_are_read_but_not_counted() {
    let addr = start(Source::Endless);
    let report = run(addr, &["-c", "2", "--warmup", "0.3", "-d", "0.3"]);
    assert!(report.bytes > 0, "{report:#?}");
    assert_eq!(report.errors, 0, "{report:#?}");
    // The connections opened in the warm-up carried on into the window.
    assert_eq!(report.connects, 2, "{report:#?}");
    assert_eq!(report.warmup_s, 0.3);
    // Slots return only at the deadline, so the window is exactly -d.
    assert!((report.duration_s - 0.3).abs() < 1e-6, "{report:#?}");
}

#[test]
fn closed_port_counts_errors_and_terminates() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    // Returning at all is the termination check: every wait is cut at the
    // deadline.
    let report = run(addr, &["-c", "2", "-d", "0.3"]);
    assert_eq!(report.bytes, 0);
    assert_eq!(report.connects, 0);
    assert_eq!(report.first_byte_max_ms, 0.0);
    assert!(report.errors > 0, "{report:#?}");
    assert!(report
        .first_error
        .as_deref()
        .unwrap()
        .starts_with("connect:"));
}

#[test]
fn json_report_has_the_documented_fields() {
    let addr = start(Source::Endless);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bulk.json");
    let report = bulk::run_cli(&args(
        addr,
        &["-d", "0.3", "--json", json.to_str().unwrap()],
    ))
    .unwrap();
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for field in [
        "bytes",
        "mb_per_sec",
        "errors",
        "duration_s",
        "connections",
        "loadgen_cpu_s",
        "warmup_s",
        "first_byte_p50_ms",
        "first_byte_max_ms",
        "slot_bytes_min",
        "slot_bytes_max",
    ] {
        assert!(value.get(field).is_some(), "missing {field} in {value}");
    }
    assert_eq!(value["bytes"], report.bytes);
    assert_eq!(value["connections"], 1);
    // One slot: it counted everything.
    assert_eq!(value["slot_bytes_min"], report.bytes);
    assert_eq!(value["slot_bytes_max"], report.bytes);
}

#[test]
fn bad_arguments_are_refused() {
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    for extra in [
        &["-c", "0"][..],
        &["-d", "0"],
        &["--duration=-1"],
        &["--warmup=-1"],
    ] {
        assert!(bulk::run(&args(addr, extra)).is_err(), "{extra:?}");
    }
}
