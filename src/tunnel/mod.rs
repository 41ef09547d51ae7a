//! The tunnel to the core: VLESS over REALITY, raw or inside XHTTP (h2), with
//! ML-KEM-768 in TLS. Sans-IO cores (`reality`, `vless`, `pq`, `sni`, `pool`,
//! the XHTTP parsers) sit beside their glommio drivers (`*_driver`, `link`,
//! `xhttp::client`, `xhttp_server::driver`).

pub mod client_driver;
pub mod forward_driver;
pub mod link;
pub mod pool;
pub mod pq;
pub mod reality;
pub mod server_driver;
pub mod settings;
pub mod sni;
pub mod splice;
pub mod vless;
pub mod vless_stream;
pub mod vlessenc;
pub mod xhttp;
pub mod xhttp_server;
