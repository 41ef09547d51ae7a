//! RLIMIT_MEMLOCK: how much glommio needs, reading and raising the soft limit.
//!
//! The rules come from glommio 0.9 `Reactor::new` (src/sys/uring.rs):
//! - it refuses to build an executor when the *soft* limit is below 512 KiB
//!   (`ReactorError::MemLockLimit`), and that error only surfaces from `join()`;
//! - it rounds `io_memory` up to 4 KiB pages, with a floor of 64 KiB, and registers that one
//!   slab with each of the executor's 3 rings (main, poll, latency). The kernel charges every
//!   registration separately to the user's locked memory, unless the process has
//!   CAP_IPC_LOCK. When a registration does not fit, glommio logs a warning and runs without
//!   fixed buffers (slower I/O, still correct).
//!
//! The kernel charges registrations to the *user's* locked memory (all of that user's
//! processes together) but compares against this process's limit, so other io_uring or
//! mlock users running as the same user eat into the same budget.

use std::io;

/// glommio's `MIN_MEMLOCK_LIMIT`: below this soft limit no executor starts.
pub const GLOMMIO_MIN_MEMLOCK: u64 = 512 * 1024;
/// Rings per glommio executor that each register the io_memory slab.
pub const RINGS_PER_SHARD: u64 = 3;
/// glommio's floor for the io_memory slab.
const MIN_SLAB: u64 = 64 * 1024;
const PAGE: u64 = 4096;
/// Linux capability number of CAP_IPC_LOCK, which exempts io_uring from memlock accounting.
const CAP_IPC_LOCK: u32 = 14;

/// The memlock limit that lets `shards` executors register their `io_memory` slab in every
/// ring, and never less than glommio's minimum.
pub fn recommended_memlock(shards: usize, io_memory: usize) -> u64 {
    let slab = (io_memory as u64)
        .div_ceil(PAGE)
        .saturating_mul(PAGE)
        .max(MIN_SLAB);
    (shards as u64)
        .saturating_mul(RINGS_PER_SHARD)
        .saturating_mul(slab)
        .max(GLOMMIO_MIN_MEMLOCK)
}

/// (soft, hard) RLIMIT_MEMLOCK in bytes; `u64::MAX` means unlimited.
pub fn memlock_limits() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `struct rlimit` through the pointer, which refers to a
    // live, exclusively borrowed `libc::rlimit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((to_bytes(lim.rlim_cur), to_bytes(lim.rlim_max)))
}

/// Sets the soft limit (process-wide, so every shard thread sees it), keeping the hard one.
pub fn set_memlock_soft(soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: from_bytes(soft),
        rlim_max: from_bytes(hard),
    };
    // SAFETY: setrlimit only reads one `struct rlimit` through the pointer, which refers to
    // a live `libc::rlimit`.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether the effective capability set holds CAP_IPC_LOCK (read from /proc/self/status).
/// Unknown counts as "no": we would rather warn needlessly than stay silent.
pub fn has_cap_ipc_lock() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}

/// Human form of a limit for messages: "unlimited" or "N KiB".
pub fn show(bytes: u64) -> String {
    if bytes == u64::MAX {
        "unlimited".to_owned()
    } else {
        format!("{} KiB", bytes / 1024)
    }
}

// `rlim_t` is 64-bit here but 32-bit on some 32-bit targets, so the casts are not no-ops
// everywhere.
#[allow(clippy::unnecessary_cast)]
fn to_bytes(raw: libc::rlim_t) -> u64 {
    if raw == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        raw as u64
    }
}

#[allow(clippy::unnecessary_cast)]
fn from_bytes(bytes: u64) -> libc::rlim_t {
    if bytes == u64::MAX {
        libc::RLIM_INFINITY
    } else {
        bytes as libc::rlim_t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recommendation_follows_glommio_rules() {
        // One shard with a tiny slab still needs glommio's minimum.
        assert_eq!(recommended_memlock(1, 0), GLOMMIO_MIN_MEMLOCK);
        // 64 KiB floor, 3 rings: 2 shards * 3 * 64 KiB = 384 KiB < 512 KiB minimum.
        assert_eq!(recommended_memlock(2, 1), GLOMMIO_MIN_MEMLOCK);
        // io_memory is rounded up to whole pages before being registered 3 times.
        assert_eq!(recommended_memlock(4, 1 << 20), 4 * 3 * (1 << 20));
        assert_eq!(
            recommended_memlock(1, (1 << 20) + 1),
            3 * ((1 << 20) + 4096)
        );
    }

    #[test]
    fn limits_are_readable_and_consistent() {
        let (soft, hard) = memlock_limits().unwrap();
        assert!(soft <= hard);
    }
}
