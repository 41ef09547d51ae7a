//! What to do with a new connection, decided from its first bytes (sans-IO).
//!
//! The front reads the ClientHello before any TLS state exists, so one port can
//! host several services told apart by SNI. Today there are two routes; the
//! enum is where TURNS-by-SNI and REALITY will be added.

use std::collections::HashSet;

use super::client_hello::{self, HelloError, Parsed};
use crate::telemetry::metrics::Metric;

/// Where a TLS connection goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// A partner domain: TLS with its certificate, then the probe policy decides app or cover.
    Partner,
    /// No or unknown SNI: the default certificate and the cover site only.
    Default,
}

/// The outcome of looking at the bytes read so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Sniff {
    /// Read more; at least this many bytes in total are needed.
    NeedMore(usize),
    /// Looks like a plain HTTP request on the TLS port: answer as nginx does, then close.
    PlainHttp,
    /// Not something we serve: close without a word. The metric says why.
    Reject(Metric),
    /// A complete ClientHello; hand the bytes read so far to TLS on this route.
    Tls { route: Route, sni: Option<String> },
}

/// Partner names, exact or `*.parent` wildcards.
#[derive(Clone, Debug, Default)]
pub struct Router {
    exact: HashSet<String>,
    wildcard_parents: HashSet<String>,
}

impl Router {
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(domains: I) -> Self {
        let mut r = Router::default();
        for d in domains {
            let d = d.as_ref().to_ascii_lowercase();
            match d.strip_prefix("*.") {
                Some(parent) => r.wildcard_parents.insert(parent.to_string()),
                None => r.exact.insert(d),
            };
        }
        r
    }

    pub fn route_for(&self, sni: Option<&str>) -> Route {
        let Some(name) = sni else {
            return Route::Default;
        };
        if self.exact.contains(name) {
            return Route::Partner;
        }
        match name.split_once('.') {
            Some((_, parent)) if self.wildcard_parents.contains(parent) => Route::Partner,
            _ => Route::Default,
        }
    }

    /// Classifies the first bytes of a connection.
    pub fn sniff(&self, buf: &[u8]) -> Sniff {
        match client_hello::parse(buf) {
            Ok(Parsed::Complete { hello, .. }) => {
                let route = self.route_for(hello.sni.as_deref());
                Sniff::Tls {
                    route,
                    sni: hello.sni,
                }
            }
            Ok(Parsed::Incomplete { need_at_least }) => Sniff::NeedMore(need_at_least),
            Err(HelloError::NotTls) if looks_like_http(buf) => Sniff::PlainHttp,
            Err(HelloError::NotTls) if buf.len() < 8 && could_become_http(buf) => {
                Sniff::NeedMore(8)
            }
            Err(HelloError::NotTls) => Sniff::Reject(Metric::HelloNotTls),
            Err(HelloError::SslV2) => Sniff::Reject(Metric::HelloSslv2),
            Err(HelloError::Malformed(_)) | Err(HelloError::TooLarge) => {
                Sniff::Reject(Metric::HelloMalformed)
            }
        }
    }
}

/// An HTTP/1.x request line starts with an upper-case method token and a space.
fn looks_like_http(buf: &[u8]) -> bool {
    let head = &buf[..buf.len().min(16)];
    match head.iter().position(|&b| b == b' ') {
        Some(n) => n >= 3 && head[..n].iter().all(u8::is_ascii_uppercase),
        None => false,
    }
}

fn could_become_http(buf: &[u8]) -> bool {
    buf.iter().all(u8::is_ascii_uppercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_sni() {
        let r = Router::new(["edge.example", "*.calls.example"]);
        assert_eq!(r.route_for(Some("edge.example")), Route::Partner);
        assert_eq!(r.route_for(Some("a.calls.example")), Route::Partner);
        assert_eq!(r.route_for(Some("calls.example")), Route::Default);
        assert_eq!(r.route_for(Some("other.example")), Route::Default);
        assert_eq!(r.route_for(None), Route::Default);
    }

    #[test]
    fn plain_http_and_garbage() {
        let r = Router::new(["edge.example"]);
        assert_eq!(
            r.sniff(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Sniff::PlainHttp
        );
        assert_eq!(r.sniff(b"OPTIONS * HTTP/1.1\r\n"), Sniff::PlainHttp);
        assert_eq!(r.sniff(b"GE"), Sniff::NeedMore(8));
        assert_eq!(
            r.sniff(b"\x00\x01garbage"),
            Sniff::Reject(Metric::HelloNotTls)
        );
        assert_eq!(
            r.sniff(b"get / http/1.1"),
            Sniff::Reject(Metric::HelloNotTls)
        );
    }

    #[test]
    fn partial_hello_needs_more() {
        let r = Router::new(["edge.example"]);
        assert!(matches!(r.sniff(&[0x16, 0x03, 0x01]), Sniff::NeedMore(n) if n > 3));
    }
}
