//! Per-shard pool of connections to the core: reuse within limits, back-off
//! after failures, a health state for operators. [`state::Pool`] is the
//! sans-IO bookkeeping; the forward driver dials and reports to it.

pub mod limits;
pub mod state;

pub use limits::{Backoff, PoolLimits};
pub use state::{Checkout, ConnId, Health, Pool, Transition};
