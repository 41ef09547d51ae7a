//! Syntax checks for the names that appear in the config: DNS names, node ids, cookie
//! names, environment variable names.

/// A lowercase DNS host name without scheme, port or trailing dot (`example.org`,
/// `localhost`, `xn--80ak6aa92e.com`). Lowercase only because SNI and Host matching
/// compare bytes and a mixed-case entry would silently never match.
pub(super) fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// A DNS name, or a wildcard `*.<dns name>` covering exactly one more label.
pub(super) fn is_cert_name(name: &str) -> bool {
    match name.strip_prefix("*.") {
        Some(rest) => is_dns_name(rest),
        None => is_dns_name(name),
    }
}

/// Whether certificate name `pattern` (possibly a wildcard) covers host `host`.
pub(super) fn cert_name_covers(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        // A wildcard stands for exactly one label (RFC 6125 §6.4.3).
        Some(parent) => host
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest == parent),
        None => pattern == host,
    }
}

/// `[a-z0-9-]`, 1..=64: it ends up in metric labels, file names and control-plane URLs.
pub(super) fn is_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// An RFC 6265 cookie-name: an RFC 9110 token.
pub(super) fn is_cookie_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A POSIX-portable environment variable name.
pub(super) fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A header value an operator may reasonably set: visible ASCII and inner spaces.
pub(super) fn is_plain_header_value(value: &str) -> bool {
    value.len() <= 128
        && value.trim() == value
        && value.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        for good in ["localhost", "example.org", "a-b.c0.example", "xn--p1ai"] {
            assert!(is_dns_name(good), "{good}");
        }
        for bad in [
            "",
            "Example.org",
            "https://example.org",
            "example.org:443",
            "example.org.",
            "-a.org",
            "a..org",
            "*.example.org",
        ] {
            assert!(!is_dns_name(bad), "{bad}");
        }
        assert!(!is_dns_name(&"a".repeat(64)));
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(is_cert_name("*.example.org"));
        assert!(!is_cert_name("*example.org"));
        assert!(cert_name_covers("*.example.org", "www.example.org"));
        assert!(!cert_name_covers("*.example.org", "example.org"));
        assert!(!cert_name_covers("*.example.org", "a.b.example.org"));
        assert!(cert_name_covers("example.org", "example.org"));
    }

    #[test]
    fn other_names() {
        assert!(is_node_id("edge-fra-1"));
        assert!(!is_node_id("Edge_1"));
        assert!(!is_node_id(""));
        assert!(is_cookie_name("oxpulse_session"));
        assert!(!is_cookie_name("a b"));
        assert!(!is_cookie_name("a;b"));
        assert!(is_env_name("OXPULSE_SESSION_SECRET"));
        assert!(!is_env_name("1X"));
        assert!(!is_env_name("A-B"));
        assert!(is_plain_header_value("nginx/1.24.0 (Ubuntu)"));
        assert!(!is_plain_header_value("a\r\nSet-Cookie: x"));
        assert!(!is_plain_header_value(" nginx"));
    }
}
