//! RFC 9605 §4.4 encryption and decryption contexts.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::header::{Header, MAX_HEADER_LEN};
use crate::key::KeyMaterial;
use crate::suite::CipherSuite;

/// A decrypted frame: `(kid, ctr, plaintext)`.
pub type Decrypted = (u64, u64, Vec<u8>);

/// Builds `header || AEAD(key, salt ^ ctr, header || metadata, plaintext)`.
pub(crate) fn seal_frame(
    material: &KeyMaterial,
    kid: u64,
    ctr: u64,
    metadata: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    let header = Header::new(kid, ctr);
    let mut out =
        Vec::with_capacity(header.encoded_len() + plaintext.len() + material.suite().nt());
    header.encode_into(&mut out);
    let mut aad = Vec::with_capacity(out.len() + metadata.len());
    aad.extend_from_slice(&out);
    aad.extend_from_slice(metadata);
    material
        .aead()
        .seal(&material.nonce(ctr), &aad, plaintext, &mut out)?;
    Ok(out)
}

/// Opens a frame whose header has been parsed into `header` (`header_len` bytes).
pub(crate) fn open_frame(
    material: &KeyMaterial,
    header: Header,
    header_len: usize,
    metadata: &[u8],
    frame: &[u8],
) -> Result<Vec<u8>> {
    let mut aad = Vec::with_capacity(MAX_HEADER_LEN + metadata.len());
    aad.extend_from_slice(&frame[..header_len]);
    aad.extend_from_slice(metadata);
    material
        .aead()
        .open(&material.nonce(header.ctr), &aad, &frame[header_len..])
}

struct SendKey {
    material: KeyMaterial,
    /// The next CTR to use; `None` once `u64::MAX` has been used.
    next_ctr: Option<u64>,
}

/// Encrypts frames under base keys marked for encryption, one CTR per KID.
///
/// RFC 9605 §4.4.1: a base key must be used for encryption or decryption,
/// never both, and never by two senders.
#[derive(Debug)]
pub struct SenderContext {
    suite: CipherSuite,
    keys: HashMap<u64, SendKey>,
}

impl std::fmt::Debug for SendKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendKey")
            .field("next_ctr", &self.next_ctr)
            .finish_non_exhaustive()
    }
}

impl SenderContext {
    /// An empty context for `suite`.
    pub fn new(suite: CipherSuite) -> Self {
        Self {
            suite,
            keys: HashMap::new(),
        }
    }

    /// The cipher suite.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// Installs `base_key` under `kid` with CTR starting at 0.
    ///
    /// Fails with [`Error::DuplicateKid`] if `kid` is already installed:
    /// replacing it would restart the CTR and reuse nonces.
    pub fn add_key(&mut self, kid: u64, base_key: &[u8]) -> Result<()> {
        if self.keys.contains_key(&kid) {
            return Err(Error::DuplicateKid(kid));
        }
        let material = KeyMaterial::derive(self.suite, kid, base_key);
        self.keys.insert(
            kid,
            SendKey {
                material,
                next_ctr: Some(0),
            },
        );
        Ok(())
    }

    /// Forgets `kid`; returns whether it was installed.
    pub fn remove_key(&mut self, kid: u64) -> bool {
        self.keys.remove(&kid).is_some()
    }

    /// The CTR the next automatic [`encrypt`](Self::encrypt) under `kid` will use.
    pub fn next_ctr(&self, kid: u64) -> Result<u64> {
        let key = self.keys.get(&kid).ok_or(Error::UnknownKid(kid))?;
        key.next_ctr.ok_or(Error::CounterExhausted(kid))
    }

    /// Encrypts one frame under `kid`, returning `header || ciphertext || tag`.
    ///
    /// With `ctr = None` the KID's counter is used and incremented. An explicit
    /// `ctr` must not be below the counter (that would reuse a nonce,
    /// [`Error::CounterReused`]); the counter then continues after it. After
    /// CTR `u64::MAX` has been used the KID is exhausted
    /// ([`Error::CounterExhausted`]).
    pub fn encrypt(
        &mut self,
        kid: u64,
        ctr: Option<u64>,
        metadata: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>> {
        let key = self.keys.get_mut(&kid).ok_or(Error::UnknownKid(kid))?;
        let next = key.next_ctr.ok_or(Error::CounterExhausted(kid))?;
        let ctr = match ctr {
            None => next,
            Some(c) if c >= next => c,
            Some(c) => return Err(Error::CounterReused { kid, ctr: c, next }),
        };
        let frame = seal_frame(&key.material, kid, ctr, metadata, plaintext)?;
        key.next_ctr = ctr.checked_add(1);
        Ok(frame)
    }
}

/// Decrypts frames, choosing the key by the KID in each frame's header.
#[derive(Debug)]
pub struct ReceiverContext {
    suite: CipherSuite,
    keys: HashMap<u64, KeyMaterial>,
}

impl ReceiverContext {
    /// An empty context for `suite`.
    pub fn new(suite: CipherSuite) -> Self {
        Self {
            suite,
            keys: HashMap::new(),
        }
    }

    /// The cipher suite.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// Installs `base_key` under `kid`; [`Error::DuplicateKid`] if present.
    pub fn add_key(&mut self, kid: u64, base_key: &[u8]) -> Result<()> {
        if self.keys.contains_key(&kid) {
            return Err(Error::DuplicateKid(kid));
        }
        self.keys
            .insert(kid, KeyMaterial::derive(self.suite, kid, base_key));
        Ok(())
    }

    /// Forgets `kid`; returns whether it was installed.
    pub fn remove_key(&mut self, kid: u64) -> bool {
        self.keys.remove(&kid).is_some()
    }

    /// Whether a key is installed for `kid`.
    pub fn has_key(&self, kid: u64) -> bool {
        self.keys.contains_key(&kid)
    }

    /// Decrypts `header || ciphertext || tag` with `metadata` as extra AAD.
    ///
    /// [`Error::UnknownKid`] means the frame may be retried once its key
    /// arrives; any other error means the frame must be discarded.
    pub fn decrypt(&self, metadata: &[u8], frame: &[u8]) -> Result<Decrypted> {
        let (header, header_len) = Header::decode(frame)?;
        let material = self
            .keys
            .get(&header.kid)
            .ok_or(Error::UnknownKid(header.kid))?;
        let pt = open_frame(material, header, header_len, metadata, frame)?;
        Ok((header.kid, header.ctr, pt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUITES: [CipherSuite; 5] = CipherSuite::ALL;

    fn pair(suite: CipherSuite, kid: u64) -> (SenderContext, ReceiverContext) {
        let base = [0x5a; 16];
        let mut s = SenderContext::new(suite);
        s.add_key(kid, &base).unwrap();
        let mut r = ReceiverContext::new(suite);
        r.add_key(kid, &base).unwrap();
        (s, r)
    }

    #[test]
    fn round_trip_with_auto_ctr() {
        for suite in SUITES {
            let (mut s, r) = pair(suite, 0x1234);
            for i in 0..3u64 {
                let f = s.encrypt(0x1234, None, b"meta", b"hello frame").unwrap();
                assert_eq!(
                    f.len(),
                    Header::new(0x1234, i).encoded_len() + 11 + suite.nt()
                );
                let (kid, ctr, pt) = r.decrypt(b"meta", &f).unwrap();
                assert_eq!((kid, ctr, pt.as_slice()), (0x1234, i, &b"hello frame"[..]));
            }
            // Empty plaintext works too.
            let f = s.encrypt(0x1234, None, b"", b"").unwrap();
            assert_eq!(r.decrypt(b"", &f).unwrap().2, b"");
        }
    }

    #[test]
    fn tampering_any_byte_fails() {
        for suite in SUITES {
            let (mut s, r) = pair(suite, 9);
            let f = s.encrypt(9, Some(300), b"md", b"some payload").unwrap();
            for i in 0..f.len() {
                for bit in [0x01, 0x80] {
                    let mut bad = f.clone();
                    bad[i] ^= bit;
                    assert!(r.decrypt(b"md", &bad).is_err(), "{suite:?} byte {i}");
                }
            }
            // Metadata is authenticated as well.
            assert_eq!(r.decrypt(b"mD", &f), Err(Error::AuthenticationFailed));
            assert_eq!(r.decrypt(b"", &f), Err(Error::AuthenticationFailed));
            // Truncation is detected.
            for cut in 0..f.len() {
                assert!(r.decrypt(b"md", &f[..cut]).is_err());
            }
        }
    }

    #[test]
    fn wrong_kid_is_a_clear_error() {
        let (mut s, r) = pair(CipherSuite::AesGcm128Sha256, 1);
        assert_eq!(s.encrypt(2, None, b"", b"x"), Err(Error::UnknownKid(2)));
        let mut other = SenderContext::new(CipherSuite::AesGcm128Sha256);
        other.add_key(77, &[0x5a; 16]).unwrap();
        let f = other.encrypt(77, None, b"", b"x").unwrap();
        assert_eq!(r.decrypt(b"", &f), Err(Error::UnknownKid(77)));
        assert_eq!(
            Error::UnknownKid(77).to_string(),
            "no SFrame key for KID 77"
        );
        // Same KID, different base key: authentication fails.
        let mut r2 = ReceiverContext::new(CipherSuite::AesGcm128Sha256);
        r2.add_key(1, &[0x00; 16]).unwrap();
        let f = s.encrypt(1, None, b"", b"x").unwrap();
        assert_eq!(r2.decrypt(b"", &f), Err(Error::AuthenticationFailed));
        assert!(r.decrypt(b"", &f).is_ok());
        assert_eq!(s.add_key(1, &[1; 16]), Err(Error::DuplicateKid(1)));
    }

    #[test]
    fn ctr_overflow_exhausts_the_kid() {
        let (mut s, r) = pair(CipherSuite::AesGcm256Sha512, 5);
        let f = s.encrypt(5, Some(u64::MAX - 1), b"", b"a").unwrap();
        assert_eq!(r.decrypt(b"", &f).unwrap().1, u64::MAX - 1);
        assert_eq!(s.next_ctr(5), Ok(u64::MAX));
        let f = s.encrypt(5, None, b"", b"b").unwrap();
        let header = Header::new(5, u64::MAX).encode();
        assert_eq!(f[..header.len()], header[..]);
        assert_eq!(r.decrypt(b"", &f).unwrap(), (5, u64::MAX, b"b".to_vec()));
        assert_eq!(s.next_ctr(5), Err(Error::CounterExhausted(5)));
        assert_eq!(
            s.encrypt(5, None, b"", b"c"),
            Err(Error::CounterExhausted(5))
        );
        assert_eq!(
            s.encrypt(5, Some(u64::MAX), b"", b"c"),
            Err(Error::CounterExhausted(5))
        );
        // A fresh KID still works.
        s.add_key(6, &[1; 16]).unwrap();
        assert!(s.encrypt(6, None, b"", b"c").is_ok());
    }

    #[test]
    fn explicit_ctr_never_goes_backwards() {
        let (mut s, _) = pair(CipherSuite::AesGcm128Sha256, 3);
        s.encrypt(3, Some(10), b"", b"").unwrap();
        assert_eq!(s.next_ctr(3), Ok(11));
        assert_eq!(
            s.encrypt(3, Some(10), b"", b""),
            Err(Error::CounterReused {
                kid: 3,
                ctr: 10,
                next: 11
            })
        );
        assert!(s.encrypt(3, Some(11), b"", b"").is_ok());
        assert_eq!(s.next_ctr(3), Ok(12));
    }

    #[test]
    fn debug_never_prints_keys() {
        let (s, r) = pair(CipherSuite::AesGcm128Sha256, 1);
        let m = KeyMaterial::derive(CipherSuite::AesGcm128Sha256, 1, &[0x5a; 16]);
        let key_hex: String = m.key().iter().map(|b| format!("{b:02x}")).collect();
        for dbg in [format!("{s:?}"), format!("{r:?}")] {
            assert!(!dbg.contains(&key_hex), "{dbg}");
            assert!(!dbg.contains("90"), "{dbg}"); // 0x5a as decimal
        }
    }
}
