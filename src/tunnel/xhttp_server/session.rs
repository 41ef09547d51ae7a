//! One XHTTP session: the requests that make up one tunnel, joined into a
//! duplex byte stream the VLESS server reads and writes like a socket.
//!
//! - uplink: a [`ReorderBuffer`] fed by packet-up POSTs, or by the pump of a
//!   stream-up (stream-one) POST body, which numbers its chunks itself;
//! - downlink: a [`pipe`] whose body is the GET's (stream-one POST's)
//!   response.
//!
//! Sessions live in a per-shard [`SessionTable`] under their id. A GET and
//! a POST of one session that land on different shards (different TCP
//! connections accepted by different shards) are not joined: each shard
//! sees half a session and reaps it. Xray 24.11.21 normally sends both
//! over one HTTP/2 connection (its Go h2 transport reuses the connection
//! while it has stream capacity), so this is acceptable for now.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncWrite};

use super::pipe::{pipe, PipeBody, PipeWriter};
use super::reorder::{ReorderBuffer, ReorderError};

/// Downlink bytes queued for the response body before the tunnel waits.
const DOWN_PIPE_BYTES: usize = 256 * 1024;

/// How the uplink of a session arrives; fixed by its first upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpShape {
    Stream,
    Packets,
}

#[derive(Debug)]
struct Uplink {
    buf: ReorderBuffer,
    shape: Option<UpShape>,
    /// Next number a stream pump gives its chunk.
    stream_seq: u64,
    /// No more bytes will be pushed (stream body ended, session over).
    ended: bool,
    reader: Option<Waker>,
    /// Uploads waiting for the reader to make room.
    waiting: Vec<Waker>,
}

/// Why an upload's bytes were not taken.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Refused(ReorderError),
    #[error("the session is over")]
    Closed,
}

#[derive(Debug)]
pub struct Session {
    up: RefCell<Uplink>,
    down: PipeWriter,
    /// The response body, until a GET (or the stream-one POST) takes it.
    down_body: RefCell<Option<PipeBody>>,
    /// Over: the tunnel ended or the session was reaped.
    closed: Cell<bool>,
}

impl Session {
    pub fn new(max_posts: usize, max_post_bytes: usize) -> Rc<Session> {
        let (down, body) = pipe(DOWN_PIPE_BYTES);
        Rc::new(Session {
            up: RefCell::new(Uplink {
                buf: ReorderBuffer::new(max_posts, max_post_bytes),
                shape: None,
                stream_seq: 0,
                ended: false,
                reader: None,
                waiting: Vec::new(),
            }),
            down,
            down_body: RefCell::new(Some(body)),
            closed: Cell::new(false),
        })
    }

    /// Fixes the uplink's shape. `false` if it already has one that
    /// differs, or a stream when one is already attached: one session
    /// carries one stream-up body or packets, never both.
    pub fn claim_uplink(&self, shape: UpShape) -> bool {
        let mut up = self.up.borrow_mut();
        match (up.shape, shape) {
            (None, _) => {
                up.shape = Some(shape);
                true
            }
            (Some(UpShape::Packets), UpShape::Packets) => true,
            _ => false,
        }
    }

    /// The downlink body, once: `None` if a GET already took it.
    pub fn take_download(&self) -> Option<PipeBody> {
        self.down_body.borrow_mut().take()
    }

    pub fn is_joined(&self) -> bool {
        self.down_body.borrow().is_none()
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Pushes post `seq`, waiting while the buffer says "not now".
    pub async fn push_packet(&self, seq: u64, data: Bytes) -> Result<(), PushError> {
        poll_fn(|cx| self.poll_push(cx, seq, &data)).await
    }

    /// Pushes the next chunk of a stream body (split to the post limit).
    pub async fn push_stream_chunk(&self, mut data: Bytes) -> Result<(), PushError> {
        while !data.is_empty() {
            let max = self.up.borrow().max_post_bytes();
            let piece = data.split_to(data.len().min(max.max(1)));
            let seq = {
                let mut up = self.up.borrow_mut();
                let seq = up.stream_seq;
                up.stream_seq += 1;
                seq
            };
            self.push_packet(seq, piece).await?;
        }
        Ok(())
    }

    fn poll_push(
        &self,
        cx: &mut Context<'_>,
        seq: u64,
        data: &Bytes,
    ) -> Poll<Result<(), PushError>> {
        if self.closed.get() {
            return Poll::Ready(Err(PushError::Closed));
        }
        let mut up = self.up.borrow_mut();
        if up.ended {
            return Poll::Ready(Err(PushError::Closed));
        }
        match up.buf.push(seq, data.clone()) {
            Ok(()) => {
                if let Some(w) = up.reader.take() {
                    w.wake();
                }
                Poll::Ready(Ok(()))
            }
            Err(e) if e.is_retryable() => {
                up.waiting.push(cx.waker().clone());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(PushError::Refused(e))),
        }
    }

    /// The uplink has no more bytes (a stream body ended).
    pub fn end_uplink(&self) {
        let mut up = self.up.borrow_mut();
        up.ended = true;
        if let Some(w) = up.reader.take() {
            w.wake();
        }
    }

    /// Ends everything: the uplink reads end, waiting uploads fail, the
    /// downlink body ends after what is queued.
    pub fn close(&self) {
        self.closed.set(true);
        self.down.close();
        let waiting = {
            let mut up = self.up.borrow_mut();
            up.ended = true;
            if let Some(w) = up.reader.take() {
                w.wake();
            }
            std::mem::take(&mut up.waiting)
        };
        waiting.into_iter().for_each(Waker::wake);
    }

    fn poll_uplink(&self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut up = self.up.borrow_mut();
        if let Some(data) = up.buf.pop() {
            // Room was made: every waiting upload tries again (few, and
            // only one of them can be the awaited one).
            let waiting = std::mem::take(&mut up.waiting);
            drop(up);
            waiting.into_iter().for_each(Waker::wake);
            return Poll::Ready(Some(data));
        }
        if up.ended || self.closed.get() || self.down.is_reader_closed() {
            return Poll::Ready(None);
        }
        up.reader = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Uplink {
    fn max_post_bytes(&self) -> usize {
        self.buf.max_post_bytes()
    }
}

/// The sessions of one shard, by id.
#[derive(Debug)]
pub struct SessionTable {
    map: RefCell<HashMap<String, Rc<Session>>>,
    max: usize,
    max_posts: usize,
    max_post_bytes: usize,
}

thread_local! {
    /// Each shard's session tables, by server id (see `XhttpServer`).
    static TABLES: RefCell<HashMap<u64, Rc<SessionTable>>> = RefCell::new(HashMap::new());
}

impl SessionTable {
    /// This thread's table for server `id`, created on first use.
    pub fn of_server(
        id: u64,
        max_sessions: usize,
        max_posts: usize,
        max_post_bytes: usize,
    ) -> Rc<SessionTable> {
        TABLES.with(|t| {
            Rc::clone(
                t.borrow_mut()
                    .entry(id)
                    .or_insert_with(|| SessionTable::new(max_sessions, max_posts, max_post_bytes)),
            )
        })
    }

    /// Drops this thread's table for server `id`, if any.
    pub fn forget_server(id: u64) {
        // `try_with`: a server may be dropped while thread-locals are torn down.
        let _ = TABLES.try_with(|t| t.borrow_mut().remove(&id));
    }

    pub fn new(max_sessions: usize, max_posts: usize, max_post_bytes: usize) -> Rc<SessionTable> {
        Rc::new(SessionTable {
            map: RefCell::new(HashMap::new()),
            max: max_sessions,
            max_posts,
            max_post_bytes,
        })
    }

    /// The session `sid`, created if new. A new session not joined by a GET
    /// within `join_timeout` is reaped (Xray: 30 s). `None` when the table
    /// is full.
    pub fn upsert(self: &Rc<Self>, sid: &str, join_timeout: Duration) -> Option<Rc<Session>> {
        if let Some(s) = self.map.borrow().get(sid) {
            return Some(Rc::clone(s));
        }
        if self.map.borrow().len() >= self.max {
            return None;
        }
        let session = Session::new(self.max_posts, self.max_post_bytes);
        self.map
            .borrow_mut()
            .insert(sid.to_owned(), Rc::clone(&session));
        let table = Rc::downgrade(self);
        let weak = Rc::downgrade(&session);
        let sid = sid.to_owned();
        glommio::spawn_local(async move {
            glommio::timer::sleep(join_timeout).await;
            reap_if_unjoined(&table, &weak, &sid);
        })
        .detach();
        Some(session)
    }

    /// Forgets `sid` if it still names `session`.
    pub fn remove(&self, sid: &str, session: &Rc<Session>) {
        let mut map = self.map.borrow_mut();
        if map.get(sid).is_some_and(|s| Rc::ptr_eq(s, session)) {
            map.remove(sid);
        }
    }

    /// Sessions known (waiting for their GET or running).
    pub fn len(&self) -> usize {
        self.map.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn reap_if_unjoined(table: &Weak<SessionTable>, session: &Weak<Session>, sid: &str) {
    let (Some(table), Some(session)) = (table.upgrade(), session.upgrade()) else {
        return;
    };
    if !session.is_joined() {
        tracing::debug!("XHTTP session reaped: no GET within the join timeout");
        table.remove(sid, &session);
        session.close();
    }
}

/// A joined session as a byte stream: reads are the uplink, writes the
/// downlink. Dropping it ends the session and forgets it.
pub struct SessionStream {
    session: Rc<Session>,
    /// Where it is registered (none for stream-one).
    entry: Option<(Rc<SessionTable>, String)>,
    /// The rest of a post the caller's buffer could not take.
    pending: Bytes,
}

impl SessionStream {
    pub fn new(session: Rc<Session>, entry: Option<(Rc<SessionTable>, String)>) -> Self {
        SessionStream {
            session,
            entry,
            pending: Bytes::new(),
        }
    }
}

impl AsyncRead for SessionStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        while this.pending.is_empty() {
            match this.session.poll_uplink(cx) {
                Poll::Ready(Some(data)) => this.pending = data,
                Poll::Ready(None) => return Poll::Ready(Ok(0)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = buf.len().min(this.pending.len());
        buf[..n].copy_from_slice(&this.pending.split_to(n));
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for SessionStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.session.down.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The pipe has no buffer of its own to push: what is written is
        // already the body's.
        Poll::Ready(Ok(()))
    }

    /// Ends the downlink — and, as in Xray, the session: once its download
    /// is over, a client has no way to get answers, so uplink bytes still
    /// coming are dropped.
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.session.close();
        Poll::Ready(Ok(()))
    }
}

impl Drop for SessionStream {
    fn drop(&mut self) {
        self.session.close();
        if let Some((table, sid)) = &self.entry {
            table.remove(sid, &self.session);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use hyper::body::Body;

    #[test]
    fn packets_in_any_order_read_as_one_stream() {
        let s = Session::new(4, 100);
        assert!(s.claim_uplink(UpShape::Packets));
        assert!(!s.claim_uplink(UpShape::Stream));
        block_on(async {
            s.push_packet(1, Bytes::from_static(b"world"))
                .await
                .unwrap();
            s.push_packet(0, Bytes::from_static(b"hello "))
                .await
                .unwrap();
            assert_eq!(
                s.push_packet(0, Bytes::from_static(b"x")).await,
                Err(PushError::Refused(ReorderError::Duplicate { seq: 0 }))
            );
            let mut stream = SessionStream::new(Rc::clone(&s), None);
            let mut got = [0u8; 11];
            stream.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"hello world");
            s.end_uplink();
            assert_eq!(stream.read(&mut got).await.unwrap(), 0);
        });
    }

    #[test]
    fn stream_chunks_are_split_to_the_post_limit() {
        let s = Session::new(8, 3);
        assert!(s.claim_uplink(UpShape::Stream));
        assert!(!s.claim_uplink(UpShape::Stream), "one stream per session");
        block_on(async {
            s.push_stream_chunk(Bytes::from_static(b"abcdefg"))
                .await
                .unwrap();
            s.end_uplink();
            let mut stream = SessionStream::new(Rc::clone(&s), None);
            let mut got = Vec::new();
            stream.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"abcdefg");
        });
    }

    #[test]
    fn writes_reach_the_download_body_and_close_ends_it() {
        let s = Session::new(4, 100);
        let mut body = s.take_download().unwrap();
        assert!(s.is_joined());
        assert!(s.take_download().is_none());
        block_on(async {
            let mut stream = SessionStream::new(Rc::clone(&s), None);
            stream.write_all(b"down").await.unwrap();
            stream.close().await.unwrap();
            let frame = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
            assert_eq!(&frame.unwrap().unwrap().into_data().unwrap()[..], b"down");
            assert!(poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
                .await
                .is_none());
        });
        // Closed sessions take no more uploads.
        assert_eq!(
            block_on(s.push_packet(0, Bytes::new())),
            Err(PushError::Closed)
        );
    }

    #[test]
    fn a_dropped_download_ends_the_uplink_reads() {
        let s = Session::new(4, 100);
        drop(s.take_download());
        block_on(async {
            let mut stream = SessionStream::new(Rc::clone(&s), None);
            let mut buf = [0u8; 4];
            assert_eq!(stream.read(&mut buf).await.unwrap(), 0);
            assert!(stream.write(b"x").await.is_err());
        });
    }
}
