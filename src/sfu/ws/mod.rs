//! WebSocket (RFC 6455), sans-IO: the server side of the opening handshake
//! ([`handshake`]) and the framing ([`frame`]). No extensions (no
//! permessage-deflate: signalling messages are small, and compression of
//! attacker-influenced text next to secrets is a risk we do not need).

pub mod frame;
pub mod handshake;

pub use frame::{
    encode_client_frame, encode_close, encode_ping, encode_pong, encode_text, Decoder, Frame,
    Opcode, WsError,
};
pub use handshake::{
    accept_key, check_upgrade, switching_protocols, token_from_headers, Upgrade, UpgradeError,
    SUBPROTOCOL,
};
