//! The bulk job's final report: what benchmark scripts read (JSON) and what
//! people read (table).

use serde::Serialize;

use super::worker::Stats;
use crate::report::{per_second, Table};

/// Result of one bulk run. Field names are the JSON keys benchmark scripts
/// rely on; do not rename them.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub addr: String,
    /// Length of the measured window in seconds (warm-up excluded).
    pub duration_s: f64,
    pub warmup_s: f64,
    pub connections: usize,
    /// Bytes read inside the measured window, over all connections.
    pub bytes: u64,
    /// `bytes / duration_s / 10^6` (decimal megabytes, not MiB).
    pub mb_per_sec: f64,
    /// Connections established over the whole run (more than `connections`
    /// when the source closes and the job reconnects).
    pub connects: u64,
    /// Failed connects plus failed reads, over the whole run.
    pub errors: u64,
    /// Fewest and most bytes one connection slot counted; far apart means the
    /// path shares its capacity unevenly between connections.
    pub slot_bytes_min: u64,
    pub slot_bytes_max: u64,
    /// Connect start to first byte received, median and worst over the
    /// connections that got a byte; 0 when none did.
    pub first_byte_p50_ms: f64,
    pub first_byte_max_ms: f64,
    /// CPU seconds (user + system) the generator process used for the run.
    pub loadgen_cpu_s: f64,
    /// `loadgen_cpu_s` over the run's wall time, in percent of one core; near
    /// 100 means the generator, not the source, was the limit.
    pub loadgen_cpu_pct: f64,
    pub first_error: Option<String>,
}

/// What the run measured besides the counts.
pub(super) struct Run {
    pub addr: String,
    pub connections: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub wall_s: f64,
    pub cpu_s: f64,
    pub slot_bytes_min: u64,
    pub slot_bytes_max: u64,
}

impl Report {
    pub(super) fn new(run: Run, stats: Stats) -> Self {
        Self {
            addr: run.addr,
            duration_s: run.duration_s,
            warmup_s: run.warmup_s,
            connections: run.connections,
            bytes: stats.bytes,
            mb_per_sec: per_second(stats.bytes, run.duration_s) / 1e6,
            slot_bytes_min: run.slot_bytes_min,
            slot_bytes_max: run.slot_bytes_max,
            connects: stats.connects,
            errors: stats.errors,
            first_byte_p50_ms: stats.first_byte.quantile_ms(0.5),
            first_byte_max_ms: stats.first_byte.max_ms(),
            loadgen_cpu_s: run.cpu_s,
            loadgen_cpu_pct: 100.0 * run.cpu_s / run.wall_s.max(f64::MIN_POSITIVE),
            first_error: stats.first_error,
        }
    }

    pub fn table(&self) -> Table {
        let mut t = Table::new(format!("bulk {}", self.addr));
        t.row("duration", format!("{:.2} s", self.duration_s))
            .row("warm-up", format!("{:.2} s", self.warmup_s))
            .row("connections", self.connections)
            .row("bytes", self.bytes)
            .row(
                "throughput",
                format!("{:.1} MB/s (MB = 10^6 B)", self.mb_per_sec),
            )
            .row(
                "per connection",
                format!("{} to {} bytes", self.slot_bytes_min, self.slot_bytes_max),
            )
            .row("connects", self.connects)
            .row("errors", self.errors)
            .row(
                "first byte",
                format!(
                    "p50 {:.2} ms, max {:.2} ms",
                    self.first_byte_p50_ms, self.first_byte_max_ms
                ),
            )
            .row(
                "loadgen cpu",
                format!(
                    "{:.2} s ({:.0} %)",
                    self.loadgen_cpu_s, self.loadgen_cpu_pct
                ),
            );
        if let Some(err) = &self.first_error {
            t.row("first error", err);
        }
        t
    }
}
