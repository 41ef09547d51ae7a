//! CPU time used by this process.
//!
//! A benchmark pins the generator to one core; when `loadgen` itself burns that
//! core the numbers describe the generator, not the server. Reporting our own
//! CPU seconds next to the throughput makes that case visible.

use std::mem::MaybeUninit;

/// User + system CPU seconds consumed so far by the whole process (all
/// threads), from `getrusage(RUSAGE_SELF)`. Returns 0 if the call fails, which
/// it cannot for `RUSAGE_SELF` with a valid pointer, so a 0 only ever
/// under-reports a diagnostic figure.
pub fn process_cpu_seconds() -> f64 {
    let mut usage = MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage.as_mut_ptr()` points to writable, properly aligned memory
    // large enough for a `libc::rusage` that lives until the end of this
    // function; getrusage only writes through it for the duration of the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return 0.0;
    }
    // SAFETY: `rusage` consists only of integer fields (timevals and longs), so
    // the all-zero bit pattern from `zeroed()` is already a valid value, and
    // getrusage succeeded, so every field now holds what the kernel wrote.
    let usage = unsafe { usage.assume_init() };
    timeval_seconds(usage.ru_utime) + timeval_seconds(usage.ru_stime)
}

fn timeval_seconds(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 + tv.tv_usec as f64 / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        let before = process_cpu_seconds();
        // Spin for a little while so the kernel's accounting (tick-based on
        // some configurations) moves.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let after = process_cpu_seconds();
        assert!(after >= before);
        assert!(after > 0.0);
    }
}
