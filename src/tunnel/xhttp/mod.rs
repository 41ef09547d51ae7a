//! XHTTP (Xray's SplitHTTP): VLESS carried in HTTP requests over h2 over REALITY
//! (TUNNEL.md §3). Sans-IO pieces: [`mode`], [`path`] (URIs, session ids, padding),
//! [`packet_up`] (uplink chunking); the glommio client driver is [`client`].

pub mod client;
mod client_stream;
pub mod mode;
pub mod packet_up;
pub mod path;
mod uplink;

pub use client::{connect_xhttp, TlsSummary, XhttpClientOptions, XhttpConnection, XhttpError};
pub use client_stream::XhttpStream;
pub use mode::XhttpMode;
pub use packet_up::PacketUpLimits;
