//! REALITY (XTLS), sans-IO: the pieces both ends of the tunnel need, with no
//! sockets (TUNNEL.md §2, §5).
//!
//! - [`hello`]: the raw ClientHello, its session_id offset and X25519 shares.
//! - [`auth`]: the auth block, HKDF auth key, session_id seal/open, ECDH.
//! - [`policy`]: the server's accept rules and one reject reason per rule.
//! - [`cert`]: the 178-byte temporary certificate and its HMAC check.
//! - [`signer`]: the Ed25519 key a stock rustls server signs with.
//! - [`verifier`]: the rustls client check of that certificate.
//!
//! Server flow: [`RealityHello::from_records`] on the buffered first bytes →
//! [`ServerPolicy::authenticate`] → on success feed the unchanged bytes to a
//! rustls server presenting [`Ed25519SigningKey::temp_certified_key`]; on
//! any [`RealityReject`] splice the bytes to `dest`.

pub mod auth;
pub mod cert;
pub mod client;
pub mod hello;
pub mod policy;
pub mod server;
pub mod signer;
pub mod verifier;

#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod test_hello;

pub use auth::{
    auth_key, client_shared, open_session_id, parse_short_id, seal_session_id, server_shared,
    AuthBlock, ShortId, ShortIdError,
};
pub use cert::{temp_cert_der, verify_temp_cert, TEMP_CERT_LEN};
pub use hello::{Extracted, RealityHello, RECORD_SESSION_ID_OFFSET, SESSION_ID_OFFSET};
pub use policy::{Authenticated, RealityReject, ServerPolicy};
pub use signer::Ed25519SigningKey;
pub use verifier::TempCertVerifier;
