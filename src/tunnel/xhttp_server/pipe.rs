//! A bounded, single-shard byte pipe from an `AsyncWrite` half to a hyper
//! response body: how the tunnel's downlink becomes the GET's (or
//! stream-one POST's) response body. Bounded so a slow HTTP/2 reader slows
//! the target down instead of filling memory; `Rc` + `RefCell` because both
//! ends live on one shard.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

#[derive(Debug, Default)]
struct Inner {
    chunks: VecDeque<Bytes>,
    len: usize,
    cap: usize,
    /// The writer finished (or went away): the body ends after `chunks`.
    write_closed: bool,
    /// The body was dropped (response done or stream reset): writes fail.
    read_closed: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

/// The writing end. Dropping it ends the body.
#[derive(Debug)]
pub struct PipeWriter(Rc<RefCell<Inner>>);

/// The reading end, a hyper response body. Dropping it fails later writes.
#[derive(Debug)]
pub struct PipeBody(Rc<RefCell<Inner>>);

/// A pipe holding at most `cap` bytes (at least one write's worth is always
/// accepted into an empty pipe).
pub fn pipe(cap: usize) -> (PipeWriter, PipeBody) {
    let inner = Rc::new(RefCell::new(Inner {
        cap,
        ..Inner::default()
    }));
    (PipeWriter(Rc::clone(&inner)), PipeBody(inner))
}

impl PipeBody {
    /// A body that is already over (error answers, plain 200s).
    pub fn empty() -> PipeBody {
        let (w, b) = pipe(0);
        drop(w);
        b
    }
}

/// Largest chunk copied per write, so one huge write does not become one
/// huge allocation.
const MAX_CHUNK: usize = 64 * 1024;

impl PipeWriter {
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut p = self.0.borrow_mut();
        if p.read_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if p.write_closed {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if p.len > 0 && p.len >= p.cap {
            p.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let room = p.cap.saturating_sub(p.len).max(1);
        // `buf` and `room` are both at least 1.
        let n = buf.len().min(room).min(MAX_CHUNK);
        p.chunks.push_back(Bytes::copy_from_slice(&buf[..n]));
        p.len += n;
        if let Some(w) = p.reader.take() {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }

    /// Ends the body once the queued bytes are read.
    pub fn close(&self) {
        let mut p = self.0.borrow_mut();
        p.write_closed = true;
        if let Some(w) = p.reader.take() {
            w.wake();
        }
    }

    /// Whether the body is gone (the peer reset the stream or the
    /// connection ended).
    pub fn is_reader_closed(&self) -> bool {
        self.0.borrow().read_closed
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        self.close();
    }
}

impl Body for PipeBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let mut p = self.0.borrow_mut();
        if let Some(chunk) = p.chunks.pop_front() {
            p.len -= chunk.len();
            if let Some(w) = p.writer.take() {
                w.wake();
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if p.write_closed {
            return Poll::Ready(None);
        }
        p.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let p = self.0.borrow();
        p.write_closed && p.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        let p = self.0.borrow();
        if p.write_closed {
            SizeHint::with_exact(p.len as u64)
        } else {
            SizeHint::default()
        }
    }
}

impl Drop for PipeBody {
    fn drop(&mut self) {
        let mut p = self.0.borrow_mut();
        p.read_closed = true;
        p.chunks.clear();
        p.len = 0;
        if let Some(w) = p.writer.take() {
            w.wake();
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

    fn read(body: &mut PipeBody) -> Poll<Option<Vec<u8>>> {
        Pin::new(body)
            .poll_frame(&mut cx())
            .map(|f| f.map(|f| f.unwrap().into_data().unwrap().to_vec()))
    }

    #[test]
    fn bytes_flow_in_order_and_the_close_ends_the_body() {
        let (w, mut body) = pipe(8);
        assert!(read(&mut body).is_pending());
        assert!(matches!(
            w.poll_write(&mut cx(), b"hello"),
            Poll::Ready(Ok(5))
        ));
        assert!(matches!(
            w.poll_write(&mut cx(), b"world!"),
            Poll::Ready(Ok(3))
        ));
        // Full: the writer waits.
        assert!(w.poll_write(&mut cx(), b"x").is_pending());
        assert_eq!(read(&mut body), Poll::Ready(Some(b"hello".to_vec())));
        assert!(matches!(w.poll_write(&mut cx(), b"x"), Poll::Ready(Ok(1))));
        w.close();
        assert!(!body.is_end_stream());
        assert_eq!(read(&mut body), Poll::Ready(Some(b"wor".to_vec())));
        assert_eq!(read(&mut body), Poll::Ready(Some(b"x".to_vec())));
        assert_eq!(read(&mut body), Poll::Ready(None));
        assert!(body.is_end_stream());
    }

    #[test]
    fn a_dropped_body_fails_the_writer() {
        let (w, body) = pipe(8);
        drop(body);
        assert!(w.is_reader_closed());
        assert!(matches!(
            w.poll_write(&mut cx(), b"x"),
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::BrokenPipe
        ));
    }

    #[test]
    fn an_empty_body_is_over() {
        let mut body = PipeBody::empty();
        assert!(body.is_end_stream());
        assert_eq!(read(&mut body), Poll::Ready(None));
    }
}
