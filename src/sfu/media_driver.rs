//! The shard's media socket: a thin glommio loop around [`RoomHub`]. Receives a
//! datagram → `handle_udp`; sends everything `poll_transmit` has; sleeps until the next
//! packet, the hub's `next_timeout`, or a poke from signalling (a join or an answer
//! queued datagrams). Ends when the node drains and the rooms are empty, or at the
//! drain deadline.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::future;
use glommio::net::UdpSocket;
use shards::shutdown::ShutdownHandle;

use super::api::MediaAddrs;
use super::hub::{HubConfig, RoomHub};
use crate::telemetry::metrics::ShardMetrics;
use crate::telemetry::redact::MaskedIp;

/// Larger than any datagram str0m accepts (it targets ~1200-byte MTUs), with room for
/// jumbo strays, which are then simply not parsed.
const RECV_BUFFER: usize = 2048;

/// Kernel socket buffers: a burst of keyframes from five publishers must not overflow
/// while the shard is busy elsewhere.
const SOCKET_BUFFER: usize = 4 << 20;

type Recv = Pin<Box<dyn Future<Output = (io::Result<(usize, SocketAddr)>, Vec<u8>)>>>;

async fn recv_datagram(
    socket: Rc<UdpSocket>,
    mut buf: Vec<u8>,
) -> (io::Result<(usize, SocketAddr)>, Vec<u8>) {
    let got = socket.recv_from(&mut buf).await.map_err(io::Error::from);
    (got, buf)
}

enum Wake {
    Packet(io::Result<(usize, SocketAddr)>, Vec<u8>),
    Timer,
    Poke,
    Drain,
}

/// Binds the shard's media port. glommio sets SO_REUSEPORT on it; the port is the
/// shard's own (base + index) and nothing else of ours binds it.
pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let mut socket = UdpSocket::bind(addr).map_err(io::Error::from)?;
    // The kernel caps it at net.core.rmem_max/wmem_max.
    socket.set_buffer_size(SOCKET_BUFFER);
    Ok(socket)
}

/// Creates a shard's rooms and starts its media loop on the current glommio executor:
/// binds `addrs.bound`, spawns [`run`] (detached; it ends with the drain) and returns the
/// hub that the shard's signalling calls through [`super::api::Rooms`].
pub fn start(
    addrs: MediaAddrs,
    cfg: HubConfig,
    metrics: Option<Rc<ShardMetrics>>,
    shutdown: ShutdownHandle,
) -> io::Result<Rc<RefCell<RoomHub>>> {
    let socket = bind(addrs.bound)?;
    let mut addrs = addrs;
    if addrs.bound.port() == 0 {
        // An ephemeral port (`media_port_base = 0`): advertise the one bound.
        let port = socket.local_addr().map_err(io::Error::from)?.port();
        addrs.bound.set_port(port);
        for c in &mut addrs.candidates {
            c.set_port(port);
        }
    }
    let hub = Rc::new(RefCell::new(RoomHub::new(addrs, cfg, metrics)));
    glommio::spawn_local(run(socket, hub.clone(), shutdown)).detach();
    Ok(hub)
}

/// Runs the media loop of one shard until the drain ends. `hub` is shared with the
/// shard's signalling (same thread); the loop installs the hub's waker.
pub async fn run(socket: UdpSocket, hub: Rc<RefCell<RoomHub>>, shutdown: ShutdownHandle) {
    let socket = Rc::new(socket);
    let bound = hub.borrow().media_addrs().bound;
    let (poke_tx, poke_rx) = flume::bounded::<()>(1);
    hub.borrow_mut().set_waker(Rc::new(move || {
        // Full means a poke is already pending: one wake-up is enough.
        let _ = poke_tx.try_send(());
    }));
    let mut recv: Recv = Box::pin(recv_datagram(socket.clone(), vec![0; RECV_BUFFER]));
    let mut draining = false;
    loop {
        flush(&socket, &hub).await;
        let now = Instant::now();
        if draining {
            let empty = hub.borrow().participant_count() == 0;
            if empty || shutdown.deadline().is_some_and(|d| now >= d) {
                break;
            }
        }
        let deadline = hub.borrow().next_timeout();
        if deadline.is_some_and(|d| d <= now) {
            // Checked here too, so a steady packet stream cannot starve the timers.
            hub.borrow_mut().handle_timeout(now);
            continue;
        }
        let timer = async {
            match deadline {
                Some(d) => glommio::timer::sleep(d.saturating_duration_since(Instant::now())).await,
                // Nothing scheduled (no rooms): wake now and then anyway.
                None => glommio::timer::sleep(Duration::from_secs(1)).await,
            }
            Wake::Timer
        };
        let packet = async {
            let (got, buf) = (&mut recv).await;
            Wake::Packet(got, buf)
        };
        let poke = async {
            if poke_rx.recv_async().await.is_err() {
                // The waker was replaced and its sender dropped: a closed channel would
                // be ready forever and spin this loop, so stop listening to it.
                future::pending::<()>().await;
            }
            Wake::Poke
        };
        let drain = async {
            if draining {
                future::pending::<()>().await;
            }
            shutdown.draining().await;
            Wake::Drain
        };
        let wake = future::or(packet, future::or(timer, future::or(poke, drain))).await;
        match wake {
            Wake::Packet(got, buf) => {
                match &got {
                    Ok((n, source)) => {
                        hub.borrow_mut()
                            .handle_udp(Instant::now(), *source, bound, &buf[..*n])
                    }
                    Err(e) => tracing::debug!(error = %e, "sfu media receive failed"),
                }
                recv = Box::pin(recv_datagram(socket.clone(), buf));
            }
            Wake::Timer => hub.borrow_mut().handle_timeout(Instant::now()),
            Wake::Poke => {}
            Wake::Drain => draining = true,
        }
    }
}

/// Sends every queued datagram. A failed send (ICMP unreachable from an earlier
/// datagram, a full buffer) loses that datagram only, as UDP would.
async fn flush(socket: &UdpSocket, hub: &Rc<RefCell<RoomHub>>) {
    loop {
        let Some(out) = hub.borrow_mut().poll_transmit() else {
            return;
        };
        if let Err(e) = socket.send_to(&out.contents, out.destination).await {
            tracing::debug!(
                error = %io::Error::from(e),
                to = %MaskedIp(out.destination.ip()),
                "sfu media send failed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::Metric;
    use shards::shutdown::Shutdown;

    /// The loop on a real socket: a stray datagram is read, offered to the (empty) hub
    /// and counted as dropped; the drain ends the loop.
    #[test]
    fn reads_datagrams_and_stops_on_drain() {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(|| async {
                let socket = bind("127.0.0.1:0".parse().unwrap()).expect("bind");
                let local = socket.local_addr().expect("local addr");
                let addrs = MediaAddrs {
                    bound: local,
                    candidates: vec![local],
                };
                let metrics = Rc::new(ShardMetrics::default());
                let hub = Rc::new(RefCell::new(RoomHub::new(
                    addrs,
                    HubConfig::default(),
                    Some(metrics.clone()),
                )));
                let shutdown = Shutdown::new(Duration::from_secs(1));
                let task = glommio::spawn_local(run(socket, hub.clone(), shutdown.handle()));

                let client = UdpSocket::bind("127.0.0.1:0").expect("client");
                client.send_to(&[0x80u8; 40], local).await.expect("send");
                for _ in 0..200 {
                    if metrics.get(Metric::SfuPacketsDropped) > 0 {
                        break;
                    }
                    glommio::timer::sleep(Duration::from_millis(5)).await;
                }
                assert_eq!(metrics.get(Metric::SfuPacketsDropped), 1);

                shutdown.trigger();
                glommio::timer::timeout(Duration::from_secs(5), async {
                    task.await;
                    Ok(())
                })
                .await
                .expect("the loop ends with the drain");
            })
            .expect("executor")
            .join()
            .expect("joined");
    }
}
