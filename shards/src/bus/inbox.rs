//! The receiving end of one shard's bus queue.

/// Messages addressed to one shard. Exactly one exists per shard; it is `Send` so it can be
/// moved into the shard thread, but it is meant to be drained by that shard alone.
///
/// Dropping it makes every later `send_to` this shard fail with `Disconnected`, which is
/// how other shards learn it has stopped.
pub struct Inbox<M> {
    pub(super) index: usize,
    pub(super) rx: flume::Receiver<M>,
}

impl<M> Inbox<M> {
    /// The next message. Returns `None` only once every [`Bus`](super::Bus) clone is gone;
    /// while shards run they hold the bus, so a shard loop should also watch its
    /// `ShutdownHandle::draining()` to know when to stop.
    pub async fn recv(&self) -> Option<M> {
        self.rx.recv_async().await.ok()
    }

    /// A queued message, if any, without waiting.
    pub fn try_recv(&self) -> Option<M> {
        self.rx.try_recv().ok()
    }

    /// Messages currently queued.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// The shard this inbox belongs to.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl<M> std::fmt::Debug for Inbox<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("index", &self.index)
            .field("queued", &self.rx.len())
            .finish()
    }
}
