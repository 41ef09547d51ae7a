//! RFC 9605 §4.5 cipher suites and their constants.

use crate::error::{Error, Result};

/// An SFrame cipher suite (IANA "SFrame Cipher Suites" registry, ids 1-5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CipherSuite {
    /// 1: AES-128-CTR with HMAC-SHA256, 80-bit tag.
    AesCtr128HmacSha256_80,
    /// 2: AES-128-CTR with HMAC-SHA256, 64-bit tag.
    AesCtr128HmacSha256_64,
    /// 3: AES-128-CTR with HMAC-SHA256, 32-bit tag.
    AesCtr128HmacSha256_32,
    /// 4: AES-128-GCM, HKDF-SHA256 (the oxpulse clients' default).
    AesGcm128Sha256,
    /// 5: AES-256-GCM, HKDF-SHA512.
    AesGcm256Sha512,
}

impl CipherSuite {
    /// All suites this crate implements, in id order.
    pub const ALL: [CipherSuite; 5] = [
        CipherSuite::AesCtr128HmacSha256_80,
        CipherSuite::AesCtr128HmacSha256_64,
        CipherSuite::AesCtr128HmacSha256_32,
        CipherSuite::AesGcm128Sha256,
        CipherSuite::AesGcm256Sha512,
    ];

    /// Looks a suite up by its IANA id.
    pub fn from_id(id: u16) -> Result<Self> {
        match id {
            1 => Ok(Self::AesCtr128HmacSha256_80),
            2 => Ok(Self::AesCtr128HmacSha256_64),
            3 => Ok(Self::AesCtr128HmacSha256_32),
            4 => Ok(Self::AesGcm128Sha256),
            5 => Ok(Self::AesGcm256Sha512),
            other => Err(Error::UnsupportedSuite(other)),
        }
    }

    /// The IANA id.
    pub const fn id(self) -> u16 {
        match self {
            Self::AesCtr128HmacSha256_80 => 1,
            Self::AesCtr128HmacSha256_64 => 2,
            Self::AesCtr128HmacSha256_32 => 3,
            Self::AesGcm128Sha256 => 4,
            Self::AesGcm256Sha512 => 5,
        }
    }

    /// Nk: the AEAD key length in bytes (for CTR suites: Nka + Nh).
    pub const fn nk(self) -> usize {
        match self {
            Self::AesCtr128HmacSha256_80
            | Self::AesCtr128HmacSha256_64
            | Self::AesCtr128HmacSha256_32 => 48,
            Self::AesGcm128Sha256 => 16,
            Self::AesGcm256Sha512 => 32,
        }
    }

    /// Nn: the nonce length in bytes (12 for every suite).
    pub const fn nn(self) -> usize {
        NONCE_LEN
    }

    /// Nt: the authentication tag length in bytes.
    pub const fn nt(self) -> usize {
        match self {
            Self::AesCtr128HmacSha256_80 => 10,
            Self::AesCtr128HmacSha256_64 => 8,
            Self::AesCtr128HmacSha256_32 => 4,
            Self::AesGcm128Sha256 | Self::AesGcm256Sha512 => 16,
        }
    }

    /// Nh: the output length of the suite's hash in bytes.
    pub const fn nh(self) -> usize {
        match self {
            Self::AesGcm256Sha512 => 64,
            _ => 32,
        }
    }

    /// Nka: the AES key length inside a CTR-HMAC suite's key, `None` for GCM.
    pub const fn nka(self) -> Option<usize> {
        if self.is_ctr_hmac() {
            Some(16)
        } else {
            None
        }
    }

    /// Whether this is one of the compound AES-CTR + HMAC suites (1-3).
    pub const fn is_ctr_hmac(self) -> bool {
        matches!(
            self,
            Self::AesCtr128HmacSha256_80
                | Self::AesCtr128HmacSha256_64
                | Self::AesCtr128HmacSha256_32
        )
    }

    pub(crate) fn hkdf(self) -> ring::hkdf::Algorithm {
        match self {
            Self::AesGcm256Sha512 => ring::hkdf::HKDF_SHA512,
            _ => ring::hkdf::HKDF_SHA256,
        }
    }
}

impl TryFrom<u16> for CipherSuite {
    type Error = Error;
    fn try_from(id: u16) -> Result<Self> {
        Self::from_id(id)
    }
}

/// Nn, the same for every suite.
pub const NONCE_LEN: usize = 12;

/// The largest Nh of any implemented suite.
pub(crate) const MAX_HASH_LEN: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_constants_match_rfc_table() {
        let table = [
            (1, 48, 10, 32),
            (2, 48, 8, 32),
            (3, 48, 4, 32),
            (4, 16, 16, 32),
            (5, 32, 16, 64),
        ];
        for (id, nk, nt, nh) in table {
            let s = CipherSuite::from_id(id).unwrap();
            assert_eq!(s.id(), id);
            assert_eq!((s.nk(), s.nn(), s.nt(), s.nh()), (nk, 12, nt, nh));
            assert!(s.nh() <= MAX_HASH_LEN);
        }
        for id in [0, 6, 7, 8, 0xffff] {
            assert_eq!(CipherSuite::from_id(id), Err(Error::UnsupportedSuite(id)));
        }
    }
}
