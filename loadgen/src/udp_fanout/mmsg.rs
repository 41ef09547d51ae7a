//! Batched UDP I/O on one socket: `recvmmsg(2)` and `sendmmsg(2)` through
//! libc, plus conversions between `SocketAddr` and the kernel's
//! `sockaddr_storage`. This is the only `unsafe` of the forwarder; every block
//! says why it is sound.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Largest datagram a slot holds (media packets stay under 1200 bytes).
pub const SLOT: usize = 2048;
/// Most messages one sendmmsg call takes (the kernel's UIO_MAXIOV).
const MAX_SEND: usize = 1024;

/// An address in the kernel's form.
#[derive(Clone, Copy)]
pub struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawAddr {
    pub fn from_socket_addr(addr: SocketAddr) -> Self {
        // SAFETY: sockaddr_storage is plain integers and byte arrays, for
        // which all-zero is a valid value.
        let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned at least
                // as strictly as sockaddr_in (that is its purpose), so the
                // write stays in bounds and is aligned.
                unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
                mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: as above, for sockaddr_in6.
                unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
                mem::size_of::<libc::sockaddr_in6>()
            }
        };
        Self {
            storage,
            len: len as libc::socklen_t,
        }
    }

    pub fn to_socket_addr(&self) -> Option<SocketAddr> {
        match i32::from(self.storage.ss_family) {
            libc::AF_INET if self.len as usize >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says the kernel wrote a sockaddr_in,
                // which fits (checked length) and is suitably aligned within
                // the storage; read_unaligned needs no alignment anyway.
                let sin: libc::sockaddr_in =
                    unsafe { std::ptr::read_unaligned(&self.storage as *const _ as *const _) };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if self.len as usize >= mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for sockaddr_in6.
                let sin6: libc::sockaddr_in6 =
                    unsafe { std::ptr::read_unaligned(&self.storage as *const _ as *const _) };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// Receive buffers for up to `n` datagrams per call.
pub struct RecvBatch {
    bufs: Vec<[u8; SLOT]>,
    addrs: Vec<RawAddr>,
    lens: Vec<usize>,
}

impl RecvBatch {
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        let zero = RawAddr::from_socket_addr(SocketAddr::from(([0, 0, 0, 0], 0)));
        Self {
            bufs: vec![[0; SLOT]; n],
            addrs: vec![zero; n],
            lens: vec![0; n],
        }
    }

    /// Waits for at least one datagram (or the socket's receive timeout:
    /// `WouldBlock`) and takes as many as are queued, up to the batch size.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let n = self.bufs.len();
        let mut iovecs: Vec<libc::iovec> = self
            .bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: SLOT,
            })
            .collect();
        // SAFETY: mmsghdr is integers and pointers; all-zero (null pointers,
        // zero lengths) is a valid value, and the fields that matter are set
        // below.
        let mut hdrs: Vec<libc::mmsghdr> = (0..n).map(|_| unsafe { mem::zeroed() }).collect();
        for (i, h) in hdrs.iter_mut().enumerate() {
            h.msg_hdr.msg_name = (&mut self.addrs[i].storage as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &mut iovecs[i];
            h.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `hdrs` holds `n` initialised headers. Each points to one
        // iovec in `iovecs` (one SLOT-byte buffer in `self.bufs`) and to one
        // sockaddr_storage in `self.addrs` with its true size. None of these
        // vectors is touched (so none moves) until the call returns, and the
        // kernel writes only within the lengths given. A null timeout is
        // allowed (the socket's SO_RCVTIMEO applies).
        let got = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        let got = got as usize;
        for (i, h) in hdrs.iter().take(got).enumerate() {
            self.lens[i] = (h.msg_len as usize).min(SLOT);
            self.addrs[i].len = h.msg_hdr.msg_namelen;
        }
        Ok(got)
    }

    /// Datagram `i` of the last `recv` and its source.
    pub fn get(&self, i: usize) -> (&[u8], &RawAddr) {
        (&self.bufs[i][..self.lens[i]], &self.addrs[i])
    }
}

/// Sends every `(datagram, destination)` pair with as few sendmmsg calls
/// as possible. Returns (sent, failed): a destination the kernel refuses
/// (for example after an ICMP unreachable) is skipped and counted.
pub fn send_all(fd: RawFd, items: &[(&[u8], &RawAddr)]) -> (u64, u64) {
    let mut sent = 0u64;
    let mut failed = 0u64;
    let mut at = 0;
    while at < items.len() {
        let chunk = &items[at..items.len().min(at + MAX_SEND)];
        let mut iovecs: Vec<libc::iovec> = chunk
            .iter()
            .map(|(data, _)| libc::iovec {
                // The kernel only reads through this pointer (sendmmsg).
                iov_base: data.as_ptr() as *mut libc::c_void,
                iov_len: data.len(),
            })
            .collect();
        // SAFETY: all-zero is a valid mmsghdr (see RecvBatch::recv).
        let mut hdrs: Vec<libc::mmsghdr> =
            (0..chunk.len()).map(|_| unsafe { mem::zeroed() }).collect();
        for (i, h) in hdrs.iter_mut().enumerate() {
            h.msg_hdr.msg_name =
                (&chunk[i].1.storage as *const libc::sockaddr_storage) as *mut libc::c_void;
            h.msg_hdr.msg_namelen = chunk[i].1.len;
            h.msg_hdr.msg_iov = &mut iovecs[i];
            h.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `hdrs` holds `chunk.len()` (≤ UIO_MAXIOV) initialised
        // headers, each pointing to one iovec in `iovecs` (which points into
        // a datagram borrowed by `items` for this whole function) and to a
        // destination address with its true length, also borrowed by
        // `items`. sendmmsg only reads through these pointers (msg_name and
        // iov_base are `*mut` in the C API but not written), and nothing is
        // moved or freed until it returns.
        let rc = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), chunk.len() as libc::c_uint, 0) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The first message failed: skip it.
            failed += 1;
            at += 1;
        } else {
            sent += rc as u64;
            at += rc as usize;
            if rc == 0 {
                // Should not happen for a blocking socket; avoid spinning.
                failed += 1;
                at += 1;
            }
        }
    }
    (sent, failed)
}

/// Sets SO_RCVBUF and SO_SNDBUF (best effort: the kernel caps them at
/// net.core.{r,w}mem_max).
pub fn set_buffers(fd: RawFd, bytes: usize) {
    let v: libc::c_int = bytes.min(i32::MAX as usize) as libc::c_int;
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: `v` is a live c_int and the length given is its size;
        // setsockopt only reads it. A bad fd or option is an error return,
        // not undefined behaviour.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd as _;
    use std::time::Duration;

    #[test]
    fn addresses_round_trip() {
        for a in ["127.0.0.1:5000", "[::1]:6000", "10.1.2.3:1"] {
            let addr: SocketAddr = a.parse().unwrap();
            assert_eq!(RawAddr::from_socket_addr(addr).to_socket_addr(), Some(addr));
        }
    }

    #[test]
    fn batches_go_out_and_come_back() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dest = RawAddr::from_socket_addr(rx.local_addr().unwrap());
        let data: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 100 + i as usize]).collect();
        let items: Vec<(&[u8], &RawAddr)> = data.iter().map(|d| (d.as_slice(), &dest)).collect();
        assert_eq!(send_all(tx.as_raw_fd(), &items), (10, 0));
        let mut batch = RecvBatch::new(16);
        let mut seen = 0;
        while seen < 10 {
            let n = batch.recv(rx.as_raw_fd()).unwrap();
            for i in 0..n {
                let (d, from) = batch.get(i);
                assert_eq!(d, &data[seen][..]);
                assert_eq!(from.to_socket_addr(), Some(tx.local_addr().unwrap()));
                seen += 1;
            }
        }
        // Nothing queued: the receive timeout comes back as an error.
        rx.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let err = batch.recv(rx.as_raw_fd()).unwrap_err();
        assert!(matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ));
    }
}
