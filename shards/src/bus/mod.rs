//! Cross-shard messages: the only way shards talk to each other.
//!
//! One bounded flume channel per shard. Flume is used rather than glommio's `shared_channel`
//! because its senders are `Clone + Send` without a per-pair `connect().await` handshake, so
//! a [`Bus`] can be built before the shards start and copied anywhere; and its wakers work
//! across executors (glommio queues foreign wake-ups on the target's notifier).
//!
//! Traffic on the bus is registration and rotation events, never per packet or per request,
//! so flume's lower pipelined throughput than `shared_channel` does not matter (see
//! reference/RUNTIME.md §2 c). What matters is that a slow or dead shard cannot stall the
//! others: sends never block, and every message that could not be queued is counted.

mod error;
mod inbox;
mod reply;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

pub use error::BusError;
pub use inbox::Inbox;
pub use reply::Reply;

/// Longest pause between retries in [`Bus::send_to_within`].
const MAX_RETRY_PAUSE: Duration = Duration::from_millis(5);
/// First pause between retries in [`Bus::send_to_within`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_micros(50);

/// Creates a bus for `shards` shards whose inboxes each hold up to `capacity` messages.
/// Inbox `i` of the returned vector belongs to shard `i`.
///
/// # Panics
/// If `shards == 0` or `capacity == 0` (a zero-capacity flume channel is a rendezvous, which
/// would turn every `try_send` into a failure unless the target is already waiting).
pub fn bus<M: Send + 'static>(shards: usize, capacity: usize) -> (Bus<M>, Vec<Inbox<M>>) {
    assert!(shards > 0, "bus: need at least one shard");
    assert!(capacity > 0, "bus: capacity must be at least 1");
    let (senders, inboxes): (Vec<_>, Vec<_>) = (0..shards)
        .map(|index| {
            let (tx, rx) = flume::bounded(capacity);
            (tx, Inbox { index, rx })
        })
        .unzip();
    let bus = Bus {
        senders: senders.into(),
        dropped: (0..shards).map(|_| AtomicU64::new(0)).collect(),
    };
    (bus, inboxes)
}

/// A handle that can send to every shard. Cheap to clone, `Send + Sync`.
pub struct Bus<M> {
    senders: Arc<[flume::Sender<M>]>,
    /// Messages for shard `i` that were refused because its inbox was full.
    dropped: Arc<[AtomicU64]>,
}

impl<M> Clone for Bus<M> {
    fn clone(&self) -> Self {
        Bus {
            senders: Arc::clone(&self.senders),
            dropped: Arc::clone(&self.dropped),
        }
    }
}

impl<M> std::fmt::Debug for Bus<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("shards", &self.senders.len())
            .finish()
    }
}

/// What [`Bus::broadcast`] achieved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BroadcastOutcome {
    /// Shards whose inbox accepted the message.
    pub delivered: usize,
    /// Shards whose inbox was full (each also counted in [`Bus::dropped`]).
    pub full: usize,
    /// Shards that have stopped.
    pub disconnected: usize,
}

impl BroadcastOutcome {
    /// Whether every addressed shard got the message.
    pub fn all_delivered(&self) -> bool {
        self.full == 0 && self.disconnected == 0
    }
}

impl<M: Send + 'static> Bus<M> {
    /// Number of shards (inboxes) on this bus.
    pub fn shards(&self) -> usize {
        self.senders.len()
    }

    /// Queues `msg` for `shard` without waiting. A full inbox returns the message in
    /// [`BusError::Full`] and increments that shard's drop counter.
    pub fn send_to(&self, shard: usize, msg: M) -> Result<(), BusError<M>> {
        let Some(tx) = self.senders.get(shard) else {
            return Err(BusError::NoSuchShard(msg));
        };
        match tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(flume::TrySendError::Full(msg)) => {
                self.count_drop(shard);
                Err(BusError::Full(msg))
            }
            Err(flume::TrySendError::Disconnected(msg)) => Err(BusError::Disconnected(msg)),
        }
    }

    /// Sends a clone of `msg` to every shard, the sender's own included (a shard applies a
    /// rotation event to itself the same way as everyone else). Never waits.
    pub fn broadcast(&self, msg: M) -> BroadcastOutcome
    where
        M: Clone,
    {
        self.broadcast_where(msg, |_| true)
    }

    /// Like [`Bus::broadcast`] but skips shard `except` (typically the sender).
    pub fn broadcast_except(&self, except: usize, msg: M) -> BroadcastOutcome
    where
        M: Clone,
    {
        self.broadcast_where(msg, |shard| shard != except)
    }

    fn broadcast_where(&self, msg: M, include: impl Fn(usize) -> bool) -> BroadcastOutcome
    where
        M: Clone,
    {
        let mut outcome = BroadcastOutcome::default();
        for shard in (0..self.shards()).filter(|&s| include(s)) {
            match self.send_to(shard, msg.clone()) {
                Ok(()) => outcome.delivered += 1,
                Err(BusError::Full(_)) => outcome.full += 1,
                Err(_) => outcome.disconnected += 1,
            }
        }
        outcome
    }

    /// Like [`Bus::send_to`], but while the inbox is full keeps retrying for up to `wait`,
    /// then gives up with [`BusError::Timeout`] (counted as a drop). Must run on a glommio
    /// executor (it sleeps on glommio timers).
    ///
    /// Retries are used instead of flume's `send_async` because cancelling that future on
    /// timeout would destroy the message instead of handing it back. The pause between
    /// retries doubles from 50 µs to 5 ms; the bus carries rare events, so this costs little.
    pub async fn send_to_within(
        &self,
        shard: usize,
        msg: M,
        wait: Duration,
    ) -> Result<(), BusError<M>> {
        let Some(tx) = self.senders.get(shard) else {
            return Err(BusError::NoSuchShard(msg));
        };
        let deadline = Instant::now().checked_add(wait);
        let mut pause = FIRST_RETRY_PAUSE;
        let mut msg = msg;
        loop {
            match tx.try_send(msg) {
                Ok(()) => return Ok(()),
                Err(flume::TrySendError::Disconnected(m)) => return Err(BusError::Disconnected(m)),
                Err(flume::TrySendError::Full(m)) => msg = m,
            }
            let nap = match deadline {
                None => pause,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        self.count_drop(shard);
                        return Err(BusError::Timeout(msg));
                    }
                    pause.min(left)
                }
            };
            glommio::timer::sleep(nap).await;
            pause = (pause * 2).min(MAX_RETRY_PAUSE);
        }
    }

    /// Sends a request built by `make` around a [`Reply`] and waits for the answer, all
    /// within `wait`. Must run on a glommio executor.
    ///
    /// Errors: the inbox stayed full or no answer came in time → [`BusError::Timeout`];
    /// target stopped → [`BusError::Disconnected`]; target dropped the `Reply` →
    /// [`BusError::NoReply`]. A late answer is discarded by [`Reply::send`].
    pub async fn request<R: Send + 'static>(
        &self,
        shard: usize,
        make: impl FnOnce(Reply<R>) -> M,
        wait: Duration,
    ) -> Result<R, BusError<()>> {
        let deadline = Instant::now().checked_add(wait);
        let (tx, rx) = flume::bounded(1);
        self.send_to_within(shard, make(Reply { tx }), wait)
            .await
            .map_err(BusError::discard)?;
        let answer = async { rx.recv_async().await.map_err(|_| BusError::NoReply) };
        let expiry = async {
            match deadline {
                Some(deadline) => {
                    glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await
                }
                None => std::future::pending::<()>().await,
            }
            Err(BusError::Timeout(()))
        };
        futures_lite::future::or(answer, expiry).await
    }

    /// Messages for `shard` refused so far because its inbox was full (0 for unknown shards).
    pub fn dropped(&self, shard: usize) -> u64 {
        self.dropped
            .get(shard)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Messages currently waiting in `shard`'s inbox (0 for unknown shards).
    pub fn queued(&self, shard: usize) -> usize {
        self.senders.get(shard).map_or(0, |tx| tx.len())
    }

    fn count_drop(&self, shard: usize) {
        self.dropped[shard].fetch_add(1, Ordering::Relaxed);
        tracing::debug!(shard, "bus: inbox full, message dropped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_inbox_returns_the_message_and_counts() {
        let (bus, inboxes) = bus::<u32>(2, 1);
        bus.send_to(1, 10).unwrap();
        match bus.send_to(1, 11) {
            Err(BusError::Full(11)) => {}
            other => panic!("expected Full(11), got {other:?}"),
        }
        assert_eq!(bus.dropped(1), 1);
        assert_eq!(bus.dropped(0), 0);
        assert_eq!(bus.queued(1), 1);
        assert_eq!(inboxes[1].try_recv(), Some(10));
    }

    #[test]
    fn dropped_inbox_is_disconnected_and_unknown_shard_is_rejected() {
        let (bus, mut inboxes) = bus::<&str>(2, 4);
        drop(inboxes.pop());
        assert!(matches!(
            bus.send_to(1, "x"),
            Err(BusError::Disconnected("x"))
        ));
        assert!(matches!(
            bus.send_to(2, "y"),
            Err(BusError::NoSuchShard("y"))
        ));
        assert_eq!(bus.dropped(1), 0, "disconnects are not drops");
    }

    #[test]
    fn broadcast_counts_each_outcome() {
        let (bus, mut inboxes) = bus::<u8>(3, 1);
        bus.send_to(1, 0).unwrap(); // shard 1 now full
        drop(inboxes.pop()); // shard 2 gone
        let outcome = bus.broadcast(7);
        assert_eq!(
            outcome,
            BroadcastOutcome {
                delivered: 1,
                full: 1,
                disconnected: 1
            }
        );
        assert!(!outcome.all_delivered());
        assert_eq!(inboxes[0].try_recv(), Some(7));
        let outcome = bus.broadcast_except(1, 8);
        assert_eq!(outcome.delivered, 1);
        assert_eq!(outcome.full, 0);
    }

    #[test]
    fn bus_and_reply_are_send() {
        fn send<T: Send>() {}
        fn sync<T: Sync>() {}
        send::<Bus<String>>();
        sync::<Bus<String>>();
        send::<Reply<Vec<u8>>>();
        send::<Inbox<String>>();
    }
}
