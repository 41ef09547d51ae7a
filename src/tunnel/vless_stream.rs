//! VLESS on any byte stream (the client side): the request header goes out
//! first, the response header is stripped from the first bytes read. Used
//! where VLESS does not sit right on REALITY's TLS — inside VLESS Encryption,
//! whichever transport carries that.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use uuid::Uuid;

use super::client_driver::{ConnectError, ResponseHeader};
use super::vless::{Command, Request, Target};

/// A VLESS TCP tunnel over `S`.
pub struct VlessStream<S> {
    inner: S,
    response: ResponseHeader,
}

/// Writes the VLESS TCP request (flow "") for `target` on `inner` and
/// returns the tunnel. The request is flushed, so a layer below that sends
/// its handshake with the first write (VLESS Encryption 0-RTT) does so now.
pub async fn open_vless<S>(mut inner: S, uuid: Uuid, target: Target) -> io::Result<VlessStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = Vec::new();
    Request {
        uuid,
        flow: None,
        command: Command::Tcp,
        target: Some(target),
    }
    .encode(&mut request)
    .map_err(ConnectError::from)?;
    inner.write_all(&request).await?;
    inner.flush().await?;
    Ok(VlessStream {
        inner,
        response: ResponseHeader::default(),
    })
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for VlessStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.response.poll_strip(cx, &mut this.inner))?;
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for VlessStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::vless::{Address, Decoded};
    use futures_lite::future::block_on;
    use futures_lite::io::Cursor;
    use futures_lite::AsyncReadExt;

    /// Reads come from `input`; writes are collected.
    struct Duplex {
        input: Cursor<Vec<u8>>,
        written: Vec<u8>,
    }

    impl AsyncRead for Duplex {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.input).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Duplex {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.written.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn request_first_then_payload_without_the_response_header() {
        block_on(async {
            let uuid = Uuid::from_bytes([9; 16]);
            let target = Target {
                addr: Address::Ipv4([10, 0, 0, 1]),
                port: 80,
            };
            // Response header with two bytes of addons, then the payload.
            let io = Duplex {
                input: Cursor::new(b"\x00\x02abpayload".to_vec()),
                written: Vec::new(),
            };
            let mut s = open_vless(io, uuid, target.clone()).await.unwrap();
            s.write_all(b"up").await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"payload");
            match Request::decode(&s.inner.written).unwrap() {
                Decoded::Complete { value, consumed } => {
                    assert_eq!(value.uuid, uuid);
                    assert_eq!(value.target, Some(target));
                    assert_eq!(&s.inner.written[consumed..], b"up");
                }
                other => panic!("{other:?}"),
            }
        });
    }
}
