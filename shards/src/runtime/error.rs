//! Why the shards could not run.

use std::io;

use crate::preflight::PreflightError;

/// Failure of [`run`](super::run) and of CPU selection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The host is not ready (io_uring, memlock); the message says how to fix it.
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// More shards were requested than CPUs are allowed.
    #[error("{}", too_many_cores(*requested, allowed))]
    TooManyCores {
        /// The `--cores` value.
        requested: usize,
        /// CPUs this process may use (affinity ∩ online).
        allowed: Vec<usize>,
    },
    /// The affinity mask and the online CPUs do not intersect.
    #[error(
        "no usable CPU: the process affinity mask (taskset, cgroup cpuset, CPUAffinity=) \
         shares no CPU with /sys/devices/system/cpu/online"
    )]
    NoCpus,
    /// A shard could not start or ended with an error.
    #[error("shard {index} on CPU {cpu} failed: {source}{}", failure_hint(source))]
    ShardFailed {
        /// Shard index.
        index: usize,
        /// CPU it was pinned to.
        cpu: usize,
        /// glommio's error, converted.
        #[source]
        source: io::Error,
    },
    /// A shard's future panicked.
    #[error("shard {index} on CPU {cpu} panicked: {message}")]
    ShardPanicked {
        /// Shard index.
        index: usize,
        /// CPU it was pinned to.
        cpu: usize,
        /// The panic payload, if it was a string.
        message: String,
    },
    /// Reading the CPU topology or another system interface failed.
    #[error("cannot prepare the shards: {0}")]
    Io(#[from] io::Error),
}

fn too_many_cores(requested: usize, allowed: &[usize]) -> String {
    let list = allowed
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "--cores {requested} asks for more shards than CPUs this process may use: {} allowed \
         ({list}; the affinity mask from taskset, a cgroup cpuset or CPUAffinity= limits \
         this). Use --cores {} or fewer, or --cores 0 for all of them",
        allowed.len(),
        allowed.len(),
    )
}

/// Extra advice for the failures whose glommio text is cryptic.
fn failure_hint(source: &io::Error) -> &'static str {
    let text = source.to_string();
    if text.contains("MemLockLimit") || text.contains("memlock") {
        " (RLIMIT_MEMLOCK is too low for io_uring: raise it with `ulimit -l`, \
         LimitMEMLOCK=infinity in the systemd unit, or --ulimit memlock=-1:-1 in a container)"
    } else if text.contains("os error 22") {
        " (EINVAL: a CPU outside the process affinity mask, or a ring_depth above the \
         kernel's limit of 32768)"
    } else {
        ""
    }
}
