//! The answering half of [`Bus::request`](super::Bus::request).

/// Put this in a request message; the target shard calls [`Reply::send`] once.
///
/// It wraps a flume `bounded(1)` sender, so it is `Send` whenever `R` is, and answering
/// never blocks: the single slot is reserved for this one reply.
pub struct Reply<R> {
    pub(super) tx: flume::Sender<R>,
}

impl<R> Reply<R> {
    /// Answers the request. If the requester already gave up (timeout) the value is
    /// dropped silently: there is nobody left to tell.
    pub fn send(self, value: R) {
        let _ = self.tx.try_send(value);
    }

    /// Whether the requester is still waiting; lets a handler skip work nobody will read.
    pub fn is_wanted(&self) -> bool {
        !self.tx.is_disconnected()
    }
}

impl<R> std::fmt::Debug for Reply<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("wanted", &self.is_wanted())
            .finish()
    }
}
