//! What a request for `/sfu/ws/{room}` gets on the front (sans-IO).
//!
//! Why the first request is looked at before hyper: hyper hands an upgraded connection
//! over only through `Upgraded`, which requires the transport to be `Send`
//! (`http1::Connection::with_upgrades` has an `I: Send` bound), and a glommio socket is
//! tied to its shard. So on a partner-route HTTP/1.1 connection the front reads the
//! start of the first request itself: anything that is not `GET /sfu/ws/` goes straight
//! to hyper with the bytes replayed, and a request for the route is parsed (httparse,
//! hyper's own parser) and judged here. Only an accepted upgrade is answered outside
//! hyper (the 101); every other answer, including the cover 404, is still written by
//! hyper, so its bytes are those any other request gets. A consequence: the upgrade must
//! be the connection's first request, which is what browsers do (they open WebSockets on
//! connections of their own); a later request for the route on a kept-alive connection,
//! or one over h2 (RFC 8441 is not enabled), gets the cover site.

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};

use super::jwt;
use super::ws::{self, Upgrade, UpgradeError};

/// The route's path prefix.
pub const PREFIX: &str = "/sfu/ws/";
/// What the first bytes of an upgrade request look like.
const REQUEST_START: &[u8] = b"GET /sfu/ws/";
/// Headers httparse is given room for; a request with more is not ours.
const MAX_HEADERS: usize = 64;

/// Any path under the route's prefix (valid room or not).
pub fn is_sfu_path(path: &str) -> bool {
    path.starts_with(PREFIX)
}

/// The room id of `/sfu/ws/{room}`: 1–64 of `A-Z a-z 0-9 _ -`, nothing after it.
pub fn room_of(path: &str) -> Option<&str> {
    let room = path.strip_prefix(PREFIX)?;
    let ok = (1..=64).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then_some(room)
}

/// How far the first request has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// Could still become `GET /sfu/ws/…`, or its head is not complete yet.
    NeedMore,
    /// Not a request for the route (or not one httparse can read): hyper serves it.
    NotOurs,
    /// A request for the route whose head is bigger than the limit: hyper answers it
    /// as it answers any oversized head.
    TooLarge,
    /// A complete head for the route, this many bytes long.
    Complete(usize),
}

/// Looks at the bytes read so far from a connection's first request.
pub fn scan(buf: &[u8], max_head: usize) -> Head {
    let n = buf.len().min(REQUEST_START.len());
    if buf[..n] != REQUEST_START[..n] {
        return Head::NotOurs;
    }
    if n < REQUEST_START.len() {
        return Head::NeedMore;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= max_head => Head::Complete(len),
        Ok(httparse::Status::Complete(_)) => Head::TooLarge,
        Ok(httparse::Status::Partial) if buf.len() >= max_head => Head::TooLarge,
        Ok(httparse::Status::Partial) => Head::NeedMore,
        Err(_) => Head::NotOurs,
    }
}

/// The parts of a request head the route looks at.
#[derive(Debug)]
pub struct RequestHead {
    pub method: Method,
    pub path: String,
    pub version: Version,
    pub headers: HeaderMap,
}

/// Parses a complete head (as [`scan`] found it). `None` if http's types refuse it.
pub fn parse_head(buf: &[u8]) -> Option<RequestHead> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(_) = req.parse(buf).ok()? else {
        return None;
    };
    let method = Method::from_bytes(req.method?.as_bytes()).ok()?;
    let uri: http::Uri = req.path?.parse().ok()?;
    let version = match req.version? {
        1 => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    let mut map = HeaderMap::new();
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(h.value).ok()?;
        map.append(name, value);
    }
    Some(RequestHead {
        method,
        path: uri.path().to_owned(),
        version,
        headers: map,
    })
}

/// The decision for one request on the route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No token, or one we did not sign, or not the route at all: the cover site.
    Cover,
    /// A token we signed, but expired, early or for another room: 401.
    Refused(jwt::JwtError),
    /// A token holder whose handshake is wrong: 400, 405 or 426.
    BadHandshake(UpgradeError),
    /// Switch protocols and start signalling.
    Accept {
        upgrade: Upgrade,
        room: String,
        peer: String,
    },
}

/// Judges a request for the route. The token is checked before the handshake headers, so
/// a stranger's answer never depends on anything but the path.
pub fn decide(head: &RequestHead, secret: &[u8], now_unix: u64) -> Verdict {
    let Some(room) = room_of(&head.path) else {
        return Verdict::Cover;
    };
    let Some(token) = ws::token_from_headers(&head.headers) else {
        return Verdict::Cover;
    };
    let claims = match jwt::verify(token, secret, room, now_unix) {
        Ok(c) => c,
        Err(e) if e.is_authenticated() => return Verdict::Refused(e),
        Err(_) => return Verdict::Cover,
    };
    match ws::check_upgrade(&head.method, head.version, &head.headers) {
        Ok(upgrade) => Verdict::Accept {
            upgrade,
            room: claims.room,
            peer: claims.sub,
        },
        Err(e) => Verdict::BadHandshake(e),
    }
}

/// How hyper must answer the first request of a connection the route looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstAnswer {
    /// The cover site's answer for this path, whatever the probe policy says.
    Cover,
    /// An error page with this status.
    Status(StatusCode),
}

impl Verdict {
    /// What hyper answers for a verdict that is not an upgrade.
    pub fn first_answer(&self) -> FirstAnswer {
        match self {
            Verdict::Cover | Verdict::Accept { .. } => FirstAnswer::Cover,
            Verdict::Refused(_) => FirstAnswer::Status(StatusCode::UNAUTHORIZED),
            Verdict::BadHandshake(e) => FirstAnswer::Status(e.status()),
        }
    }
}

/// The 101 as bytes: written by the front itself (see the module docs for why).
pub fn switching_protocols_bytes(up: &Upgrade, server: Option<&HeaderValue>) -> Vec<u8> {
    let resp = ws::switching_protocols(up);
    let mut out = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
    let mut line = |name: &[u8], value: &[u8]| {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    if let Some(s) = server {
        line(b"Server", s.as_bytes());
    }
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    line(b"Date", date.as_bytes());
    for (name, value) in resp.headers() {
        line(canonical(name).as_bytes(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Header names as nginx writes them (http keeps them lower-case).
fn canonical(name: &HeaderName) -> &'static str {
    match name.as_str() {
        "upgrade" => "Upgrade",
        "connection" => "Connection",
        "sec-websocket-accept" => "Sec-WebSocket-Accept",
        "sec-websocket-protocol" => "Sec-WebSocket-Protocol",
        _ => "X-Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sfu::jwt::{mint, Claims};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_800_000_000;

    fn token(room: &str, exp: u64, secret: &[u8]) -> String {
        mint(
            &Claims {
                room: room.into(),
                sub: "alice".into(),
                exp,
                nbf: None,
                iat: None,
            },
            secret,
        )
    }

    fn request(path: &str, extra: &str) -> Vec<u8> {
        format!(
            "GET {path} HTTP/1.1\r\nHost: edge.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
        )
        .into_bytes()
    }

    fn verdict(bytes: &[u8]) -> Verdict {
        let Head::Complete(n) = scan(bytes, 32 * 1024) else {
            panic!("incomplete")
        };
        decide(&parse_head(&bytes[..n]).unwrap(), SECRET, NOW)
    }

    #[test]
    fn room_ids() {
        assert_eq!(room_of("/sfu/ws/abc_D-9"), Some("abc_D-9"));
        assert_eq!(
            room_of(&format!("/sfu/ws/{}", "a".repeat(64))).map(str::len),
            Some(64)
        );
        for bad in [
            "/sfu/ws/",
            "/sfu/ws/a/b",
            "/sfu/ws/a.b",
            "/sfu/ws/a%20b",
            "/sfu/ws/a b",
            "/sfu/wsx",
            "/sfu/ws",
        ] {
            assert_eq!(room_of(bad), None, "{bad}");
        }
        assert_eq!(room_of(&format!("/sfu/ws/{}", "a".repeat(65))), None);
    }

    #[test]
    fn scanning_decides_early_for_other_requests() {
        assert_eq!(scan(b"", 100), Head::NeedMore);
        assert_eq!(scan(b"GET /sf", 100), Head::NeedMore);
        assert_eq!(scan(b"GET / HTTP/1.1\r\n", 100), Head::NotOurs);
        assert_eq!(scan(b"POST /sfu/ws/a", 100), Head::NotOurs);
        assert_eq!(scan(b"G", 100), Head::NeedMore);
        assert_eq!(scan(b"X", 100), Head::NotOurs);
        assert_eq!(
            scan(b"GET /sfu/ws/a HTTP/1.1\r\nHost: x\r\n", 100),
            Head::NeedMore
        );
        assert_eq!(
            scan(b"GET /sfu/ws/a HTTP/1.1\r\nHost: x\r\n", 20),
            Head::TooLarge
        );
        assert_eq!(
            scan(b"GET /sfu/ws/a HTTP/1.1\r\n\x00\r\n\r\n", 100),
            Head::NotOurs
        );
        let r = request("/sfu/ws/a", "");
        let mut with_body = r.clone();
        with_body.extend_from_slice(b"\x81\x85");
        assert_eq!(scan(&with_body, 1000), Head::Complete(r.len()));
    }

    #[test]
    fn verdicts() {
        let good = token("room1", NOW + 60, SECRET);
        assert!(matches!(
            verdict(&request("/sfu/ws/room1", &format!("Authorization: Bearer {good}\r\n"))),
            Verdict::Accept { ref room, ref peer, ref upgrade }
                if room == "room1" && peer == "alice" && upgrade.protocol.is_none()
        ));
        let v = verdict(&request(
            "/sfu/ws/room1",
            &format!("Sec-WebSocket-Protocol: oxpulse-sfu.v1, bearer.{good}\r\n"),
        ));
        assert!(
            matches!(v, Verdict::Accept { ref upgrade, .. } if upgrade.protocol == Some(ws::SUBPROTOCOL))
        );
        assert_eq!(verdict(&request("/sfu/ws/room1", "")), Verdict::Cover);
        let forged = token("room1", NOW + 60, b"not our secret at all, 32 bytes!");
        assert_eq!(
            verdict(&request(
                "/sfu/ws/room1",
                &format!("Authorization: Bearer {forged}\r\n")
            )),
            Verdict::Cover
        );
        let old = token("room1", NOW - 3600, SECRET);
        let v = verdict(&request(
            "/sfu/ws/room1",
            &format!("Authorization: Bearer {old}\r\n"),
        ));
        assert_eq!(v, Verdict::Refused(jwt::JwtError::Expired));
        assert_eq!(
            v.first_answer(),
            FirstAnswer::Status(StatusCode::UNAUTHORIZED)
        );
        let v = verdict(&request(
            "/sfu/ws/room2",
            &format!("Authorization: Bearer {good}\r\n"),
        ));
        assert_eq!(v, Verdict::Refused(jwt::JwtError::WrongRoom));
        // A bad room id is just an unknown path, token or not.
        assert_eq!(
            verdict(&request(
                "/sfu/ws/room.1",
                &format!("Authorization: Bearer {good}\r\n")
            )),
            Verdict::Cover
        );
        // A token holder with a broken handshake learns what is wrong.
        let bytes = format!(
            "GET /sfu/ws/room1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {good}\r\n\r\n"
        );
        let v = verdict(bytes.as_bytes());
        assert_eq!(v, Verdict::BadHandshake(UpgradeError::UpgradeHeader));
        assert_eq!(
            v.first_answer(),
            FirstAnswer::Status(StatusCode::BAD_REQUEST)
        );
        assert_eq!(Verdict::Cover.first_answer(), FirstAnswer::Cover);
    }

    #[test]
    fn the_101_carries_accept_and_protocol_but_never_the_token() {
        let up = Upgrade {
            accept: ws::accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            protocol: Some(ws::SUBPROTOCOL),
        };
        let bytes = switching_protocols_bytes(&up, Some(&HeaderValue::from_static("nginx")));
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\nServer: nginx\r\nDate: "));
        assert!(text.contains("\r\nUpgrade: websocket\r\n"));
        assert!(text.contains("\r\nConnection: Upgrade\r\n"));
        assert!(text.contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(text.contains("\r\nSec-WebSocket-Protocol: oxpulse-sfu.v1\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
        assert!(!text.contains("bearer"));
    }
}
