//! The https job's final report: what benchmark scripts read (JSON) and what
//! people read (table).

use serde::Serialize;

use super::config::HttpsConfig;
use super::stats::WorkerStats;
use crate::report::{per_second, Table};

/// Result of one https run. Field names are the JSON keys benchmark scripts
/// rely on; do not rename them.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub url: String,
    /// `"keepalive"` or `"new-conn"`.
    pub mode: String,
    /// `"1.1"` or `"2"`.
    pub http: String,
    /// Length of the measured window in seconds (warm-up excluded).
    pub duration_s: f64,
    pub warmup_s: f64,
    pub connections: usize,
    pub threads: usize,
    /// Requests completed inside the window, whatever their status.
    pub requests: u64,
    pub requests_per_sec: f64,
    /// Full TLS handshakes completed inside the window.
    pub handshakes: u64,
    pub handshakes_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// Transport failures: `connect_errors + tls_errors + request_errors + timeouts`.
    pub errors: u64,
    pub connect_errors: u64,
    pub tls_errors: u64,
    pub request_errors: u64,
    pub timeouts: u64,
    /// Completed requests whose status was not 2xx/3xx (not in `errors`).
    pub status_errors: u64,
    /// Kept-alive connections the server closed between requests.
    pub reconnects: u64,
    /// CPU seconds (user + system) the generator process used for the run.
    pub loadgen_cpu_s: f64,
    /// `loadgen_cpu_s` over the run's wall time, in percent of one core; near
    /// 100 × threads means the generator, not the server, was the limit.
    pub loadgen_cpu_pct: f64,
    /// First error message seen, if any.
    pub first_error: Option<String>,
}

impl Report {
    pub(super) fn new(
        cfg: &HttpsConfig,
        stats: &WorkerStats,
        duration_s: f64,
        wall_s: f64,
        cpu_s: f64,
    ) -> Self {
        let lat = &stats.latency;
        Self {
            url: cfg.url.clone(),
            mode: cfg.mode_name().to_string(),
            http: cfg.http_name().to_string(),
            duration_s,
            warmup_s: cfg.warmup.as_secs_f64(),
            connections: cfg.connections,
            threads: cfg.threads,
            requests: stats.requests,
            requests_per_sec: per_second(stats.requests, duration_s),
            handshakes: stats.handshakes,
            handshakes_per_sec: per_second(stats.handshakes, duration_s),
            p50_ms: lat.quantile_ms(0.50),
            p90_ms: lat.quantile_ms(0.90),
            p99_ms: lat.quantile_ms(0.99),
            p999_ms: lat.quantile_ms(0.999),
            max_ms: lat.max_ms(),
            mean_ms: lat.mean_ms(),
            errors: stats.errors(),
            connect_errors: stats.connect_errors,
            tls_errors: stats.tls_errors,
            request_errors: stats.request_errors,
            timeouts: stats.timeouts,
            status_errors: stats.status_errors,
            reconnects: stats.reconnects,
            loadgen_cpu_s: cpu_s,
            loadgen_cpu_pct: if wall_s > 0.0 {
                cpu_s / wall_s * 100.0
            } else {
                0.0
            },
            first_error: stats.first_error.clone(),
        }
    }

    /// The human-readable summary printed at the end of a run.
    pub fn table(&self) -> Table {
        let mut t = Table::new(format!(
            "loadgen https {} ({}, HTTP/{})",
            self.url, self.mode, self.http
        ));
        t.row("duration", format!("{:.2} s", self.duration_s))
            .row(
                "connections",
                format!("{} on {} thread(s)", self.connections, self.threads),
            )
            .row("requests", self.requests)
            .row("requests/s", format!("{:.1}", self.requests_per_sec))
            .row("handshakes", self.handshakes)
            .row("handshakes/s", format!("{:.1}", self.handshakes_per_sec))
            .row(
                "latency p50/p90/p99",
                format!(
                    "{:.3} / {:.3} / {:.3} ms",
                    self.p50_ms, self.p90_ms, self.p99_ms
                ),
            )
            .row(
                "latency p99.9/max",
                format!("{:.3} / {:.3} ms", self.p999_ms, self.max_ms),
            )
            .row("latency mean", format!("{:.3} ms", self.mean_ms))
            .row(
                "errors",
                format!(
                    "{} (connect {}, tls {}, request {}, timeout {})",
                    self.errors,
                    self.connect_errors,
                    self.tls_errors,
                    self.request_errors,
                    self.timeouts
                ),
            )
            .row("status errors", self.status_errors)
            .row("reconnects", self.reconnects)
            .row(
                "loadgen cpu",
                format!(
                    "{:.2} s ({:.0}% of one core)",
                    self.loadgen_cpu_s, self.loadgen_cpu_pct
                ),
            );
        if let Some(err) = &self.first_error {
            t.row("first error", err);
        }
        t
    }
}
