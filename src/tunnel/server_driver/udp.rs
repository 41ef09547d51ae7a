//! A connected UDP socket seen as a byte stream of VLESS UDP frames
//! (`len(2, BE) | payload`, TUNNEL.md §1), so a UDP request is relayed by the
//! same [`splice`](crate::tunnel::splice) as a TCP one.
//!
//! Reading yields each received datagram framed; writing takes frames cut
//! anywhere and sends each whole one as a datagram. One destination per
//! connection, as VLESS UDP (cmd 2) defines it; the socket is `connect`ed so
//! the kernel drops datagrams from anyone else.
//!
//! UDP has no end of stream: closing only sends what is complete, and the
//! downlink lasts until the splice's idle deadline (Xray does the same).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_lite::future::BoxedLocal;
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::UdpSocket;

use crate::tunnel::vless::{UdpDeframer, UdpFramer, MAX_UDP_PAYLOAD};

pub struct FramedUdp {
    socket: Rc<UdpSocket>,
    /// The receive in flight; it owns its buffer and gives it back.
    recv: Option<BoxedLocal<(io::Result<usize>, Vec<u8>)>>,
    /// A receive buffer to reuse (64 KiB: any datagram fits).
    spare: Option<Vec<u8>>,
    /// The last datagram, framed, and how much of it was read.
    framed: Vec<u8>,
    framed_pos: usize,
    deframer: UdpDeframer,
    send: Option<BoxedLocal<io::Result<()>>>,
}

impl FramedUdp {
    /// A socket on an ephemeral port of `target`'s family, connected to it.
    /// Must run on a glommio executor.
    pub async fn connect(target: SocketAddr) -> io::Result<Self> {
        let local: SocketAddr = if target.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(target).await?;
        Ok(FramedUdp {
            socket: Rc::new(socket),
            recv: None,
            spare: None,
            framed: Vec::new(),
            framed_pos: 0,
            deframer: UdpDeframer::new(),
            send: None,
        })
    }

    /// Sends every whole frame received so far, one datagram each.
    fn poll_send_frames(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if let Some(send) = self.send.as_mut() {
                let sent = ready!(send.as_mut().poll(cx));
                self.send = None;
                sent?;
            }
            let Some(packet) = self.deframer.next_packet() else {
                return Poll::Ready(Ok(()));
            };
            self.send = Some(Box::pin(send_datagram(Rc::clone(&self.socket), packet)));
        }
    }
}

/// An ICMP error reported for an earlier datagram: UDP loses packets, the
/// relay goes on.
fn is_icmp_echo(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::ConnectionRefused
}

async fn send_datagram(socket: Rc<UdpSocket>, packet: Bytes) -> io::Result<()> {
    match socket.send(&packet).await.map_err(io::Error::from) {
        Err(e) if !is_icmp_echo(&e) => Err(e),
        _ => Ok(()),
    }
}

async fn recv_datagram(socket: Rc<UdpSocket>, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
    let got = socket.recv(&mut buf).await.map_err(io::Error::from);
    (got, buf)
}

impl AsyncRead for FramedUdp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            if this.framed_pos < this.framed.len() {
                let rest = &this.framed[this.framed_pos..];
                let n = rest.len().min(buf.len());
                buf[..n].copy_from_slice(&rest[..n]);
                this.framed_pos += n;
                return Poll::Ready(Ok(n));
            }
            let recv = this.recv.get_or_insert_with(|| {
                let buf = this
                    .spare
                    .take()
                    .unwrap_or_else(|| vec![0; MAX_UDP_PAYLOAD]);
                Box::pin(recv_datagram(Rc::clone(&this.socket), buf))
            });
            let (got, data) = ready!(recv.as_mut().poll(cx));
            this.recv = None;
            match got {
                Ok(n) => {
                    this.framed.clear();
                    this.framed_pos = 0;
                    // The buffer is MAX_UDP_PAYLOAD long, so the length fits.
                    let framed = UdpFramer::encode_packet(&data[..n], &mut this.framed);
                    this.spare = Some(data);
                    framed.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                }
                Err(e) if is_icmp_echo(&e) => this.spare = Some(data),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for FramedUdp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Sending everything whole first leaves the deframer holding less
        // than one frame, so it always has room for at least one byte.
        ready!(self.poll_send_frames(cx))?;
        let taken = self.deframer.feed(buf);
        // Start sending what just became whole; what cannot go yet goes on
        // the next write or flush.
        if let Poll::Ready(Err(e)) = self.poll_send_frames(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(taken))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_send_frames(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_send_frames(cx)
    }
}
