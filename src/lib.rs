//! oxpulse-edge: the partner edge server of the OxPulse mesh.
//!
//! Each job lives in its own module; protocol logic is sans-IO and the glommio
//! loops sit in `driver.rs` files. See `docs/ARCHITECTURE.md`.

pub mod config;
pub mod front;
pub mod telemetry;
