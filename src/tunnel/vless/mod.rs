//! Sans-IO VLESS codec: the request and response headers, the length-prefixed
//! UDP body and the server's user check (reference: TUNNEL.md §1).
//!
//! Nothing here touches a socket or a clock. Decoders take the bytes received
//! so far and answer [`Decoded::Incomplete`] until a verdict is possible, so a
//! driver can parse straight from its read buffer and hand `buf[consumed..]`
//! to the payload. Every declared length is checked against the buffer before
//! use; a header never needs more than [`MAX_REQUEST_LEN`] bytes.

mod addons;
mod address;
mod auth;
mod cursor;
mod error;
mod request;
mod response;
mod udp;

#[cfg(test)]
mod testgen;
#[cfg(test)]
mod tests;

pub use address::{Address, Target};
pub use auth::authorize;
pub use error::VlessError;
pub use request::{Command, Request, MAX_REQUEST_LEN};
pub use response::{decode_response, encode_response};
pub use udp::{UdpDeframer, UdpFramer, MAX_UDP_FRAME, MAX_UDP_PAYLOAD};

/// The only protocol version Xray speaks (and checks) in both headers.
const VERSION: u8 = 0x00;

/// Outcome of a decoder on the bytes received so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded<T> {
    /// The header ended after `consumed` bytes; the rest of the buffer is
    /// payload.
    Complete { value: T, consumed: usize },
    /// Read more: no verdict is possible with fewer than `need_at_least` bytes
    /// in total (always more than were given, never more than a valid header
    /// can take).
    Incomplete { need_at_least: usize },
}
