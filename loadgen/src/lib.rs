//! Load generator for oxpulse-edge.
//!
//! Every job (one `loadgen` subcommand) lives in its own module and exposes a
//! plain function that runs the load and returns a report struct, so tests and
//! other tools can drive a job without spawning the binary. Shared pieces —
//! latency histograms, the text table, JSON output, TLS client set-up and the
//! process CPU meter — live in their own modules so later jobs (`sfu`, `turn`,
//! …) reuse them instead of growing their own.

pub mod bulk;
pub mod cpu;
pub mod https;
pub mod report;
pub mod sfu;
pub mod tls;
pub mod udp_fanout;
