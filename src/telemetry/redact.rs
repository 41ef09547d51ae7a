//! Log redaction helpers. Logs must never carry secrets, tokens, cookies, query strings,
//! room ids or full client IPs (docs/ARCHITECTURE.md §6): a coerced or seized server's
//! logs must not tell who talked to whom. Build log fields with these, not raw values.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Placeholder for every value we refuse to log.
pub const REDACTED: &str = "<redacted>";

/// Longest path we log, in characters: enough to tell routes apart, too short to
/// smuggle a payload into the logs.
pub const MAX_LOGGED_PATH_CHARS: usize = 128;

/// Path segments whose *next* segment is a capability or identity: an invite token, a
/// room id. The brief names `/invite/`; `/sfu/ws/` carries the room id, which §6 also
/// forbids in clear.
const SECRET_SEGMENT_PREFIXES: &[&str] = &["/invite/", "/sfu/ws/"];

/// Headers whose value is a credential, a cookie, or a client address.
const REDACTED_HEADERS: &[&str] = &[
    "cookie",
    "set-cookie",
    "authorization",
    "proxy-authorization",
    // Browsers cannot set headers on a WebSocket, so apps put tokens in the subprotocol.
    "sec-websocket-protocol",
    // These carry full client IPs put there by proxies.
    "forwarded",
    "x-forwarded-for",
    "x-real-ip",
];

/// A client address masked to its network: IPv4 to /16, IPv6 to /32, an IPv4-mapped
/// IPv6 address as IPv4. Enough to see a network misbehave, not to find a person.
/// Debug prints the masked form too, so `?masked` cannot leak the address.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MaskedIp(pub IpAddr);

impl fmt::Display for MaskedIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = match self.0 {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(v4) => {
                let [a, b, _, _] = v4.octets();
                write!(f, "{}/16", Ipv4Addr::new(a, b, 0, 0))
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                write!(f, "{}/32", Ipv6Addr::new(s[0], s[1], 0, 0, 0, 0, 0, 0))
            }
        }
    }
}

impl fmt::Debug for MaskedIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The masked client network of a peer address; the port is dropped (it identifies a
/// connection).
pub fn mask_socket_addr(a: &SocketAddr) -> MaskedIp {
    MaskedIp(a.ip())
}

/// A request target fit for a log line: no query string or fragment (they carry tokens
/// and search terms), the segment after `/invite/` and `/sfu/ws/` replaced by
/// `<redacted>`, control characters escaped (no forged log lines), and at most
/// [`MAX_LOGGED_PATH_CHARS`] characters.
pub fn path_for_log(path_and_query: &str) -> String {
    let end = path_and_query
        .find(['?', '#'])
        .unwrap_or(path_and_query.len());
    let path = &path_and_query[..end];
    let mut out = String::with_capacity(path.len().min(MAX_LOGGED_PATH_CHARS + 8));
    let mut rest = path;
    while let Some((at, prefix)) = next_secret_segment(rest) {
        push_escaped(&mut out, &rest[..at + prefix.len()]);
        let after = &rest[at + prefix.len()..];
        let token_end = after.find('/').unwrap_or(after.len());
        if token_end > 0 {
            out.push_str(REDACTED);
        }
        rest = &after[token_end..];
    }
    push_escaped(&mut out, rest);
    cap_chars(out, MAX_LOGGED_PATH_CHARS)
}

/// Earliest case-insensitive match of any secret-segment prefix in `s`.
fn next_secret_segment(s: &str) -> Option<(usize, &'static str)> {
    let lower = s.to_ascii_lowercase();
    SECRET_SEGMENT_PREFIXES
        .iter()
        .filter_map(|p| lower.find(p).map(|at| (at, *p)))
        .min_by_key(|(at, _)| *at)
}

/// A header value fit for a log line: credentials, cookies and proxy-supplied client
/// addresses become `<redacted>`; anything else is logged with control characters escaped.
pub fn header_for_log(name: &str, value: &str) -> String {
    if REDACTED_HEADERS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
    {
        return REDACTED.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    push_escaped(&mut out, value);
    out
}

/// Appends `s` with control characters percent-encoded, so a crafted value cannot end
/// a log line and start a fake one.
fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        if c.is_control() {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
}

/// Truncates to `max` characters, the last one an ellipsis when anything was cut.
fn cap_chars(s: String, max: usize) -> String {
    if s.chars().count() <= max {
        return s;
    }
    let mut capped: String = s.chars().take(max.saturating_sub(1)).collect();
    capped.push('…');
    capped
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    fn masked(s: &str) -> String {
        MaskedIp(s.parse().expect("test IP")).to_string()
    }

    #[test]
    fn ipv4_is_masked_to_16() {
        assert_eq!(masked("203.0.113.77"), "203.0.0.0/16");
        assert_eq!(masked("10.1.2.3"), "10.1.0.0/16");
    }

    #[test]
    fn ipv6_is_masked_to_32() {
        assert_eq!(masked("2001:db8:abcd:12::1"), "2001:db8::/32");
        assert_eq!(masked("::1"), "::/32");
    }

    #[test]
    fn ipv4_mapped_ipv6_is_masked_as_ipv4() {
        assert_eq!(masked("::ffff:198.51.100.9"), "198.51.0.0/16");
    }

    #[test]
    fn debug_is_masked_too_and_ports_are_dropped() {
        let addr: SocketAddr = "[2001:db8:1:2::3]:51234".parse().expect("addr");
        let m = mask_socket_addr(&addr);
        assert_eq!(format!("{m:?}"), "2001:db8::/32");
        let v4: SocketAddr = "192.0.2.200:443".parse().expect("addr");
        assert_eq!(mask_socket_addr(&v4).to_string(), "192.0.0.0/16");
    }

    #[test]
    fn paths_lose_queries_fragments_and_tokens() {
        assert_eq!(path_for_log("/api/rooms?token=abc"), "/api/rooms");
        assert_eq!(path_for_log("/app#frag"), "/app");
        assert_eq!(path_for_log("/invite/AbC123"), "/invite/<redacted>");
        assert_eq!(
            path_for_log("/invite/AbC123/accept?x=1"),
            "/invite/<redacted>/accept"
        );
        assert_eq!(path_for_log("/INVITE/AbC123"), "/INVITE/<redacted>");
        assert_eq!(path_for_log("/sfu/ws/room-42"), "/sfu/ws/<redacted>");
        assert_eq!(path_for_log("/invite/"), "/invite/");
        assert_eq!(
            path_for_log("/a/invite/t1/b/invite/t2"),
            "/a/invite/<redacted>/b/invite/<redacted>"
        );
        assert_eq!(path_for_log("/"), "/");
    }

    #[test]
    fn paths_are_capped_and_escaped() {
        let long = format!("/{}", "é".repeat(300));
        let logged = path_for_log(&long);
        assert_eq!(logged.chars().count(), MAX_LOGGED_PATH_CHARS);
        assert!(logged.ends_with('…'));
        assert_eq!(path_for_log("/a\nFAKE LINE"), "/a%0AFAKE LINE");
    }

    #[test]
    fn sensitive_headers_are_redacted() {
        for name in [
            "Cookie",
            "set-cookie",
            "AUTHORIZATION",
            "Proxy-Authorization",
            "Sec-WebSocket-Protocol",
            "X-Forwarded-For",
        ] {
            assert_eq!(header_for_log(name, "secret-value"), REDACTED, "{name}");
        }
        assert_eq!(header_for_log("User-Agent", "curl/8.5"), "curl/8.5");
        assert_eq!(header_for_log("Accept", "a\r\nb"), "a%0D%0Ab");
    }

    /// A `MakeWriter` target that keeps everything written in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::Error::other("log buffer poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_log_line_built_with_the_helpers_leaks_nothing() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let peer: SocketAddr = "203.0.113.77:50123".parse().expect("addr");
        let target = "/invite/Zm9vYmFyYmF6?utm_source=secret-campaign";
        let cookie = "oxpulse_session=s3cr3t-cookie-value";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                client = %mask_socket_addr(&peer),
                path = %path_for_log(target),
                cookie = %header_for_log("Cookie", cookie),
                "request"
            );
        });
        let bytes = captured.0.lock().expect("buffer").clone();
        let line = String::from_utf8(bytes).expect("utf-8 log");
        assert!(line.contains("client=203.0.0.0/16"), "{line}");
        assert!(line.contains("path=/invite/<redacted>"), "{line}");
        assert!(line.contains("cookie=<redacted>"), "{line}");
        for leak in [
            "203.0.113.77",
            "50123",
            "utm_source",
            "?",
            "Zm9vYmFyYmF6",
            "s3cr3t",
        ] {
            assert!(!line.contains(leak), "log line leaks {leak:?}: {line}");
        }
    }
}
