//! Sends the VLESS response header together with the first downlink bytes.
//!
//! Xray's server holds its `00 00` response header until the target's first
//! data and writes both in one go, so the client's first TLS record carries
//! header and payload together. A lone two-byte record would be a marker of
//! its own; this writer reproduces Xray's shape. With no data at all, the
//! header still goes out on flush or close, so the client always learns the
//! tunnel was opened before it ends.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};

use crate::tunnel::vless::encode_response;

/// Most payload bytes glued to the header: one TLS record's plaintext.
const FIRST_WRITE_MAX: usize = 16 * 1024;

pub struct WithResponseHeader<S> {
    inner: S,
    /// The part of the header not yet accepted by `inner`.
    header: Vec<u8>,
}

impl<S> WithResponseHeader<S> {
    pub fn new(inner: S) -> Self {
        let mut header = Vec::with_capacity(2);
        encode_response(&mut header);
        WithResponseHeader { inner, header }
    }
}

impl<S: AsyncWrite + Unpin> WithResponseHeader<S> {
    /// Writes what is left of the header alone (flush, close).
    fn poll_header(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.header.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.header))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.header.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WithResponseHeader<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WithResponseHeader<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        while !this.header.is_empty() {
            if buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let mut joined = this.header.clone();
            joined.extend_from_slice(&buf[..buf.len().min(FIRST_WRITE_MAX)]);
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &joined))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            // Only bytes past the header count as the caller's.
            let header_len = this.header.len();
            this.header.drain(..n.min(header_len));
            if n > header_len {
                return Poll::Ready(Ok(n - header_len));
            }
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_header(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_header(cx))?;
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;
    use futures_lite::AsyncWriteExt;

    /// Records each write call; accepts at most `limit` bytes per call.
    struct Calls {
        writes: Vec<Vec<u8>>,
        limit: usize,
        closed: bool,
    }

    impl AsyncWrite for Calls {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.limit);
            self.writes.push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.closed = true;
            Poll::Ready(Ok(()))
        }
    }

    fn calls(limit: usize) -> WithResponseHeader<Calls> {
        WithResponseHeader::new(Calls {
            writes: Vec::new(),
            limit,
            closed: false,
        })
    }

    #[test]
    fn the_header_rides_with_the_first_payload() {
        let mut w = calls(usize::MAX);
        block_on(async {
            w.write_all(b"hello").await.unwrap();
            w.write_all(b"world").await.unwrap();
        });
        assert_eq!(
            w.inner.writes,
            [b"\x00\x00hello".to_vec(), b"world".to_vec()]
        );
    }

    #[test]
    fn partial_writes_never_lose_or_repeat_a_byte() {
        for limit in 1..8 {
            let mut w = calls(limit);
            block_on(w.write_all(b"abcdef")).unwrap();
            let all: Vec<u8> = w.inner.writes.concat();
            assert_eq!(all, b"\x00\x00abcdef", "limit {limit}");
        }
    }

    #[test]
    fn without_data_the_header_goes_out_on_close() {
        let mut w = calls(usize::MAX);
        block_on(w.close()).unwrap();
        assert_eq!(w.inner.writes, [b"\x00\x00".to_vec()]);
        assert!(w.inner.closed);
        let mut w = calls(1);
        block_on(w.flush()).unwrap();
        assert_eq!(w.inner.writes.concat(), b"\x00\x00");
    }
}
