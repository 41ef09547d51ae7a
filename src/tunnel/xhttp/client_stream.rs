//! [`XhttpStream`]: one XHTTP tunnel as a byte stream. Writes feed the uplink pipe, reads
//! come from the download response body after the VLESS response header is stripped (with
//! the raw client's [`ResponseHeader`]).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use futures_lite::{AsyncRead, AsyncWrite};
use hyper::body::{Body, Incoming};
use hyper::client::conn::http2::SendRequest;
use hyper::{Response, StatusCode};

use super::client::XhttpError;
use super::mode::XhttpMode;
use super::uplink::{UplinkWriter, XhttpBody};
use crate::tunnel::client_driver::ResponseHeader;

/// A response that has not arrived yet. hyper dispatches the request when `send_request`
/// is called; this only waits for the answer, and dropping it resets the h2 stream.
pub(crate) type ResponseFuture = Pin<Box<dyn Future<Output = hyper::Result<Response<Incoming>>>>>;

/// The downlink: the response of the download GET (stream-one: of the POST), read as bytes.
pub(crate) struct Downlink {
    what: &'static str,
    response: Option<ResponseFuture>,
    body: Option<Incoming>,
    chunk: Bytes,
}

impl Downlink {
    pub(crate) fn new(what: &'static str, response: ResponseFuture) -> Self {
        Downlink {
            what,
            response: Some(response),
            body: None,
            chunk: Bytes::new(),
        }
    }
}

impl AsyncRead for Downlink {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            if !this.chunk.is_empty() {
                let n = buf.len().min(this.chunk.len());
                buf[..n].copy_from_slice(&this.chunk[..n]);
                this.chunk.advance(n);
                return Poll::Ready(Ok(n));
            }
            if let Some(response) = this.response.as_mut() {
                let result = ready!(response.as_mut().poll(cx));
                this.response = None;
                let response = result.map_err(|source| XhttpError::Request {
                    request: this.what,
                    source,
                })?;
                // Xray answers 200 (with text/event-stream); anything else is a refusal,
                // e.g. 404 for a wrong path or Host.
                if response.status() != StatusCode::OK {
                    return Poll::Ready(Err(XhttpError::Status {
                        request: this.what,
                        status: response.status().as_u16(),
                    }
                    .into()));
                }
                this.body = Some(response.into_body());
                continue;
            }
            let Some(body) = this.body.as_mut() else {
                return Poll::Ready(Ok(0));
            };
            match ready!(Pin::new(body).poll_frame(cx)) {
                None => {
                    this.body = None;
                    return Poll::Ready(Ok(0));
                }
                // Trailers carry nothing for the tunnel.
                Some(Ok(frame)) => this.chunk = frame.into_data().unwrap_or_default(),
                Some(Err(source)) => {
                    this.body = None;
                    return Poll::Ready(Err(XhttpError::Request {
                        request: this.what,
                        source,
                    }
                    .into()));
                }
            }
        }
    }
}

/// The response of the stream-up POST. Xray 24.11.21 sends it only when the stream is
/// reset (its handler waits for the request context); newer servers may stream filler
/// into it. It is watched on every read and write so that a refusal ends the tunnel and
/// filler does not hold h2 flow-control window, and kept until the tunnel is dropped:
/// dropping it resets the upload stream, which is also what lets Xray's handler return.
pub(crate) enum UploadWatch {
    Waiting(ResponseFuture),
    Draining(Incoming),
    Done,
}

impl UploadWatch {
    /// Makes whatever progress is possible now; an error means the uplink is broken.
    fn poll_progress(&mut self, cx: &mut Context<'_>) -> Result<(), XhttpError> {
        const WHAT: &str = "stream-up POST";
        loop {
            match self {
                UploadWatch::Waiting(response) => {
                    let Poll::Ready(result) = response.as_mut().poll(cx) else {
                        return Ok(());
                    };
                    *self = UploadWatch::Done;
                    let response = result.map_err(|source| XhttpError::Request {
                        request: WHAT,
                        source,
                    })?;
                    if !response.status().is_success() {
                        return Err(XhttpError::Status {
                            request: WHAT,
                            status: response.status().as_u16(),
                        });
                    }
                    *self = UploadWatch::Draining(response.into_body());
                }
                UploadWatch::Draining(body) => match Pin::new(body).poll_frame(cx) {
                    Poll::Pending => return Ok(()),
                    Poll::Ready(Some(Ok(_filler))) => {}
                    // The server ended or reset its answer; the uplink may still be
                    // complete, and a broken one shows up through the body pipe.
                    Poll::Ready(None | Some(Err(_))) => *self = UploadWatch::Done,
                },
                UploadWatch::Done => return Ok(()),
            }
        }
    }
}

/// An open XHTTP tunnel: bytes written go to the target, bytes read come from it.
///
/// `flush` returns once every written byte was taken by the HTTP side; `close` ends the
/// uplink (stream-up and stream-one: the POST body ends; packet-up: the last POST is sent)
/// while reads go on until the server ends the download. Dropping the stream abandons it:
/// its HTTP streams are reset and unsent uplink bytes are discarded.
pub struct XhttpStream {
    pub(crate) mode: XhttpMode,
    pub(crate) uplink: UplinkWriter,
    pub(crate) downlink: Downlink,
    pub(crate) header: ResponseHeader,
    pub(crate) upload: UploadWatch,
    pub(crate) upload_error: Option<XhttpError>,
    /// Keeps hyper's request dispatcher alive while the tunnel is open, even if its
    /// [`super::XhttpConnection`] is dropped: with no sender left hyper shuts the connection.
    pub(crate) _sender: SendRequest<XhttpBody>,
}

impl fmt::Debug for XhttpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XhttpStream")
            .field("mode", &self.mode)
            .field("response_header_read", &self.header.is_done())
            .finish_non_exhaustive()
    }
}

impl XhttpStream {
    pub fn mode(&self) -> XhttpMode {
        self.mode
    }

    /// The stream-up POST's verdict so far, as an error for the writer.
    fn poll_upload(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.upload_error.is_none() {
            match self.upload.poll_progress(cx) {
                Ok(()) => {}
                // A reset after the whole uplink was sent loses nothing (a server may
                // close the POST that way once the session ends).
                Err(XhttpError::Request { .. }) if self.uplink.is_finished() => {}
                Err(e) => self.upload_error = Some(e),
            }
        }
        match &self.upload_error {
            Some(e) => Err(e.duplicate().into()),
            None => Ok(()),
        }
    }
}

impl AsyncRead for XhttpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // A refused or failed uplink ends the tunnel: the server has lost uplink bytes.
        this.poll_upload(cx)?;
        if let Some(err) = this.uplink.poll_failed(cx) {
            return Poll::Ready(Err(err));
        }
        ready!(this.header.poll_strip(cx, &mut this.downlink))?;
        Pin::new(&mut this.downlink).poll_read(cx, buf)
    }
}

impl AsyncWrite for XhttpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.poll_upload(cx)?;
        this.uplink.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.poll_upload(cx)?;
        this.uplink.poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.uplink.close();
        this.poll_upload(cx)?;
        this.uplink.poll_flush(cx)
    }
}
