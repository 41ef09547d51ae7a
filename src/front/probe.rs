//! Who gets the app and who gets the cover site.
//!
//! A censor's prober fetches our pages to decide whether we are "just a
//! website". Under the default [`Policy::Strict`] only a browser holding a
//! session cookie that we signed ever reaches the app; the cookie is handed
//! out by an invite link (`/invite/<token>`) shared out of band. Everyone
//! else, probes included, sees the cover site. `docs/PROBE_DEFENCE.md`
//! explains the reasoning.
//!
//! Pure functions of the request head and the clock: no I/O, no state.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::{COOKIE, ORIGIN};
use http::request::Parts;
use http::Method;
use ring::hmac;
use serde::{Deserialize, Serialize};

/// Path prefix of invite links.
pub const INVITE_PREFIX: &str = "/invite/";

/// Seconds since the Unix epoch, the clock cookies and invites are checked against.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh nonce for a cookie or invite.
pub fn random_nonce() -> [u8; 16] {
    use ring::rand::SecureRandom;
    let mut n = [0u8; 16];
    // SystemRandom only fails when the kernel has no entropy source at all;
    // a zero nonce then still yields a valid, merely less unique, token.
    let _ = ring::rand::SystemRandom::new().fill(&mut n);
    n
}
/// Version tag leading every cookie and invite.
const VERSION: &str = "v1";
/// MAC domain labels: a session cookie can never pass as an invite, nor the
/// reverse, even though both are signed with the same key.
const SESSION_LABEL: &[u8] = b"oxpulse-edge/probe/v1/session";
const INVITE_LABEL: &[u8] = b"oxpulse-edge/probe/v1/invite";
/// Longest token we even look at; real ones are about 90 bytes.
const MAX_TOKEN_LEN: usize = 128;

/// How requests are sorted into app and cover.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// App only with a valid signed session cookie (from an invite link).
    #[default]
    Strict,
    /// The historical rule: only a bare `GET /` is cover; all else is app.
    Heuristic,
}

/// HMAC-SHA256 key for session cookies and invite tokens.
pub struct SessionKeys {
    key: hmac::Key,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys { .. }")
    }
}

impl SessionKeys {
    /// `secret` should be at least 32 random bytes, shared by every node that
    /// must accept the same cookies.
    pub fn new(secret: &[u8]) -> Self {
        SessionKeys {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// A session cookie value valid for `ttl_secs` from `now_unix`.
    pub fn mint_cookie(&self, now_unix: u64, ttl_secs: u64, nonce: [u8; 16]) -> String {
        self.mint(SESSION_LABEL, now_unix.saturating_add(ttl_secs), nonce)
    }

    pub fn verify_cookie(&self, value: &str, now_unix: u64) -> bool {
        self.verify(SESSION_LABEL, value, now_unix)
    }

    /// An invite token (the part after [`INVITE_PREFIX`]).
    pub fn mint_invite(&self, now_unix: u64, ttl_secs: u64, nonce: [u8; 16]) -> String {
        self.mint(INVITE_LABEL, now_unix.saturating_add(ttl_secs), nonce)
    }

    pub fn verify_invite(&self, token: &str, now_unix: u64) -> bool {
        self.verify(INVITE_LABEL, token, now_unix)
    }

    /// `v1.<expiry>.<nonce>.<mac>`, base64url without padding.
    fn mint(&self, label: &[u8], expiry: u64, nonce: [u8; 16]) -> String {
        let tag = hmac::sign(&self.key, &signed_input(label, expiry, &nonce));
        format!(
            "{VERSION}.{expiry}.{}.{}",
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    fn verify(&self, label: &[u8], token: &str, now_unix: u64) -> bool {
        if token.len() > MAX_TOKEN_LEN {
            return false;
        }
        let mut parts = token.split('.');
        let (Some(VERSION), Some(expiry), Some(nonce), Some(mac), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return false;
        };
        // Only the canonical decimal form, so each token has one spelling.
        let Some(expiry) = expiry
            .parse::<u64>()
            .ok()
            .filter(|e| e.to_string() == expiry)
        else {
            return false;
        };
        let Ok(nonce) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let Ok(mac) = URL_SAFE_NO_PAD.decode(mac) else {
            return false;
        };
        if nonce.len() != 16 || now_unix >= expiry {
            return false;
        }
        // ring compares in constant time.
        hmac::verify(&self.key, &signed_input(label, expiry, &nonce), &mac).is_ok()
    }
}

/// label ‖ 0x00 ‖ expiry (8 bytes, big-endian) ‖ nonce.
fn signed_input(label: &[u8], expiry: u64, nonce: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(label.len() + 1 + 8 + nonce.len());
    input.extend_from_slice(label);
    input.push(0);
    input.extend_from_slice(&expiry.to_be_bytes());
    input.extend_from_slice(nonce);
    input
}

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    App,
    /// A valid invite: answer by setting this cookie (the full `Set-Cookie`
    /// header value) and sending the browser on to the app.
    Invite {
        set_cookie: String,
    },
    Cover,
}

#[derive(Debug)]
pub struct Classifier {
    pub policy: Policy,
    pub keys: SessionKeys,
    pub cookie_name: String,
    pub cookie_ttl_secs: u64,
    /// Heuristic policy only: an `Origin: https://<domain>` from one of these
    /// marks a request as the app's.
    pub partner_domains: Vec<String>,
}

impl Classifier {
    /// `nonce` must be fresh randomness; it is used only if a cookie is minted.
    pub fn classify(&self, req: &Parts, now_unix: u64, nonce: [u8; 16]) -> Class {
        match self.policy {
            Policy::Strict => self.strict(req, now_unix, nonce),
            Policy::Heuristic => self.heuristic(req),
        }
    }

    fn strict(&self, req: &Parts, now_unix: u64, nonce: [u8; 16]) -> Class {
        if req.method == Method::GET {
            let token = req.uri.path().strip_prefix(INVITE_PREFIX);
            if token.is_some_and(|t| self.keys.verify_invite(t, now_unix)) {
                return Class::Invite {
                    set_cookie: self.set_cookie(now_unix, nonce),
                };
            }
            // A bad invite is judged like any other request: a stranger gets
            // the cover site, a member with a valid cookie the app.
        }
        let valid = cookie_values(req, &self.cookie_name)
            .any(|value| self.keys.verify_cookie(value, now_unix));
        if valid {
            Class::App
        } else {
            Class::Cover
        }
    }

    /// The historical rule. It let a Service Worker's precache of `/` fall
    /// into the cover site, which is why it is no longer the default.
    fn heuristic(&self, req: &Parts) -> Class {
        let bare_root =
            (req.method == Method::GET || req.method == Method::HEAD) && req.uri.path() == "/";
        if !bare_root {
            return Class::App;
        }
        let partner_origin = req.headers.get_all(ORIGIN).iter().any(|origin| {
            let origin = origin.as_bytes();
            self.partner_domains.iter().any(|domain| {
                origin
                    .strip_prefix(b"https://")
                    .is_some_and(|host| host.eq_ignore_ascii_case(domain.as_bytes()))
            })
        });
        let has_cookie = cookie_values(req, &self.cookie_name).next().is_some();
        if partner_origin || has_cookie {
            Class::App
        } else {
            Class::Cover
        }
    }

    /// Lax, not Strict: a top-level navigation from another site, the
    /// Service Worker's own fetches and same-site WebSocket upgrades must all
    /// carry the cookie.
    fn set_cookie(&self, now_unix: u64, nonce: [u8; 16]) -> String {
        let value = self.keys.mint_cookie(now_unix, self.cookie_ttl_secs, nonce);
        format!(
            "{}={value}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Lax",
            self.cookie_name, self.cookie_ttl_secs
        )
    }
}

/// Values of every cookie called `name`, across all `Cookie` headers (HTTP/2
/// may split cookies over several). Non-UTF-8 headers are skipped; a
/// DQUOTE-wrapped value is unwrapped (RFC 6265 §4.1.1).
fn cookie_values<'a>(req: &'a Parts, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    req.headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|header| header.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(move |pair| {
            let (n, v) = pair.split_once('=')?;
            if n.trim_matches([' ', '\t']) != name {
                return None;
            }
            let v = v.trim_matches([' ', '\t']);
            Some(
                v.strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_750_000_000;
    const DAY: u64 = 86_400;
    const NONCE: [u8; 16] = [7; 16];

    fn keys() -> SessionKeys {
        SessionKeys::new(b"0123456789abcdef0123456789abcdef")
    }

    fn classifier(policy: Policy) -> Classifier {
        Classifier {
            policy,
            keys: keys(),
            cookie_name: "sid".to_owned(),
            cookie_ttl_secs: 30 * DAY,
            partner_domains: vec!["partner.example".to_owned()],
        }
    }

    fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn classify(c: &Classifier, method: &str, uri: &str, headers: &[(&str, &str)]) -> Class {
        c.classify(&request(method, uri, headers), NOW, NONCE)
    }

    #[test]
    fn policy_serde_names() {
        #[derive(Deserialize, Serialize)]
        struct Wrap {
            policy: Policy,
        }
        let w: Wrap = serde_json::from_str(r#"{"policy":"heuristic"}"#).unwrap();
        assert_eq!(w.policy, Policy::Heuristic);
        let json = serde_json::to_string(&Wrap {
            policy: Policy::Strict,
        })
        .unwrap();
        assert_eq!(json, r#"{"policy":"strict"}"#);
        assert!(serde_json::from_str::<Wrap>(r#"{"policy":"Strict"}"#).is_err());
        assert_eq!(Policy::default(), Policy::Strict);
    }

    #[test]
    fn debug_hides_the_key() {
        let c = classifier(Policy::Strict);
        let shown = format!("{c:?}");
        assert!(shown.contains("SessionKeys { .. }"), "{shown}");
        assert!(!shown.contains("0123456789"), "{shown}");
    }

    #[test]
    fn cookie_format_and_roundtrip() {
        let k = keys();
        let cookie = k.mint_cookie(NOW, DAY, NONCE);
        let parts: Vec<&str> = cookie.split('.').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], "v1");
        assert_eq!(parts[1], (NOW + DAY).to_string());
        assert_eq!(parts[2], URL_SAFE_NO_PAD.encode(NONCE));
        assert_eq!(parts[3].len(), 43); // 32-byte tag
        assert!(cookie
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        assert!(k.verify_cookie(&cookie, NOW));
        assert!(k.verify_cookie(&cookie, NOW + DAY - 1));
        // Deterministic for the same inputs, so the MAC covers nothing else.
        assert_eq!(cookie, k.mint_cookie(NOW, DAY, NONCE));
    }

    #[test]
    fn expired_cookie_is_rejected() {
        let k = keys();
        let cookie = k.mint_cookie(NOW, DAY, NONCE);
        assert!(!k.verify_cookie(&cookie, NOW + DAY));
        assert!(!k.verify_cookie(&cookie, u64::MAX));
        let zero_ttl = k.mint_cookie(NOW, 0, NONCE);
        assert!(!k.verify_cookie(&zero_ttl, NOW));
        // Saturates instead of wrapping into the past.
        let forever = k.mint_cookie(u64::MAX - 1, DAY, NONCE);
        assert!(k.verify_cookie(&forever, u64::MAX - 1));
    }

    #[test]
    fn forged_and_mangled_cookies_are_rejected() {
        let k = keys();
        let good = k.mint_cookie(NOW, DAY, NONCE);
        let other_key = SessionKeys::new(b"another secret entirely, 32 byte");
        assert!(!other_key.verify_cookie(&good, NOW));
        let parts: Vec<&str> = good.split('.').collect();
        let later = (NOW + 365 * DAY).to_string();
        let padded = format!("0{}", parts[1]);
        let plus = format!("+{}", parts[1]);
        let other_nonce = URL_SAFE_NO_PAD.encode([8u8; 16]);
        let short_nonce = URL_SAFE_NO_PAD.encode([7u8; 15]);
        let bad = [
            format!("v2.{}.{}.{}", parts[1], parts[2], parts[3]),
            format!("v1.{later}.{}.{}", parts[2], parts[3]),
            format!("v1.{padded}.{}.{}", parts[2], parts[3]),
            format!("v1.{plus}.{}.{}", parts[2], parts[3]),
            format!("v1.{}.{other_nonce}.{}", parts[1], parts[3]),
            format!("v1.{}.{short_nonce}.{}", parts[1], parts[3]),
            format!("v1.{}.{}.{}", parts[1], parts[2], &parts[3][..42]),
            format!("v1.{}.{}.{}A", parts[1], parts[2], parts[3]),
            format!("v1.{}.{}.{}=", parts[1], parts[2], parts[3]),
            format!("{good}."),
            format!(".{good}"),
            good.replace('.', ".."),
            good.to_uppercase(),
            "v1...".to_owned(),
            "v1".to_owned(),
            String::new(),
            "x".repeat(10_000),
            "v1.ß.ü.€".to_owned(),
        ];
        for value in &bad {
            assert!(!k.verify_cookie(value, NOW), "{value}");
        }
        for cut in 0..good.len() {
            assert!(!k.verify_cookie(&good[..cut], NOW), "truncated at {cut}");
        }
    }

    #[test]
    fn cookie_and_invite_are_not_interchangeable() {
        let k = keys();
        let cookie = k.mint_cookie(NOW, DAY, NONCE);
        let invite = k.mint_invite(NOW, DAY, NONCE);
        assert_ne!(cookie, invite);
        assert!(k.verify_invite(&invite, NOW));
        assert!(!k.verify_invite(&cookie, NOW));
        assert!(!k.verify_cookie(&invite, NOW));
        let c = classifier(Policy::Strict);
        let as_cookie = format!("sid={invite}");
        assert_eq!(
            classify(&c, "GET", "/", &[("cookie", &as_cookie)]),
            Class::Cover
        );
        let as_invite = format!("{INVITE_PREFIX}{cookie}");
        assert_eq!(classify(&c, "GET", &as_invite, &[]), Class::Cover);
    }

    #[test]
    fn strict_needs_a_valid_cookie() {
        let c = classifier(Policy::Strict);
        let cookie = format!("sid={}", c.keys.mint_cookie(NOW, DAY, NONCE));
        assert_eq!(classify(&c, "GET", "/", &[("cookie", &cookie)]), Class::App);
        assert_eq!(
            classify(&c, "POST", "/api/x", &[("cookie", &cookie)]),
            Class::App
        );
        for uri in ["/", "/api/rooms", "/index.html", "/sw.js"] {
            assert_eq!(classify(&c, "GET", uri, &[]), Class::Cover, "{uri}");
        }
        let expired = format!("sid={}", c.keys.mint_cookie(NOW - 2 * DAY, DAY, NONCE));
        assert_eq!(
            classify(&c, "GET", "/", &[("cookie", &expired)]),
            Class::Cover
        );
        let origin = [("origin", "https://partner.example")];
        assert_eq!(classify(&c, "GET", "/", &origin), Class::Cover);
        let wrong_name = cookie.replacen("sid", "sid2", 1);
        assert_eq!(
            classify(&c, "GET", "/", &[("cookie", &wrong_name)]),
            Class::Cover
        );
    }

    #[test]
    fn cookie_header_parsing() {
        let c = classifier(Policy::Strict);
        let value = c.keys.mint_cookie(NOW, DAY, NONCE);
        let among = format!("theme=dark; sid={value}; lang=en");
        let spaced = format!("theme=dark;\tsid = {value} ;x=1");
        let quoted = format!("sid=\"{value}\"");
        let stale_first = format!("sid=v1.1.AAAA.BBBB; sid={value}");
        for header in [&among, &spaced, &quoted, &stale_first] {
            assert_eq!(
                classify(&c, "GET", "/", &[("cookie", header)]),
                Class::App,
                "{header}"
            );
        }
        // HTTP/2 clients may send one Cookie header per cookie.
        let split = [
            ("cookie", "a=1"),
            ("cookie", &format!("sid={value}")),
            ("cookie", "b=2"),
        ];
        assert_eq!(classify(&c, "GET", "/", &split), Class::App);
        // Non-UTF-8 cookie header: ignored, no panic.
        let mut req = request("GET", "/", &[]);
        req.headers
            .append(COOKIE, http::HeaderValue::from_bytes(b"sid=\xff").unwrap());
        assert_eq!(c.classify(&req, NOW, NONCE), Class::Cover);
    }

    #[test]
    fn invite_sets_the_cookie() {
        let c = classifier(Policy::Strict);
        let uri = format!("{INVITE_PREFIX}{}", c.keys.mint_invite(NOW, DAY, NONCE));
        let fresh = [9u8; 16];
        let class = c.classify(&request("GET", &uri, &[]), NOW, fresh);
        let Class::Invite { set_cookie } = class else {
            panic!("expected an invite, got {class:?}");
        };
        let value = c.keys.mint_cookie(NOW, 30 * DAY, fresh);
        let want = format!("sid={value}; Path=/; Max-Age=2592000; HttpOnly; Secure; SameSite=Lax");
        assert_eq!(set_cookie, want);
        // The cookie it sets opens the app.
        let cookie = format!("sid={value}");
        assert_eq!(classify(&c, "GET", "/", &[("cookie", &cookie)]), Class::App);
        // A query string does not spoil the link.
        assert!(matches!(
            classify(&c, "GET", &format!("{uri}?ref=chat"), &[]),
            Class::Invite { .. }
        ));
        // Only GET redeems an invite.
        assert_eq!(classify(&c, "POST", &uri, &[]), Class::Cover);
        assert_eq!(classify(&c, "HEAD", &uri, &[]), Class::Cover);
    }

    #[test]
    fn bad_invites_get_the_cover() {
        let c = classifier(Policy::Strict);
        let expired = c.keys.mint_invite(NOW - 2 * DAY, DAY, NONCE);
        let forged = SessionKeys::new(b"attacker").mint_invite(NOW, DAY, NONCE);
        for token in [
            expired.as_str(),
            forged.as_str(),
            "",
            "v1",
            "../../etc/passwd",
        ] {
            let uri = format!("{INVITE_PREFIX}{token}");
            assert_eq!(classify(&c, "GET", &uri, &[]), Class::Cover, "{token}");
        }
        // A member following a stale link still reaches the app.
        let cookie = format!("sid={}", c.keys.mint_cookie(NOW, DAY, NONCE));
        let uri = format!("{INVITE_PREFIX}{expired}");
        assert_eq!(
            classify(&c, "GET", &uri, &[("cookie", &cookie)]),
            Class::App
        );
    }

    #[test]
    fn service_worker_fetches_with_cookie_are_app() {
        let c = classifier(Policy::Strict);
        let cookie = format!("sid={}", c.keys.mint_cookie(NOW, DAY, NONCE));
        let script = [("service-worker", "script"), ("cookie", cookie.as_str())];
        assert_eq!(classify(&c, "GET", "/sw.js", &script), Class::App);
        let precache = [
            ("sec-fetch-dest", "serviceworker"),
            ("sec-fetch-mode", "same-origin"),
            ("cookie", cookie.as_str()),
        ];
        assert_eq!(classify(&c, "GET", "/", &precache), Class::App);
        // The same fetches from a stranger's browser get the cover.
        assert_eq!(classify(&c, "GET", "/sw.js", &script[..1]), Class::Cover);
        assert_eq!(classify(&c, "GET", "/", &precache[..2]), Class::Cover);
    }

    #[test]
    fn websocket_upgrade_with_cookie_is_app() {
        let c = classifier(Policy::Strict);
        let cookie = format!("sid={}", c.keys.mint_cookie(NOW, DAY, NONCE));
        let upgrade = [
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("cookie", cookie.as_str()),
        ];
        assert_eq!(classify(&c, "GET", "/ws", &upgrade), Class::App);
        assert_eq!(classify(&c, "GET", "/ws", &upgrade[..4]), Class::Cover);
    }

    #[test]
    fn heuristic_rules() {
        let c = classifier(Policy::Heuristic);
        assert_eq!(classify(&c, "GET", "/", &[]), Class::Cover);
        assert_eq!(classify(&c, "HEAD", "/", &[]), Class::Cover);
        assert_eq!(classify(&c, "GET", "/?x=1", &[]), Class::Cover);
        // Anything but a bare root is the app's.
        assert_eq!(classify(&c, "GET", "/index.html", &[]), Class::App);
        assert_eq!(classify(&c, "POST", "/", &[]), Class::App);
        assert_eq!(classify(&c, "GET", "/api/rooms", &[]), Class::App);
        // Cookie presence is enough; its value is not checked.
        assert_eq!(
            classify(&c, "GET", "/", &[("cookie", "a=b; sid=whatever")]),
            Class::App
        );
        assert_eq!(
            classify(&c, "GET", "/", &[("cookie", "sidx=1")]),
            Class::Cover
        );
        // Partner origin.
        for origin in ["https://partner.example", "https://PARTNER.example"] {
            assert_eq!(
                classify(&c, "GET", "/", &[("origin", origin)]),
                Class::App,
                "{origin}"
            );
        }
        for origin in [
            "http://partner.example",
            "https://partner.example.evil",
            "null",
        ] {
            assert_eq!(
                classify(&c, "GET", "/", &[("origin", origin)]),
                Class::Cover,
                "{origin}"
            );
        }
    }

    #[test]
    fn heuristic_breaks_service_worker_precache() {
        // Why strict is the default: a Service Worker precaching "/" sends no
        // Origin and, on a first install, may carry no cookie of ours.
        let precache = [
            ("sec-fetch-dest", "empty"),
            ("sec-fetch-mode", "same-origin"),
        ];
        let c = classifier(Policy::Heuristic);
        assert_eq!(classify(&c, "GET", "/", &precache), Class::Cover);
    }
}
