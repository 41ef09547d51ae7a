//! Is io_uring usable by this process? Asked by creating (and closing) a one-entry ring.
//!
//! glommio's own failure here is a panic deep inside the shard thread, or on old kernels
//! "Failed to register a probe… (too old!!)". Probing first lets us name the real cause:
//! seccomp (Docker's default profile), the `kernel.io_uring_disabled` sysctl, or the kernel.

use std::{
    fs, io,
    os::fd::{FromRawFd, OwnedFd},
};

/// `struct io_uring_params` from `<linux/io_uring.h>` is 120 bytes: 10 `u32`s followed by the
/// SQ and CQ offset structs (40 bytes each). The kernel only requires the caller to zero it
/// and writes the ring geometry back, which we ignore; `align(8)` matches the `u64` members.
#[repr(C, align(8))]
struct IoUringParams([u32; 30]);

/// Why a probe failed: the errno plus the sysctl value, if the kernel has that knob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProbeFailure {
    pub errno: i32,
    pub sysctl_disabled: Option<u8>,
}

/// Creates a ring with one entry and closes it again.
pub(crate) fn probe_io_uring() -> Result<(), ProbeFailure> {
    let mut params = IoUringParams([0; 30]);
    // SAFETY: io_uring_setup(entries, params) reads and writes exactly
    // sizeof(struct io_uring_params) = 120 bytes through `params`, which points to a live,
    // exclusively borrowed, suitably aligned 120-byte buffer. It returns a new fd or -1.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_io_uring_setup,
            1 as libc::c_uint,
            &mut params as *mut IoUringParams,
        )
    };
    if ret < 0 {
        let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
        return Err(ProbeFailure {
            errno,
            sysctl_disabled: read_io_uring_disabled(),
        });
    }
    // SAFETY: a non-negative return from io_uring_setup is a freshly created file descriptor
    // that nothing else owns; OwnedFd takes ownership and closes it (and the ring) on drop.
    drop(unsafe { OwnedFd::from_raw_fd(ret as libc::c_int) });
    Ok(())
}

/// `/proc/sys/kernel/io_uring_disabled` (Linux 6.6+): 0 = allowed, 1 = only for
/// `kernel.io_uring_group` members, 2 = disabled for everyone.
fn read_io_uring_disabled() -> Option<u8> {
    fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_buffer_matches_the_kernel_struct_size() {
        assert_eq!(std::mem::size_of::<IoUringParams>(), 120);
    }
}
