//! Thread-per-core runtime for oxpulse-edge.
//!
//! `edge --cores N` runs N glommio `LocalExecutor`s ("shards") that share nothing. This crate
//! owns everything about *running* them, and nothing about what they serve:
//!
//! - [`placement`]: which CPUs we may use (`sched_getaffinity` ∩ online, because glommio's
//!   `CpuSet::online` ignores affinity and cgroup cpusets).
//! - [`preflight`](mod@preflight): io_uring and `RLIMIT_MEMLOCK` checks that turn glommio's late, terse
//!   failures into early errors that say how to fix the host.
//! - [`partition`]: the stable key → shard function.
//! - [`accept`]: the accept-until-drain loop of every listener.
//! - [`bus`](mod@bus): bounded cross-shard messages, never blocking the sender.
//! - [`handoff`]: moving an accepted TCP connection to its owner shard.
//! - [`shutdown`]: signals, drain, connection tracking.
//! - [`runtime`]: starting, joining and supervising the shards.
//! - [`hyper_io`]: glue so hyper 1.x runs on glommio (I/O adapter, executor, timer).

pub mod accept;
pub mod bus;
pub mod handoff;
pub mod hyper_io;
pub mod partition;
pub mod placement;
pub mod preflight;
pub mod runtime;
pub mod shutdown;

pub use bus::{bus, BroadcastOutcome, Bus, BusError, Inbox, Reply};
pub use handoff::{attach, detach, HandedConn};
pub use hyper_io::{GlommioSleep, GlommioTimer, HyperIo, LocalExec};
pub use partition::shard_of;
pub use placement::{allowed_cpus, choose_cpus};
pub use preflight::{preflight, PreflightError, PreflightReport};
pub use runtime::{run, run_on, RuntimeError, RuntimeOptions, Shard};
pub use shutdown::{ConnGuard, ConnTracker, Shutdown, ShutdownHandle};
