//! Typed configuration (owned by the config work item).
