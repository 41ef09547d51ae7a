//! The tunnel to the core: VLESS over REALITY (and XHTTP), with ML-KEM-768.
//!
//! Work in progress (issue "Tunnel to the core"): the sans-IO pieces land first,
//! each with its own tests; nothing here is wired into the running node yet.

pub mod client_driver;
pub mod forward_driver;
pub mod pq;
pub mod reality;
pub mod server_driver;
pub mod settings;
pub mod sni;
pub mod splice;
pub mod vless;
pub mod vlessenc;
