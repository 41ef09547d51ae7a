//! The tunnel to the core: VLESS over REALITY (and XHTTP), with ML-KEM-768.
//!
//! Work in progress (issue "Tunnel to the core"): the sans-IO pieces land first,
//! each with its own tests; only the SNI rotation is wired into the node so far.

pub mod client_driver;
pub mod pq;
pub mod reality;
pub mod sni;
pub mod vless;
