//! The glommio loop of one participant's signalling socket, on the room's owner shard:
//! feeds the socket's bytes, the rooms' pushes, the clock and the drain into a
//! [`Session`] and writes what it produces. All protocol decisions are in `session.rs`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use http::HeaderValue;
use shards::bus::Bus;
use shards::shutdown::{ConnTracker, ShutdownHandle};

use super::api::{Outbox, Outgoing, Rooms};
use super::session::{Session, Timeouts};

use crate::config::Secret;
use crate::server::ShardMsg;
use crate::telemetry::metrics::{Metric, ShardMetrics};

/// How long one write may wait for a client that reads nothing.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long closing the socket (close_notify, TCP shutdown) may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything signalling needs on one shard: built once per shard, shared by its sockets.
pub struct SfuShard {
    pub index: usize,
    pub shards: usize,
    /// The room-token key.
    pub secret: Arc<Secret>,
    /// This shard's rooms: only rooms with `shard_of(room) == index` ever see a call.
    pub rooms: Rc<RefCell<dyn Rooms>>,
    pub timeouts: Timeouts,
    pub metrics: Rc<ShardMetrics>,
    /// The front's tracker, so the drain waits for signalling sockets too.
    pub conns: ConnTracker,
    pub shutdown: ShutdownHandle,
    /// To hand a socket to its room's owner; `None` when there is only this shard.
    pub bus: Option<Bus<ShardMsg>>,
    /// The front's `Server` header, for the 101.
    pub server_header: Option<HeaderValue>,
}

/// A participant's outbox: the rooms push, the session loop drains.
///
/// Unbounded on purpose: the rooms push a handful of small messages per membership or
/// negotiation change (at most one offer in flight, at most six peers), never per packet,
/// and refusing a push would desynchronise the client from the room.
#[derive(Default)]
pub struct LocalOutbox {
    queue: RefCell<VecDeque<Outgoing>>,
    waker: RefCell<Option<Waker>>,
}

impl Outbox for LocalOutbox {
    fn push(&self, out: Outgoing) {
        self.queue.borrow_mut().push_back(out);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
}

impl LocalOutbox {
    fn pop(&self) -> Option<Outgoing> {
        self.queue.borrow_mut().pop_front()
    }

    /// Resolves once something is queued.
    fn ready(&self) -> impl Future<Output = ()> + '_ {
        futures_lite::future::poll_fn(move |cx| {
            if self.queue.borrow().is_empty() {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
    }
}

/// Keeps the session gauge right however the loop ends.
struct Gauge(Rc<ShardMetrics>);
impl Drop for Gauge {
    fn drop(&mut self) {
        self.0.dec(Metric::SfuSessions);
    }
}

enum Ev {
    Read(std::io::Result<usize>),
    Pushed,
    Timer,
    Drain,
}

/// Serves one participant until the session ends. `io` is the socket after the 101 and
/// `initial` the plaintext the client sent right behind its upgrade request.
pub async fn run_session<S>(
    sfu: Rc<SfuShard>,
    mut io: S,
    initial: Vec<u8>,
    room: String,
    peer: String,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _guard = sfu.conns.enter();
    sfu.metrics.inc(Metric::SfuSessions);
    let gauge = Gauge(sfu.metrics.clone());
    // The shard index is the evidence of ownership; room and peer ids are never logged.
    tracing::debug!(shard = sfu.index, "signalling session started");

    let outbox = Rc::new(LocalOutbox::default());
    let mut s = Session::new(room, peer, outbox.clone(), sfu.timeouts, Instant::now());
    if !initial.is_empty() {
        s.on_bytes(&initial, Instant::now(), &mut *sfu.rooms.borrow_mut());
    }
    let mut buf = vec![0u8; 16 * 1024];
    let mut drain_seen = false;
    loop {
        while let Some(out) = outbox.pop() {
            s.on_outgoing(out, Instant::now(), &mut *sfu.rooms.borrow_mut());
        }
        if !write_out(&mut s, &mut io).await {
            s.on_eof(Instant::now(), &mut *sfu.rooms.borrow_mut());
            break;
        }
        if s.is_done() {
            break;
        }
        let deadline = s.poll_timeout();
        let read = async { Ev::Read(io.read(&mut buf).await) };
        let pushed = async {
            outbox.ready().await;
            Ev::Pushed
        };
        let timer = async {
            match deadline {
                Some(d) => glommio::timer::sleep(d.saturating_duration_since(Instant::now())).await,
                None => futures_lite::future::pending::<()>().await,
            }
            Ev::Timer
        };
        let drain = async {
            if drain_seen {
                futures_lite::future::pending::<()>().await;
            }
            sfu.shutdown.draining().await;
            Ev::Drain
        };
        use futures_lite::future::or;
        let ev = or(read, or(pushed, or(timer, drain))).await;
        let now = Instant::now();
        let mut rooms = sfu.rooms.borrow_mut();
        match ev {
            Ev::Read(Ok(0)) | Ev::Read(Err(_)) => s.on_eof(now, &mut *rooms),
            Ev::Read(Ok(n)) => s.on_bytes(&buf[..n], now, &mut *rooms),
            Ev::Pushed => {}
            Ev::Timer => s.handle_timeout(now, &mut *rooms),
            Ev::Drain => {
                drain_seen = true;
                s.on_drain(now, &mut *rooms);
            }
        }
    }
    // Counted before the socket is closed, so whoever sees the socket end sees the counts.
    if let Some(code) = s.sent_close() {
        sfu.metrics.inc(Metric::sfu_close(code));
    }
    drop(gauge);
    tracing::debug!(shard = sfu.index, code = ?s.sent_close(), "signalling session ended");
    let _ = crate::front::driver::within(CLOSE_TIMEOUT, io.close()).await;
}

/// Writes every queued frame. `false` if the socket failed or stalled.
async fn write_out<S: AsyncWrite + Unpin>(s: &mut Session, io: &mut S) -> bool {
    let mut wrote = false;
    while let Some(frame) = s.poll_transmit() {
        match crate::front::driver::within(WRITE_TIMEOUT, io.write_all(&frame)).await {
            Some(Ok(())) => wrote = true,
            _ => return false,
        }
    }
    if !wrote {
        return true;
    }
    matches!(
        crate::front::driver::within(WRITE_TIMEOUT, io.flush()).await,
        Some(Ok(()))
    )
}

#[cfg(test)]
mod tests {
    //! The driver over a real loopback socket on a glommio executor, with a fake `Rooms`
    //! for the success path (the str0m rooms are tested on their own).

    use std::io::{Read, Write};
    use std::net::TcpStream as StdTcpStream;
    use std::sync::mpsc;

    use glommio::net::TcpListener;
    use shards::shutdown::Shutdown;

    use crate::sfu::api::JoinRefusal;
    use crate::sfu::signal::{CloseCode, Rid};

    use super::*;
    use crate::sfu::signal::ServerMsg;
    use crate::sfu::ws::{encode_client_frame, Opcode};

    /// Joins everyone, answers "v=0 answer", tells the joiner it is in and records calls.
    #[derive(Default)]
    struct FakeRooms {
        calls: Rc<RefCell<Vec<String>>>,
    }

    impl Rooms for FakeRooms {
        fn join(
            &mut self,
            room: &str,
            peer: &str,
            _offer: &str,
            outbox: Rc<dyn Outbox>,
            _now: Instant,
        ) -> Result<String, JoinRefusal> {
            self.calls.borrow_mut().push(format!("join {room} {peer}"));
            outbox.push(Outgoing::Msg(ServerMsg::Joined {
                peer: peer.into(),
                peers: vec!["bob".into()],
            }));
            Ok("v=0 answer".into())
        }
        fn answer(&mut self, _: &str, _: &str, _: &str, _: Instant) -> Result<(), CloseCode> {
            Ok(())
        }
        fn set_layer(&mut self, _: &str, _: &str, _: &str, _: Rid) {}
        fn leave(&mut self, room: &str, peer: &str, _: Instant) {
            self.calls.borrow_mut().push(format!("leave {room} {peer}"));
        }
    }

    /// Reads one unmasked server frame: (opcode, payload).
    fn read_frame(s: &mut StdTcpStream) -> (u8, Vec<u8>) {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).unwrap();
        let len = match h[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                s.read_exact(&mut b).unwrap();
                u16::from_be_bytes(b) as usize
            }
            127 => panic!("unexpectedly large frame"),
            n => n as usize,
        };
        let mut p = vec![0u8; len];
        s.read_exact(&mut p).unwrap();
        (h[0] & 0x0f, p)
    }

    fn text(s: &mut StdTcpStream) -> String {
        let (op, p) = read_frame(s);
        assert_eq!(op, 1, "{p:?}");
        String::from_utf8(p).unwrap()
    }

    fn close_code(s: &mut StdTcpStream) -> u16 {
        let (op, p) = read_frame(s);
        assert_eq!(op, 8);
        u16::from_be_bytes([p[0], p[1]])
    }

    fn send(s: &mut StdTcpStream, op: Opcode, payload: &[u8]) {
        s.write_all(&encode_client_frame(op, true, payload, [9, 8, 7, 6]))
            .unwrap();
    }

    /// Runs one session on a glommio shard against `client`, which gets the port.
    fn run(
        client: impl FnOnce(u16, Shutdown) + Send + 'static,
        initial: Vec<u8>,
    ) -> (Vec<String>, Snapshot) {
        let (port_tx, port_rx) = mpsc::channel();
        let shutdown = Shutdown::new(Duration::from_secs(2));
        let sd = shutdown.clone();
        let client = std::thread::spawn(move || client(port_rx.recv().unwrap(), sd));
        let out = glommio::LocalExecutorBuilder::default()
            .io_memory(256 << 10)
            .spawn(move || async move {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                port_tx.send(listener.local_addr().unwrap().port()).unwrap();
                let stream = listener.accept().await.unwrap();
                let calls = Rc::new(RefCell::new(Vec::new()));
                let metrics = Rc::new(ShardMetrics::default());
                let sfu = Rc::new(SfuShard {
                    index: 0,
                    shards: 1,
                    secret: Arc::new(Secret::from_bytes(vec![1; 32])),
                    rooms: Rc::new(RefCell::new(FakeRooms {
                        calls: calls.clone(),
                    })),
                    timeouts: Timeouts::default(),
                    metrics: metrics.clone(),
                    conns: ConnTracker::default(),
                    shutdown: shutdown.handle(),
                    bus: None,
                    server_header: None,
                });
                run_session(sfu.clone(), stream, initial, "r1".into(), "alice".into()).await;
                assert_eq!(sfu.conns.active(), 0);
                let v = calls.borrow().clone();
                (v, metrics.snapshot())
            })
            .unwrap()
            .join()
            .unwrap();
        client.join().unwrap();
        out
    }

    use crate::telemetry::metrics::Snapshot;

    fn value(s: &Snapshot, m: Metric) -> u64 {
        s.values[m as usize]
    }

    #[test]
    fn a_participant_joins_pings_and_leaves() {
        // The offer arrives in the same read as the upgrade request (pipelined).
        let offer = encode_client_frame(
            Opcode::Text,
            true,
            br#"{"type":"offer","sdp":"v=0 offer"}"#,
            [1, 2, 3, 4],
        );
        let (calls, m) = run(
            |port, _| {
                let mut s = StdTcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                assert_eq!(text(&mut s), r#"{"type":"answer","sdp":"v=0 answer"}"#);
                assert_eq!(
                    text(&mut s),
                    r#"{"type":"joined","peer":"alice","peers":["bob"]}"#
                );
                send(&mut s, Opcode::Text, br#"{"type":"ping"}"#);
                assert_eq!(text(&mut s), r#"{"type":"pong"}"#);
                send(&mut s, Opcode::Ping, b"x");
                assert_eq!(read_frame(&mut s), (0xA, b"x".to_vec()));
                send(&mut s, Opcode::Text, br#"{"type":"leave"}"#);
                assert_eq!(close_code(&mut s), 1000);
                send(&mut s, Opcode::Close, &1000u16.to_be_bytes());
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest);
                assert!(rest.is_empty());
            },
            offer,
        );
        assert_eq!(calls, ["join r1 alice", "leave r1 alice"]);
        assert_eq!(value(&m, Metric::SfuClose1000), 1);
        assert_eq!(value(&m, Metric::SfuSessions), 0);
    }

    #[test]
    fn a_drain_closes_with_1001_and_leaves_the_room() {
        let (calls, m) = run(
            |port, shutdown| {
                let mut s = StdTcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                send(&mut s, Opcode::Text, br#"{"type":"offer","sdp":"o"}"#);
                text(&mut s);
                text(&mut s);
                shutdown.trigger();
                assert_eq!(close_code(&mut s), 1001);
            },
            Vec::new(),
        );
        assert_eq!(calls, ["join r1 alice", "leave r1 alice"]);
        assert_eq!(value(&m, Metric::SfuClose1001), 1);
    }

    #[test]
    fn a_vanished_client_leaves_the_room() {
        let (calls, m) = run(
            |port, _| {
                let mut s = StdTcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                send(&mut s, Opcode::Text, br#"{"type":"offer","sdp":"o"}"#);
                text(&mut s);
                text(&mut s);
                drop(s);
            },
            Vec::new(),
        );
        assert_eq!(calls, ["join r1 alice", "leave r1 alice"]);
        assert_eq!(value(&m, Metric::SfuCloseOther), 0);
        assert_eq!(value(&m, Metric::SfuClose1000), 0);
    }
}
