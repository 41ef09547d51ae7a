//! `loadgen udp-fanout`: the machine ceiling for the SFU benchmark.
//!
//! `--listen ADDR --fanout N` runs a plain UDP forwarder on one socket and
//! one thread (recvmmsg/sendmmsg, no crypto, no RTP): each datagram goes to
//! the other members of its room (room id = first 4 bytes, members learned
//! from sources, at most N + 1 per room). Pin it to one core next to
//! `edge --cores 1` and its forwarded pps is what one core can do with the
//! SFU's packet pattern when nothing but forwarding is done.
//!
//! `--drive ADDR` sends that pattern: R rooms × P participants, each
//! sending what a `loadgen sfu` participant sends (same pps and datagram
//! sizes), and reports pps in/out, loss and latency with the same fields as
//! `loadgen sfu`. Run the forwarder with `--fanout P-1`.

pub mod drive;
pub mod forward;
pub mod mmsg;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use clap::Parser;

use crate::report::Table;
use crate::sfu::media::Shape;
use crate::sfu::procstat;
use crate::sfu::report::{Report, Run};
use crate::sfu::stats::Stats;

/// Reference UDP forwarder (`--listen`) or its driver (`--drive`).
#[derive(Parser, Clone, Debug)]
#[command(name = "udp-fanout")]
pub struct UdpFanoutArgs {
    /// Forward: listen on this address.
    #[arg(long, conflicts_with = "drive", required_unless_present = "drive")]
    pub listen: Option<SocketAddr>,

    /// Drive: send the SFU traffic pattern to a forwarder at this address.
    #[arg(long)]
    pub drive: Option<SocketAddr>,

    /// Forward: at most this many destinations per datagram (room size − 1).
    #[arg(long, default_value_t = 5)]
    pub fanout: usize,

    /// Forward: datagrams per recvmmsg call.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,

    /// Forward: seconds to run (0: until killed). Drive: measured seconds.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    pub duration: f64,

    /// Forward: print a rate line every this many seconds (0: never).
    #[arg(long, default_value_t = 5.0)]
    pub report_every: f64,

    /// Drive: seconds of traffic before the measured window.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,

    /// Drive: rooms.
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,

    /// Drive: participants per room.
    #[arg(long, default_value_t = 6)]
    pub participants: usize,

    /// Drive: video kbit/s per participant (0: audio only).
    #[arg(long, default_value_t = 1000)]
    pub video_kbps: u32,

    /// Drive: local address of the participants' sockets.
    #[arg(long, default_value = "127.0.0.1")]
    pub media_ip: IpAddr,

    /// Drive: milliseconds between participant starts.
    #[arg(long, default_value_t = 5)]
    pub stagger_ms: u64,

    /// Drive: the forwarder's (or edge's) pid, for CPU and RSS from /proc.
    #[arg(long, value_name = "PID")]
    pub cores_pid: Option<u32>,

    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Entry point: runs either side, prints, writes JSON; returns whether any
/// packet moved (the exit status keys on it).
pub fn run_cli(args: &UdpFanoutArgs) -> anyhow::Result<bool> {
    match (args.listen, args.drive) {
        (Some(listen), None) => {
            let duration = secs("--duration", args.duration)?;
            let cfg = forward::Config {
                listen,
                fanout: args.fanout,
                batch: args.batch.clamp(1, 1024),
                duration: (!duration.is_zero()).then_some(duration),
                report_every: secs("--report-every", args.report_every)?,
            };
            let t = forward::run(&cfg)?;
            let mut table = Table::new(format!("loadgen udp-fanout --listen {}", t.listen));
            table
                .row("seconds", format!("{:.1}", t.seconds))
                .row("fanout", t.fanout)
                .row("rooms", t.rooms)
                .row(
                    "packets in / out",
                    format!("{} / {}", t.packets_in, t.packets_out),
                )
                .row(
                    "pps in / out",
                    format!("{:.0} / {:.0}", t.pps_in, t.pps_out),
                )
                .row("dropped", t.dropped)
                .row("send errors", t.send_errors)
                .row("cpu", format!("{:.2} s", t.cpu_s));
            print!("{table}");
            if let Some(path) = &args.json {
                crate::report::write_json(path, &t)?;
            }
            Ok(t.packets_out > 0)
        }
        (None, Some(target)) => {
            let report = drive(args, target)?;
            print!("{}", report.table());
            if let Some(path) = &args.json {
                crate::report::write_json(path, &report)?;
            }
            Ok(report.received_anything())
        }
        _ => bail!("give exactly one of --listen or --drive"),
    }
}

/// Runs the driver (one current-thread tokio runtime) and reports.
pub fn drive(args: &UdpFanoutArgs, target: SocketAddr) -> anyhow::Result<Report> {
    ensure!(
        args.rooms >= 1 && args.participants >= 1,
        "--rooms and --participants must be at least 1"
    );
    let duration = secs("--duration", args.duration)?;
    ensure!(!duration.is_zero(), "--duration must be positive");
    let warmup = secs("--warmup", args.warmup)?;
    let total = args.rooms * args.participants;
    let epoch = Instant::now();
    let stagger = Duration::from_millis(args.stagger_ms);
    let start = epoch + stagger * u32::try_from(total).context("too many participants")? + warmup;
    let window = (start, start + duration);
    let leave_at = window.1 + Duration::from_millis(500);
    let shape = Shape {
        video_kbps: args.video_kbps,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("building tokio runtime")?;
    let pid = args.cores_pid;
    let (stats, edge_cpu, own_cpu, rss) = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..total {
            tasks.spawn(drive::run(drive::Sim {
                room: (i / args.participants) as u32,
                index: i as u32,
                target,
                media_ip: args.media_ip,
                shape,
                epoch,
                start_at: epoch + stagger * i as u32,
                window,
                leave_at,
            }));
        }
        tokio::time::sleep_until(window.0.into()).await;
        let (e0, c0) = (
            pid.and_then(procstat::cpu_seconds),
            crate::cpu::process_cpu_seconds(),
        );
        tokio::time::sleep_until(window.1.into()).await;
        let (e1, c1) = (
            pid.and_then(procstat::cpu_seconds),
            crate::cpu::process_cpu_seconds(),
        );
        let rss = pid.and_then(procstat::rss_mib);
        let mut stats = Stats::default();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(s)) => stats.merge(s),
                Ok(Err(e)) => stats.error(format!("{e:#}")),
                Err(e) => stats.error(format!("participant task failed: {e}")),
            }
        }
        stats.merge(Stats::default());
        let edge = e0.zip(e1).map(|(a, b)| b - a);
        (stats, edge, c1 - c0, rss)
    });
    let window_s = duration.as_secs_f64();
    Ok(Report::new(
        Run {
            url: format!("udp://{target}"),
            rooms: args.rooms,
            participants_per_room: args.participants,
            duration_s: window_s,
            warmup_s: warmup.as_secs_f64(),
            video_kbps: args.video_kbps,
            edge_cpu_pct: edge_cpu.map(|c| 100.0 * c / window_s),
            edge_rss_mib: rss,
            loadgen_cpu_pct: 100.0 * own_cpu / window_s,
        },
        stats,
    ))
}

fn secs(flag: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("{flag} must be a non-negative number of seconds"))
}
