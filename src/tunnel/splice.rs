//! Copies bytes both ways between two streams until both directions have
//! ended, passing each end of stream on as a half-close.
//!
//! Both directions run inside one future that owns `&mut` of both streams,
//! so nothing is split or locked: a TLS stream (which may need to write while
//! reading, and the reverse) sees all its polls from one task with one waker.
//!
//! End of stream on one side shuts down the writing half of the other (for
//! TCP a FIN, for TLS close_notify then FIN), and the other direction keeps
//! flowing until it ends too: a client that half-closes after its request
//! still gets the whole answer. Any error ends both directions: the caller
//! drops the streams.

use std::cell::Cell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};

/// One direction's copy buffer. 16 KiB: a full TLS record's plaintext.
const BUF_LEN: usize = 16 * 1024;

/// Most bytes one direction moves in a single poll before it yields.
///
/// glommio is cooperative: a task that never returns `Pending` keeps its
/// shard to itself. A bulk transfer whose peers are always ready (loopback,
/// a fast LAN) would otherwise starve every other connection of the shard,
/// handshakes and calls included. 256 KiB is 16 buffers: enough to amortise
/// the re-poll, small enough that others wait well under a millisecond.
const POLL_BUDGET: usize = 256 * 1024;

/// Bytes written so far in each direction; live, so a watchdog can tell a
/// quiet connection from a busy one while the splice runs.
#[derive(Debug, Default)]
pub struct SpliceCounters {
    a_to_b: Cell<u64>,
    b_to_a: Cell<u64>,
    /// Directions that reached end of stream and passed it on (0..=2).
    ended: Cell<u8>,
}

impl SpliceCounters {
    pub fn a_to_b(&self) -> u64 {
        self.a_to_b.get()
    }

    pub fn b_to_a(&self) -> u64 {
        self.b_to_a.get()
    }

    /// Both directions together; changes whenever any byte moves.
    pub fn total(&self) -> u64 {
        self.a_to_b.get().wrapping_add(self.b_to_a.get())
    }

    /// One side has finished sending (and the other has been told).
    pub fn half_closed(&self) -> bool {
        self.ended.get() > 0
    }

    fn end_one(&self) {
        self.ended.set(self.ended.get().saturating_add(1));
    }
}

/// How a splice ended.
#[derive(Debug)]
pub enum SpliceEnd {
    /// Both directions reached end of stream and passed it on.
    Done,
    /// A read, write or shutdown failed; the other direction was abandoned.
    Failed(io::Error),
    /// No byte moved in either direction for a whole idle period.
    Idle,
}

/// One direction: read from one stream into `buf`, write it all to the
/// other, repeat; at end of stream flush and shut the writer down.
struct Pump {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Bytes were written since the last flush.
    unflushed: bool,
    eof: bool,
    done: bool,
}

impl Pump {
    fn new() -> Self {
        Pump {
            buf: vec![0; BUF_LEN].into_boxed_slice(),
            start: 0,
            end: 0,
            unflushed: false,
            eof: false,
            done: false,
        }
    }

    fn poll_pump<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
        moved: &Cell<u64>,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        let mut budget = POLL_BUDGET;
        loop {
            while self.start < self.end {
                let n =
                    ready!(Pin::new(&mut *writer).poll_write(cx, &self.buf[self.start..self.end]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.start += n;
                self.unflushed = true;
                moved.set(moved.get() + n as u64);
                budget = budget.saturating_sub(n);
            }
            if budget == 0 && !self.eof {
                // Yield (see POLL_BUDGET): ask to be polled again at once,
                // behind whatever else the shard has queued. Nothing needs
                // flushing first: the next poll comes right away.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if self.eof {
                // Everything read has been written: pass the end on.
                ready!(Pin::new(&mut *writer).poll_flush(cx))?;
                ready!(Pin::new(&mut *writer).poll_close(cx))?;
                return Poll::Ready(Ok(()));
            }
            match Pin::new(&mut *reader).poll_read(cx, &mut self.buf)? {
                Poll::Ready(0) => self.eof = true,
                Poll::Ready(n) => {
                    self.start = 0;
                    self.end = n;
                }
                Poll::Pending => {
                    // Nothing more to read for now: push out what a buffering
                    // writer (TLS records, coalescing sockets) still holds.
                    if self.unflushed {
                        ready!(Pin::new(&mut *writer).poll_flush(cx))?;
                        self.unflushed = false;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// Copies `a → b` and `b → a` until both have ended, counting into
/// `counters`. Stops at the first error in either direction.
pub async fn splice<A, B>(a: &mut A, b: &mut B, counters: &SpliceCounters) -> io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut up = Pump::new();
    let mut down = Pump::new();
    poll_fn(|cx| {
        if !up.done {
            if let Poll::Ready(result) = up.poll_pump(cx, a, b, &counters.a_to_b) {
                result?;
                up.done = true;
                counters.end_one();
            }
        }
        if !down.done {
            if let Poll::Ready(result) = down.poll_pump(cx, b, a, &counters.b_to_a) {
                result?;
                down.done = true;
                counters.end_one();
            }
        }
        if up.done && down.done {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// How long a splice may stay silent before it is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleLimits {
    /// While both directions are open.
    pub open: Duration,
    /// Once one direction has ended: the other side had its say, so only
    /// an answer in progress is waited for (Xray's uplink/downlink-only
    /// timeouts). A UDP relay whose client has gone ends here, not after
    /// the full `open` period.
    pub half_closed: Duration,
}

impl IdleLimits {
    /// The same limit whatever the state (e.g. a transparent fallback, which
    /// must not end sooner than dest itself would).
    pub fn uniform(idle: Duration) -> Self {
        IdleLimits {
            open: idle,
            half_closed: idle,
        }
    }
}

/// [`splice`] that also gives up after `idle` without a byte moving, in
/// whatever state: [`splice_with_limits`] with [`IdleLimits::uniform`].
pub async fn splice_with_idle<A, B>(
    a: &mut A,
    b: &mut B,
    idle: Duration,
    counters: &SpliceCounters,
) -> SpliceEnd
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    splice_with_limits(a, b, IdleLimits::uniform(idle), counters).await
}

/// [`splice`] that also gives up when no byte moves for the applicable
/// [`IdleLimits`] period. The check runs once per period, so a quiet
/// connection is noticed within one to two periods (enough for reclaiming
/// resources, and one timer per connection instead of one per read). Must
/// run on a glommio executor (its timer).
pub async fn splice_with_limits<A, B>(
    a: &mut A,
    b: &mut B,
    limits: IdleLimits,
    counters: &SpliceCounters,
) -> SpliceEnd
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let copy = async {
        match splice(a, b, counters).await {
            Ok(()) => SpliceEnd::Done,
            Err(e) => SpliceEnd::Failed(e),
        }
    };
    futures_lite::future::or(copy, idle_watchdog(limits, counters)).await
}

async fn idle_watchdog(limits: IdleLimits, counters: &SpliceCounters) -> SpliceEnd {
    loop {
        let seen = counters.total();
        let period = if counters.half_closed() {
            limits.half_closed
        } else {
            limits.open
        };
        glommio::timer::sleep(period).await;
        if counters.total() == seen {
            return SpliceEnd::Idle;
        }
    }
}

#[cfg(test)]
mod tests {
    //! In-memory duplex pipes with small capacities, so every copy meets
    //! back-pressure and partial writes; the executor is futures-lite's.

    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::future::Future;
    use std::rc::Rc;
    use std::task::Waker;

    use futures_lite::future::block_on;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[derive(Default)]
    struct Pipe {
        buf: VecDeque<u8>,
        /// The writer shut down: readers see end of stream once drained.
        closed: bool,
        /// Injected failure for the next read.
        fail: bool,
        reader: Option<Waker>,
        writer: Option<Waker>,
    }

    /// One end of a duplex pipe: reads `rx`, writes `tx`.
    struct End {
        rx: Rc<RefCell<Pipe>>,
        tx: Rc<RefCell<Pipe>>,
        cap: usize,
    }

    fn duplex(cap: usize) -> (End, End) {
        let (x, y) = (Rc::default(), Rc::default());
        (
            End {
                rx: Rc::clone(&x),
                tx: Rc::clone(&y),
                cap,
            },
            End { rx: y, tx: x, cap },
        )
    }

    fn wake(slot: &mut Option<Waker>) {
        if let Some(w) = slot.take() {
            w.wake();
        }
    }

    impl AsyncRead for End {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let mut p = self.rx.borrow_mut();
            if p.fail {
                return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
            }
            if p.buf.is_empty() {
                if p.closed {
                    return Poll::Ready(Ok(0));
                }
                p.reader = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = buf.len().min(p.buf.len());
            for (dst, src) in buf.iter_mut().zip(p.buf.drain(..n)) {
                *dst = src;
            }
            wake(&mut p.writer);
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for End {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let mut p = self.tx.borrow_mut();
            if p.closed {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            let room = self.cap - p.buf.len();
            if room == 0 {
                p.writer = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = room.min(buf.len());
            p.buf.extend(&buf[..n]);
            wake(&mut p.reader);
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            let mut p = self.tx.borrow_mut();
            p.closed = true;
            wake(&mut p.reader);
            Poll::Ready(Ok(()))
        }
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    impl End {
        /// Another handle on the same pipe ends, so one task can write while
        /// another reads.
        fn twin(&self) -> End {
            End {
                rx: Rc::clone(&self.rx),
                tx: Rc::clone(&self.tx),
                cap: self.cap,
            }
        }
    }

    /// Writes `data` then half-closes, while reading everything the other
    /// way; returns what was read.
    async fn talk(end: &End, data: &[u8]) -> Vec<u8> {
        let (mut w, mut r) = (end.twin(), end.twin());
        let mut got = Vec::new();
        futures_lite::future::zip(
            async {
                w.write_all(data).await.unwrap();
                w.close().await.unwrap();
            },
            async {
                r.read_to_end(&mut got).await.unwrap();
            },
        )
        .await;
        got
    }

    #[test]
    fn both_directions_arrive_whole_and_are_counted() {
        block_on(async {
            let (client, mut a) = duplex(333);
            let (mut b, server) = duplex(1000);
            let up = pattern(200_000, 1);
            let down = pattern(150_001, 2);
            let counters = SpliceCounters::default();
            let (spliced, (at_server, at_client)) = futures_lite::future::zip(
                splice(&mut a, &mut b, &counters),
                futures_lite::future::zip(talk(&server, &down), talk(&client, &up)),
            )
            .await;
            spliced.unwrap();
            assert!(at_server == up);
            assert!(at_client == down);
            assert_eq!(counters.a_to_b(), up.len() as u64);
            assert_eq!(counters.b_to_a(), down.len() as u64);
            assert_eq!(counters.total(), (up.len() + down.len()) as u64);
        });
    }

    #[test]
    fn a_half_close_still_lets_the_answer_through() {
        block_on(async {
            let (mut client, mut a) = duplex(64);
            let (mut b, mut server) = duplex(64);
            let counters = SpliceCounters::default();
            let answer = pattern(10_000, 9);
            let client_side = async {
                client.write_all(b"request").await.unwrap();
                client.close().await.unwrap();
                let mut got = Vec::new();
                client.read_to_end(&mut got).await.unwrap();
                got
            };
            let server_side = async {
                // The server sees the request and its end before answering.
                let mut req = Vec::new();
                server.read_to_end(&mut req).await.unwrap();
                assert_eq!(req, b"request");
                server.write_all(&answer).await.unwrap();
                server.close().await.unwrap();
            };
            let peers = async {
                let (got, ()) = futures_lite::future::zip(client_side, server_side).await;
                assert!(got == answer);
            };
            let (spliced, ()) =
                futures_lite::future::zip(splice(&mut a, &mut b, &counters), peers).await;
            spliced.unwrap();
            assert_eq!((counters.a_to_b(), counters.b_to_a()), (7, 10_000));
        });
    }

    #[test]
    fn an_error_on_either_side_ends_the_splice() {
        block_on(async {
            let (client, mut a) = duplex(64);
            let (mut b, _server) = duplex(64);
            client.tx.borrow_mut().fail = true;
            let counters = SpliceCounters::default();
            let err = splice(&mut a, &mut b, &counters).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);

            // A write to a peer that has gone.
            let (client, mut a) = duplex(64);
            let (mut b, server) = duplex(64);
            client.tx.borrow_mut().buf.extend(b"data");
            server.tx.borrow_mut().closed = true; // server → b: ended
            server.rx.borrow_mut().closed = true; // b → server: refused
            let err = splice(&mut a, &mut b, &counters).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        });
    }

    /// A peer that is always ready: `left` bytes to read, then end of
    /// stream; writes are always taken whole.
    struct Eager {
        left: usize,
        taken: usize,
    }

    impl AsyncRead for Eager {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.left);
            buf[..n].fill(7);
            self.left -= n;
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for Eager {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.taken += buf.len();
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    struct CountWakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for CountWakes {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_transfer_whose_peers_never_block_still_yields() {
        // A fixed size, not a multiple of the budget: a budget too large to
        // ever bite must fail this test.
        let total = (4 << 20) + 5;
        let mut a = Eager {
            left: total,
            taken: 0,
        };
        let mut b = Eager { left: 0, taken: 0 };
        let counters = SpliceCounters::default();
        let wakes = std::sync::Arc::new(CountWakes(Default::default()));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = std::pin::pin!(splice(&mut a, &mut b, &counters));
        let mut polls = 0;
        let result = loop {
            polls += 1;
            if let Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
                break r;
            }
            // Every Pending here is a yield, never a real block: the task
            // asked to be polled again.
            assert_eq!(wakes.0.load(std::sync::atomic::Ordering::SeqCst), polls);
            // No poll moved more than its budget (plus one buffer).
            assert!(counters.a_to_b() <= (polls * POLL_BUDGET) as u64);
        };
        result.unwrap();
        assert_eq!(counters.a_to_b(), total as u64);
        assert!(
            polls >= total / POLL_BUDGET,
            "{polls} polls copied {total} bytes: the budget did not bite"
        );
        assert!(polls > 2, "{polls} polls");
    }

    #[test]
    fn quiet_splices_end_as_idle() {
        glommio::LocalExecutorBuilder::default()
            .io_memory(64 << 10)
            .spawn(|| async {
                let (_client, mut a) = duplex(64);
                let (mut b, _server) = duplex(64);
                let counters = SpliceCounters::default();
                let idle = Duration::from_millis(20);
                let end = splice_with_idle(&mut a, &mut b, idle, &counters).await;
                assert!(matches!(end, SpliceEnd::Idle), "{end:?}");
                assert_eq!(counters.total(), 0);

                // One side has ended and the other stays silent: the short
                // limit applies (the long one would outlast the test run).
                let (client, mut a) = duplex(64);
                let (mut b, _server) = duplex(64);
                client.tx.borrow_mut().closed = true;
                let counters = SpliceCounters::default();
                let limits = IdleLimits {
                    open: Duration::from_secs(3600),
                    half_closed: Duration::from_millis(20),
                };
                let end = splice_with_limits(&mut a, &mut b, limits, &counters).await;
                assert!(matches!(end, SpliceEnd::Idle), "{end:?}");
                assert!(counters.half_closed());
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
