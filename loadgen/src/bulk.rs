//! `loadgen bulk`: download throughput from a plain TCP port.
//!
//! C connections each read as fast as they can until the server closes (then
//! reconnect while time remains) or the deadline passes. Only bytes are
//! counted, nothing is checked: the job measures a pipe (for instance a tunnel
//! forward listener in front of a bulk source), not a protocol. Bytes read in
//! the optional warm-up are not counted, so connection set-up can be kept out
//! of the figure.
//!
//! Everything runs on one current-thread tokio runtime, so
//! `taskset -c N loadgen bulk …` keeps the whole generator on one core. Every
//! wait is cut at the deadline, so a run always ends by itself.

mod report;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Context as _};
use clap::Parser;
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use report::Report;

use crate::cpu::process_cpu_seconds;
use worker::{Stats, Window};

/// Download from `--addr` over C connections for a fixed time.
#[derive(Parser, Clone, Debug)]
#[command(name = "bulk")]
pub struct BulkArgs {
    /// Plain TCP source, `IP:PORT`; it should send until the peer closes.
    #[arg(long)]
    pub addr: SocketAddr,

    /// Concurrent connections.
    #[arg(long, short = 'c', default_value_t = 1)]
    pub connections: usize,

    /// Measured time in seconds (after the warm-up).
    #[arg(long, short = 'd', default_value_t = 10.0)]
    pub duration: f64,

    /// Seconds of reading before counting starts; connections stay open
    /// across it.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,

    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Entry point of the `bulk` subcommand: run, print the table, write JSON.
pub fn run_cli(args: &BulkArgs) -> anyhow::Result<Report> {
    let report = run(args)?;
    print!("{}", report.table());
    if let Some(path) = &args.json {
        crate::report::write_json(path, &report)?;
    }
    Ok(report)
}

/// Runs the download and returns the report; blocks for the warm-up plus the
/// duration (plus the moment it takes to drop the connections).
pub fn run(args: &BulkArgs) -> anyhow::Result<Report> {
    ensure!(args.connections >= 1, "--connections must be at least 1");
    let duration = seconds("--duration", args.duration)?;
    ensure!(!duration.is_zero(), "--duration must be positive");
    let warmup = seconds("--warmup", args.warmup)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("building tokio runtime")?;

    let cpu_before = process_cpu_seconds();
    let (stats, per_slot, duration_s, wall_s) = runtime.block_on(async {
        let start = Instant::now();
        let measure_start = start + warmup;
        let window = Window {
            measure_start,
            deadline: measure_start + duration,
        };
        let mut slots = JoinSet::new();
        for _ in 0..args.connections {
            slots.spawn(worker::run(args.addr, window));
        }
        let mut total = Stats::default();
        let mut per_slot = Vec::with_capacity(args.connections);
        while let Some(done) = slots.join_next().await {
            let stats = done.context("worker task failed")?;
            per_slot.push(stats.bytes);
            total.merge(stats);
        }
        let finished = Instant::now();
        // Slots only return at the deadline, so this is the configured duration.
        let measured = finished.min(window.deadline) - measure_start;
        let wall = finished - start;
        anyhow::Ok((total, per_slot, measured.as_secs_f64(), wall.as_secs_f64()))
    })?;
    let run = report::Run {
        addr: args.addr.to_string(),
        connections: args.connections,
        duration_s,
        warmup_s: warmup.as_secs_f64(),
        wall_s,
        cpu_s: process_cpu_seconds() - cpu_before,
        slot_bytes_min: per_slot.iter().copied().min().unwrap_or(0),
        slot_bytes_max: per_slot.iter().copied().max().unwrap_or(0),
    };
    Ok(Report::new(run, stats))
}

fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("{flag} must be a non-negative number of seconds"))
}
