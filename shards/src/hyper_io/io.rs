//! hyper 1.x has its own `Read`/`Write` traits; glommio streams (and futures-rustls over
//! them) implement the futures-io ones. This adapter bridges the two.

use std::{
    io,
    pin::Pin,
    task::{ready, Context, Poll},
};

use futures_lite::{AsyncRead, AsyncWrite};
use hyper::rt::ReadBufCursor;

/// Wraps any futures-io stream (a glommio `TcpStream`, a `futures_rustls` TLS stream…) so
/// hyper can serve on it.
#[derive(Debug)]
pub struct HyperIo<T>(pub T);

impl<T> HyperIo<T> {
    /// The wrapped stream.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: AsyncRead + Unpin> hyper::rt::Read for HyperIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // Zero the not-yet-initialised tail once (hyper reuses its buffers, so this is rare)
        // and read into it as an ordinary `&mut [u8]`.
        let dst = buf.initialize_unfilled();
        let room = dst.len();
        let n = ready!(Pin::new(&mut self.0).poll_read(cx, dst))?;
        if n > room {
            // A safe `AsyncRead` impl can lie; never let that turn into claiming bytes exist.
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "AsyncRead reported more bytes than the buffer holds",
            )));
        }
        // SAFETY: `advance(n)` requires the next `n` bytes of the cursor to be initialised.
        // `initialize_unfilled` initialised all `room` bytes after the cursor, and `n <= room`
        // was checked above.
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for HyperIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // glommio's close is shutdown(2), which fails with ENOTCONN when the peer already
        // reset the connection (common when an HTTP/2 client hangs up). The point of the
        // shutdown — the peer gets no more data — holds either way, so that is success.
        match ready!(Pin::new(&mut self.0).poll_close(cx)) {
            Err(err) if err.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            other => Poll::Ready(other),
        }
    }
}
