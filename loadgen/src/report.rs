//! Pieces every job's report is built from: a latency histogram that worker
//! threads fill independently and merge at the end, a two-column text table for
//! humans, and JSON output for benchmark scripts.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histogram resolves exactly: one hour in microseconds.
/// Anything slower is clamped to it, which is fine because every job's runtime
/// is bounded far below that.
const MAX_TRACKABLE_US: u64 = 3_600_000_000;

/// Request latencies with microsecond resolution and 3 significant digits.
///
/// Each worker owns one (recording is then a couple of array writes, no
/// locking) and the per-worker histograms are merged once the run is over.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    hist: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    pub fn new() -> Self {
        // The bounds are constants that satisfy hdrhistogram's rules
        // (low >= 1, high >= 2 * low, sigfig <= 5), so this cannot fail.
        let hist = Histogram::new_with_bounds(1, MAX_TRACKABLE_US, 3)
            .expect("constant histogram bounds are valid");
        Self { hist }
    }

    /// Records one sample. Sub-microsecond samples count as 1 µs (the lowest
    /// trackable value) rather than being dropped.
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.hist.saturating_record(us.max(1));
    }

    /// Adds every sample of `other` into `self`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Both histograms share the same bounds, so `add` could only fail on
        // a u64 count overflow, which a time-bounded run cannot reach. Should
        // it happen anyway, say so and keep the rest of the report.
        if let Err(err) = self.hist.add(&other.hist) {
            eprintln!("loadgen: merging latency histograms failed: {err}");
        }
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Latency at quantile `q` (0.0..=1.0) in milliseconds; 0 with no samples.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        us_to_ms(self.hist.value_at_quantile(q))
    }

    pub fn max_ms(&self) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        us_to_ms(self.hist.max())
    }

    pub fn mean_ms(&self) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        self.hist.mean() / 1000.0
    }
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// A titled two-column (label, value) table, rendered with aligned values.
#[derive(Clone, Debug, Default)]
pub struct Table {
    title: String,
    rows: Vec<(String, String)>,
}

impl Table {
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, label: impl Into<String>, value: impl fmt::Display) -> &mut Self {
        self.rows.push((label.into(), value.to_string()));
        self
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.title)?;
        let width = self.rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        for (label, value) in &self.rows {
            writeln!(f, "  {label:<width$}  {value}")?;
        }
        Ok(())
    }
}

/// Writes `value` as pretty JSON (plus a trailing newline) to `path`.
pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("serialising report")?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Rate per second, 0 when the duration is zero (a run that never started).
pub fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_histogram_reports_zero() {
        let h = LatencyHistogram::new();
        assert_eq!(h.count(), 0);
        assert_eq!(h.quantile_ms(0.5), 0.0);
        assert_eq!(h.max_ms(), 0.0);
        assert_eq!(h.mean_ms(), 0.0);
    }

    #[test]
    fn quantiles_and_merge() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        for ms in 1..=50 {
            a.record(Duration::from_millis(ms));
        }
        for ms in 51..=100 {
            b.record(Duration::from_millis(ms));
        }
        a.merge(&b);
        assert_eq!(a.count(), 100);
        // 3 significant digits: values are within 0.1 % of the exact answer.
        assert!(
            (a.quantile_ms(0.5) - 50.0).abs() < 0.1,
            "{}",
            a.quantile_ms(0.5)
        );
        assert!((a.quantile_ms(0.9) - 90.0).abs() < 0.1);
        assert!((a.max_ms() - 100.0).abs() < 0.1);
        assert!((a.mean_ms() - 50.5).abs() < 0.1);
    }

    #[test]
    fn sub_microsecond_and_huge_samples_are_kept() {
        let mut h = LatencyHistogram::new();
        h.record(Duration::from_nanos(10));
        h.record(Duration::from_secs(10 * 3600));
        assert_eq!(h.count(), 2);
        assert!(h.max_ms() >= 3_599_000.0);
    }

    #[test]
    fn table_aligns_values() {
        let mut t = Table::new("title");
        t.row("a", 1).row("longer", "x");
        assert_eq!(t.to_string(), "title\n  a       1\n  longer  x\n");
    }

    #[test]
    fn rates() {
        assert_eq!(per_second(10, 2.0), 5.0);
        assert_eq!(per_second(10, 0.0), 0.0);
    }
}
