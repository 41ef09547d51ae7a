//! REALITY's authentication math (TUNNEL.md §2, client steps 2–5): the
//! 16-byte block a client hides in its session_id, the key it is sealed
//! with, and both directions of the AEAD.
//!
//! The associated data is always the whole ClientHello handshake message with
//! the session_id zeroed, so any byte changed on the way breaks the seal.

use std::fmt;

use ring::{aead, hkdf};
use thiserror::Error;
use x25519_dalek::{PublicKey, StaticSecret};

/// The plaintext hidden in the session_id.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AuthBlock {
    /// Client version x.y.z (servers compare it with min/max client version).
    pub version: [u8; 3],
    /// Seconds since the Unix epoch when the client built the hello.
    pub unix_time: u32,
    pub short_id: ShortId,
}

/// One of the server's short ids: up to 16 hex digits, zero-padded right.
pub type ShortId = [u8; 8];

impl AuthBlock {
    /// `[0..3]` version, `[3]` zero, `[4..8]` time big-endian, `[8..16]` short id.
    pub fn to_plaintext(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..3].copy_from_slice(&self.version);
        out[4..8].copy_from_slice(&self.unix_time.to_be_bytes());
        out[8..].copy_from_slice(&self.short_id);
        out
    }

    /// Byte 3 is ignored, as Xray's server ignores it.
    pub fn from_plaintext(p: &[u8; 16]) -> Self {
        let mut block = AuthBlock {
            version: [p[0], p[1], p[2]],
            unix_time: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            short_id: [0; 8],
        };
        block.short_id.copy_from_slice(&p[8..]);
        block
    }
}

// The short id works as a (weak) credential: keep it out of logs.
impl fmt::Debug for AuthBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthBlock")
            .field("version", &self.version)
            .field("unix_time", &self.unix_time)
            .field("short_id", &"<redacted>")
            .finish()
    }
}

#[derive(Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShortIdError {
    #[error("short id longer than 16 hex digits")]
    TooLong,
    #[error("short id has an odd number of hex digits")]
    OddLength,
    #[error("short id is not hexadecimal")]
    NotHex,
}

/// Parses a configured short id; `""` is the all-zero id.
pub fn parse_short_id(hex: &str) -> Result<ShortId, ShortIdError> {
    let digits = hex.as_bytes();
    if digits.len() > 16 {
        return Err(ShortIdError::TooLong);
    }
    if digits.len() % 2 != 0 {
        return Err(ShortIdError::OddLength);
    }
    let mut id = [0u8; 8];
    for (byte, pair) in id.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = hex_value(pair[0])? << 4 | hex_value(pair[1])?;
    }
    Ok(id)
}

fn hex_value(digit: u8) -> Result<u8, ShortIdError> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        b'A'..=b'F' => Ok(digit - b'A' + 10),
        _ => Err(ShortIdError::NotHex),
    }
}

/// X25519 that refuses low-order peer keys: with an all-zero result anyone
/// could compute the auth key without knowing the server's key (Go's
/// `curve25519.X25519` errors in that case, so Xray skips such a share).
fn contributory_x25519(own: &StaticSecret, peer: &[u8; 32]) -> Option<[u8; 32]> {
    let shared = own.diffie_hellman(&PublicKey::from(*peer));
    shared.was_contributory().then(|| shared.to_bytes())
}

/// Server side of the ECDH: its static private key with the client's share.
pub fn server_shared(static_priv: &StaticSecret, client_x25519: &[u8; 32]) -> Option<[u8; 32]> {
    contributory_x25519(static_priv, client_x25519)
}

/// Client side: the ephemeral secret behind its X25519 share with the
/// server's published key.
pub fn client_shared(ephemeral: &StaticSecret, server_pub: &[u8; 32]) -> Option<[u8; 32]> {
    contributory_x25519(ephemeral, server_pub)
}

/// HKDF-SHA256(ikm = shared, salt = random[0..20], info = "REALITY").
pub fn auth_key(shared: &[u8; 32], random: &[u8; 32]) -> [u8; 32] {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &random[..20]).extract(shared);
    let mut key = [0u8; 32];
    // Infallible: 32 bytes is one SHA-256 block, far below HKDF's 255-block cap.
    prk.expand(&[b"REALITY"], hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut key))
        .expect("HKDF-SHA256 can expand 32 bytes");
    key
}

fn aead_key(alg: &'static aead::Algorithm, auth_key: &[u8; 32]) -> aead::LessSafeKey {
    // Infallible: both AEADs used here take exactly a 32-byte key.
    aead::LessSafeKey::new(aead::UnboundKey::new(alg, auth_key).expect("32-byte AEAD key"))
}

fn nonce(random: &[u8; 32]) -> aead::Nonce {
    let mut n = [0u8; aead::NONCE_LEN];
    n.copy_from_slice(&random[20..]);
    aead::Nonce::assume_unique_for_key(n)
}

/// Client step 5: the session_id to send (16 bytes ciphertext ‖ 16 tag),
/// AES-256-GCM, which every server version accepts from a client whose first
/// cipher suite is AES-GCM (rustls' default order).
pub fn seal_session_id(
    auth_key: &[u8; 32],
    random: &[u8; 32],
    plaintext: &[u8; 16],
    hello_zero_sid: &[u8],
) -> [u8; 32] {
    let key = aead_key(&aead::AES_256_GCM, auth_key);
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(plaintext);
    let (body, tag_out) = out.split_at_mut(16);
    // Infallible: 16 bytes are far below the AEAD's length limit.
    let tag = key
        .seal_in_place_separate_tag(nonce(random), aead::Aad::from(hello_zero_sid), body)
        .expect("AES-GCM seals 16 bytes");
    tag_out.copy_from_slice(tag.as_ref());
    out
}

/// Server side: opens the session_id with AES-256-GCM, then with
/// ChaCha20-Poly1305 (clients before Xray 25.5.16 picked it when their first
/// known cipher suite was not AES-GCM). `hello_zero_sid` is the message
/// with its session_id zeroed.
pub fn open_session_id(
    auth_key: &[u8; 32],
    random: &[u8; 32],
    session_id: &[u8; 32],
    hello_zero_sid: &[u8],
) -> Option<AuthBlock> {
    [&aead::AES_256_GCM, &aead::CHACHA20_POLY1305]
        .into_iter()
        .find_map(|alg| {
            let mut buf = *session_id;
            let key = aead_key(alg, auth_key);
            let plain = key
                .open_in_place(nonce(random), aead::Aad::from(hello_zero_sid), &mut buf)
                .ok()?;
            let plain: &[u8; 16] = (&*plain).try_into().ok()?;
            Some(AuthBlock::from_plaintext(plain))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::hmac;

    const BLOCK: AuthBlock = AuthBlock {
        version: [26, 3, 27],
        unix_time: 0x6700_1234,
        short_id: [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef],
    };

    #[test]
    fn plaintext_layout() {
        let p = BLOCK.to_plaintext();
        assert_eq!(
            p,
            [
                26, 3, 27, 0, 0x67, 0x00, 0x12, 0x34, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd,
                0xef
            ]
        );
        assert_eq!(AuthBlock::from_plaintext(&p), BLOCK);
        let mut odd = p;
        odd[3] = 0xff; // reserved byte: ignored
        assert_eq!(AuthBlock::from_plaintext(&odd), BLOCK);
    }

    #[test]
    fn debug_hides_the_short_id() {
        let text = format!("{BLOCK:?}");
        assert!(
            text.contains("redacted") && !text.contains("137, 171"),
            "{text}"
        );
    }

    #[test]
    fn short_ids() {
        assert_eq!(parse_short_id(""), Ok([0; 8]));
        assert_eq!(
            parse_short_id("0123456789abcdef"),
            Ok([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef])
        );
        assert_eq!(parse_short_id("AbCd"), Ok([0xab, 0xcd, 0, 0, 0, 0, 0, 0]));
        assert_eq!(
            parse_short_id("0123456789abcdef0"),
            Err(ShortIdError::TooLong)
        );
        assert_eq!(parse_short_id("abc"), Err(ShortIdError::OddLength));
        assert_eq!(parse_short_id("zz"), Err(ShortIdError::NotHex));
        assert_eq!(parse_short_id("é"), Err(ShortIdError::NotHex));
    }

    /// HKDF-SHA256 for one output block, written out with HMAC (RFC 5869):
    /// PRK = HMAC(salt, IKM); OKM = HMAC(PRK, info ‖ 0x01).
    fn manual_hkdf(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; 32] {
        let prk = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, salt), ikm);
        let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref()));
        ctx.update(info);
        ctx.update(&[1]);
        ctx.sign().as_ref().try_into().expect("32-byte tag")
    }

    fn counting() -> [u8; 32] {
        std::array::from_fn(|i| i as u8)
    }

    #[test]
    fn auth_key_is_hkdf_sha256_with_the_random_prefix_as_salt() {
        let shared = [0x5a; 32];
        let random = counting();
        let key = auth_key(&shared, &random);
        assert_eq!(key, manual_hkdf(&shared, &random[..20], b"REALITY"));
        // Only random[0..20] is salt.
        let mut other = random;
        other[25] ^= 1;
        assert_eq!(auth_key(&shared, &other), key);
        other[3] ^= 1;
        assert_ne!(auth_key(&shared, &other), key);
    }

    #[test]
    fn auth_key_pinned_value() {
        // Computed once by this implementation; Python's hmac/hashlib HKDF
        // (written out as extract + expand) gives the same bytes.
        let key = auth_key(&[0x5a; 32], &counting());
        assert_eq!(hex(&key), PINNED_AUTH_KEY);
    }

    const PINNED_AUTH_KEY: &str =
        "29e3d2ea14a318e4107efee45e428ec6d7857e6e61a7ed2e8b51267b4b9abd2f";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Known answers from an independent implementation (Python
    /// `cryptography`: X25519, AESGCM, ChaCha20Poly1305; hmac/hashlib HKDF).
    #[test]
    fn whole_chain_matches_independent_vectors() {
        let server = StaticSecret::from([0x21; 32]);
        let client = StaticSecret::from([0x43; 32]);
        let server_pub = PublicKey::from(&server).to_bytes();
        let shared = client_shared(&client, &server_pub).unwrap();
        assert_eq!(
            hex(&shared),
            "04e001bb96c0e6440bb838e5e13173a59fdb53e9e928afcceb75a9180095d437"
        );
        let random = counting();
        let key = auth_key(&shared, &random);
        assert_eq!(
            hex(&key),
            "fc2056f4a3a07abe25d99f5306c0d8bed80d7392737f0d2ad893f57396ba0b71"
        );
        let aad = b"a ClientHello with its session id zeroed";
        let sid = seal_session_id(&key, &random, &BLOCK.to_plaintext(), aad);
        assert_eq!(
            hex(&sid),
            "65b8528fe1667205e32da22c88f661b70a4ce76f6524fd8b603c107488fc7421"
        );
        let chacha: [u8; 32] = [
            0x00, 0xe8, 0x3c, 0x4b, 0xb1, 0x11, 0x20, 0x80, 0xeb, 0x66, 0xd4, 0xcf, 0xa8, 0x23,
            0x0a, 0xdb, 0xb3, 0xbe, 0x3b, 0x2c, 0x4f, 0x5f, 0x33, 0xdc, 0x75, 0xca, 0xdd, 0x46,
            0x01, 0x11, 0xb2, 0x5e,
        ];
        assert_eq!(open_session_id(&key, &random, &chacha, aad), Some(BLOCK));
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let key = [7u8; 32];
        let random = counting();
        let aad = b"a ClientHello with its session id zeroed".to_vec();
        let sid = seal_session_id(&key, &random, &BLOCK.to_plaintext(), &aad);
        assert_eq!(open_session_id(&key, &random, &sid, &aad), Some(BLOCK));

        let mut bad_aad = aad.clone();
        bad_aad[0] ^= 1;
        assert_eq!(open_session_id(&key, &random, &sid, &bad_aad), None);
        let mut bad_sid = sid;
        bad_sid[31] ^= 1;
        assert_eq!(open_session_id(&key, &random, &bad_sid, &aad), None);
        let mut bad_nonce = random;
        bad_nonce[31] ^= 1;
        assert_eq!(open_session_id(&key, &bad_nonce, &sid, &aad), None);
        assert_eq!(open_session_id(&[8; 32], &random, &sid, &aad), None);
    }

    #[test]
    fn old_clients_chacha20_session_id_opens() {
        let key = [7u8; 32];
        let random = counting();
        let aad = b"hello".to_vec();
        let chacha = aead_key(&aead::CHACHA20_POLY1305, &key);
        let mut sid = BLOCK.to_plaintext().to_vec();
        chacha
            .seal_in_place_append_tag(nonce(&random), aead::Aad::from(&aad), &mut sid)
            .unwrap();
        let sid: [u8; 32] = sid.try_into().unwrap();
        assert_ne!(
            sid,
            seal_session_id(&key, &random, &BLOCK.to_plaintext(), &aad)
        );
        assert_eq!(open_session_id(&key, &random, &sid, &aad), Some(BLOCK));
    }

    #[test]
    fn both_sides_agree_on_the_shared_secret() {
        let server = StaticSecret::from([0x21; 32]);
        let client = StaticSecret::from([0x43; 32]);
        let server_pub = PublicKey::from(&server).to_bytes();
        let client_pub = PublicKey::from(&client).to_bytes();
        let a = client_shared(&client, &server_pub).unwrap();
        assert_eq!(server_shared(&server, &client_pub), Some(a));
    }

    #[test]
    fn low_order_client_keys_are_refused() {
        let server = StaticSecret::from([0x21; 32]);
        assert_eq!(server_shared(&server, &[0; 32]), None);
        let mut one = [0u8; 32];
        one[0] = 1; // the point u = 1 has order 1 too
        assert_eq!(server_shared(&server, &one), None);
    }
}
