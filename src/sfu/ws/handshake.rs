//! The server side of the WebSocket opening handshake (RFC 6455 §4.2), plus where the
//! room token travels (`docs/PROTOCOLS.md`): `Authorization: Bearer <jwt>`, or for browsers,
//! which cannot set headers on a WebSocket, a `bearer.<jwt>` entry of
//! `Sec-WebSocket-Protocol` next to `oxpulse-sfu.v1`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{
    AUTHORIZATION, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Version};

/// The signalling subprotocol the server selects.
pub const SUBPROTOCOL: &str = "oxpulse-sfu.v1";
/// Prefix of the subprotocol entry that carries the token. Never echoed.
pub const BEARER_PREFIX: &str = "bearer.";
/// RFC 6455 §1.3.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A valid upgrade request: what the 101 must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// `Sec-WebSocket-Accept`.
    pub accept: String,
    /// `Sec-WebSocket-Protocol` to send back: the signalling protocol when the client
    /// offered it, else none (RFC 6455: the server may only pick what was offered).
    pub protocol: Option<&'static str>,
}

/// Why a request is not a WebSocket upgrade we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeError {
    #[error("not a GET")]
    Method,
    #[error("not HTTP/1.1")]
    HttpVersion,
    #[error("no `Upgrade: websocket`")]
    UpgradeHeader,
    #[error("`Connection` does not contain `upgrade`")]
    ConnectionHeader,
    #[error("`Sec-WebSocket-Version` is not 13")]
    WsVersion,
    #[error("`Sec-WebSocket-Key` is not 16 bytes in base64")]
    Key,
}

impl UpgradeError {
    /// The answer for a client that holds a valid token but sent a bad handshake.
    pub fn status(self) -> StatusCode {
        match self {
            // RFC 6455 §4.2.2: 426 plus the versions we speak.
            UpgradeError::WsVersion => StatusCode::UPGRADE_REQUIRED,
            UpgradeError::Method => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// `Sec-WebSocket-Accept` for a client key: base64(SHA-1(key ‖ GUID)).
pub fn accept_key(key: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.as_bytes());
    ctx.update(GUID.as_bytes());
    STANDARD.encode(ctx.finish().as_ref())
}

/// Comma-separated entries of every line of header `name`, trimmed, empty ones skipped.
fn entries<'a>(
    headers: &'a HeaderMap,
    name: &'a http::header::HeaderName,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
}

/// Checks the handshake headers of an upgrade request.
pub fn check_upgrade(
    method: &Method,
    version: Version,
    headers: &HeaderMap,
) -> Result<Upgrade, UpgradeError> {
    if method != Method::GET {
        return Err(UpgradeError::Method);
    }
    // h2 would need RFC 8441 (extended CONNECT), which the front does not enable.
    if version != Version::HTTP_11 {
        return Err(UpgradeError::HttpVersion);
    }
    if !entries(headers, &UPGRADE).any(|e| e.eq_ignore_ascii_case("websocket")) {
        return Err(UpgradeError::UpgradeHeader);
    }
    if !entries(headers, &CONNECTION).any(|e| e.eq_ignore_ascii_case("upgrade")) {
        return Err(UpgradeError::ConnectionHeader);
    }
    let mut versions = headers.get_all(SEC_WEBSOCKET_VERSION).iter();
    match (versions.next(), versions.next()) {
        (Some(v), None) if v.as_bytes().trim_ascii() == b"13" => {}
        _ => return Err(UpgradeError::WsVersion),
    }
    let mut keys = headers.get_all(SEC_WEBSOCKET_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (Some(k), None) => k.to_str().map_err(|_| UpgradeError::Key)?.trim(),
        _ => return Err(UpgradeError::Key),
    };
    match STANDARD.decode(key) {
        Ok(raw) if raw.len() == 16 => {}
        _ => return Err(UpgradeError::Key),
    }
    let protocol = entries(headers, &SEC_WEBSOCKET_PROTOCOL)
        .any(|e| e == SUBPROTOCOL)
        .then_some(SUBPROTOCOL);
    Ok(Upgrade {
        accept: accept_key(key),
        protocol,
    })
}

/// The room token, from `Authorization: Bearer` if present, else from the first
/// `bearer.` entry of `Sec-WebSocket-Protocol`. `None` when neither carries one.
pub fn token_from_headers(headers: &HeaderMap) -> Option<&str> {
    if let Some(auth) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let auth = auth.trim();
        // RFC 9110 §11.1: the scheme is case-insensitive.
        if auth.len() > 7 && auth[..7].eq_ignore_ascii_case("bearer ") {
            let token = auth[7..].trim();
            if !token.is_empty() {
                return Some(token);
            }
        }
    }
    entries(headers, &SEC_WEBSOCKET_PROTOCOL)
        .find_map(|e| e.strip_prefix(BEARER_PREFIX))
        .filter(|t| !t.is_empty())
}

/// The `101 Switching Protocols` answer.
pub fn switching_protocols(up: &Upgrade) -> Response<Bytes> {
    let mut resp = Response::new(Bytes::new());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    // The accept key is base64: always a valid header value.
    if let Ok(v) = HeaderValue::from_str(&up.accept) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = up.protocol {
        h.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn good() -> Vec<(&'static str, &'static str)> {
        vec![
            ("host", "edge.test"),
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", KEY),
        ]
    }

    fn check(list: &[(&str, &str)]) -> Result<Upgrade, UpgradeError> {
        check_upgrade(&Method::GET, Version::HTTP_11, &headers(list))
    }

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        assert_eq!(accept_key(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn a_valid_upgrade_is_accepted() {
        let up = check(&good()).unwrap();
        assert_eq!(up.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(up.protocol, None);
        // Case-insensitive tokens, lists, several header lines.
        let mut h = good();
        h[1] = ("upgrade", "WebSocket");
        h[2] = ("connection", "keep-alive, Upgrade");
        h.push(("sec-websocket-protocol", "x.v0"));
        h.push(("sec-websocket-protocol", "oxpulse-sfu.v1, bearer.abc"));
        let up = check(&h).unwrap();
        assert_eq!(up.protocol, Some(SUBPROTOCOL));
        let resp = switching_protocols(&up);
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(resp.headers()[SEC_WEBSOCKET_PROTOCOL], SUBPROTOCOL);
        assert_eq!(resp.headers()[SEC_WEBSOCKET_ACCEPT], up.accept.as_str());
        assert!(resp.headers().values().all(|v| v != "bearer.abc"));
    }

    #[test]
    fn each_rule_is_checked() {
        let h = headers(&good());
        assert_eq!(
            check_upgrade(&Method::POST, Version::HTTP_11, &h),
            Err(UpgradeError::Method)
        );
        assert_eq!(
            check_upgrade(&Method::GET, Version::HTTP_2, &h),
            Err(UpgradeError::HttpVersion)
        );
        assert_eq!(
            check_upgrade(&Method::GET, Version::HTTP_10, &h),
            Err(UpgradeError::HttpVersion)
        );
        let without = |name: &str| -> Vec<(&'static str, &'static str)> {
            good().into_iter().filter(|(k, _)| *k != name).collect()
        };
        let with = |name: &'static str, value: &'static str| {
            let mut v = without(name);
            v.push((name, value));
            v
        };
        assert_eq!(check(&without("upgrade")), Err(UpgradeError::UpgradeHeader));
        assert_eq!(
            check(&with("upgrade", "h2c")),
            Err(UpgradeError::UpgradeHeader)
        );
        assert_eq!(
            check(&without("connection")),
            Err(UpgradeError::ConnectionHeader)
        );
        assert_eq!(
            check(&with("connection", "keep-alive")),
            Err(UpgradeError::ConnectionHeader)
        );
        assert_eq!(
            check(&without("sec-websocket-version")),
            Err(UpgradeError::WsVersion)
        );
        assert_eq!(
            check(&with("sec-websocket-version", "8")),
            Err(UpgradeError::WsVersion)
        );
        assert_eq!(
            UpgradeError::WsVersion.status(),
            StatusCode::UPGRADE_REQUIRED
        );
        assert_eq!(check(&without("sec-websocket-key")), Err(UpgradeError::Key));
        assert_eq!(
            check(&with("sec-websocket-key", "not base64!")),
            Err(UpgradeError::Key)
        );
        // 15 and 17 bytes.
        assert_eq!(
            check(&with("sec-websocket-key", "AAAAAAAAAAAAAAAAAAAA")),
            Err(UpgradeError::Key)
        );
        assert_eq!(
            check(&with("sec-websocket-key", "AAAAAAAAAAAAAAAAAAAAAAA=")),
            Err(UpgradeError::Key)
        );
        let mut two = good();
        two.push(("sec-websocket-key", KEY));
        assert_eq!(check(&two), Err(UpgradeError::Key));
    }

    #[test]
    fn the_token_comes_from_authorization_or_the_subprotocol() {
        assert_eq!(token_from_headers(&headers(&[])), None);
        assert_eq!(
            token_from_headers(&headers(&[("authorization", "Bearer a.b.c")])),
            Some("a.b.c")
        );
        assert_eq!(
            token_from_headers(&headers(&[("authorization", "bearer   a.b.c ")])),
            Some("a.b.c")
        );
        assert_eq!(
            token_from_headers(&headers(&[("authorization", "Basic dXNlcg==")])),
            None
        );
        assert_eq!(
            token_from_headers(&headers(&[("authorization", "Bearer ")])),
            None
        );
        assert_eq!(
            token_from_headers(&headers(&[(
                "sec-websocket-protocol",
                "oxpulse-sfu.v1, bearer.x.y.z"
            )])),
            Some("x.y.z")
        );
        assert_eq!(
            token_from_headers(&headers(&[("sec-websocket-protocol", "bearer.")])),
            None
        );
        // Authorization wins when both are present.
        assert_eq!(
            token_from_headers(&headers(&[
                ("sec-websocket-protocol", "bearer.p.p.p"),
                ("authorization", "Bearer h.h.h"),
            ])),
            Some("h.h.h")
        );
    }
}
