//! `loadgen https`: closed-loop HTTPS load against one URL.
//!
//! C workers are spread over T OS threads, each running a single-threaded
//! tokio runtime, so `taskset -c N loadgen https --threads 1 …` keeps the
//! whole generator on one core. Each worker holds one connection with one
//! request in flight; in `--new-conn` mode every request gets a brand-new
//! connection and full TLS handshake.
//!
//! [`run`] is the library entry point (used by tests); [`run_cli`] adds
//! printing and JSON output for the binary.

mod args;
mod config;
mod conn;
mod report;
mod stats;
mod worker;

use std::sync::Arc;
use std::thread;
use std::time::Instant;

use anyhow::Context as _;
use tokio::task::JoinSet;

pub use args::HttpsArgs;
pub use config::{HttpsConfig, HARD_CAP_GRACE};
pub use report::Report;

use crate::cpu::process_cpu_seconds;
use stats::{Window, WorkerStats};

/// Entry point of the `https` subcommand: run, print the table, write JSON.
pub fn run_cli(args: &HttpsArgs) -> anyhow::Result<Report> {
    let cfg = HttpsConfig::from_args(args)?;
    let report = run(&cfg)?;
    print!("{}", report.table());
    if let Some(path) = &args.json {
        crate::report::write_json(path, &report)?;
    }
    Ok(report)
}

/// Runs the load described by `cfg` and returns the report. Blocks for the
/// warm-up plus the duration, and never longer than that plus `cfg.grace`.
pub fn run(cfg: &HttpsConfig) -> anyhow::Result<Report> {
    let cfg = Arc::new(cfg.clone());
    let cpu_before = process_cpu_seconds();
    let window = Window::new(Instant::now(), cfg.warmup, cfg.duration, cfg.grace);

    let threads = (0..cfg.threads)
        .map(|index| {
            let cfg = Arc::clone(&cfg);
            thread::Builder::new()
                .name(format!("loadgen-https-{index}"))
                .spawn(move || run_thread(&cfg, window, index))
                .context("spawning worker thread")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let mut total = WorkerStats::default();
    for handle in threads {
        let stats = handle
            .join()
            .map_err(|_| anyhow::anyhow!("a worker thread panicked"))??;
        total.merge(stats);
    }

    let finished = Instant::now();
    let wall_s = (finished - window.start).as_secs_f64();
    // Iterations are counted by start time, so the measured window is the
    // configured duration (shorter only if the run somehow ended early).
    let duration_s = finished
        .min(window.deadline)
        .saturating_duration_since(window.measure_start)
        .as_secs_f64();
    let cpu_s = process_cpu_seconds() - cpu_before;
    Ok(Report::new(&cfg, &total, duration_s, wall_s, cpu_s))
}

/// Body of one worker thread: a current-thread runtime driving every
/// `threads`-th worker.
fn run_thread(cfg: &Arc<HttpsConfig>, window: Window, index: usize) -> anyhow::Result<WorkerStats> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("building tokio runtime")?;
    runtime.block_on(async {
        let mut workers = JoinSet::new();
        for id in (index..cfg.connections).step_by(cfg.threads) {
            workers.spawn(worker::run(Arc::clone(cfg), window, id));
        }
        let mut stats = WorkerStats::default();
        while let Some(done) = workers.join_next().await {
            stats.merge(done.context("worker task failed")?);
        }
        Ok(stats)
    })
}
