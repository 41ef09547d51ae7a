//! What REALITY reads from a ClientHello: the raw handshake message (the AEAD
//! authenticates it), where the session_id sits in it, and the X25519 key
//! share values that the front's parser deliberately does not keep.
//!
//! Validation, reassembly bounds and the SNI come from
//! [`crate::front::client_hello::parse`]; this module only re-walks the
//! already validated message for the key_share values, with a bounded cursor
//! so that no input can make it panic.

use crate::front::client_hello::{self, ClientHello, HelloError, Parsed};

/// Offset of the 32-byte session_id in the handshake message (type byte
/// first): type(1) len(3) legacy_version(2) random(32) session_id_len(1).
pub const SESSION_ID_OFFSET: usize = 39;
/// Offset of the session_id in the stream when the hello sits in one record.
pub const RECORD_SESSION_ID_OFFSET: usize = RECORD_HEADER_LEN + SESSION_ID_OFFSET;
pub const SESSION_ID_LEN: usize = 32;

pub const GROUP_X25519: u16 = 0x001d;
pub const GROUP_X25519MLKEM768: u16 = 0x11ec;
pub const X25519_SHARE_LEN: usize = 32;
/// ML-KEM-768 encapsulation key (1184) followed by an X25519 key (32).
pub const X25519MLKEM768_SHARE_LEN: usize = 1216;
const TLS13: u16 = 0x0304;

const RECORD_HEADER_LEN: usize = 5;
const HANDSHAKE_HEADER_LEN: usize = 4;
const EXT_KEY_SHARE: u16 = 51;
/// A handshake message must fit one plaintext record to be wrapped as one.
const MAX_MESSAGE_LEN: usize = 1 << 14;

/// A ClientHello as REALITY needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealityHello {
    /// The handshake message (type byte first), reassembled from its records
    /// and byte-for-byte as the client sent it.
    pub message: Vec<u8>,
    /// The fields the front's parser extracts (random, session_id, SNI,
    /// cipher suites, supported_versions …).
    pub fields: ClientHello,
    /// Value of the first 0x001D key share that is exactly 32 bytes.
    pub x25519_share: Option<[u8; 32]>,
    /// Value of the first 0x11EC key share that is exactly 1216 bytes.
    pub x25519mlkem768_share: Option<Vec<u8>>,
}

/// Outcome of [`RealityHello::from_records`] on the bytes received so far.
#[allow(clippy::large_enum_variant)] // one per connection, destructured at once
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extracted {
    /// `consumed` counts the bytes of the records that carried the hello.
    Complete {
        hello: RealityHello,
        consumed: usize,
    },
    /// No verdict before the stream holds at least this many bytes.
    Incomplete { need_at_least: usize },
}

impl RealityHello {
    /// Reads the hello from the start of a connection's byte stream (TLS
    /// records, possibly several carrying one hello; trailing bytes are left
    /// alone and not counted in `consumed`).
    pub fn from_records(buf: &[u8]) -> Result<Extracted, HelloError> {
        let (fields, consumed) = match client_hello::parse(buf)? {
            Parsed::Complete { hello, consumed } => (hello, consumed),
            Parsed::Incomplete { need_at_least } => {
                return Ok(Extracted::Incomplete { need_at_least })
            }
        };
        let message = reassemble(buf.get(..consumed).unwrap_or_default())
            .ok_or(HelloError::Malformed("ClientHello records"))?;
        let hello = Self::with_fields(message, fields)?;
        Ok(Extracted::Complete { hello, consumed })
    }

    /// Reads a complete handshake message (type byte first, nothing after it).
    pub fn from_message(message: &[u8]) -> Result<Self, HelloError> {
        if message.len() > MAX_MESSAGE_LEN {
            return Err(HelloError::TooLarge);
        }
        // The front's parser takes records; one synthetic record is the
        // cheapest way to reuse all of its validation.
        let mut record = Vec::with_capacity(RECORD_HEADER_LEN + message.len());
        record.extend_from_slice(&[0x16, 0x03, 0x01]);
        record.extend_from_slice(&(message.len() as u16).to_be_bytes());
        record.extend_from_slice(message);
        match client_hello::parse(&record)? {
            Parsed::Complete { hello, consumed } if consumed == record.len() => {
                Self::with_fields(message.to_vec(), hello)
            }
            _ => Err(HelloError::Malformed("ClientHello message truncated")),
        }
    }

    fn with_fields(message: Vec<u8>, fields: ClientHello) -> Result<Self, HelloError> {
        let shares = key_shares(&message).ok_or(HelloError::Malformed("key_share"))?;
        Ok(RealityHello {
            message,
            fields,
            x25519_share: shares.x25519,
            x25519mlkem768_share: shares.hybrid,
        })
    }

    pub fn random(&self) -> &[u8; 32] {
        &self.fields.random
    }

    /// The session_id when it is 32 bytes long (then it sits at
    /// [`SESSION_ID_OFFSET`]); REALITY cannot use any other length.
    pub fn session_id(&self) -> Option<[u8; 32]> {
        self.fields.session_id.as_slice().try_into().ok()
    }

    pub fn sni(&self) -> Option<&str> {
        self.fields.sni.as_deref()
    }

    pub fn cipher_suites(&self) -> &[u16] {
        &self.fields.cipher_suites
    }

    /// TLS 1.3 is only ever offered through supported_versions.
    pub fn offers_tls13(&self) -> bool {
        self.fields.supported_versions.contains(&TLS13)
    }

    /// The client X25519 key REALITY authenticates with: the standalone share
    /// first, else the last 32 bytes of the X25519MLKEM768 share (what
    /// Xray ≥ 25.7.23 does; older servers only know the standalone share).
    pub fn auth_x25519(&self) -> Option<[u8; 32]> {
        self.x25519_share.or_else(|| {
            let hybrid = self.x25519mlkem768_share.as_deref()?;
            hybrid
                .get(hybrid.len().checked_sub(X25519_SHARE_LEN)?..)?
                .try_into()
                .ok()
        })
    }

    /// The message with its session_id zeroed: the AEAD's associated data.
    /// `None` when the session_id is not 32 bytes long.
    pub fn message_with_zero_session_id(&self) -> Option<Vec<u8>> {
        self.session_id()?;
        let mut aad = self.message.clone();
        aad.get_mut(SESSION_ID_OFFSET..SESSION_ID_OFFSET + SESSION_ID_LEN)?
            .fill(0);
        Some(aad)
    }
}

/// Concatenates the payloads of consecutive records covering `records`
/// exactly; `None` if the headers do not tile it.
fn reassemble(records: &[u8]) -> Option<Vec<u8>> {
    let mut message = Vec::with_capacity(records.len());
    let mut rest = records;
    while !rest.is_empty() {
        let header = rest.get(..RECORD_HEADER_LEN)?;
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let end = RECORD_HEADER_LEN.checked_add(len)?;
        message.extend_from_slice(rest.get(RECORD_HEADER_LEN..end)?);
        rest = &rest[end..];
    }
    Some(message)
}

#[derive(Default)]
struct Shares {
    x25519: Option<[u8; 32]>,
    hybrid: Option<Vec<u8>>,
}

/// Walks the message to the key_share extension and keeps the X25519 and
/// X25519MLKEM768 values. `None` only if the grammar breaks, which the front
/// parser has already ruled out; absent shares are not an error.
fn key_shares(message: &[u8]) -> Option<Shares> {
    let mut r = Cursor(message.get(HANDSHAKE_HEADER_LEN..)?);
    r.take(2 + 32)?; // legacy_version, random
    r.vec8()?; // session_id
    r.vec16()?; // cipher_suites
    r.vec8()?; // compression_methods
    let mut shares = Shares::default();
    if r.0.is_empty() {
        return Some(shares); // TLS 1.2 hello without extensions
    }
    let mut exts = Cursor(r.vec16()?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        if kind == EXT_KEY_SHARE {
            let mut list = Cursor(Cursor(data).vec16()?);
            while !list.0.is_empty() {
                let group = list.u16()?;
                let value = list.vec16()?;
                match (group, value.len()) {
                    (GROUP_X25519, X25519_SHARE_LEN) if shares.x25519.is_none() => {
                        shares.x25519 = value.try_into().ok();
                    }
                    (GROUP_X25519MLKEM768, X25519MLKEM768_SHARE_LEN) if shares.hybrid.is_none() => {
                        shares.hybrid = Some(value.to_vec());
                    }
                    _ => {}
                }
            }
        }
    }
    Some(shares)
}

/// Bounds-checked reader: every short read is `None`.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.take(1)?[0];
        self.take(usize::from(n))
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::reality::test_hello::{
        fragment, rustls_hello, synthetic_hello, HelloSpec, XorShift,
    };

    fn complete(buf: &[u8]) -> (RealityHello, usize) {
        match RealityHello::from_records(buf) {
            Ok(Extracted::Complete { hello, consumed }) => (hello, consumed),
            other => panic!("expected a complete hello, got {other:?}"),
        }
    }

    #[test]
    fn rustls_hello_exposes_what_reality_needs() {
        let records = rustls_hello("example.com");
        let (hello, consumed) = complete(&records);
        assert_eq!(consumed, records.len());
        assert_eq!(hello.message, records[RECORD_HEADER_LEN..]);
        assert_eq!(
            hello.message[SESSION_ID_OFFSET - 1],
            32,
            "session_id length"
        );
        let sid = hello
            .session_id()
            .expect("rustls sends a 32-byte session_id");
        assert_eq!(
            sid[..],
            records[RECORD_SESSION_ID_OFFSET..RECORD_SESSION_ID_OFFSET + 32]
        );
        assert_eq!(hello.random()[..], records[11..43]);
        assert_eq!(hello.sni(), Some("example.com"));
        assert!(hello.offers_tls13());
        assert!(hello.cipher_suites().contains(&0x1302)); // TLS_AES_256_GCM_SHA384
        let share = hello.x25519_share.expect("rustls sends an X25519 share");
        assert_eq!(hello.auth_x25519(), Some(share));
        assert_eq!(hello.x25519mlkem768_share, None);
        // The share value is really in the message where the extension says.
        assert!(hello.message.windows(32).any(|w| w == share));
    }

    #[test]
    fn zeroed_session_id_touches_only_its_32_bytes() {
        let (hello, _) = complete(&rustls_hello("example.com"));
        let aad = hello.message_with_zero_session_id().expect("32-byte sid");
        let sid = SESSION_ID_OFFSET..SESSION_ID_OFFSET + SESSION_ID_LEN;
        assert!(aad[sid.clone()].iter().all(|&b| b == 0));
        assert_eq!(aad[..sid.start], hello.message[..sid.start]);
        assert_eq!(aad[sid.end..], hello.message[sid.end..]);
    }

    #[test]
    fn fragmented_records_give_the_same_message() {
        let single = rustls_hello("cdn.example.net");
        let (expected, _) = complete(&single);
        for size in [1usize, 7, 100, 300] {
            let frags = fragment(&single, size);
            let (hello, consumed) = complete(&frags);
            assert_eq!(consumed, frags.len());
            assert_eq!(hello, expected, "fragment size {size}");
        }
    }

    #[test]
    fn from_message_matches_from_records() {
        let records = rustls_hello("example.com");
        let (expected, _) = complete(&records);
        let hello = RealityHello::from_message(&records[RECORD_HEADER_LEN..]).unwrap();
        assert_eq!(hello, expected);
        let mut longer = records[RECORD_HEADER_LEN..].to_vec();
        longer.push(0);
        assert!(RealityHello::from_message(&longer).is_err());
        assert_eq!(
            RealityHello::from_message(&vec![1; MAX_MESSAGE_LEN + 1]),
            Err(HelloError::TooLarge)
        );
    }

    #[test]
    fn hybrid_share_supplies_the_x25519_key_when_alone() {
        let mut hybrid = vec![0x55; X25519MLKEM768_SHARE_LEN];
        hybrid[X25519MLKEM768_SHARE_LEN - 32..].fill(0x77);
        let spec = HelloSpec {
            shares: vec![(GROUP_X25519MLKEM768, hybrid.clone())],
            ..HelloSpec::default()
        };
        let (hello, _) = complete(&synthetic_hello(&spec));
        assert_eq!(hello.x25519_share, None);
        assert_eq!(hello.x25519mlkem768_share.as_deref(), Some(&hybrid[..]));
        assert_eq!(hello.auth_x25519(), Some([0x77; 32]));
    }

    #[test]
    fn standalone_share_wins_over_hybrid() {
        let spec = HelloSpec {
            shares: vec![
                (GROUP_X25519MLKEM768, vec![0x77; X25519MLKEM768_SHARE_LEN]),
                (GROUP_X25519, vec![0x11; 32]),
            ],
            ..HelloSpec::default()
        };
        let (hello, _) = complete(&synthetic_hello(&spec));
        assert_eq!(hello.auth_x25519(), Some([0x11; 32]));
    }

    #[test]
    fn wrong_length_shares_are_ignored() {
        let spec = HelloSpec {
            shares: vec![
                (GROUP_X25519, vec![0x11; 31]),
                (GROUP_X25519MLKEM768, vec![0x77; 1184]),
                (0x0017, vec![0x04; 65]), // secp256r1: not ours
            ],
            ..HelloSpec::default()
        };
        let (hello, _) = complete(&synthetic_hello(&spec));
        assert_eq!(hello.x25519_share, None);
        assert_eq!(hello.x25519mlkem768_share, None);
        assert_eq!(hello.auth_x25519(), None);
    }

    #[test]
    fn short_session_id_is_reported_as_absent() {
        let spec = HelloSpec {
            session_id: vec![9; 16],
            ..HelloSpec::default()
        };
        let (hello, _) = complete(&synthetic_hello(&spec));
        assert_eq!(hello.session_id(), None);
        assert_eq!(hello.message_with_zero_session_id(), None);
    }

    #[test]
    fn every_truncation_is_incomplete_or_an_error() {
        let records = rustls_hello("example.com");
        for k in 0..records.len() {
            assert!(
                matches!(
                    RealityHello::from_records(&records[..k]),
                    Ok(Extracted::Incomplete { .. })
                ),
                "prefix {k}"
            );
        }
        let message = &records[RECORD_HEADER_LEN..];
        for k in 0..message.len() {
            let result = RealityHello::from_message(&message[..k]);
            assert!(result.is_err(), "message prefix {k}");
        }
    }

    #[test]
    fn random_and_mutated_inputs_never_panic() {
        let mut rng = XorShift(0x51f1_5eed_dead_beef);
        let seeds = [
            rustls_hello("example.com"),
            synthetic_hello(&HelloSpec {
                shares: vec![(GROUP_X25519MLKEM768, vec![1; X25519MLKEM768_SHARE_LEN])],
                ..HelloSpec::default()
            }),
        ];
        for i in 0..10_000 {
            let buf = if i % 2 == 0 {
                let len = rng.below(400);
                let mut buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if len > 2 {
                    buf[0] = 0x16;
                    buf[1] = 0x03;
                }
                buf
            } else {
                let mut buf = seeds[rng.below(seeds.len())].clone();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(buf.len());
                    buf[at] ^= 1 << rng.below(8);
                }
                buf.truncate(buf.len() - rng.below(buf.len() / 4 + 1));
                buf
            };
            if let Ok(Extracted::Complete { hello, consumed }) = RealityHello::from_records(&buf) {
                assert!(consumed <= buf.len());
                let _ = (hello.auth_x25519(), hello.message_with_zero_session_id());
            }
            let _ = RealityHello::from_message(buf.get(RECORD_HEADER_LEN..).unwrap_or(&[]));
        }
    }
}
