//! Metrics and log redaction.

pub mod redact;
