//! The probe policy setting of the front.
//!
//! Config has its own enum rather than reusing `front::probe::Policy` so the file format
//! does not change when the front's internals do; the server maps one to the other.

use serde::{Deserialize, Serialize};

/// How eagerly the front treats a connection as a probe and shows it the cover site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CoverPolicy {
    /// Only a valid session cookie or invite reaches the app; everything else sees the cover site.
    Strict,
    /// Also lets through clients that look like the app by heuristics.
    Heuristic,
}
