//! Per-worker counters and the time window they are counted in.

use std::fmt;
use std::time::{Duration, Instant};

use crate::report::LatencyHistogram;

/// The run's timeline, shared by every worker.
#[derive(Clone, Copy, Debug)]
pub(super) struct Window {
    /// When the run (including warm-up) began.
    pub start: Instant,
    /// End of warm-up: events from here on are counted.
    pub measure_start: Instant,
    /// End of the measured run: no iteration starts at or after this.
    pub deadline: Instant,
    /// Whatever is still in flight is abandoned here.
    pub hard_deadline: Instant,
}

impl Window {
    pub(super) fn new(
        start: Instant,
        warmup: Duration,
        duration: Duration,
        grace: Duration,
    ) -> Self {
        let measure_start = start + warmup;
        let deadline = measure_start + duration;
        Self {
            start,
            measure_start,
            deadline,
            hard_deadline: deadline + grace,
        }
    }

    /// Whether a worker iteration starting at `t` belongs to the measured
    /// run. Counting iterations by their start makes the run a window of
    /// exactly the configured length (both edges are treated alike), while
    /// the last iterations may finish a little after the deadline.
    pub(super) fn counts(&self, t: Instant) -> bool {
        t >= self.measure_start && t < self.deadline
    }
}

/// What one worker (or, after merging, the whole run) observed in the
/// iterations that started inside the measured window (timeouts excepted:
/// they are always counted). Plain integers: each worker owns its own, so counting
/// needs no atomics.
#[derive(Debug, Default)]
pub(super) struct WorkerStats {
    pub latency: LatencyHistogram,
    /// Completed requests (any status).
    pub requests: u64,
    /// Completed TLS handshakes.
    pub handshakes: u64,
    pub connect_errors: u64,
    pub tls_errors: u64,
    /// Requests that failed after being sent (reset, protocol error, …).
    pub request_errors: u64,
    /// Workers cut off by the hard cap while waiting on the server.
    pub timeouts: u64,
    /// Completed requests with a status other than 2xx/3xx.
    pub status_errors: u64,
    /// Kept-alive connections the server closed between requests, replaced
    /// by a new one without counting an error.
    pub reconnects: u64,
    /// The first error seen, so a failing run says why.
    pub first_error: Option<String>,
}

impl WorkerStats {
    /// Remembers the first error message; later ones only count. Formatting
    /// happens at most once per worker, keeping the error path cheap.
    pub(super) fn note(&mut self, err: &dyn fmt::Display) {
        if self.first_error.is_none() {
            self.first_error = Some(err.to_string());
        }
    }

    pub(super) fn merge(&mut self, other: WorkerStats) {
        self.latency.merge(&other.latency);
        self.requests += other.requests;
        self.handshakes += other.handshakes;
        self.connect_errors += other.connect_errors;
        self.tls_errors += other.tls_errors;
        self.request_errors += other.request_errors;
        self.timeouts += other.timeouts;
        self.status_errors += other.status_errors;
        self.reconnects += other.reconnects;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Transport-level failures (everything except bad statuses).
    pub(super) fn errors(&self) -> u64 {
        self.connect_errors + self.tls_errors + self.request_errors + self.timeouts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_bounds() {
        let start = Instant::now();
        let w = Window::new(
            start,
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(10),
        );
        assert!(!w.counts(start));
        assert!(w.counts(start + Duration::from_secs(1)));
        assert!(w.counts(start + Duration::from_millis(2999)));
        assert!(!w.counts(start + Duration::from_secs(3)));
        assert_eq!(w.hard_deadline - start, Duration::from_secs(13));
    }

    #[test]
    fn merge_adds_and_keeps_first_error() {
        let mut a = WorkerStats {
            requests: 1,
            tls_errors: 1,
            ..Default::default()
        };
        a.note(&"first");
        a.note(&"second");
        let mut b = WorkerStats {
            requests: 2,
            timeouts: 1,
            connect_errors: 3,
            ..Default::default()
        };
        b.note(&"other");
        b.latency.record(Duration::from_millis(1));
        a.merge(b);
        assert_eq!(a.requests, 3);
        assert_eq!(a.errors(), 5);
        assert_eq!(a.latency.count(), 1);
        assert_eq!(a.first_error.as_deref(), Some("first"));
    }
}
