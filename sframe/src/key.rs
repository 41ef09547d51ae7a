//! RFC 9605 §4.4.2 key and salt derivation, and the nonce.
//!
//! ```text
//! sframe_secret = HKDF-Extract("", base_key)
//! sframe_key    = HKDF-Expand(sframe_secret, "SFrame 1.0 Secret key "  || KID(8 BE) || suite(2 BE), Nk)
//! sframe_salt   = HKDF-Expand(sframe_secret, "SFrame 1.0 Secret salt " || KID(8 BE) || suite(2 BE), Nn)
//! nonce         = sframe_salt XOR CTR (CTR right-aligned, big-endian)
//! ```

use ring::hkdf;
use zeroize::Zeroizing;

use crate::aead::Aead;
use crate::suite::{CipherSuite, NONCE_LEN};

const KEY_LABEL: &[u8] = b"SFrame 1.0 Secret key ";
const SALT_LABEL: &[u8] = b"SFrame 1.0 Secret salt ";

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Extract with an empty salt.
pub(crate) fn extract(suite: CipherSuite, ikm: &[u8]) -> hkdf::Prk {
    hkdf::Salt::new(suite.hkdf(), &[]).extract(ikm)
}

/// HKDF-Expand into `out` (at most 255 * Nh bytes, always true here).
pub(crate) fn expand(prk: &hkdf::Prk, info: &[u8], out: &mut [u8]) {
    prk.expand(&[info], Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .expect("HKDF output length is within 255 * Nh");
}

fn label(prefix: &[u8], kid: u64, suite: CipherSuite) -> Vec<u8> {
    let mut l = Vec::with_capacity(prefix.len() + 10);
    l.extend_from_slice(prefix);
    l.extend_from_slice(&kid.to_be_bytes());
    l.extend_from_slice(&suite.id().to_be_bytes());
    l
}

/// The HKDF info for the key: `"SFrame 1.0 Secret key " || KID(8 BE) || suite(2 BE)`.
pub fn key_label(kid: u64, suite: CipherSuite) -> Vec<u8> {
    label(KEY_LABEL, kid, suite)
}

/// The HKDF info for the salt: `"SFrame 1.0 Secret salt " || KID(8 BE) || suite(2 BE)`.
pub fn salt_label(kid: u64, suite: CipherSuite) -> Vec<u8> {
    label(SALT_LABEL, kid, suite)
}

/// The key and salt derived for one KID, ready to seal and open frames.
///
/// Secrets are zeroized on drop (ring's expanded AES/HMAC schedules are
/// outside our reach); `Debug` prints only the suite.
pub struct KeyMaterial {
    suite: CipherSuite,
    key: Zeroizing<Vec<u8>>,
    salt: Zeroizing<[u8; NONCE_LEN]>,
    aead: Aead,
}

impl KeyMaterial {
    /// Derives `sframe_key` and `sframe_salt` for `kid` from `base_key`.
    pub fn derive(suite: CipherSuite, kid: u64, base_key: &[u8]) -> Self {
        let secret = extract(suite, base_key);
        let mut key = Zeroizing::new(vec![0u8; suite.nk()]);
        expand(&secret, &key_label(kid, suite), &mut key);
        let mut salt = Zeroizing::new([0u8; NONCE_LEN]);
        expand(&secret, &salt_label(kid, suite), &mut salt[..]);
        let aead = Aead::new(suite, &key);
        Self {
            suite,
            key,
            salt,
            aead,
        }
    }

    /// The cipher suite.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// `sframe_key` (Nk bytes). Secret: for tests and interop checks.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// `sframe_salt` (Nn bytes). Secret: for tests and interop checks.
    pub fn salt(&self) -> &[u8; NONCE_LEN] {
        &self.salt
    }

    /// The nonce for `ctr`: the salt XOR the CTR, right-aligned big-endian.
    pub fn nonce(&self, ctr: u64) -> [u8; NONCE_LEN] {
        let mut nonce = *self.salt;
        for (n, c) in nonce[NONCE_LEN - 8..].iter_mut().zip(ctr.to_be_bytes()) {
            *n ^= c;
        }
        nonce
    }

    pub(crate) fn aead(&self) -> &Aead {
        &self.aead
    }
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let m = KeyMaterial::derive(CipherSuite::AesGcm128Sha256, 1, &[0x42; 16]);
        let s = format!("{m:?}");
        assert!(s.contains("AesGcm128Sha256"));
        let key_hex: String = m.key().iter().map(|b| format!("{b:02x}")).collect();
        assert!(!s.contains(&key_hex) && !s.contains("key:") && !s.contains("salt"));
    }

    #[test]
    fn nonce_is_right_aligned_xor() {
        let m = KeyMaterial::derive(CipherSuite::AesGcm128Sha256, 0, b"k");
        let salt = *m.salt();
        assert_eq!(m.nonce(0), salt);
        let n = m.nonce(0x0102);
        assert_eq!(n[..10], salt[..10]);
        assert_eq!(n[10], salt[10] ^ 0x01);
        assert_eq!(n[11], salt[11] ^ 0x02);
        let n = m.nonce(u64::MAX);
        assert_eq!(n[..4], salt[..4]);
        assert!(n[4..].iter().zip(&salt[4..]).all(|(a, b)| *a == !*b));
    }
}
