//! Typed configuration: the TOML schema, loading with every problem reported at once,
//! validation, secrets from private files or the environment, and the embedded dev
//! default that lets `edge` run with no file at all. See `docs/CONFIG.md`.

mod files;
mod keys;
mod load;
mod names;
mod policy;
mod problem;
mod redacted;
mod schema;
mod secret;
mod shape;
mod suggest;
pub mod tunnel;
mod validate;

#[cfg(test)]
mod tests;

pub use load::{dev_default, load_file, parse_str};
pub use policy::CoverPolicy;
pub use problem::{ConfigErrors, ConfigProblem};
pub use schema::{
    AdminConfig, CertConfig, Config, ForwardConfig, FrontConfig, FrontLimits, LogConfig, LogFormat,
    NodeConfig, RuntimeConfig, SessionConfig, SfuConfig, ShutdownConfig, TunnelClientConfig,
    TunnelConfig, TunnelTransport, XhttpClientConfig,
};
pub use secret::{check_secret_file_mode, load_secret, Secret, MIN_SECRET_BYTES};
