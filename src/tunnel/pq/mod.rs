//! Post-quantum TLS key exchange: X25519MLKEM768 (NamedGroup 0x11EC,
//! draft-ietf-tls-ecdhe-mlkem) for rustls' ring provider, which lacks it.
//!
//! - [`X25519MLKEM768`]: fresh keys per handshake, client and server; what
//!   [`provider_with_pq`] offers for edge↔edge TLS.
//! - [`ReusableKeys`]: the same key shares on every `start()`, for the REALITY
//!   client's two-pass ClientHello, plus the X25519 ECDH its auth needs.
//!
//! Shares and secrets put ML-KEM first and X25519 last ([`layout`]).

pub mod layout;
mod mlkem;

mod hybrid;
mod reusable;

#[cfg(test)]
mod handshake_tests;

pub use hybrid::{X25519MlKem768, X25519MLKEM768};
pub use mlkem::SEED_LEN as MLKEM_SEED_LEN;
pub use reusable::{ReusableHybridGroup, ReusableKeys, ReusableX25519Group};

use rustls::crypto::ring::kx_group;
use rustls::crypto::CryptoProvider;

/// ring's default provider offering X25519MLKEM768 first, then X25519 and
/// secp256r1. With the hybrid first and X25519 also listed, a client sends
/// both shares on one X25519 key, so a peer without 0x11EC still completes in
/// one round trip.
pub fn provider_with_pq() -> CryptoProvider {
    CryptoProvider {
        kx_groups: vec![X25519MLKEM768, kx_group::X25519, kx_group::SECP256R1],
        ..rustls::crypto::ring::default_provider()
    }
}
