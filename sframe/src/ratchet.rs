//! RFC 9605 §5.1 sender keys with ratcheting.
//!
//! A KID is `(key_generation << R) | (ratchet_step mod 2^R)`. Ratcheting
//! replaces the base key with
//! `HKDF-Expand(HKDF-Extract("", base_key), "SFrame 1.0 Ratchet", Nh)`.
//! Receivers advance when a frame carries a newer ratchet step, and only
//! once that frame has authenticated.

use std::collections::VecDeque;

use zeroize::Zeroizing;

use crate::context::{open_frame, seal_frame, Decrypted};
use crate::error::{Error, Result};
use crate::header::Header;
use crate::key::{expand, extract, KeyMaterial};
use crate::suite::{CipherSuite, MAX_HASH_LEN};

const RATCHET_LABEL: &[u8] = b"SFrame 1.0 Ratchet";

/// The next base key in the ratchet: Nh bytes of
/// `HKDF-Expand(HKDF-Extract("", base_key), "SFrame 1.0 Ratchet", Nh)`.
pub fn next_base_key(suite: CipherSuite, base_key: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(vec![0u8; suite.nh()]);
    debug_assert!(out.len() <= MAX_HASH_LEN);
    expand(&extract(suite, base_key), RATCHET_LABEL, &mut out);
    out
}

fn check_bits(r_bits: u8) -> Result<u64> {
    if (1..=63).contains(&r_bits) {
        Ok((1u64 << r_bits) - 1)
    } else {
        Err(Error::InvalidRatchetBits(r_bits))
    }
}

/// `(generation << R) | (step mod 2^R)`; R must be 1..=63 and the
/// generation must fit in 64 - R bits.
pub fn make_kid(generation: u64, step: u64, r_bits: u8) -> Result<u64> {
    let mask = check_bits(r_bits)?;
    if generation >> (64 - r_bits) != 0 {
        return Err(Error::GenerationTooLarge {
            generation,
            bits: 64 - r_bits,
        });
    }
    Ok((generation << r_bits) | (step & mask))
}

/// Splits a KID into `(generation, step mod 2^R)`.
pub fn split_kid(kid: u64, r_bits: u8) -> Result<(u64, u64)> {
    let mask = check_bits(r_bits)?;
    Ok((kid >> r_bits, kid & mask))
}

/// One sender's ratcheting encryption key.
pub struct RatchetSender {
    suite: CipherSuite,
    r_bits: u8,
    generation: u64,
    step: u64,
    base_key: Zeroizing<Vec<u8>>,
    material: KeyMaterial,
    next_ctr: Option<u64>,
}

impl RatchetSender {
    /// Starts at ratchet step 0 of `generation` with `base_key`.
    pub fn new(suite: CipherSuite, r_bits: u8, generation: u64, base_key: &[u8]) -> Result<Self> {
        let kid = make_kid(generation, 0, r_bits)?;
        Ok(Self {
            suite,
            r_bits,
            generation,
            step: 0,
            base_key: Zeroizing::new(base_key.to_vec()),
            material: KeyMaterial::derive(suite, kid, base_key),
            next_ctr: Some(0),
        })
    }

    /// The KID frames are currently sent with.
    pub fn kid(&self) -> u64 {
        (self.generation << self.r_bits) | (self.step & ((1u64 << self.r_bits) - 1))
    }

    /// The full (untruncated) ratchet step.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The base key of the current step, e.g. to hand to a joining receiver
    /// together with [`kid`](Self::kid). Secret.
    pub fn base_key(&self) -> &[u8] {
        &self.base_key
    }

    /// Ratchets the base key one step forward (forward secrecy) and returns
    /// the new KID. The CTR restarts at 0 under the new key.
    pub fn ratchet(&mut self) -> Result<u64> {
        self.step = self.step.checked_add(1).ok_or(Error::RatchetExhausted)?;
        self.base_key = next_base_key(self.suite, &self.base_key);
        let kid = self.kid();
        self.material = KeyMaterial::derive(self.suite, kid, &self.base_key);
        self.next_ctr = Some(0);
        Ok(kid)
    }

    /// Encrypts a frame under the current KID with the next CTR.
    pub fn encrypt(&mut self, metadata: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let kid = self.kid();
        let ctr = self.next_ctr.ok_or(Error::CounterExhausted(kid))?;
        let frame = seal_frame(&self.material, kid, ctr, metadata, plaintext)?;
        self.next_ctr = ctr.checked_add(1);
        Ok(frame)
    }
}

impl std::fmt::Debug for RatchetSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RatchetSender")
            .field("suite", &self.suite)
            .field("r_bits", &self.r_bits)
            .field("kid", &self.kid())
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

/// The receiving side of one sender's ratcheting key.
///
/// Keeps the current step's key plus up to `keep_old` earlier steps (for
/// reordered frames), all within one 2^R window so their KIDs differ. A frame
/// with any other step of the same generation (or one matching a kept old
/// step whose key fails to authenticate it) is taken as newer: the
/// receiver ratchets forward (at most `max_ahead` steps) and commits the new
/// step only if the frame authenticates.
pub struct RatchetReceiver {
    suite: CipherSuite,
    r_bits: u8,
    generation: u64,
    step: u64,
    base_key: Zeroizing<Vec<u8>>,
    current: KeyMaterial,
    old: VecDeque<(u64, KeyMaterial)>,
    max_ahead: u64,
    keep_old: usize,
}

impl RatchetReceiver {
    /// Default limit on steps ratcheted for one frame.
    pub const DEFAULT_MAX_AHEAD: u64 = 16;
    /// Default number of earlier steps kept for reordered frames.
    pub const DEFAULT_KEEP_OLD: usize = 4;

    /// Starts from the sender's current `kid` and its `base_key`.
    pub fn new(suite: CipherSuite, r_bits: u8, kid: u64, base_key: &[u8]) -> Result<Self> {
        let (generation, step) = split_kid(kid, r_bits)?;
        let mut r = Self {
            suite,
            r_bits,
            generation,
            step,
            base_key: Zeroizing::new(base_key.to_vec()),
            current: KeyMaterial::derive(suite, kid, base_key),
            old: VecDeque::new(),
            max_ahead: 0,
            keep_old: 0,
        };
        r.set_limits(Self::DEFAULT_MAX_AHEAD, Self::DEFAULT_KEEP_OLD);
        Ok(r)
    }

    /// Sets the look-ahead and retention limits, clamped to the 2^R window.
    pub fn set_limits(&mut self, max_ahead: u64, keep_old: usize) {
        let mask = self.mask();
        self.max_ahead = max_ahead.min(mask);
        self.keep_old = keep_old.min(usize::try_from(mask).unwrap_or(usize::MAX));
        self.prune();
    }

    fn mask(&self) -> u64 {
        (1u64 << self.r_bits) - 1
    }

    fn kid_for(&self, step: u64) -> u64 {
        (self.generation << self.r_bits) | (step & self.mask())
    }

    /// The KID of the newest step seen.
    pub fn kid(&self) -> u64 {
        self.kid_for(self.step)
    }

    /// The receiver's local count of the newest step (starts at the KID's step bits).
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Decrypts a frame from this sender, ratcheting forward when the frame
    /// carries a newer step.
    pub fn decrypt(&mut self, metadata: &[u8], frame: &[u8]) -> Result<Decrypted> {
        let (header, header_len) = Header::decode(frame)?;
        let (generation, low) = split_kid(header.kid, self.r_bits)?;
        if generation != self.generation {
            return Err(Error::UnknownKid(header.kid));
        }
        let mask = self.mask();
        let open = |m: &KeyMaterial| -> Result<Decrypted> {
            let pt = open_frame(m, header, header_len, metadata, frame)?;
            Ok((header.kid, header.ctr, pt))
        };
        if low == self.step & mask {
            return open(&self.current);
        }
        // A kept older step with these low bits is tried first; if it does not
        // authenticate, the frame may be from a newer step that wrapped the
        // R-bit field onto the same value, so fall through and try that.
        if let Some((_, m)) = self.old.iter().find(|(s, _)| s & mask == low) {
            match open(m) {
                Err(Error::AuthenticationFailed) => {}
                done => return done,
            }
        }
        let ahead = low.wrapping_sub(self.step) & mask;
        if ahead > self.max_ahead {
            return Err(Error::RatchetTooFar {
                ahead,
                limit: self.max_ahead,
            });
        }
        let new_step = self
            .step
            .checked_add(ahead)
            .ok_or(Error::RatchetExhausted)?;
        // Walk forward tentatively; commit only after the frame authenticates.
        let mut base = next_base_key(self.suite, &self.base_key);
        let mut skipped = Vec::new();
        for s in self.step + 1..new_step {
            if self.keep_old > 0 {
                skipped.push((s, KeyMaterial::derive(self.suite, self.kid_for(s), &base)));
            }
            base = next_base_key(self.suite, &base);
        }
        let material = KeyMaterial::derive(self.suite, header.kid, &base);
        let out = open(&material)?;
        let previous = std::mem::replace(&mut self.current, material);
        self.old.push_back((self.step, previous));
        self.old.extend(skipped);
        self.step = new_step;
        self.base_key = base;
        self.prune();
        Ok(out)
    }

    /// Drops old steps beyond `keep_old` or outside the 2^R window.
    fn prune(&mut self) {
        let mask = self.mask();
        let step = self.step;
        self.old.retain(|(s, _)| step - s <= mask && step != *s);
        while self.old.len() > self.keep_old {
            self.old.pop_front();
        }
    }
}

impl std::fmt::Debug for RatchetReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RatchetReceiver")
            .field("suite", &self.suite)
            .field("r_bits", &self.r_bits)
            .field("kid", &self.kid())
            .field("step", &self.step)
            .field(
                "old_steps",
                &self.old.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUITE: CipherSuite = CipherSuite::AesGcm128Sha256;

    #[test]
    fn kid_layout() {
        assert_eq!(make_kid(3, 5, 4), Ok(0x35));
        assert_eq!(make_kid(3, 0x15, 4), Ok(0x35));
        assert_eq!(split_kid(0x35, 4), Ok((3, 5)));
        assert_eq!(make_kid(1, 0, 63), Ok(1 << 63));
        assert_eq!(
            make_kid(2, 0, 63),
            Err(Error::GenerationTooLarge {
                generation: 2,
                bits: 1
            })
        );
        assert_eq!(make_kid(0, 0, 0), Err(Error::InvalidRatchetBits(0)));
        assert_eq!(split_kid(0, 64), Err(Error::InvalidRatchetBits(64)));
    }

    #[test]
    fn ratchet_step_matches_hkdf_definition() {
        // base_key[i+1] = HKDF-Expand(HKDF-Extract("", base_key[i]), "SFrame 1.0 Ratchet", Nh),
        // computed independently with HMAC (RFC 5869: T(1) = HMAC(PRK, info || 0x01), ...).
        use ring::hmac;
        for (suite, alg) in [
            (CipherSuite::AesGcm128Sha256, hmac::HMAC_SHA256),
            (CipherSuite::AesGcm256Sha512, hmac::HMAC_SHA512),
        ] {
            let base = [7u8; 16];
            let prk = hmac::sign(&hmac::Key::new(alg, &[]), &base);
            let mut info = RATCHET_LABEL.to_vec();
            info.push(1);
            let t1 = hmac::sign(&hmac::Key::new(alg, prk.as_ref()), &info);
            let next = next_base_key(suite, &base);
            assert_eq!(next.len(), suite.nh());
            assert_eq!(&next[..], t1.as_ref());
        }
    }

    #[test]
    fn sender_and_receiver_ratchet_together() {
        let base = [9u8; 32];
        let mut tx = RatchetSender::new(SUITE, 2, 5, &base).unwrap();
        let mut rx = RatchetReceiver::new(SUITE, 2, tx.kid(), &base).unwrap();
        assert_eq!(tx.kid(), 5 << 2);
        let f0 = tx.encrypt(b"", b"step0").unwrap();
        assert_eq!(rx.decrypt(b"", &f0).unwrap(), (20, 0, b"step0".to_vec()));

        // The ratcheted key is the HKDF ratchet of the old one.
        let expected = next_base_key(SUITE, &base);
        assert_eq!(tx.ratchet().unwrap(), 21);
        assert_eq!(tx.base_key(), &expected[..]);
        let f1 = tx.encrypt(b"", b"step1").unwrap();
        assert_eq!(Header::decode(&f1).unwrap().0, Header::new(21, 0));
        assert_eq!(rx.decrypt(b"", &f1).unwrap().2, b"step1");
        assert_eq!(rx.step(), 1);
        // Late frame from step 0 still decrypts from the kept key.
        assert_eq!(rx.decrypt(b"", &f0).unwrap().2, b"step0");

        // Skip three steps at once, wrapping the 2-bit step field (1 -> 4 = 0 mod 4).
        // Step 4's KID equals kept step 0's; step 0's key fails, so the
        // receiver tries the forward interpretation.
        tx.ratchet().unwrap();
        let f2 = tx.encrypt(b"", b"step2").unwrap();
        tx.ratchet().unwrap();
        tx.ratchet().unwrap();
        assert_eq!(tx.kid(), 20);
        let f4 = tx.encrypt(b"", b"step4").unwrap();
        assert_eq!(rx.decrypt(b"", &f4).unwrap().2, b"step4");
        assert_eq!(rx.step(), 4);
        // Reordered frame from a skipped step still decrypts.
        assert_eq!(rx.decrypt(b"", &f2).unwrap().2, b"step2");
        // Step 0 (same low bits as step 4) is no longer decryptable.
        assert!(rx.decrypt(b"", &f0).is_err());
    }

    #[test]
    fn forged_step_does_not_advance_the_receiver() {
        let base = [1u8; 16];
        let mut tx = RatchetSender::new(SUITE, 4, 0, &base).unwrap();
        let mut rx = RatchetReceiver::new(SUITE, 4, 0, &base).unwrap();
        let f = tx.encrypt(b"", b"x").unwrap();
        // Rewrite the KID to step 3: authentication fails, receiver stays put.
        let mut forged = Header::new(3, 0).encode();
        forged.extend_from_slice(&f[1..]);
        assert_eq!(rx.decrypt(b"", &forged), Err(Error::AuthenticationFailed));
        assert_eq!(rx.step(), 0);
        assert!(rx.decrypt(b"", &f).is_ok());
        // Other generation: unknown KID.
        let g = RatchetSender::new(SUITE, 4, 1, &base)
            .unwrap()
            .encrypt(b"", b"x")
            .unwrap();
        assert_eq!(rx.decrypt(b"", &g), Err(Error::UnknownKid(16)));
    }

    #[test]
    fn look_ahead_is_limited() {
        let base = [2u8; 16];
        let mut tx = RatchetSender::new(SUITE, 8, 0, &base).unwrap();
        let mut rx = RatchetReceiver::new(SUITE, 8, 0, &base).unwrap();
        rx.set_limits(3, 1);
        for _ in 0..4 {
            tx.ratchet().unwrap();
        }
        let f = tx.encrypt(b"", b"x").unwrap();
        assert_eq!(
            rx.decrypt(b"", &f),
            Err(Error::RatchetTooFar { ahead: 4, limit: 3 })
        );
        rx.set_limits(4, 1);
        assert!(rx.decrypt(b"", &f).is_ok());
    }

    #[test]
    fn debug_hides_keys() {
        let tx = RatchetSender::new(SUITE, 4, 0, &[0xab; 16]).unwrap();
        let rx = RatchetReceiver::new(SUITE, 4, 0, &[0xab; 16]).unwrap();
        for s in [format!("{tx:?}"), format!("{rx:?}")] {
            assert!(!s.contains("171") && !s.contains("ab, ab"), "{s}");
        }
    }
}
