//! Xray's `NewAEAD(ctx, key)`: AES-256-GCM or ChaCha20-Poly1305 keyed by
//! BLAKE3 `derive_key(ctx, key)`, with an implicit 12-byte big-endian counter
//! nonce that is incremented *before* each use (the first nonce is `0…01`).
//! The server's hello uses the explicit all-`0xff` [`MAX_NONCE`] once, which
//! leaves the counter untouched.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, CHACHA20_POLY1305};
use zeroize::Zeroize;

use super::blake3;

/// AEAD tag length, for both ciphers.
pub const TAG_LEN: usize = 16;

/// A sealed 2-byte length: 2 + tag.
pub const SEALED_LEN_LEN: usize = 2 + TAG_LEN;

/// The explicit nonce of the server hello's first block.
pub const MAX_NONCE: [u8; 12] = [0xff; 12];

/// Which AEAD carries the session. The client picks (Xray: AES-GCM when the
/// CPU has AES instructions); the server detects it on the first sealed block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cipher {
    Aes256Gcm,
    ChaCha20Poly1305,
}

impl Cipher {
    /// The other one, for the server's fallback.
    pub fn other(self) -> Cipher {
        match self {
            Cipher::Aes256Gcm => Cipher::ChaCha20Poly1305,
            Cipher::ChaCha20Poly1305 => Cipher::Aes256Gcm,
        }
    }
}

/// A failed open: wrong key, tampered bytes or a too-short input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenError;

/// One direction's AEAD with its counter nonce.
pub struct Aead {
    key: LessSafeKey,
    nonce: [u8; 12],
}

impl std::fmt::Debug for Aead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is never printed; the counter is not secret.
        f.debug_struct("Aead")
            .field("cipher", self.key.algorithm())
            .field("nonce", &self.nonce)
            .finish()
    }
}

impl Aead {
    /// `NewAEAD(ctx, key)`: the AEAD key is BLAKE3 `derive_key(ctx, key)`,
    /// so the binary context (an IV, a public key…) binds the direction.
    pub fn new(ctx: &[u8], key: &[u8], cipher: Cipher) -> Aead {
        let mut k = blake3::derive_key(ctx, key);
        let alg = match cipher {
            Cipher::Aes256Gcm => &AES_256_GCM,
            Cipher::ChaCha20Poly1305 => &CHACHA20_POLY1305,
        };
        let unbound = UnboundKey::new(alg, &k).expect("32-byte key fits both ciphers");
        k.zeroize();
        Aead {
            key: LessSafeKey::new(unbound),
            nonce: [0; 12],
        }
    }

    /// True when the *stored* counter is all-`0xff`: the next implicit use
    /// wraps to zero, and Xray then re-keys the record layer (see `record`).
    pub fn counter_is_max(&self) -> bool {
        self.nonce == MAX_NONCE
    }

    #[cfg(test)]
    pub fn set_counter(&mut self, nonce: [u8; 12]) {
        self.nonce = nonce;
    }

    /// Advances the counter (big-endian, wrapping) and returns the new nonce.
    fn next_nonce(&mut self) -> [u8; 12] {
        for b in self.nonce.iter_mut().rev() {
            *b = b.wrapping_add(1);
            if *b != 0 {
                break;
            }
        }
        self.nonce
    }

    /// Seals `plaintext` with the next counter nonce and appends
    /// ciphertext ‖ tag to `out`.
    pub fn seal_append(&mut self, out: &mut Vec<u8>, plaintext: &[u8], aad: &[u8]) {
        let nonce = self.next_nonce();
        self.seal_append_with(nonce, out, plaintext, aad);
    }

    /// Seals with an explicit nonce; the counter is not touched (Go passes a
    /// non-nil nonce and `IncreaseNonce` is skipped).
    pub fn seal_append_with(
        &self,
        nonce: [u8; 12],
        out: &mut Vec<u8>,
        plaintext: &[u8],
        aad: &[u8],
    ) {
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[start..],
            )
            .expect("ring seals any length we produce (≤ 64 KiB)");
        out.extend_from_slice(tag.as_ref());
    }

    /// Opens `sealed` (ciphertext ‖ tag) in place with the next counter
    /// nonce and returns the plaintext. The counter advances even on failure,
    /// as in Go; a failure ends the connection anyway.
    pub fn open_in_place<'b>(
        &mut self,
        sealed: &'b mut [u8],
        aad: &[u8],
    ) -> Result<&'b mut [u8], OpenError> {
        let nonce = self.next_nonce();
        self.open_in_place_with(nonce, sealed, aad)
    }

    /// Opens with an explicit nonce, leaving the counter alone.
    pub fn open_in_place_with<'b>(
        &self,
        nonce: [u8; 12],
        sealed: &'b mut [u8],
        aad: &[u8],
    ) -> Result<&'b mut [u8], OpenError> {
        if sealed.len() < TAG_LEN {
            return Err(OpenError);
        }
        self.key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), sealed)
            .map_err(|_| OpenError)
    }

    /// Seals a 2-byte big-endian length (18 bytes on the wire).
    pub fn seal_len(&mut self, out: &mut Vec<u8>, len: u16) {
        self.seal_append(out, &len.to_be_bytes(), &[]);
    }

    /// Opens an 18-byte sealed length.
    pub fn open_len(&mut self, sealed: &[u8; SEALED_LEN_LEN]) -> Result<u16, OpenError> {
        let mut buf = *sealed;
        let plain = self.open_in_place(&mut buf, &[])?;
        Ok(u16::from_be_bytes([plain[0], plain[1]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_is_incremented_before_use() {
        // A sealer and an opener built alike agree on nonce 1, 2, …; opening
        // the first message with an explicit nonce 0…01 proves the start.
        let mut a = Aead::new(b"ctx", b"key", Cipher::Aes256Gcm);
        let mut out = Vec::new();
        a.seal_append(&mut out, b"hello", b"");
        let b = Aead::new(b"ctx", b"key", Cipher::Aes256Gcm);
        let mut one = [0u8; 12];
        one[11] = 1;
        let mut copy = out.clone();
        assert_eq!(b.open_in_place_with(one, &mut copy, b"").unwrap(), b"hello");
        let mut zero = out.clone();
        assert!(b.open_in_place_with([0; 12], &mut zero, b"").is_err());
    }

    #[test]
    fn counter_carries_and_wraps() {
        let mut a = Aead::new(b"c", b"k", Cipher::ChaCha20Poly1305);
        a.set_counter([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff]);
        assert_eq!(a.next_nonce(), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        a.set_counter(MAX_NONCE);
        assert!(a.counter_is_max());
        assert_eq!(a.next_nonce(), [0; 12]);
    }

    #[test]
    fn explicit_max_nonce_leaves_counter() {
        let mut a = Aead::new(b"iv", b"nfs", Cipher::Aes256Gcm);
        let mut b = Aead::new(b"iv", b"nfs", Cipher::Aes256Gcm);
        let mut out = Vec::new();
        a.seal_append_with(MAX_NONCE, &mut out, b"server keys", b"");
        a.seal_len(&mut out, 1234);
        let (first, second) = out.split_at_mut(11 + TAG_LEN);
        assert_eq!(
            b.open_in_place_with(MAX_NONCE, first, b"").unwrap(),
            b"server keys"
        );
        let second: [u8; SEALED_LEN_LEN] = second.try_into().unwrap();
        assert_eq!(b.open_len(&second).unwrap(), 1234);
    }

    #[test]
    fn sealed_length_is_18_bytes_and_tamper_fails() {
        let mut a = Aead::new(b"x", b"y", Cipher::Aes256Gcm);
        let mut out = Vec::new();
        a.seal_len(&mut out, 32);
        assert_eq!(out.len(), SEALED_LEN_LEN);
        for i in 0..out.len() {
            let mut b = Aead::new(b"x", b"y", Cipher::Aes256Gcm);
            let mut bad: [u8; 18] = out.clone().try_into().unwrap();
            bad[i] ^= 0x40;
            assert_eq!(b.open_len(&bad), Err(OpenError));
        }
    }

    #[test]
    fn ciphers_and_contexts_do_not_cross() {
        let mut a = Aead::new(b"ctx", b"key", Cipher::Aes256Gcm);
        let mut out = Vec::new();
        a.seal_len(&mut out, 7);
        let out: [u8; 18] = out.try_into().unwrap();
        let mut chacha = Aead::new(b"ctx", b"key", Cipher::ChaCha20Poly1305);
        assert!(chacha.open_len(&out).is_err());
        let mut other_ctx = Aead::new(b"ctx2", b"key", Cipher::Aes256Gcm);
        assert!(other_ctx.open_len(&out).is_err());
        let mut short = [0u8; 3];
        assert!(Aead::new(b"c", b"k", Cipher::Aes256Gcm)
            .open_in_place(&mut short, b"")
            .is_err());
    }
}
