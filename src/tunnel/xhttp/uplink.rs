//! The uplink between an [`super::XhttpStream`]'s writes and hyper: a byte-bounded,
//! shard-local pipe, and the request body type every XHTTP request uses.
//!
//! Writes copy into the pipe and return at once while it has room; the reader is hyper's
//! body pipe (stream-up, stream-one), which only asks for the next piece when the h2 stream
//! has send window, or the packet-up task. So a slow uplink pushes back on the writer
//! through the pipe's bound rather than buffering without limit. Everything runs on one
//! shard, so the shared state is an `Rc<RefCell<…>>`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::client::XhttpError;

/// Largest piece one write puts in the pipe: bounds the copy per write and lets hyper
/// interleave other streams' frames.
const MAX_PIECE: usize = 64 << 10;

struct Shared {
    queue: VecDeque<Bytes>,
    queued: usize,
    capacity: usize,
    writer_closed: bool,
    reader_gone: bool,
    /// Why the uplink broke (a refused POST, a reset stream), for the tunnel.
    failure: Option<XhttpError>,
    writer_waker: Option<Waker>,
    reader_waker: Option<Waker>,
    /// The tunnel's reader, woken by a failure: a broken uplink ends the whole tunnel.
    failure_waker: Option<Waker>,
}

impl Shared {
    fn wake_writer(&mut self) {
        if let Some(w) = self.writer_waker.take() {
            w.wake();
        }
    }

    fn wake_reader(&mut self) {
        if let Some(w) = self.reader_waker.take() {
            w.wake();
        }
    }

    fn broken(&self) -> Option<io::Error> {
        if let Some(failure) = &self.failure {
            return Some(failure.duplicate().into());
        }
        self.reader_gone.then(|| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "xhttp: the uplink request has ended",
            )
        })
    }
}

/// A pipe holding up to about `capacity` bytes (one write may overshoot by a piece).
pub(crate) fn pipe(capacity: usize) -> (UplinkWriter, UplinkReader) {
    let shared = Rc::new(RefCell::new(Shared {
        queue: VecDeque::new(),
        queued: 0,
        capacity: capacity.max(1),
        writer_closed: false,
        reader_gone: false,
        failure: None,
        writer_waker: None,
        reader_waker: None,
        failure_waker: None,
    }));
    (UplinkWriter(Rc::clone(&shared)), UplinkReader(shared))
}

/// The tunnel's end of the uplink.
pub(crate) struct UplinkWriter(Rc<RefCell<Shared>>);

impl UplinkWriter {
    /// Queues `bytes` regardless of the bound: for the VLESS request header, which must go
    /// first and is small.
    pub(crate) fn push_first(&self, bytes: Bytes) {
        let mut s = self.0.borrow_mut();
        s.queued += bytes.len();
        s.queue.push_back(bytes);
        s.wake_reader();
    }

    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut s = self.0.borrow_mut();
        if let Some(err) = s.broken() {
            return Poll::Ready(Err(err));
        }
        if s.writer_closed {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "xhttp: write after close",
            )));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if s.queued >= s.capacity {
            s.writer_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = buf.len().min(MAX_PIECE);
        s.queued += n;
        s.queue.push_back(Bytes::copy_from_slice(&buf[..n]));
        s.wake_reader();
        Poll::Ready(Ok(n))
    }

    /// Ready once every queued byte has been taken by the HTTP side (hyper's h2 stream or
    /// the packet-up task); there is no way to learn when the server has it.
    pub(crate) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.0.borrow_mut();
        if s.queue.is_empty() {
            return Poll::Ready(Ok(()));
        }
        if let Some(err) = s.broken() {
            return Poll::Ready(Err(err));
        }
        s.writer_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// The failure reported by the HTTP side, if any; otherwise `cx` is woken when one is.
    /// (A reader that merely finished is not a failure.)
    pub(crate) fn poll_failed(&self, cx: &mut Context<'_>) -> Option<io::Error> {
        let mut s = self.0.borrow_mut();
        match &s.failure {
            Some(failure) => Some(failure.duplicate().into()),
            None => {
                s.failure_waker = Some(cx.waker().clone());
                None
            }
        }
    }

    /// Whether the uplink was closed and the HTTP side took all of it and ended.
    pub(crate) fn is_finished(&self) -> bool {
        let s = self.0.borrow();
        s.writer_closed && s.queue.is_empty() && s.reader_gone
    }

    /// Ends the uplink after the queued bytes (stream-up, stream-one: the POST body ends).
    pub(crate) fn close(&self) {
        let mut s = self.0.borrow_mut();
        s.writer_closed = true;
        s.wake_reader();
    }
}

impl Drop for UplinkWriter {
    /// A tunnel dropped without `close` is abandoned: its queued bytes are not sent (as
    /// with stream-up and stream-one, whose POST is reset then), so the packet-up task stops
    /// instead of posting into a session that is gone.
    fn drop(&mut self) {
        let mut s = self.0.borrow_mut();
        if !s.writer_closed {
            s.queue.clear();
            s.queued = 0;
        }
        s.writer_closed = true;
        s.wake_reader();
    }
}

/// The HTTP side of the uplink.
pub(crate) struct UplinkReader(Rc<RefCell<Shared>>);

impl UplinkReader {
    /// The next piece; `None` once the writer closed and everything was taken.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut s = self.0.borrow_mut();
        match s.queue.pop_front() {
            Some(piece) => {
                s.queued -= piece.len();
                s.wake_writer();
                Poll::Ready(Some(piece))
            }
            None if s.writer_closed => Poll::Ready(None),
            None => {
                s.reader_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    pub(crate) async fn recv(&self) -> Option<Bytes> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next piece if one is queued now.
    pub(crate) fn try_recv(&self) -> Option<Bytes> {
        let mut s = self.0.borrow_mut();
        let piece = s.queue.pop_front()?;
        s.queued -= piece.len();
        s.wake_writer();
        Some(piece)
    }

    /// Breaks the uplink: the tunnel's next read or write fails with `failure`.
    pub(crate) fn fail(&self, failure: XhttpError) {
        let mut s = self.0.borrow_mut();
        s.failure.get_or_insert(failure);
        s.wake_writer();
        if let Some(w) = s.failure_waker.take() {
            w.wake();
        }
    }
}

impl Drop for UplinkReader {
    fn drop(&mut self) {
        let mut s = self.0.borrow_mut();
        s.reader_gone = true;
        s.wake_writer();
    }
}

/// The body of every XHTTP request.
pub(crate) enum XhttpBody {
    /// The download GET.
    Empty,
    /// One packet-up POST (sent with its Content-Length).
    Full(Option<Bytes>),
    /// The streaming uplink of stream-up and stream-one.
    Stream(UplinkReader),
}

impl Body for XhttpBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            XhttpBody::Empty => Poll::Ready(None),
            XhttpBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            XhttpBody::Stream(reader) => reader
                .poll_recv(cx)
                .map(|piece| piece.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            XhttpBody::Empty | XhttpBody::Full(None) => true,
            XhttpBody::Full(Some(_)) | XhttpBody::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            XhttpBody::Empty | XhttpBody::Full(None) => SizeHint::with_exact(0),
            XhttpBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            XhttpBody::Stream(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    #[test]
    fn writes_are_bounded_and_resume_when_taken() {
        let (w, r) = pipe(10);
        let mut cx = cx();
        assert!(matches!(w.poll_write(&mut cx, &[1; 8]), Poll::Ready(Ok(8))));
        // Room for 2 more; one write may overshoot by a piece.
        assert!(matches!(w.poll_write(&mut cx, &[2; 8]), Poll::Ready(Ok(8))));
        assert!(w.poll_write(&mut cx, &[3; 8]).is_pending());
        assert!(w.poll_flush(&mut cx).is_pending());
        assert_eq!(r.try_recv().as_deref(), Some(&[1u8; 8][..]));
        assert!(matches!(w.poll_write(&mut cx, &[3; 8]), Poll::Ready(Ok(8))));
        assert_eq!(r.try_recv().as_deref(), Some(&[2u8; 8][..]));
        assert_eq!(r.try_recv().as_deref(), Some(&[3u8; 8][..]));
        assert!(matches!(w.poll_flush(&mut cx), Poll::Ready(Ok(()))));
        assert!(r.poll_recv(&mut cx).is_pending());
        w.close();
        assert!(matches!(r.poll_recv(&mut cx), Poll::Ready(None)));
    }

    #[test]
    fn big_writes_are_split_into_pieces() {
        let (w, r) = pipe(1 << 20);
        let mut cx = cx();
        let big = vec![7u8; MAX_PIECE + 5];
        assert!(matches!(w.poll_write(&mut cx, &big), Poll::Ready(Ok(n)) if n == MAX_PIECE));
        assert_eq!(r.try_recv().map(|b| b.len()), Some(MAX_PIECE));
    }

    #[test]
    fn the_header_goes_first_even_when_full() {
        let (w, r) = pipe(1);
        w.push_first(Bytes::from_static(b"header"));
        assert_eq!(r.try_recv().as_deref(), Some(&b"header"[..]));
    }

    #[test]
    fn a_failed_or_dropped_reader_breaks_the_writer() {
        let (w, r) = pipe(10);
        let mut cx = cx();
        r.fail(XhttpError::Status {
            request: "packet-up POST",
            status: 500,
        });
        for _ in 0..2 {
            match w.poll_write(&mut cx, b"x") {
                Poll::Ready(Err(e)) => {
                    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
                    let cause = e.get_ref().and_then(|e| e.downcast_ref::<XhttpError>());
                    assert!(
                        matches!(cause, Some(XhttpError::Status { status: 500, .. })),
                        "{e:?}"
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(
            matches!(w.poll_failed(&mut cx), Some(e) if e.kind() == io::ErrorKind::ConnectionRefused)
        );

        let (w, r) = pipe(10);
        assert!(w.poll_failed(&mut cx).is_none());
        drop(r);
        assert!(
            w.poll_failed(&mut cx).is_none(),
            "a finished reader is no failure"
        );
        assert!(
            matches!(w.poll_write(&mut cx, b"x"), Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::BrokenPipe)
        );
    }

    #[test]
    fn closing_ends_the_stream_after_the_queue() {
        let (w, r) = pipe(10);
        let mut cx = cx();
        assert!(matches!(w.poll_write(&mut cx, b"abc"), Poll::Ready(Ok(3))));
        w.close();
        drop(w);
        assert!(matches!(r.poll_recv(&mut cx), Poll::Ready(Some(_))));
        assert!(matches!(r.poll_recv(&mut cx), Poll::Ready(None)));
    }

    #[test]
    fn dropping_without_close_abandons_the_queue() {
        let (w, r) = pipe(10);
        let mut cx = cx();
        assert!(matches!(w.poll_write(&mut cx, b"abc"), Poll::Ready(Ok(3))));
        drop(w);
        assert!(matches!(r.poll_recv(&mut cx), Poll::Ready(None)));
    }

    #[test]
    fn bodies_report_their_size_and_end() {
        assert!(XhttpBody::Empty.is_end_stream());
        assert_eq!(XhttpBody::Empty.size_hint().exact(), Some(0));
        let full = XhttpBody::Full(Some(Bytes::from_static(b"12345")));
        assert!(!full.is_end_stream());
        assert_eq!(full.size_hint().exact(), Some(5));
        let (_w, r) = pipe(1);
        let stream = XhttpBody::Stream(r);
        assert!(!stream.is_end_stream());
        assert_eq!(stream.size_hint().exact(), None);
    }
}
