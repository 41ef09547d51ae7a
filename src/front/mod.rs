//! The HTTPS front: ClientHello sniffing, TLS, HTTP, probe policy and cover site.

pub mod client_hello;
pub mod cover;
pub mod probe;
