//! The forwarder: one UDP socket, one thread, recvmmsg → look up the room →
//! sendmmsg each datagram to the room's other members. No crypto, no RTP
//! parsing, no per-peer state beyond an address: the least work an SFU's
//! forwarding path can do, hence the ceiling its benchmark is read against.
//!
//! Rooms are learned from traffic: the first 4 bytes of a datagram are its
//! room id (big-endian); a source becomes a member of that room on its first
//! datagram, while the room has fewer than `fanout + 1` members. A datagram
//! from a member goes to every other member (at most `fanout`); one from a
//! non-member of a full room is dropped and counted.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use super::mmsg::{self, RawAddr, RecvBatch};

/// How the forwarder runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub fanout: usize,
    pub batch: usize,
    /// Stop after this long; `None`: run until killed.
    pub duration: Option<Duration>,
    /// Print a rate line this often (0: never).
    pub report_every: Duration,
}

/// What the forwarder did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Totals {
    pub listen: String,
    pub fanout: usize,
    pub seconds: f64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub pps_in: f64,
    pub pps_out: f64,
    /// Datagrams too short for a room id, or from a non-member of a full room.
    pub dropped: u64,
    pub send_errors: u64,
    pub rooms: usize,
    pub recv_calls: u64,
    pub cpu_s: f64,
}

fn room_id(datagram: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(datagram.get(..4)?.try_into().ok()?))
}

struct Member {
    addr: SocketAddr,
    raw: RawAddr,
}

/// Room id → members, in joining order.
#[derive(Default)]
pub struct Rooms {
    rooms: HashMap<u32, Vec<Member>>,
    cap: usize,
}

impl Rooms {
    pub fn new(fanout: usize) -> Self {
        Self {
            rooms: HashMap::new(),
            cap: fanout + 1,
        }
    }

    /// Learns `from` as a member of the datagram's room if it is not one
    /// and the room has space; false if the datagram is to be dropped.
    pub fn learn(&mut self, datagram: &[u8], from: &RawAddr) -> bool {
        let (Some(id), Some(addr)) = (room_id(datagram), from.to_socket_addr()) else {
            return false;
        };
        let members = self.rooms.entry(id).or_default();
        if members.iter().any(|m| m.addr == addr) {
            return true;
        }
        if members.len() >= self.cap {
            return false;
        }
        members.push(Member { addr, raw: *from });
        true
    }

    /// Where a datagram from member `from` goes: every other member.
    pub fn destinations<'a>(
        &'a self,
        datagram: &[u8],
        from: &RawAddr,
    ) -> impl Iterator<Item = &'a RawAddr> + 'a {
        let addr = from.to_socket_addr();
        let members = room_id(datagram).and_then(|id| self.rooms.get(&id));
        let is_member = members.is_some_and(|ms| ms.iter().any(|m| Some(m.addr) == addr));
        members
            .filter(|_| is_member)
            .into_iter()
            .flatten()
            .filter(move |m| Some(m.addr) != addr)
            .map(|m| &m.raw)
    }

    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}

/// Runs the forwarder on the calling thread.
pub fn run(cfg: &Config) -> anyhow::Result<Totals> {
    let socket = UdpSocket::bind(cfg.listen).with_context(|| format!("binding {}", cfg.listen))?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let fd = socket.as_raw_fd();
    mmsg::set_buffers(fd, 8 << 20);
    eprintln!(
        "udp-fanout: forwarding on {} to up to {} members per room",
        socket.local_addr()?,
        cfg.fanout
    );
    let mut rooms = Rooms::new(cfg.fanout);
    let mut batch = RecvBatch::new(cfg.batch);
    let mut t = Totals {
        listen: socket.local_addr()?.to_string(),
        fanout: cfg.fanout,
        ..Totals::default()
    };
    let cpu0 = crate::cpu::process_cpu_seconds();
    let start = Instant::now();
    let mut last_report = (start, 0u64, 0u64);
    loop {
        let now = Instant::now();
        if cfg.duration.is_some_and(|d| now - start >= d) {
            break;
        }
        if !cfg.report_every.is_zero() && now - last_report.0 >= cfg.report_every {
            let s = (now - last_report.0).as_secs_f64();
            eprintln!(
                "udp-fanout: {:.0} pps in, {:.0} pps out, {} rooms",
                (t.packets_in - last_report.1) as f64 / s,
                (t.packets_out - last_report.2) as f64 / s,
                rooms.len()
            );
            last_report = (now, t.packets_in, t.packets_out);
        }
        let n = match batch.recv(fd) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => return Err(e).context("recvmmsg"),
        };
        t.recv_calls += 1;
        t.packets_in += n as u64;
        for i in 0..n {
            let (data, from) = batch.get(i);
            if !rooms.learn(data, from) {
                t.dropped += 1;
            }
        }
        let mut items: Vec<(&[u8], &RawAddr)> = Vec::with_capacity(n * cfg.fanout);
        for i in 0..n {
            let (data, from) = batch.get(i);
            items.extend(rooms.destinations(data, from).map(|d| (data, d)));
        }
        let (sent, failed) = mmsg::send_all(fd, &items);
        t.packets_out += sent;
        t.send_errors += failed;
    }
    t.seconds = start.elapsed().as_secs_f64();
    t.pps_in = crate::report::per_second(t.packets_in, t.seconds);
    t.pps_out = crate::report::per_second(t.packets_out, t.seconds);
    t.rooms = rooms.len();
    t.cpu_s = crate::cpu::process_cpu_seconds() - cpu0;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(port: u16) -> RawAddr {
        RawAddr::from_socket_addr(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    fn dests(rooms: &Rooms, data: &[u8], from: &RawAddr) -> Vec<SocketAddr> {
        rooms
            .destinations(data, from)
            .filter_map(|r| r.to_socket_addr())
            .collect()
    }

    #[test]
    fn rooms_are_learned_and_capped() {
        let mut rooms = Rooms::new(2);
        let room7 = [0, 0, 0, 7, 0xff];
        let (a, b, c, d) = (raw(1), raw(2), raw(3), raw(4));
        for m in [&a, &b, &c] {
            assert!(rooms.learn(&room7, m));
        }
        // Full (fanout 2 = 3 members): a fourth source is dropped.
        assert!(!rooms.learn(&room7, &d));
        assert!(dests(&rooms, &room7, &d).is_empty());
        let to: Vec<u16> = dests(&rooms, &room7, &b).iter().map(|s| s.port()).collect();
        assert_eq!(to, vec![1, 3]);
        // Another room is separate; a short datagram is dropped.
        assert!(rooms.learn(&[0, 0, 0, 8], &d));
        assert!(dests(&rooms, &[0, 0, 0, 8], &d).is_empty());
        assert!(!rooms.learn(&[0, 0], &a));
        assert_eq!(rooms.len(), 2);
    }

    #[test]
    fn forwards_to_the_other_members() {
        let cfg = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            fanout: 2,
            batch: 8,
            duration: Some(Duration::from_millis(600)),
            report_every: Duration::ZERO,
        };
        // Bind first to learn the port: run on a known free port instead.
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let listen = probe.local_addr().unwrap();
        drop(probe);
        let cfg = Config { listen, ..cfg };
        let fwd = std::thread::spawn(move || run(&cfg).unwrap());
        std::thread::sleep(Duration::from_millis(100));
        let peers: Vec<UdpSocket> = (0..3)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        for p in &peers {
            p.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            p.send_to(&[0, 0, 0, 1, 0], listen).unwrap();
            // One join per batch, so the counts below are exact (within a
            // batch every member is learned before anything is routed).
            std::thread::sleep(Duration::from_millis(30));
        }
        std::thread::sleep(Duration::from_millis(50));
        peers[0].send_to(&[0, 0, 0, 1, 42], listen).unwrap();
        let mut buf = [0u8; 64];
        for p in &peers[1..] {
            // Skip the join datagrams forwarded earlier; find the payload 42.
            let mut got = false;
            while let Ok((n, _)) = p.recv_from(&mut buf) {
                if buf[..n] == [0, 0, 0, 1, 42] {
                    got = true;
                    break;
                }
            }
            assert!(got);
        }
        let t = fwd.join().unwrap();
        assert_eq!(t.packets_in, 4);
        // Joins: p0 → nobody yet, p1 → p0, p2 → p0+p1; then 42 → p1+p2.
        assert_eq!(t.packets_out, 5);
        assert_eq!(t.rooms, 1);
    }
}
