//! The HTTPS front: ClientHello sniffing, TLS, HTTP, probe policy and cover site.
//!
//! Sans-IO parts: `client_hello` (parser), `route` (what a connection is),
//! `probe` (app or cover), `cover` (static site), `http` (request to response),
//! `errors` (nginx-shaped answers), `tls` (certificates). The glommio loop is
//! `driver`; `io` holds its stream wrappers.

pub mod client_hello;
pub mod cover;
pub mod driver;
pub mod errors;
pub mod http;
pub mod io;
pub mod probe;
pub mod route;
pub mod tls;
pub mod tls_stream;
