//! VLESS Encryption `mlkem768x25519plus` (Xray ≥ v25.8.29,
//! `proxy/vless/encryption`), `native` mode, 1-RTT and 0-RTT tickets.
//!
//! A layer under VLESS: the client authenticates the server by its static
//! X25519 or ML-KEM-768 key ("nfs" key), both sides run a fresh hybrid
//! ML-KEM-768 + X25519 exchange ("pfs" key), and the VLESS request then
//! travels in TLS-1.3-looking records (`17 03 03 len`).
//!
//! Sans-IO cores: [`client`] and [`server`] turn fixed-size pieces of input
//! into hellos and a [`record::Session`]; [`record`] seals and opens data
//! records; [`tickets`] holds both sides' ticket caches. [`stream`] is the
//! thin async adapter over any `futures_lite` byte stream.

pub mod aead;
pub mod blake3;
pub mod client;
mod kex;
pub mod keys;
pub mod padding;
mod random;
pub mod record;
pub mod server;
pub mod stream;
pub mod tickets;

#[cfg(test)]
mod tests;

pub use aead::Cipher;
pub use keys::{ClientKeys, KeyPair, ServerKeys, TicketLifetime};
pub use padding::{PaddingSpec, DEFAULT_PADDING};
pub use stream::{client_handshake, server_handshake, VlessEncStream};
pub use tickets::{ClientTickets, ServerTickets};

use std::io;

/// Everything that can go wrong, from config to records.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("VLESS Encryption config: {0}")]
    Config(String),
    #[error("VLESS Encryption: the OS random number generator failed")]
    Random,
    /// The peer sent something that does not parse, open or validate. A
    /// server should then behave like a server of random bytes: stop
    /// answering and drain or close.
    #[error("VLESS Encryption handshake: {0}")]
    Handshake(&'static str),
    #[error("VLESS Encryption: 0-RTT is not allowed (the server's ticket lifetime is 0s)")]
    ZeroRttNotAllowed,
    /// Server side: the 0-RTT ticket is unknown or expired; noise was sent.
    #[error("VLESS Encryption: unknown or expired 0-RTT ticket")]
    UnknownTicket,
    #[error("VLESS Encryption: 0-RTT replay detected")]
    Replay,
    /// Client side: the server did not know our ticket. The ticket is
    /// dropped; the next connection does a 1-RTT handshake.
    #[error("new handshake needed")]
    NewHandshakeNeeded,
    #[error("VLESS Encryption record: {0}")]
    Record(&'static str),
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match e {
            Error::Config(_) => io::ErrorKind::InvalidInput,
            Error::Random => io::ErrorKind::Other,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

/// Is this I/O error the client's "new handshake needed"?
pub fn is_new_handshake_needed(e: &io::Error) -> bool {
    matches!(
        e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()),
        Some(Error::NewHandshakeNeeded)
    )
}
