//! Why a cross-shard message was not delivered. The undelivered message comes back, so the
//! caller decides whether to retry, drop or answer locally.

use std::fmt;

/// A failed bus operation; `M` is the message handed back (or `()` for requests).
///
/// `Debug` and `Display` never print the message, so `M` needs neither trait.
pub enum BusError<M> {
    /// The target's inbox was full; the message was not queued and the target's drop counter
    /// was incremented.
    Full(M),
    /// The target shard has stopped (its inbox was dropped).
    Disconnected(M),
    /// The inbox stayed full for the whole wait (`send_to_within`), or no reply arrived in
    /// time (`request`). Counted as a drop when the message itself was not queued.
    Timeout(M),
    /// `request` only: the target dropped the [`Reply`](super::Reply) without answering.
    NoReply,
    /// The shard index is not below [`Bus::shards`](super::Bus::shards).
    NoSuchShard(M),
}

impl<M> BusError<M> {
    /// The undelivered message, if this error carries one.
    pub fn into_inner(self) -> Option<M> {
        match self {
            BusError::Full(m)
            | BusError::Disconnected(m)
            | BusError::Timeout(m)
            | BusError::NoSuchShard(m) => Some(m),
            BusError::NoReply => None,
        }
    }

    /// The same error without its payload.
    pub fn discard(self) -> BusError<()> {
        match self {
            BusError::Full(_) => BusError::Full(()),
            BusError::Disconnected(_) => BusError::Disconnected(()),
            BusError::Timeout(_) => BusError::Timeout(()),
            BusError::NoReply => BusError::NoReply,
            BusError::NoSuchShard(_) => BusError::NoSuchShard(()),
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            BusError::Full(_) => "target shard's inbox is full",
            BusError::Disconnected(_) => "target shard has stopped",
            BusError::Timeout(_) => "timed out waiting for the target shard",
            BusError::NoReply => "target shard dropped the request without replying",
            BusError::NoSuchShard(_) => "no shard with that index",
        }
    }
}

impl<M> fmt::Debug for BusError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            BusError::Full(_) => "Full",
            BusError::Disconnected(_) => "Disconnected",
            BusError::Timeout(_) => "Timeout",
            BusError::NoReply => "NoReply",
            BusError::NoSuchShard(_) => "NoSuchShard",
        };
        f.write_str(name)
    }
}

impl<M> fmt::Display for BusError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

impl<M> std::error::Error for BusError<M> {}
