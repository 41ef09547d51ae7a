//! Errors returned by every fallible SFrame operation.

use thiserror::Error;

/// Which header field an error refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The key identifier.
    Kid,
    /// The frame counter.
    Ctr,
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Field::Kid => "KID",
            Field::Ctr => "CTR",
        })
    }
}

/// Everything that can go wrong while encoding, decoding, encrypting or decrypting.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The cipher-suite id is not one of the suites this crate implements (1-5).
    #[error("unsupported SFrame cipher suite {0}")]
    UnsupportedSuite(u16),
    /// The input ends before the header does.
    #[error("truncated SFrame header: need {needed} bytes, have {have}")]
    TruncatedHeader {
        /// Bytes the config byte announces (config byte included).
        needed: usize,
        /// Bytes available.
        have: usize,
    },
    /// A KID or CTR is not in its minimal encoding (RFC 9605 §4.3 MUST).
    #[error("non-minimal {0} encoding in SFrame header")]
    NonMinimal(Field),
    /// No key is known for this KID.
    #[error("no SFrame key for KID {0}")]
    UnknownKid(u64),
    /// A key for this KID is already installed.
    #[error("an SFrame key for KID {0} is already installed")]
    DuplicateKid(u64),
    /// The ciphertext after the header is shorter than the authentication tag.
    #[error("SFrame ciphertext too short: {len} bytes after the header, tag is {tag_len}")]
    TruncatedCiphertext {
        /// Bytes after the header.
        len: usize,
        /// The suite's tag length Nt.
        tag_len: usize,
    },
    /// The tag did not verify: the frame, header, metadata or key is wrong.
    #[error("SFrame authentication failed")]
    AuthenticationFailed,
    /// Every CTR value for this KID has been used; install a new key.
    #[error("SFrame CTR space exhausted for KID {0}")]
    CounterExhausted(u64),
    /// An explicit CTR below the KID's counter would reuse a nonce.
    #[error("SFrame CTR {ctr} for KID {kid} was already used (next is {next})")]
    CounterReused {
        /// The KID.
        kid: u64,
        /// The CTR asked for.
        ctr: u64,
        /// The lowest CTR still unused.
        next: u64,
    },
    /// The plaintext is too large for the suite's counter mode.
    #[error("SFrame plaintext of {0} bytes is too large")]
    FrameTooLarge(usize),
    /// The ratchet-step width R must be 1..=63 bits.
    #[error("ratchet step bits R = {0} is out of range 1..=63")]
    InvalidRatchetBits(u8),
    /// The key generation does not fit in the 64 - R high bits of the KID.
    #[error("key generation {generation} does not fit in {bits} bits")]
    GenerationTooLarge {
        /// The requested generation.
        generation: u64,
        /// Bits available (64 - R).
        bits: u8,
    },
    /// The frame's ratchet step is further ahead than the receiver will ratchet.
    #[error("ratchet step too far ahead: {ahead} steps, limit {limit}")]
    RatchetTooFar {
        /// How many steps the frame would need.
        ahead: u64,
        /// The receiver's limit.
        limit: u64,
    },
    /// The sender's ratchet step counter ran out.
    #[error("ratchet step counter exhausted")]
    RatchetExhausted,
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
