//! The destination of a TCP or UDP request: `port(2, BE) | atyp(1) | addr`.

use std::net::Ipv6Addr;

use super::cursor::{Cursor, Stop};
use super::VlessError;

const ATYP_IPV4: u8 = 0x01;
const ATYP_DOMAIN: u8 = 0x02;
const ATYP_IPV6: u8 = 0x03;

/// Longest domain the one-byte length field can carry.
pub(super) const MAX_DOMAIN_LEN: usize = u8::MAX as usize;
/// Longest encoded target: port, atyp, length byte and a 255-byte domain.
pub(super) const MAX_TARGET_LEN: usize = 2 + 1 + 1 + MAX_DOMAIN_LEN;
/// Shortest encoded target: port, atyp and a one-byte domain with its length
/// byte (an IPv4 address is longer).
pub(super) const MIN_TARGET_LEN: usize = 2 + 1 + 2;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    Ipv4([u8; 4]),
    /// 1..=255 bytes of ASCII letters, digits, `-`, `.` and `_` (the set
    /// Xray's server accepts), or an IPv6 literal, bracketed or not, which
    /// Xray turns into an address. Kept as sent; the caller resolves it.
    Domain(String),
    Ipv6([u8; 16]),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub addr: Address,
    pub port: u16,
}

impl Target {
    /// Checks what [`Target::encode`] would otherwise have to refuse.
    pub(super) fn validate(&self) -> Result<(), VlessError> {
        match &self.addr {
            Address::Domain(name) if !is_valid_domain(name) => Err(VlessError::BadDomain),
            _ => Ok(()),
        }
    }

    /// Writes the target; [`Target::validate`] must have passed.
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.port.to_be_bytes());
        match &self.addr {
            Address::Ipv4(ip) => {
                out.push(ATYP_IPV4);
                out.extend_from_slice(ip);
            }
            Address::Domain(name) => {
                out.push(ATYP_DOMAIN);
                // validate() bounds the length to 1..=255.
                out.push(name.len() as u8);
                out.extend_from_slice(name.as_bytes());
            }
            Address::Ipv6(ip) => {
                out.push(ATYP_IPV6);
                out.extend_from_slice(ip);
            }
        }
    }

    pub(super) fn decode(c: &mut Cursor<'_>) -> Result<Target, Stop> {
        let port = c.u16_be(MIN_TARGET_LEN - 2)?;
        let addr = match c.byte(2)? {
            ATYP_IPV4 => Address::Ipv4(c.array(0)?),
            ATYP_IPV6 => Address::Ipv6(c.array(0)?),
            ATYP_DOMAIN => {
                let len = c.byte(1)?;
                if len == 0 {
                    return Err(VlessError::BadDomain.into());
                }
                let raw = c.take(usize::from(len), 0)?;
                let name = std::str::from_utf8(raw).map_err(|_| VlessError::BadDomain)?;
                if !is_valid_domain(name) {
                    return Err(VlessError::BadDomain.into());
                }
                Address::Domain(name.to_owned())
            }
            other => return Err(VlessError::BadAddressType(other).into()),
        };
        Ok(Target { addr, port })
    }
}

/// The names Xray's address reader accepts: its host-name character set, or
/// an IPv6 literal (IPv4 literals already fit the character set). Anything
/// else would be refused by the core and has no business reaching a resolver
/// or a log line.
fn is_valid_domain(name: &str) -> bool {
    if name.is_empty() || name.len() > MAX_DOMAIN_LEN {
        return false;
    }
    let host_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    host_chars || is_ipv6_literal(name)
}

fn is_ipv6_literal(name: &str) -> bool {
    let inner = name
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(name);
    inner.parse::<Ipv6Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::vless::Decoded;

    fn decode(bytes: &[u8]) -> Result<Decoded<Target>, VlessError> {
        Cursor::run(bytes, Target::decode)
    }

    fn encode(t: &Target) -> Vec<u8> {
        t.validate().unwrap();
        let mut out = Vec::new();
        t.encode(&mut out);
        out
    }

    #[test]
    fn port_precedes_address() {
        let t = Target {
            addr: Address::Ipv4([10, 0, 0, 1]),
            port: 443,
        };
        assert_eq!(encode(&t), [0x01, 0xbb, 0x01, 10, 0, 0, 1]);
    }

    #[test]
    fn domain_carries_its_length() {
        let t = Target {
            addr: Address::Domain("a.io".into()),
            port: 80,
        };
        assert_eq!(encode(&t), b"\x00\x50\x02\x04a.io");
    }

    #[test]
    fn host_names_and_ip_literals_are_domains() {
        for ok in [
            "example.com",
            "_dmarc.x-y.Z9",
            "1.2.3.4",
            "::1",
            "[fe80::1]",
        ] {
            assert!(is_valid_domain(ok), "{ok}");
        }
        let longest = "a".repeat(255);
        assert!(is_valid_domain(&longest));
    }

    #[test]
    fn other_names_are_refused() {
        let too_long = "a".repeat(256);
        for bad in [
            "",
            "a b",
            "ex/ample",
            "bücher.de",
            "a:b",
            "[1.2.3.4]",
            &too_long,
        ] {
            assert!(!is_valid_domain(bad), "{bad:?}");
        }
    }

    #[test]
    fn decode_refuses_bad_domains() {
        assert_eq!(decode(b"\x00\x50\x02\x00"), Err(VlessError::BadDomain));
        assert_eq!(
            decode(b"\x00\x50\x02\x02\xff\xfe"),
            Err(VlessError::BadDomain)
        );
        assert_eq!(decode(b"\x00\x50\x02\x03a;b"), Err(VlessError::BadDomain));
    }

    #[test]
    fn decode_refuses_unknown_address_types_before_the_address_arrives() {
        assert_eq!(decode(b"\x00\x50\x04"), Err(VlessError::BadAddressType(4)));
        assert_eq!(decode(b"\x00\x50\x00"), Err(VlessError::BadAddressType(0)));
    }

    #[test]
    fn short_targets_ask_for_the_smallest_possible_rest() {
        let need = |b: &[u8]| match decode(b) {
            Ok(Decoded::Incomplete { need_at_least }) => need_at_least,
            other => panic!("{other:?}"),
        };
        assert_eq!(need(b""), 5);
        assert_eq!(need(b"\x00\x50"), 5);
        assert_eq!(need(b"\x00\x50\x01"), 7);
        assert_eq!(need(b"\x00\x50\x03\x00"), 19);
        assert_eq!(need(b"\x00\x50\x02"), 5);
        assert_eq!(need(b"\x00\x50\x02\x09abc"), 13);
    }

    #[test]
    fn encode_refuses_what_decode_would() {
        let t = |name: &str| Target {
            addr: Address::Domain(name.into()),
            port: 1,
        };
        assert_eq!(t("").validate(), Err(VlessError::BadDomain));
        assert_eq!(t(&"x".repeat(256)).validate(), Err(VlessError::BadDomain));
        assert_eq!(t("a\u{0}").validate(), Err(VlessError::BadDomain));
    }
}
