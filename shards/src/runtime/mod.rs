//! Starting N shards, one glommio `LocalExecutor` pinned per CPU, and supervising them.

mod error;
mod supervise;

use std::future::Future;

use crate::{
    bus::{Bus, Inbox},
    placement::choose_cpus,
    preflight::preflight,
    shutdown::{Shutdown, ShutdownHandle},
};

pub use error::RuntimeError;

/// How to run the shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Number of shards; `None` or `Some(0)` = one per allowed CPU.
    pub cores: Option<usize>,
    /// Bytes of io_uring buffer slab per shard (glommio's `io_memory`; floor 64 KiB).
    pub io_memory: usize,
    /// Entries per io_uring ring (glommio's `ring_depth`; the kernel caps it at 32768).
    pub ring_depth: usize,
    /// Capacity of each shard's bus inbox.
    pub bus_capacity: usize,
    /// Thread name prefix: shard `i` runs on a thread named `<name>-<i>-<glommio id>`.
    pub name: String,
}

impl Default for RuntimeOptions {
    /// All CPUs; 1 MiB of io_memory, so two shards' three registrations each (6 MiB) fit the
    /// common 8 MiB memlock default (glommio's own 10 MiB default does not fit even one);
    /// glommio's default ring depth of 128; 1024 queued bus messages per shard.
    fn default() -> Self {
        RuntimeOptions {
            cores: None,
            io_memory: 1 << 20,
            ring_depth: 128,
            bus_capacity: 1024,
            name: "shard".to_owned(),
        }
    }
}

/// Everything one shard gets. Moved into the shard's thread, then owned by its future.
#[derive(Debug)]
pub struct Shard<M: Send + 'static> {
    /// 0..count. Use this, not `glommio::executor().id()`, which is a process-wide counter.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
    /// The CPU this shard is pinned to.
    pub cpu: usize,
    /// Sends to any shard, this one included.
    pub bus: Bus<M>,
    /// This shard's own queue. Dropping it tells senders this shard is gone.
    pub inbox: Inbox<M>,
    /// Resolves when the drain starts.
    pub shutdown: ShutdownHandle,
}

/// Runs one shard per chosen CPU until every shard future has completed.
///
/// Steps: choose CPUs (`opts.cores`), [`preflight`], build the bus, start one executor per
/// CPU with `Placement::Fixed(cpu)`, then wait for all of them. Shard futures are expected
/// to return after `shard.shutdown.draining()` resolves and their connections are done.
///
/// Never hangs on a broken shard: if a shard fails to start (glommio reports executor
/// creation errors such as `MemLockLimit` only when joined), panics or errors, the
/// [`Shutdown`] is triggered so the other shards drain, and the first failure is returned
/// once all have stopped.
///
/// `run` does not install signal handlers: call [`Shutdown::install_signal_handlers`] first
/// if SIGINT/SIGTERM should drain.
pub fn run<M, F, Fut>(
    opts: RuntimeOptions,
    shutdown: &Shutdown,
    make: F,
) -> Result<(), RuntimeError>
where
    M: Send + 'static,
    F: Fn(Shard<M>) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let cpus = choose_cpus(opts.cores)?;
    run_on(cpus, opts, shutdown, make)
}

/// Like [`run`], but on exactly these CPUs (`opts.cores` is ignored). A CPU may repeat to
/// oversubscribe it, which is useful for tests and development on small machines; a CPU the
/// process may not use makes that shard fail with [`RuntimeError::ShardFailed`].
pub fn run_on<M, F, Fut>(
    cpus: Vec<usize>,
    opts: RuntimeOptions,
    shutdown: &Shutdown,
    make: F,
) -> Result<(), RuntimeError>
where
    M: Send + 'static,
    F: Fn(Shard<M>) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    if cpus.is_empty() {
        return Err(RuntimeError::NoCpus);
    }
    let report = preflight(cpus.len(), opts.io_memory)?;
    tracing::debug!(?report, ?cpus, "preflight passed");
    supervise::launch(&cpus, &opts, shutdown, make)
}
