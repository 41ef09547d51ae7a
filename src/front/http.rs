//! The HTTP layer of the front: one request in, one response out.
//!
//! hyper parses HTTP/1.1 and h2; this file decides what each request gets:
//! request sanity checks the way nginx applies them, then the probe policy
//! (app or cover), then the cover site or the app route. It holds no socket.

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Body;

use super::cover::CoverSite;
use super::errors;
use super::probe::{random_nonce, unix_now, Class, Classifier, INVITE_PREFIX};
use super::route::Route;
use crate::telemetry::metrics::{Metric, ShardMetrics};

/// Everything a shard needs to answer requests; built once per shard.
pub struct Site {
    pub cover: Arc<CoverSite>,
    pub classifier: Arc<Classifier>,
    /// The `Server` header value; `None` sends no such header.
    pub server_header: Option<HeaderValue>,
    pub max_body_bytes: u64,
    pub metrics: Rc<ShardMetrics>,
}

impl Site {
    fn server_name(&self) -> &str {
        self.server_header
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Answers one request that arrived on `route`. Never fails: every
    /// outcome, including bad input, is an HTTP response.
    ///
    /// A request body is read and thrown away first (as nginx discards bodies
    /// it does not need): answering while the body is still arriving would
    /// make h2 reset the stream before the answer reaches the client.
    pub async fn handle<B>(&self, route: Route, req: Request<B>) -> Response<Bytes>
    where
        B: Body + Unpin,
    {
        let (parts, body) = req.into_parts();
        // A declared length over the limit is refused before reading a byte, as nginx does.
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let too_large = declared.is_some_and(|n| n > self.max_body_bytes)
            || discard_body(body, self.max_body_bytes).await == Discarded::TooLarge;
        if too_large {
            self.metrics.inc(Metric::ReqBad);
            let mut resp = errors::page(StatusCode::PAYLOAD_TOO_LARGE, None, self.server_name());
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return self.finish(resp);
        }
        self.respond(route, &parts)
    }

    /// An error page for a request the caller has already judged (e.g. a group-call
    /// token that is ours but refused), with the usual headers and counting.
    pub fn status_page(&self, status: StatusCode) -> Response<Bytes> {
        self.finish(errors::page(status, None, self.server_name()))
    }

    /// The answer for a request whose body has been dealt with.
    pub fn respond(&self, route: Route, parts: &http::request::Parts) -> Response<Bytes> {
        let resp = self.decide(route, parts);
        self.finish(resp)
    }

    fn finish(&self, mut resp: Response<Bytes>) -> Response<Bytes> {
        if let Some(server) = &self.server_header {
            resp.headers_mut().insert(header::SERVER, server.clone());
        }
        self.metrics.status(resp.status().as_u16());
        resp
    }

    fn decide(&self, route: Route, parts: &http::request::Parts) -> Response<Bytes> {
        if let Some(bad) = self.sanity(parts) {
            self.metrics.inc(Metric::ReqBad);
            return bad;
        }
        if route == Route::Default {
            return self.cover(parts);
        }
        let now = unix_now();
        // A nonce only matters when an invite mints a cookie; skip the
        // getrandom call on every other request.
        let nonce = if parts.uri.path().starts_with(INVITE_PREFIX) {
            random_nonce()
        } else {
            [0; 16]
        };
        match self.classifier.classify(parts, now, nonce) {
            Class::App => {
                self.metrics.inc(Metric::ReqApp);
                app_placeholder()
            }
            Class::Invite { set_cookie } => {
                self.metrics.inc(Metric::ReqInvite);
                invite_redirect(&set_cookie)
            }
            Class::Cover => self.cover(parts),
        }
    }

    fn cover(&self, parts: &http::request::Parts) -> Response<Bytes> {
        self.metrics.inc(Metric::ReqCover);
        self.cover
            .respond(&parts.method, parts.uri.path(), &parts.headers)
    }

    /// The checks nginx makes before looking at the path.
    fn sanity(&self, parts: &http::request::Parts) -> Option<Response<Bytes>> {
        let server = self.server_name();
        // HTTP/1.1 requires Host (RFC 9112 §3.2); h2 carries :authority instead.
        let has_host = parts.headers.contains_key(header::HOST) || parts.uri.authority().is_some();
        if parts.version == Version::HTTP_11 && !has_host {
            return Some(errors::page(StatusCode::BAD_REQUEST, None, server));
        }
        if parts.method == Method::CONNECT {
            return Some(errors::page(StatusCode::BAD_REQUEST, None, server));
        }
        None
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Discarded {
    Done,
    TooLarge,
}

/// Reads a body to its end without keeping it; stops early past `limit`.
/// A broken body counts as done: the connection layer reports the error.
async fn discard_body<B: Body + Unpin>(mut body: B, limit: u64) -> Discarded {
    if body.is_end_stream() {
        return Discarded::Done;
    }
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Discarded::Done;
        };
        if let Some(data) = frame.data_ref() {
            seen += bytes::Buf::remaining(data) as u64;
            if seen > limit {
                return Discarded::TooLarge;
            }
        }
    }
    Discarded::Done
}

/// Stands in for the proxy to the OxPulse backend until that capability lands.
fn app_placeholder() -> Response<Bytes> {
    let mut resp = Response::new(Bytes::from_static(b"app backend not connected\n"));
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn invite_redirect(set_cookie: &str) -> Response<Bytes> {
    let mut resp = Response::new(Bytes::new());
    *resp.status_mut() = StatusCode::FOUND;
    let h = resp.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_static("/"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(set_cookie) {
        h.insert(header::SET_COOKIE, v);
    }
    resp
}
