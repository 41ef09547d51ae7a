//! Checks run once, before any shard starts.
//!
//! glommio reports host problems late and tersely: a missing io_uring panics inside the shard
//! thread, and a low memlock limit only shows up as `MemLockLimit(262144/524288)` from
//! `join()` after `spawn()` already returned Ok. [`preflight`] finds both up front and
//! returns errors whose `Display` says how to fix the host.

mod memlock;
mod uring_probe;

use std::io;

pub use memlock::{recommended_memlock, GLOMMIO_MIN_MEMLOCK, RINGS_PER_SHARD};

use memlock::show;

/// What [`preflight`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightReport {
    /// Soft RLIMIT_MEMLOCK in bytes after preflight (`u64::MAX` = unlimited).
    pub memlock_soft: u64,
    /// Hard RLIMIT_MEMLOCK in bytes (`u64::MAX` = unlimited).
    pub memlock_hard: u64,
    /// Whether preflight raised the soft limit.
    pub raised: bool,
    /// Memlock that lets every shard register its io_memory slab in all of its rings.
    pub recommended: u64,
    /// Whether the shards are expected to get registered (fixed) io buffers: true with
    /// CAP_IPC_LOCK or when the soft limit reaches `recommended`.
    pub fixed_buffers: bool,
}

/// Why the shards cannot start on this host.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PreflightError {
    /// `io_uring_setup(2)` failed.
    #[error("{}", describe_io_uring(*errno, *sysctl_disabled))]
    IoUringUnavailable {
        /// errno from io_uring_setup.
        errno: i32,
        /// `kernel.io_uring_disabled`, if the kernel has that sysctl.
        sysctl_disabled: Option<u8>,
    },
    /// The hard memlock limit is below what glommio needs to create an executor at all.
    #[error("{}", describe_memlock(*soft, *hard, *needed, *recommended))]
    MemlockTooLow {
        /// Soft limit in bytes.
        soft: u64,
        /// Hard limit in bytes.
        hard: u64,
        /// The least glommio accepts (512 KiB).
        needed: u64,
        /// What the requested shards would like, to register their io buffers.
        recommended: u64,
    },
    /// getrlimit/setrlimit failed.
    #[error("cannot read or raise RLIMIT_MEMLOCK: {0}")]
    Rlimit(#[source] io::Error),
}

/// Checks io_uring and RLIMIT_MEMLOCK for `shards` executors with `io_memory` bytes each,
/// raising the soft memlock limit towards the recommendation when the hard limit allows.
///
/// Call it once from the main thread before starting shards: the limit is process-wide.
/// Below the recommendation (but above glommio's 512 KiB minimum) it only warns, because
/// glommio then runs without registered buffers, which is slower but correct.
pub fn preflight(shards: usize, io_memory: usize) -> Result<PreflightReport, PreflightError> {
    uring_probe::probe_io_uring().map_err(|f| PreflightError::IoUringUnavailable {
        errno: f.errno,
        sysctl_disabled: f.sysctl_disabled,
    })?;

    let (soft, hard) = memlock::memlock_limits().map_err(PreflightError::Rlimit)?;
    let recommended = recommended_memlock(shards, io_memory);
    let report = plan_memlock(soft, hard, recommended, memlock::has_cap_ipc_lock())?;
    if report.raised {
        memlock::set_memlock_soft(report.memlock_soft, hard).map_err(PreflightError::Rlimit)?;
        tracing::info!(
            from = %show(soft),
            to = %show(report.memlock_soft),
            "raised the soft RLIMIT_MEMLOCK for the shards"
        );
    }
    if !report.fixed_buffers {
        tracing::warn!(
            memlock = %show(report.memlock_soft),
            recommended = %show(recommended),
            shards,
            io_memory,
            "RLIMIT_MEMLOCK is below the recommendation: shards will run without registered \
             io_uring buffers (glommio logs 'registering buffers ... Skipping'); raise it \
             with `ulimit -l`, LimitMEMLOCK= or --ulimit memlock=-1:-1, or lower io_memory"
        );
    }
    Ok(report)
}

/// The memlock decision, free of system calls: what the soft limit should become.
/// `exempt` = the process has CAP_IPC_LOCK, so the kernel does not charge io_uring
/// registrations and only glommio's own 512 KiB check matters.
fn plan_memlock(
    soft: u64,
    hard: u64,
    recommended: u64,
    exempt: bool,
) -> Result<PreflightReport, PreflightError> {
    if hard < GLOMMIO_MIN_MEMLOCK {
        return Err(PreflightError::MemlockTooLow {
            soft,
            hard,
            needed: GLOMMIO_MIN_MEMLOCK,
            recommended,
        });
    }
    let target = if exempt {
        GLOMMIO_MIN_MEMLOCK
    } else {
        recommended
    };
    // Never lower a limit, never ask for more than the hard limit.
    let new_soft = soft.max(target.min(hard));
    Ok(PreflightReport {
        memlock_soft: new_soft,
        memlock_hard: hard,
        raised: new_soft > soft,
        recommended,
        fixed_buffers: exempt || new_soft >= recommended,
    })
}

fn describe_io_uring(errno: i32, sysctl_disabled: Option<u8>) -> String {
    let cause = match (errno, sysctl_disabled) {
        (libc::ENOSYS, _) => {
            "the kernel has no io_uring (older than 5.1 or built without CONFIG_IO_URING)"
        }
        (libc::EPERM | libc::EACCES, Some(2)) => {
            "the sysctl kernel.io_uring_disabled=2 disables io_uring for every process"
        }
        (libc::EPERM | libc::EACCES, Some(1)) => {
            "the sysctl kernel.io_uring_disabled=1 allows io_uring only for members of \
             kernel.io_uring_group"
        }
        (libc::EPERM | libc::EACCES, _) => {
            "a seccomp filter or security module denies io_uring_setup (Docker's default \
             seccomp profile does)"
        }
        (libc::ENOMEM, _) => {
            "the kernel could not allocate a ring (kernels before 5.12 charge rings to \
             RLIMIT_MEMLOCK)"
        }
        _ => "unexpected error",
    };
    format!(
        "io_uring is not usable by this process: io_uring_setup failed with {} — {cause}. \
         To fix: run Linux >= 5.8; allow io_uring with `sysctl kernel.io_uring_disabled=0`; \
         in a container, use a seccomp profile that allows io_uring_setup, io_uring_enter and \
         io_uring_register (`docker run --security-opt seccomp=<profile.json>`; Docker blocks \
         them by default)",
        io::Error::from_raw_os_error(errno)
    )
}

fn describe_memlock(soft: u64, hard: u64, needed: u64, recommended: u64) -> String {
    let kib = recommended.div_ceil(1024);
    format!(
        "RLIMIT_MEMLOCK is too low for glommio: soft {}, hard {}, but an io_uring executor \
         needs at least {} ({} recommended so every shard can register its io buffers). \
         To fix: in the shell `ulimit -l {kib}` (or `unlimited`; raising the hard limit needs \
         root or /etc/security/limits.conf); in the systemd unit `LimitMEMLOCK=infinity` (or \
         `LimitMEMLOCK={recommended}`); in a container `--ulimit memlock=-1:-1`",
        show(soft),
        show(hard),
        show(needed),
        show(recommended),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;

    #[test]
    fn memlock_plan_covers_every_case() {
        let rec = 6144 * KIB;
        let plan = |soft, hard, exempt| plan_memlock(soft, hard, rec, exempt);
        // Hard limit below glommio's minimum: fatal, with or without CAP_IPC_LOCK.
        assert!(matches!(
            plan(64 * KIB, 64 * KIB, true),
            Err(PreflightError::MemlockTooLow { needed, .. }) if needed == GLOMMIO_MIN_MEMLOCK
        ));
        // Soft too low, hard enough for everything: raise to the recommendation.
        let r = plan(256 * KIB, 8192 * KIB, false).unwrap();
        assert_eq!(
            (r.memlock_soft, r.raised, r.fixed_buffers),
            (rec, true, true)
        );
        // Hard between minimum and recommendation: raise to hard, no fixed buffers.
        let r = plan(256 * KIB, 1024 * KIB, false).unwrap();
        assert_eq!(
            (r.memlock_soft, r.raised, r.fixed_buffers),
            (1024 * KIB, true, false)
        );
        // Soft already at hard but below the recommendation: nothing to raise.
        let r = plan(1024 * KIB, 1024 * KIB, false).unwrap();
        assert_eq!((r.raised, r.fixed_buffers), (false, false));
        // CAP_IPC_LOCK: only glommio's minimum is needed, buffers register anyway.
        let r = plan(256 * KIB, 8192 * KIB, true).unwrap();
        assert_eq!(
            (r.memlock_soft, r.raised, r.fixed_buffers),
            (512 * KIB, true, true)
        );
        // Unlimited stays unlimited.
        let r = plan(u64::MAX, u64::MAX, false).unwrap();
        assert_eq!(
            (r.memlock_soft, r.raised, r.fixed_buffers),
            (u64::MAX, false, true)
        );
    }

    #[test]
    fn memlock_message_names_every_fix() {
        let text = PreflightError::MemlockTooLow {
            soft: 64 * 1024,
            hard: 64 * 1024,
            needed: GLOMMIO_MIN_MEMLOCK,
            recommended: 6 << 20,
        }
        .to_string();
        for needle in [
            "soft 64 KiB",
            "512 KiB",
            "ulimit -l 6144",
            "LimitMEMLOCK=infinity",
            "--ulimit memlock=-1:-1",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from {text}");
        }
    }

    #[test]
    fn io_uring_message_names_the_cause_and_fixes() {
        let text = PreflightError::IoUringUnavailable {
            errno: libc::EPERM,
            sysctl_disabled: Some(2),
        }
        .to_string();
        assert!(text.contains("kernel.io_uring_disabled=2"), "{text}");
        assert!(text.contains("5.8"), "{text}");
        assert!(text.contains("io_uring_register"), "{text}");
        let text = PreflightError::IoUringUnavailable {
            errno: libc::EPERM,
            sysctl_disabled: Some(0),
        }
        .to_string();
        assert!(text.contains("seccomp"), "{text}");
    }
}
