//! RFC 9605 Secure Frame (SFrame) for oxpulse *clients*: the load generator
//! and tests. The edge's forwarding path never links this crate; it only
//! relays SFrame ciphertexts.
//!
//! Implemented: the header codec (minimal encoding enforced on decode),
//! key/salt derivation, cipher suites 1-5 (AES-CTR+HMAC-SHA256 with 80/64/32-bit
//! tags, AES-128-GCM, AES-256-GCM), per-KID encryption/decryption contexts, and
//! the §5.1 sender-key ratchet.
//!
//! ```
//! use sframe::{CipherSuite, ReceiverContext, SenderContext};
//!
//! let base_key = [0x11u8; 16];
//! let mut tx = SenderContext::new(CipherSuite::AesGcm128Sha256);
//! tx.add_key(7, &base_key).unwrap();
//! let mut rx = ReceiverContext::new(CipherSuite::AesGcm128Sha256);
//! rx.add_key(7, &base_key).unwrap();
//!
//! let frame = tx.encrypt(7, None, b"metadata", b"media frame").unwrap();
//! let (kid, ctr, plaintext) = rx.decrypt(b"metadata", &frame).unwrap();
//! assert_eq!((kid, ctr, plaintext.as_slice()), (7, 0, &b"media frame"[..]));
//! ```
//!
//! Note: the oxpulse browser clients (`sframe-ratchet`) always send a
//! 4-byte KID and an extended CTR, which is non-minimal; this crate's
//! [`Header::decode`] rejects such headers, as RFC 9605 requires.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod aead;
pub mod context;
pub mod error;
pub mod header;
pub mod key;
pub mod ratchet;
pub mod suite;

pub use context::{Decrypted, ReceiverContext, SenderContext};
pub use error::{Error, Field, Result};
pub use header::{Header, MAX_HEADER_LEN};
pub use key::KeyMaterial;
pub use ratchet::{RatchetReceiver, RatchetSender};
pub use suite::CipherSuite;
