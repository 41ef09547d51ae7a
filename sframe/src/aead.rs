//! The per-suite AEAD: ring's AES-GCM for suites 4-5, and RFC 9605 §4.5.1's
//! AES-CTR + truncated HMAC-SHA256 composition for suites 1-3.

use aes::cipher::{KeyIvInit, StreamCipher};
use ring::{aead, hmac};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::suite::{CipherSuite, NONCE_LEN};

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// AES-CTR counts 16-byte blocks in the low 32 bits after the nonce; more
/// blocks than that would run into another nonce's key stream.
const MAX_CTR_PLAINTEXT: u64 = (1 << 32) * 16;

pub(crate) enum Aead {
    Gcm(Box<aead::LessSafeKey>),
    CtrHmac {
        enc_key: Zeroizing<[u8; 16]>,
        auth_key: hmac::Key,
        tag_len: usize,
    },
}

impl Aead {
    /// `key` must be exactly `suite.nk()` bytes (guaranteed by derivation).
    pub(crate) fn new(suite: CipherSuite, key: &[u8]) -> Self {
        debug_assert_eq!(key.len(), suite.nk());
        match suite {
            CipherSuite::AesGcm128Sha256 | CipherSuite::AesGcm256Sha512 => {
                let alg = if suite == CipherSuite::AesGcm128Sha256 {
                    &aead::AES_128_GCM
                } else {
                    &aead::AES_256_GCM
                };
                let unbound = aead::UnboundKey::new(alg, key).expect("Nk matches the AEAD");
                Aead::Gcm(Box::new(aead::LessSafeKey::new(unbound)))
            }
            _ => {
                let mut enc_key = Zeroizing::new([0u8; 16]);
                enc_key.copy_from_slice(&key[..16]);
                Aead::CtrHmac {
                    enc_key,
                    auth_key: hmac::Key::new(hmac::HMAC_SHA256, &key[16..]),
                    tag_len: suite.nt(),
                }
            }
        }
    }

    /// Encrypts `pt` and appends ciphertext and tag to `out`.
    pub(crate) fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        pt: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let start = out.len();
        out.extend_from_slice(pt);
        match self {
            Aead::Gcm(key) => {
                let tag = key
                    .seal_in_place_separate_tag(
                        aead::Nonce::assume_unique_for_key(*nonce),
                        aead::Aad::from(aad),
                        &mut out[start..],
                    )
                    .map_err(|_| {
                        out.truncate(start);
                        Error::FrameTooLarge(pt.len())
                    })?;
                out.extend_from_slice(tag.as_ref());
            }
            Aead::CtrHmac {
                enc_key,
                auth_key,
                tag_len,
            } => {
                if pt.len() as u64 > MAX_CTR_PLAINTEXT {
                    out.truncate(start);
                    return Err(Error::FrameTooLarge(pt.len()));
                }
                ctr_apply(enc_key, nonce, &mut out[start..]);
                let tag = ctr_tag(auth_key, *tag_len, nonce, aad, &out[start..]);
                out.extend_from_slice(&tag.as_ref()[..*tag_len]);
            }
        }
        Ok(())
    }

    /// Verifies and decrypts `ct` (ciphertext followed by the tag).
    pub(crate) fn open(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], ct: &[u8]) -> Result<Vec<u8>> {
        match self {
            Aead::Gcm(key) => {
                let tag_len = key.algorithm().tag_len();
                if ct.len() < tag_len {
                    return Err(Error::TruncatedCiphertext {
                        len: ct.len(),
                        tag_len,
                    });
                }
                let mut buf = ct.to_vec();
                let pt_len = key
                    .open_in_place(
                        aead::Nonce::assume_unique_for_key(*nonce),
                        aead::Aad::from(aad),
                        &mut buf,
                    )
                    .map_err(|_| Error::AuthenticationFailed)?
                    .len();
                buf.truncate(pt_len);
                Ok(buf)
            }
            Aead::CtrHmac {
                enc_key,
                auth_key,
                tag_len,
            } => {
                if ct.len() < *tag_len {
                    return Err(Error::TruncatedCiphertext {
                        len: ct.len(),
                        tag_len: *tag_len,
                    });
                }
                let (inner, tag) = ct.split_at(ct.len() - tag_len);
                let expected = ctr_tag(auth_key, *tag_len, nonce, aad, inner);
                if !constant_time_eq(&expected.as_ref()[..*tag_len], tag) {
                    return Err(Error::AuthenticationFailed);
                }
                let mut buf = inner.to_vec();
                ctr_apply(enc_key, nonce, &mut buf);
                Ok(buf)
            }
        }
    }
}

/// AES-128-CTR with the initial counter block `nonce || 0x00000000`.
fn ctr_apply(enc_key: &[u8; 16], nonce: &[u8; NONCE_LEN], buf: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..NONCE_LEN].copy_from_slice(nonce);
    let mut cipher = Aes128Ctr::new(enc_key.into(), &iv.into());
    cipher.apply_keystream(buf);
}

/// HMAC over `len(aad) || len(ct) || Nt` (8-byte BE each), nonce, aad, ct.
fn ctr_tag(
    auth_key: &hmac::Key,
    tag_len: usize,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ct: &[u8],
) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(auth_key);
    ctx.update(&(aad.len() as u64).to_be_bytes());
    ctx.update(&(ct.len() as u64).to_be_bytes());
    ctx.update(&(tag_len as u64).to_be_bytes());
    ctx.update(nonce);
    ctx.update(aad);
    ctx.update(ct);
    ctx.sign()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct CtrVector {
        cipher_suite: u16,
        key: String,
        enc_key: String,
        auth_key: String,
        nonce: String,
        aad: String,
        pt: String,
        ct: String,
    }

    #[derive(serde::Deserialize)]
    struct Fixture {
        aes_ctr_hmac: Vec<CtrVector>,
    }

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// RFC 9605 `aes_ctr_hmac` vectors: the compound AEAD on its own.
    #[test]
    fn aes_ctr_hmac_vectors() {
        let fixture: Fixture =
            serde_json::from_str(include_str!("../tests/fixtures/test-vectors.json")).unwrap();
        assert_eq!(fixture.aes_ctr_hmac.len(), 3);
        for v in &fixture.aes_ctr_hmac {
            let suite = CipherSuite::from_id(v.cipher_suite).unwrap();
            let key = h(&v.key);
            assert_eq!(key[..16], h(&v.enc_key)[..]);
            assert_eq!(key[16..], h(&v.auth_key)[..]);
            let nonce: [u8; NONCE_LEN] = h(&v.nonce).try_into().unwrap();
            let aead = Aead::new(suite, &key);
            let mut out = Vec::new();
            aead.seal(&nonce, &h(&v.aad), &h(&v.pt), &mut out).unwrap();
            assert_eq!(hex::encode(&out), v.ct, "suite {}", v.cipher_suite);
            assert_eq!(aead.open(&nonce, &h(&v.aad), &out).unwrap(), h(&v.pt));
            let mut bad = out.clone();
            *bad.last_mut().unwrap() ^= 1;
            assert_eq!(
                aead.open(&nonce, &h(&v.aad), &bad),
                Err(Error::AuthenticationFailed)
            );
        }
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
