//! What an XHTTP request asks for (sans-IO): method, path, query and two
//! headers in, a route or a plain HTTP refusal out. Pure and total, so it
//! can be fuzzed on arbitrary strings.
//!
//! Routes (TUNNEL.md §3), with `{path}` normalised to start and end in `/`:
//! - `POST {path}` exactly: stream-one (uplink and downlink in one request);
//! - `GET {path}{sid}`: the downlink of session `sid`;
//! - `POST {path}{sid}`: stream-up, the whole uplink as one streaming body;
//! - `POST {path}{sid}/{seq}`: packet-up, one numbered piece of the uplink.
//!
//! Refusals look like an ordinary web server's: 404 for a path (or Host)
//! that is not ours, 400 for a malformed one or bad padding, 405 for another
//! method. They never say a tunnel lives here.
//!
//! **Padding.** Xray clients pad every request with `x_padding` so request
//! sizes vary. Xray 24.11.21 puts it in the URL query as 100–1000 `0`s (the
//! client rolls its default `xPaddingBytes` 100–1000 and always sends a
//! non-empty value), later clients put it in a `Referer` header's query
//! instead. Xray servers from 24.11.30 on answer 400 when it is missing or
//! out of range, reading the `Referer`'s query if a Referer is present and
//! the URL's otherwise (≥ 25.1.30). We do the same, so a request without
//! padding gets what a current Xray server gives it. A 24.11.21 client never
//! omits it; deployments whose clients set `xPaddingBytes` to 0 turn the
//! check off (`x_padding: None`).

use std::ops::RangeInclusive;

/// Xray's `xPaddingBytes` default.
pub const DEFAULT_X_PADDING: RangeInclusive<usize> = 100..=1000;

/// Longest session id accepted (24.11.21 sends a 36-character UUID).
pub const MAX_SID_LEN: usize = 128;

/// Which uplink shapes the server accepts (Xray's server-side `mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XhttpMode {
    /// Everything: stream-one, stream-up, packet-up.
    #[default]
    Auto,
    /// Only `POST {path}`.
    StreamOne,
    /// GET + streaming POST, and stream-one (as Xray allows).
    StreamUp,
    /// GET + numbered POSTs.
    PacketUp,
}

impl XhttpMode {
    fn allows_stream_one(self) -> bool {
        matches!(
            self,
            XhttpMode::Auto | XhttpMode::StreamOne | XhttpMode::StreamUp
        )
    }

    fn allows_stream_up(self) -> bool {
        matches!(self, XhttpMode::Auto | XhttpMode::StreamUp)
    }

    fn allows_packet_up(self) -> bool {
        matches!(self, XhttpMode::Auto | XhttpMode::PacketUp)
    }

    fn allows_sessions(self) -> bool {
        self != XhttpMode::StreamOne
    }
}

/// The parts of [`super::XhttpServerOptions`] that decide routing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteRules {
    /// Normalised: starts and ends with `/`, no query.
    pub path: String,
    /// The only `Host`/`:authority` accepted (port ignored); `None` = any.
    pub host: Option<String>,
    /// Allowed length of `x_padding`; `None` = not checked.
    pub x_padding: Option<RangeInclusive<usize>>,
    pub mode: XhttpMode,
}

/// Normalises a configured path as Xray does: the part before any `?`,
/// starting and ending with `/`.
pub fn normalize_path(path: &str) -> String {
    let path = path.split('?').next().unwrap_or("");
    let mut out = String::with_capacity(path.len() + 2);
    if !path.starts_with('/') {
        out.push('/');
    }
    out.push_str(path);
    if !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// A routed XHTTP request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XhttpRequest {
    /// `POST {path}`: uplink body and downlink response in one request.
    StreamOne,
    /// `GET {path}{sid}`.
    Download { sid: String },
    /// `POST {path}{sid}`.
    StreamUpload { sid: String },
    /// `POST {path}{sid}/{seq}`.
    PacketUpload { sid: String, seq: u64 },
}

impl XhttpRequest {
    /// The session this request belongs to (none for stream-one).
    pub fn session(&self) -> Option<Session<'_>> {
        match self {
            XhttpRequest::StreamOne => None,
            XhttpRequest::Download { sid } | XhttpRequest::StreamUpload { sid } => {
                Some(Session { sid, seq: None })
            }
            XhttpRequest::PacketUpload { sid, seq } => Some(Session {
                sid,
                seq: Some(*seq),
            }),
        }
    }
}

/// A session-bound request's id and (packet-up) sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session<'a> {
    pub sid: &'a str,
    pub seq: Option<u64>,
}

/// Why a request gets a plain HTTP error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Not under the configured path, or another Host: 404.
    NotOurs,
    /// `x_padding` missing or out of range: 400.
    Padding,
    /// A malformed session id or seq, extra segments, or a shape the mode
    /// forbids: 400.
    Malformed,
    /// Neither GET nor POST (or GET on stream-one's path): 405.
    Method,
}

impl Reject {
    pub fn status(self) -> u16 {
        match self {
            Reject::NotOurs => 404,
            Reject::Padding | Reject::Malformed => 400,
            Reject::Method => 405,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Reject::NotOurs => "not_ours",
            Reject::Padding => "padding",
            Reject::Malformed => "malformed",
            Reject::Method => "method",
        }
    }
}

/// Routes one request. `path` is the URL path (no query), `query` the raw
/// URL query, `host` the Host header or `:authority`, `referer` the Referer
/// header; all as received.
pub fn parse_request(
    rules: &RouteRules,
    method: &str,
    path: &str,
    query: Option<&str>,
    host: Option<&str>,
    referer: Option<&str>,
) -> Result<XhttpRequest, Reject> {
    if let Some(want) = &rules.host {
        let got = host.map(strip_port).unwrap_or("");
        if !got.eq_ignore_ascii_case(strip_port(want)) {
            return Err(Reject::NotOurs);
        }
    }
    let rest = path
        .strip_prefix(rules.path.as_str())
        .ok_or(Reject::NotOurs)?;
    if let Some(range) = &rules.x_padding {
        let len = padding_len(query, referer).unwrap_or(0);
        if !range.contains(&len) {
            return Err(Reject::Padding);
        }
    }
    let is_post = match method {
        "POST" => true,
        "GET" => false,
        _ => return Err(Reject::Method),
    };
    if rest.is_empty() {
        return match (is_post, rules.mode.allows_stream_one()) {
            (true, true) => Ok(XhttpRequest::StreamOne),
            (true, false) => Err(Reject::Malformed),
            (false, _) => Err(Reject::Method),
        };
    }
    if !rules.mode.allows_sessions() {
        return Err(Reject::Malformed);
    }
    // Xray splits on '/': `sid`, `sid/` and `sid/seq`; more is not a route.
    let mut parts = rest.splitn(3, '/');
    let sid = parts.next().unwrap_or("");
    let seq = parts.next().filter(|s| !s.is_empty());
    if parts.next().is_some() || !valid_sid(sid) {
        return Err(Reject::Malformed);
    }
    let sid = sid.to_owned();
    match (is_post, seq) {
        (false, None) => Ok(XhttpRequest::Download { sid }),
        (false, Some(_)) => Err(Reject::Malformed),
        (true, None) if rules.mode.allows_stream_up() => Ok(XhttpRequest::StreamUpload { sid }),
        (true, Some(seq)) if rules.mode.allows_packet_up() => Ok(XhttpRequest::PacketUpload {
            sid,
            seq: parse_seq(seq).ok_or(Reject::Malformed)?,
        }),
        (true, _) => Err(Reject::Malformed),
    }
}

/// Session ids are what Xray generates (UUIDs; newer ones draw from a
/// configurable alphabet): short runs of URL-safe characters.
fn valid_sid(sid: &str) -> bool {
    !sid.is_empty()
        && sid.len() <= MAX_SID_LEN
        && sid
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// Plain decimal (no sign, no spaces) within u64.
fn parse_seq(seq: &str) -> Option<u64> {
    if seq.is_empty() || seq.len() > 20 || !seq.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    seq.parse().ok()
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|c| c.is_ascii_digit()) && !name.contains(':') => {
            name
        }
        _ => host,
    }
}

/// The decoded length of `x_padding`: from the Referer's query if there is a
/// Referer (Xray ≥ 25.1.30), else from the URL query. `None` when absent.
fn padding_len(query: Option<&str>, referer: Option<&str>) -> Option<usize> {
    let query = match referer {
        Some(r) => r.split_once('?').map(|(_, q)| q),
        None => query,
    }?;
    let q = query.split('#').next().unwrap_or("");
    q.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == "x_padding").then(|| decoded_len(value))
    })
}

/// Length after percent-decoding (what Go's `Query().Get` would return); a
/// `%` not followed by two hex digits counts as itself.
fn decoded_len(value: &str) -> usize {
    let b = value.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < b.len() {
        let escape = b[i] == b'%'
            && b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        i += if escape { 3 } else { 1 };
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> RouteRules {
        RouteRules {
            path: normalize_path("/xh"),
            host: None,
            x_padding: Some(DEFAULT_X_PADDING),
            mode: XhttpMode::Auto,
        }
    }

    fn pad(n: usize) -> String {
        format!("x_padding={}", "0".repeat(n))
    }

    fn route(method: &str, path: &str, query: &str) -> Result<XhttpRequest, Reject> {
        parse_request(&rules(), method, path, Some(query), None, None)
    }

    const SID: &str = "2f1c7a51-8a3c-4c1e-9c4b-0f8d2b8f6e11";

    #[test]
    fn paths_are_normalised_like_xray() {
        assert_eq!(normalize_path("/xh"), "/xh/");
        assert_eq!(normalize_path("xh/"), "/xh/");
        assert_eq!(normalize_path(""), "/");
        assert_eq!(normalize_path("/a/b?ed=2048"), "/a/b/");
    }

    #[test]
    fn the_three_shapes_of_xray_requests() {
        let q = pad(100);
        assert_eq!(
            route("GET", &format!("/xh/{SID}"), &q),
            Ok(XhttpRequest::Download { sid: SID.into() })
        );
        assert_eq!(
            route("POST", &format!("/xh/{SID}"), &q),
            Ok(XhttpRequest::StreamUpload { sid: SID.into() })
        );
        assert_eq!(
            route("POST", &format!("/xh/{SID}/"), &q),
            Ok(XhttpRequest::StreamUpload { sid: SID.into() })
        );
        let packet = route("POST", &format!("/xh/{SID}/17"), &q).unwrap();
        assert_eq!(
            packet,
            XhttpRequest::PacketUpload {
                sid: SID.into(),
                seq: 17
            }
        );
        assert_eq!(
            packet.session(),
            Some(Session {
                sid: SID,
                seq: Some(17)
            })
        );
    }

    #[test]
    fn stream_one_is_a_post_to_the_path_itself() {
        let q = pad(500);
        assert_eq!(route("POST", "/xh/", &q), Ok(XhttpRequest::StreamOne));
        assert_eq!(XhttpRequest::StreamOne.session(), None);
        assert_eq!(route("GET", "/xh/", &q), Err(Reject::Method));
        // Without the trailing slash it is not under the path at all.
        assert_eq!(route("POST", "/xh", &q), Err(Reject::NotOurs));
        let only_up = RouteRules {
            mode: XhttpMode::PacketUp,
            ..rules()
        };
        assert_eq!(
            parse_request(&only_up, "POST", "/xh/", Some(&q), None, None),
            Err(Reject::Malformed)
        );
    }

    #[test]
    fn foreign_paths_and_methods_look_like_a_web_server() {
        let q = pad(200);
        assert_eq!(route("GET", "/", &q), Err(Reject::NotOurs));
        assert_eq!(route("GET", "/index.html", &q), Err(Reject::NotOurs));
        assert_eq!(route("GET", "/xhx/abc", &q), Err(Reject::NotOurs));
        assert_eq!(route("PUT", &format!("/xh/{SID}"), &q), Err(Reject::Method));
        assert_eq!(Reject::NotOurs.status(), 404);
        assert_eq!(Reject::Method.status(), 405);
    }

    #[test]
    fn padding_is_required_in_range() {
        let path = format!("/xh/{SID}");
        for (n, ok) in [
            (0, false),
            (99, false),
            (100, true),
            (1000, true),
            (1001, false),
        ] {
            assert_eq!(route("GET", &path, &pad(n)).is_ok(), ok, "{n} bytes");
        }
        assert_eq!(route("GET", &path, ""), Err(Reject::Padding));
        assert_eq!(
            parse_request(&rules(), "GET", &path, None, None, None),
            Err(Reject::Padding)
        );
        // Other keys around it (a path like "/xh?ed=2048") are fine.
        let q = format!("ed=2048&{}&z", pad(300));
        assert!(route("GET", &path, &q).is_ok());
        // Percent-escapes count as one character, as after decoding.
        let q = format!("x_padding={}", "%30".repeat(100));
        assert!(route("GET", &path, &q).is_ok());
        // Deployments may turn the check off.
        let off = RouteRules {
            x_padding: None,
            ..rules()
        };
        assert!(parse_request(&off, "GET", &path, None, None, None).is_ok());
    }

    #[test]
    fn a_referer_carries_the_padding_when_present() {
        let path = format!("/xh/{SID}");
        let referer = format!("https://example.com/xh/{SID}?{}", pad(120));
        assert!(parse_request(&rules(), "GET", &path, None, None, Some(&referer)).is_ok());
        // With a Referer, the URL query is not consulted (as in Xray).
        let bare = "https://example.com/";
        assert_eq!(
            parse_request(&rules(), "GET", &path, Some(&pad(120)), None, Some(bare)),
            Err(Reject::Padding)
        );
    }

    #[test]
    fn malformed_sessions_and_seqs_are_bad_requests() {
        let q = pad(100);
        for path in [
            "/xh/a b",
            "/xh/../etc",
            "/xh/sid/1/2",
            "/xh/sid/-1",
            "/xh/sid/+1",
            "/xh/sid/0x10",
            "/xh/sid/99999999999999999999999",
            "/xh//1",
        ] {
            assert_eq!(route("POST", path, &q), Err(Reject::Malformed), "{path}");
        }
        let long = "a".repeat(MAX_SID_LEN + 1);
        assert_eq!(
            route("GET", &format!("/xh/{long}"), &q),
            Err(Reject::Malformed)
        );
        assert_eq!(
            route("GET", &format!("/xh/{SID}/3"), &q),
            Err(Reject::Malformed)
        );
        assert_eq!(
            route("POST", "/xh/s/18446744073709551615", &q),
            Ok(XhttpRequest::PacketUpload {
                sid: "s".into(),
                seq: u64::MAX
            })
        );
    }

    #[test]
    fn the_mode_restricts_upload_shapes() {
        let q = pad(100);
        let path_stream = format!("/xh/{SID}");
        let path_packet = format!("/xh/{SID}/0");
        let with = |mode| RouteRules { mode, ..rules() };
        let r = |mode, m, p: &str| parse_request(&with(mode), m, p, Some(&q), None, None);
        assert!(r(XhttpMode::StreamUp, "POST", &path_stream).is_ok());
        assert_eq!(
            r(XhttpMode::StreamUp, "POST", &path_packet),
            Err(Reject::Malformed)
        );
        assert!(r(XhttpMode::PacketUp, "POST", &path_packet).is_ok());
        assert_eq!(
            r(XhttpMode::PacketUp, "POST", &path_stream),
            Err(Reject::Malformed)
        );
        assert_eq!(
            r(XhttpMode::StreamOne, "GET", &path_stream),
            Err(Reject::Malformed)
        );
        assert!(r(XhttpMode::StreamOne, "POST", "/xh/").is_ok());
    }

    #[test]
    fn a_configured_host_must_match() {
        let with_host = RouteRules {
            host: Some("example.com".into()),
            ..rules()
        };
        let q = pad(100);
        let path = format!("/xh/{SID}");
        let r = |host| parse_request(&with_host, "GET", &path, Some(&q), host, None);
        assert!(r(Some("example.com")).is_ok());
        assert!(r(Some("EXAMPLE.com:443")).is_ok());
        assert_eq!(r(Some("other.example")), Err(Reject::NotOurs));
        assert_eq!(r(None), Err(Reject::NotOurs));
        assert_eq!(strip_port("[::1]:8443"), "::1");
        assert_eq!(strip_port("::1"), "::1");
    }

    #[test]
    fn arbitrary_input_never_panics() {
        // A cheap stand-in for the fuzz target: every short string over a
        // nasty alphabet in every position.
        let alphabet = [
            "",
            "/",
            "xh",
            "%",
            "%3",
            "?",
            "&",
            "=",
            "x_padding",
            "0",
            "[",
            "]",
            ":",
            "é",
        ];
        let r = rules();
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    let s = format!("/xh/{a}{b}{c}");
                    let _ = parse_request(&r, "POST", &s, Some(&s), Some(&s), Some(&s));
                    let _ = parse_request(&r, a, b, Some(c), Some(a), None);
                }
            }
        }
    }
}
