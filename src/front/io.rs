//! Byte-stream wrappers used by the front's connection driver.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Instant;

use std::time::Duration;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite};
use glommio::net::TcpStream;

/// Replays bytes that were read before TLS started (the sniffed ClientHello),
/// then reads from the socket.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            pos: 0,
            inner,
        }
    }

    /// The bytes not yet replayed and the inner stream (for a hand-off to another shard).
    pub fn into_parts(mut self) -> (Vec<u8>, S) {
        let unread = self.prefix.split_off(self.pos);
        (unread, self.inner)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pos < this.prefix.len() {
            let n = (this.prefix.len() - this.pos).min(buf.len());
            buf[..n].copy_from_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                // The hello is consumed once; free it rather than carry it for the connection's life.
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// Records when bytes last moved, so an idle watchdog can close quiet connections.
pub struct Activity<S> {
    inner: S,
    last: Rc<Cell<Instant>>,
}

impl<S> Activity<S> {
    pub fn new(inner: S) -> (Self, Rc<Cell<Instant>>) {
        let last = Rc::new(Cell::new(Instant::now()));
        (
            Self {
                inner,
                last: last.clone(),
            },
            last,
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Activity<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.last.set(Instant::now());
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Activity<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.last.set(Instant::now());
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// How long a closing connection keeps reading what the client still sends.
pub const LINGER: Duration = Duration::from_secs(2);

/// Writes smaller than this are gathered and sent together on flush.
const COALESCE_MAX: usize = 64 * 1024;

/// The front's socket: gathers writes until flush, and closes like nginx.
///
/// Gathering: rustls hands over one TLS record per write and glommio sends
/// each write with its own syscall (it has no vectored write), so an h2
/// response of HEADERS + DATA cost several `send`s. hyper, h2 and the TLS
/// layer all flush after a message, so buffering until flush turns those
/// into one syscall without delaying anything.
///
/// Closing: as nginx's `lingering_close`, when the server is done (an error
/// answer sent while the client may still be uploading), it shuts down its
/// sending side and reads the rest for a short while. Closing at once with
/// unread bytes makes the kernel send a reset, and the client loses the
/// answer it was sent (a 413 or 431 would show up as a broken pipe).
pub struct Linger {
    inner: Option<TcpStream>,
    out: Vec<u8>,
}

impl Linger {
    pub fn new(stream: TcpStream) -> Self {
        Self {
            inner: Some(stream),
            out: Vec::new(),
        }
    }

    /// Takes the socket back without lingering: a connection handed to another
    /// shard must not be half-closed by this one. Call after a flush: unsent
    /// gathered bytes are returned alongside.
    pub fn into_inner(mut self) -> Option<(TcpStream, Vec<u8>)> {
        let out = std::mem::take(&mut self.out);
        self.inner.take().map(|s| (s, out))
    }

    fn stream(&mut self) -> io::Result<&mut TcpStream> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }

    /// Sends everything gathered so far.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let stream = self
                .inner
                .as_mut()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
            let n = match Pin::new(stream).poll_write(cx, &self.out) {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.drain(..n);
        }
        Poll::Ready(Ok(()))
    }

    fn poll_gather(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if self.out.len() + total > COALESCE_MAX {
            match self.poll_drain(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other.map(|r| r.map(|_| 0)),
            }
        }
        if total >= COALESCE_MAX {
            // Bulk data gains nothing from copying: send it straight.
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return Pin::new(self.stream()?).poll_write(cx, first);
        }
        for b in bufs {
            self.out.extend_from_slice(b);
        }
        Poll::Ready(Ok(total))
    }
}

impl Drop for Linger {
    fn drop(&mut self) {
        if let Some(stream) = self.inner.take() {
            let pending = std::mem::take(&mut self.out);
            // Drop runs on the shard that owns the socket, inside its executor.
            glommio::spawn_local(linger(stream, pending)).detach();
        }
    }
}

async fn linger(mut stream: TcpStream, pending: Vec<u8>) {
    use futures_lite::AsyncWriteExt;
    let deadline = std::time::Instant::now() + LINGER;
    if !pending.is_empty() {
        let sent =
            futures_lite::future::or(async { stream.write_all(&pending).await.is_ok() }, async {
                glommio::timer::sleep(LINGER).await;
                false
            })
            .await;
        if !sent {
            return;
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Write).await;
    let mut sink = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        let read = futures_lite::future::or(async { Some(stream.read(&mut sink).await) }, async {
            glommio::timer::sleep(left).await;
            None
        })
        .await;
        match read {
            Some(Ok(n)) if n > 0 => continue,
            _ => break,
        }
    }
}

impl AsyncRead for Linger {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.stream()?).poll_read(cx, buf)
    }
}

impl AsyncWrite for Linger {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_gather(cx, &[io::IoSlice::new(buf)])
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_gather(cx, bufs)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.poll_drain(cx) {
            Poll::Ready(Ok(())) => Pin::new(self.stream()?).poll_flush(cx),
            other => other,
        }
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The real close happens in Drop, after lingering; a TLS close_notify has
        // already been written by the layer above when this is called.
        self.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{future::block_on, AsyncReadExt};

    #[test]
    fn prefix_is_replayed_before_inner() {
        let inner = futures_lite::io::Cursor::new(b" world".to_vec());
        let mut p = Prefixed::new(b"hello".to_vec(), inner);
        let mut out = String::new();
        block_on(p.read_to_string(&mut out)).unwrap();
        assert_eq!(out, "hello world");
    }

    #[test]
    fn activity_moves_on_read() {
        let inner = futures_lite::io::Cursor::new(b"abc".to_vec());
        let (mut a, last) = Activity::new(inner);
        let before = last.get();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let mut b = [0u8; 3];
        block_on(a.read_exact(&mut b)).unwrap();
        assert!(last.get() > before);
    }
}
