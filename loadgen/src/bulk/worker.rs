//! One connection slot of the bulk job: connect, read to EOF, reconnect, until
//! the deadline. Every await is cut at the deadline, so a slot always ends.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout_at, Instant};

use crate::report::LatencyHistogram;

/// Large reads keep the generator's per-byte cost (syscalls) low, so it stays
/// well below the pipe it measures.
const READ_BUF: usize = 256 * 1024;

/// Pause after a failed connect or read, so a closed port costs a few dozen
/// attempts per second instead of a busy loop that steals the core.
const ERROR_BACKOFF: Duration = Duration::from_millis(20);

/// When a slot counts and when it stops.
#[derive(Clone, Copy, Debug)]
pub(super) struct Window {
    /// Bytes read before this are warm-up: read, not counted.
    pub measure_start: Instant,
    pub deadline: Instant,
}

/// What one or more slots counted.
#[derive(Default)]
pub(super) struct Stats {
    /// Bytes read inside the measured window.
    pub bytes: u64,
    /// Connections established over the whole run, warm-up included.
    pub connects: u64,
    /// Failed connects and reads over the whole run.
    pub errors: u64,
    pub first_error: Option<String>,
    /// Connect start to first byte, per connection that got one.
    pub first_byte: LatencyHistogram,
}

impl Stats {
    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }

    pub fn merge(&mut self, other: Stats) {
        self.bytes += other.bytes;
        self.connects += other.connects;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.first_byte.merge(&other.first_byte);
    }
}

pub(super) async fn run(addr: SocketAddr, window: Window) -> Stats {
    let mut stats = Stats::default();
    let mut buf = vec![0u8; READ_BUF];
    let deadline = window.deadline;
    while Instant::now() < deadline {
        let started = Instant::now();
        let mut stream = match timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => break,
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                stats.error(format!("connect: {e}"));
                sleep_until(deadline.min(Instant::now() + ERROR_BACKOFF)).await;
                continue;
            }
        };
        stats.connects += 1;
        // One timer per connection rather than per read: when the deadline
        // drops the read loop, what it counted so far stays in `stats`.
        let reading = drain(&mut stream, &mut buf, window, started, &mut stats);
        match timeout_at(deadline, reading).await {
            Err(_) => break,
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                stats.error(format!("read: {e}"));
                sleep_until(deadline.min(Instant::now() + ERROR_BACKOFF)).await;
            }
        }
    }
    stats
}

/// Reads until EOF, counting every chunk that arrives inside the window.
async fn drain(
    stream: &mut TcpStream,
    buf: &mut [u8],
    window: Window,
    started: Instant,
    stats: &mut Stats,
) -> std::io::Result<()> {
    let mut first = true;
    loop {
        let n = stream.read(buf).await?;
        if n == 0 {
            return Ok(());
        }
        let now = Instant::now();
        if first {
            // Tunnel set-up shows here (the source speaks first, so the first
            // byte needs the whole path open).
            stats.first_byte.record(now - started);
            first = false;
        }
        if now >= window.measure_start {
            stats.bytes += n as u64;
        }
    }
}
