//! `loadgen sfu`: group-call participants against the edge's SFU.
//!
//! R rooms of P participants each join `wss://host/sfu/ws/lg-<run>-<r>` as
//! `p<i>` (i = global participant index, also the SFrame KID), negotiate
//! audio (Opus) + video (VP8) send-only m-lines and the `sframe-keys` /
//! `chat` data channels, answer the server's renegotiation offers, and then
//! send SFrame-encrypted media: 50 audio frames/s and `--video-kbps` of
//! video at 30 fps. Every receiver decrypts every frame with the sender's
//! key learned on `sframe-keys` and measures one-way forwarding latency
//! against the send timestamp inside the plaintext (all participants share
//! one clock origin), loss from sender sequence gaps, and decrypt failures.
//!
//! Timeline: participants start `--stagger-ms` apart; after the last one
//! started, `--warmup` seconds pass before the measured window of
//! `--duration` seconds opens; sending stops when it closes and receivers
//! keep listening one more second for packets in flight. Only packets sent
//! or received in the window, and frames sent in it, are counted.
//!
//! Participants are split over `--threads` threads, each a current-thread
//! tokio runtime (one task per participant), so `taskset` bounds the
//! generator's cores.

mod frame;
pub(crate) mod media;
pub(crate) mod participant;
pub(crate) mod procstat;
pub(crate) mod report;
pub(crate) mod stats;
mod token;
mod ws;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use clap::Parser;

pub use report::Report;
pub use stats::Stats;

use crate::cpu::process_cpu_seconds;
use crate::tls::{client_config, Trust};

/// Receivers keep listening this long after sending stops.
const GRACE: Duration = Duration::from_secs(1);

/// Group-call load against the edge's SFU.
#[derive(Parser, Clone, Debug)]
#[command(name = "sfu")]
pub struct SfuArgs {
    /// Signalling base URL, `wss://host[:port]` (`/sfu/ws/<room>` is
    /// appended) or a template containing `{room}`. `ws://` for plain tests.
    #[arg(long)]
    pub url: String,

    /// The edge's `[sfu] secret_file` (HS256 key; one trailing newline is
    /// dropped, as the edge does).
    #[arg(long, value_name = "FILE")]
    pub secret_file: PathBuf,

    /// Rooms.
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,

    /// Participants per room.
    #[arg(long, default_value_t = 2)]
    pub participants: usize,

    /// Measured seconds.
    #[arg(long, short = 'd', default_value_t = 10.0)]
    pub duration: f64,

    /// Seconds between the last participant starting and the window opening
    /// (joins, renegotiations and key exchange settle).
    #[arg(long, default_value_t = 3.0)]
    pub warmup: f64,

    /// Video bitrate per participant, kbit/s (0: audio only).
    #[arg(long, default_value_t = 1000)]
    pub video_kbps: u32,

    /// Milliseconds between participant starts.
    #[arg(long, default_value_t = 20)]
    pub stagger_ms: u64,

    /// Generator threads (participants are spread round-robin).
    #[arg(long, short = 't', default_value_t = 1)]
    pub threads: usize,

    /// Accept any TLS certificate (self-signed dev nodes).
    #[arg(long)]
    pub insecure: bool,

    /// Trust this PEM CA / self-signed certificate instead of `--insecure`.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// Local address for the UDP sockets and ICE host candidates.
    #[arg(long, default_value = "127.0.0.1")]
    pub media_ip: IpAddr,

    /// Dial this IP:port instead of the URL's host; the URL still gives the TLS
    /// name and Host (like curl's --connect-to: test a node before DNS points at it).
    #[arg(long)]
    pub connect_to: Option<std::net::SocketAddr>,

    /// The edge's pid: report its CPU and RSS over the window from /proc.
    #[arg(long, value_name = "PID")]
    pub cores_pid: Option<u32>,

    /// Run id in the room names (`lg-<run>-<r>`); default: Unix seconds.
    #[arg(long)]
    pub run_id: Option<String>,

    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Entry point of the `sfu` subcommand: run, print the table, write JSON.
pub fn run_cli(args: &SfuArgs) -> anyhow::Result<Report> {
    let report = run(args)?;
    print!("{}", report.table());
    if let Some(path) = &args.json {
        crate::report::write_json(path, &report)?;
    }
    Ok(report)
}

/// Runs the whole load and returns the report.
pub fn run(args: &SfuArgs) -> anyhow::Result<Report> {
    ensure!(args.rooms >= 1, "--rooms must be at least 1");
    ensure!(args.participants >= 1, "--participants must be at least 1");
    ensure!(args.threads >= 1, "--threads must be at least 1");
    let duration = secs("--duration", args.duration)?;
    ensure!(!duration.is_zero(), "--duration must be positive");
    let warmup = secs("--warmup", args.warmup)?;
    let secret = token::load_secret(&args.secret_file)?;
    let tls = if ws::needs_tls(&ws::room_url(&args.url, "x"))? {
        let trust = Trust::from_flags(args.insecure, args.ca.as_deref())?;
        Some(client_config(&trust, &[b"http/1.1"])?)
    } else {
        None
    };
    let crypto = Arc::new(str0m::crypto::from_feature_flags());
    let run_id = args
        .run_id
        .clone()
        .unwrap_or_else(|| token::unix_now().to_string());
    let shape = media::Shape {
        video_kbps: args.video_kbps,
    };

    let total = args.rooms * args.participants;
    let epoch = Instant::now();
    let stagger = Duration::from_millis(args.stagger_ms);
    let window_start =
        epoch + stagger * u32::try_from(total).context("too many participants")? + warmup;
    let window = (window_start, window_start + duration);
    let leave_at = window.1 + GRACE;
    let exp = token::unix_now() + (leave_at - epoch).as_secs() + 60;

    let mut per_thread: Vec<Vec<participant::Params>> =
        (0..args.threads).map(|_| Vec::new()).collect();
    for r in 0..args.rooms {
        let room = format!("lg-{run_id}-{r}");
        let url = ws::room_url(&args.url, &room);
        for j in 0..args.participants {
            let index = r * args.participants + j;
            let peer = format!("p{index}");
            per_thread[index % args.threads].push(participant::Params {
                index: u32::try_from(index).context("too many participants")?,
                jwt: token::mint(&secret, &room, &peer, exp),
                peer,
                url: url.clone(),
                tls: tls.clone(),
                connect_to: args.connect_to,
                media_ip: args.media_ip,
                shape,
                crypto: Arc::clone(&crypto),
                epoch,
                start_at: epoch + stagger * u32::try_from(index).unwrap_or(u32::MAX),
                window,
                leave_at,
            });
        }
    }

    let mut threads = Vec::new();
    for (t, params) in per_thread.into_iter().enumerate() {
        let handle = std::thread::Builder::new()
            .name(format!("loadgen-sfu-{t}"))
            .spawn(move || run_thread(params))
            .context("spawning a generator thread")?;
        threads.push(handle);
    }

    // Sample the edge and ourselves at the window's edges.
    sleep_until(window.0);
    let edge_cpu0 = args.cores_pid.and_then(procstat::cpu_seconds);
    let own_cpu0 = process_cpu_seconds();
    sleep_until(window.1);
    let edge_cpu1 = args.cores_pid.and_then(procstat::cpu_seconds);
    let own_cpu1 = process_cpu_seconds();
    let edge_rss = args.cores_pid.and_then(procstat::rss_mib);
    let window_s = duration.as_secs_f64();

    let mut stats = Stats::default();
    for handle in threads {
        let thread_stats = handle
            .join()
            .map_err(|_| anyhow::anyhow!("a generator thread panicked"))??;
        stats.merge(thread_stats);
    }
    stats.merge(Stats::default()); // settle any remaining loss trackers
    Ok(Report::new(
        report::Run {
            url: args.url.clone(),
            rooms: args.rooms,
            participants_per_room: args.participants,
            duration_s: window_s,
            warmup_s: warmup.as_secs_f64(),
            video_kbps: args.video_kbps,
            edge_cpu_pct: match (edge_cpu0, edge_cpu1) {
                (Some(a), Some(b)) => Some(100.0 * (b - a) / window_s),
                _ => None,
            },
            edge_rss_mib: edge_rss,
            loadgen_cpu_pct: 100.0 * (own_cpu1 - own_cpu0) / window_s,
        },
        stats,
    ))
}

fn run_thread(params: Vec<participant::Params>) -> anyhow::Result<Stats> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("building tokio runtime")?;
    runtime.block_on(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for p in params {
            tasks.spawn(participant::run(p));
        }
        let mut total = Stats::default();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(stats) => total.merge(stats),
                Err(e) => total.error(format!("participant task failed: {e}")),
            }
        }
        Ok(total)
    })
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

fn secs(flag: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("{flag} must be a non-negative number of seconds"))
}
