//! The front's side of the route: reads the first request of a partner-route HTTP/1.1
//! connection, writes the 101 for an accepted upgrade and moves the socket to the room's
//! owner shard (or serves it here when this shard owns the room). Why this happens before
//! hyper is explained in `front_route.rs`.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use http::{header, HeaderValue, Response, StatusCode};
use shards::partition::shard_of;

use super::front_route::{self, FirstAnswer, Head, Verdict};
use super::signalling::{run_session, SfuShard};
use crate::config::FrontLimits;
use crate::front::driver::within;
use crate::front::http::Site;
use crate::front::io::{Linger, Prefixed};
use crate::front::probe::unix_now;
use crate::front::tls_stream::{handoff_parts, resume, HandedTls, TlsConn};
use crate::server::ShardMsg;
use crate::telemetry::metrics::Metric;

/// The front's TLS stream as the driver builds it.
pub type FrontTls = futures_rustls::server::TlsStream<Prefixed<Linger>>;

/// How long writing the 101 may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A signalling socket on its way to its room's owner shard, with its claims.
pub struct HandedSignalling {
    pub tls: HandedTls,
    /// Plaintext the client sent right behind its upgrade request (already decrypted on
    /// the sending shard, so it cannot travel inside the TLS session).
    pub plaintext: Vec<u8>,
    pub room: String,
    pub peer: String,
}

/// What became of a connection's first request.
// Returned once per connection and destructured at once; boxing the stream would cost an
// allocation on every partner-route connection for nothing.
#[allow(clippy::large_enum_variant)]
pub enum FirstRequest {
    /// The connection was upgraded (and served or handed over), or it ended.
    Taken,
    /// hyper serves the connection: the bytes read are replayed, and the first request
    /// gets this answer if the route judged it.
    Serve(Prefixed<FrontTls>, Option<FirstAnswer>),
}

/// Reads the start of the first request; takes the connection if it is an accepted
/// upgrade. Ordinary requests are handed back after the first read.
pub async fn first_request(
    sfu: &Rc<SfuShard>,
    mut tls: FrontTls,
    limits: &FrontLimits,
) -> FirstRequest {
    let deadline = Instant::now() + limits.header_timeout();
    let max = limits.max_header_bytes as usize;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match front_route::scan(&buf, max) {
            Head::NotOurs => return FirstRequest::Serve(Prefixed::new(buf, tls), None),
            // hyper answers an oversized head as it does on any path.
            Head::TooLarge => {
                return FirstRequest::Serve(Prefixed::new(buf, tls), Some(FirstAnswer::Cover))
            }
            Head::NeedMore => {
                let left = deadline.saturating_duration_since(Instant::now());
                match within(left, tls.read(&mut chunk)).await {
                    Some(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    // Closed, broken, or silent for the whole header timeout: hyper would
                    // close such a connection without an answer too.
                    _ => return FirstRequest::Taken,
                }
            }
            Head::Complete(len) => {
                let verdict = match front_route::parse_head(&buf[..len]) {
                    Some(head) => front_route::decide(&head, sfu.secret.expose(), unix_now()),
                    None => Verdict::Cover,
                };
                match verdict {
                    Verdict::Accept {
                        upgrade,
                        room,
                        peer,
                    } => {
                        sfu.metrics.inc(Metric::SfuUpgradeOk);
                        let after = buf.split_off(len);
                        let bytes = front_route::switching_protocols_bytes(
                            &upgrade,
                            sfu.server_header.as_ref(),
                        );
                        accept(sfu, tls, bytes, after, room, peer).await;
                        return FirstRequest::Taken;
                    }
                    Verdict::Cover => sfu.metrics.inc(Metric::SfuUpgradeUnauth),
                    Verdict::Refused(_) | Verdict::BadHandshake(_) => {
                        sfu.metrics.inc(Metric::SfuUpgradeRefused)
                    }
                }
                let answer = verdict.first_answer();
                return FirstRequest::Serve(Prefixed::new(buf, tls), Some(answer));
            }
        }
    }
}

/// The answer to a first request the route judged (not the cover), as hyper sends it.
pub fn judged_response(site: &Site, status: StatusCode) -> Response<Bytes> {
    let mut resp = site.status_page(status);
    let h = resp.headers_mut();
    match status {
        // RFC 9110 §15.5.2: a 401 names the scheme.
        StatusCode::UNAUTHORIZED => {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // RFC 6455 §4.4: the versions we speak.
        StatusCode::UPGRADE_REQUIRED => {
            h.insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        _ => {}
    }
    resp
}

/// Writes the 101, then serves the socket here or hands it to the room's owner.
async fn accept(
    sfu: &Rc<SfuShard>,
    mut tls: FrontTls,
    answer: Vec<u8>,
    plaintext: Vec<u8>,
    room: String,
    peer: String,
) {
    let written = within(WRITE_TIMEOUT, async {
        tls.write_all(&answer).await?;
        tls.flush().await
    })
    .await;
    if !matches!(written, Some(Ok(()))) {
        return;
    }
    let (prefixed, conn) = tls.into_inner();
    let (unread, linger) = prefixed.into_parts();
    let Some((mut tcp, unsent)) = linger.into_inner() else {
        return;
    };
    // The flush above drained the gathered bytes; this only guards the invariant.
    if !unsent.is_empty() && tcp.write_all(&unsent).await.is_err() {
        return;
    }
    let owner = shard_of(room.as_bytes(), sfu.shards);
    if owner == sfu.index {
        let io = TlsConn::from_parts(Prefixed::new(unread, tcp), conn);
        run_session(sfu.clone(), io, plaintext, room, peer).await;
        return;
    }
    let Some(bus) = &sfu.bus else {
        return;
    };
    let tls = match handoff_parts(tcp, unread, conn) {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!(error = %e, "signalling hand-off failed");
            return;
        }
    };
    let msg = ShardMsg::Signalling(Box::new(HandedSignalling {
        tls,
        plaintext,
        room,
        peer,
    }));
    match bus.send_to(owner, msg) {
        Ok(()) => sfu.metrics.inc(Metric::SfuHandoffs),
        // Dropping the message closes the socket; the client reconnects.
        Err(_) => sfu.metrics.inc(Metric::BusDropped),
    }
}

/// The owner shard's side of a hand-off: resume the TLS session and serve the socket.
pub async fn serve_handed(sfu: Rc<SfuShard>, handed: HandedSignalling) {
    let HandedSignalling {
        tls,
        plaintext,
        room,
        peer,
    } = handed;
    let (io, _client) = resume(tls);
    run_session(sfu, io, plaintext, room, peer).await;
}
