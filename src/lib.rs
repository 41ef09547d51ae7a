//! oxpulse-edge: the partner edge server of the OxPulse mesh.
//!
//! Each job lives in its own module; protocol logic is sans-IO and the glommio
//! loops sit in `driver.rs` files. See `docs/ARCHITECTURE.md`.

pub mod admin;
pub mod cli;
pub mod config;
pub mod front;
pub mod server;
pub mod sfu;
pub mod telemetry;
pub mod tunnel;
