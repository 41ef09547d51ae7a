//! Graceful shutdown: one process-wide drain switch that every shard can await.
//!
//! First SIGINT/SIGTERM (or [`Shutdown::trigger`]): drain. Shards stop accepting, finish
//! open connections until [`ShutdownHandle::deadline`], then their futures return and
//! `runtime::run` returns. A second signal exits at once (see `signals.rs`).
//!
//! The switch is an atomic flag plus a table of wakers. Shards park on it through ordinary
//! `std::task::Waker`s; glommio accepts wake-ups from foreign threads (it queues them on the
//! owning executor's notifier), so the signal thread can wake every shard directly.

mod conn_tracker;
mod signals;

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard, OnceLock,
    },
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

pub use conn_tracker::{ConnGuard, ConnTracker};

/// The process-wide drain switch. Clone it freely; all clones are the same switch.
#[derive(Clone, Debug)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

/// A shard's view of the switch: await the drain, read the deadline.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    drain_timeout: Duration,
    draining: AtomicBool,
    /// When the drain started; set once, before `draining` becomes true.
    started: OnceLock<Instant>,
    waiters: Mutex<Waiters>,
    signals_installed: AtomicBool,
}

/// Wakers of pending [`ShutdownHandle::draining`] futures, keyed so a dropped future can
/// remove its own entry (and not keep a dead task's waker alive).
#[derive(Debug, Default)]
struct Waiters {
    next_key: u64,
    wakers: HashMap<u64, Waker>,
}

impl Shutdown {
    /// A switch whose drain lasts at most `drain_timeout`.
    pub fn new(drain_timeout: Duration) -> Self {
        Shutdown {
            inner: Arc::new(Inner {
                drain_timeout,
                draining: AtomicBool::new(false),
                started: OnceLock::new(),
                waiters: Mutex::new(Waiters::default()),
                signals_installed: AtomicBool::new(false),
            }),
        }
    }

    /// Routes SIGINT and SIGTERM to this switch: the first one starts the drain, the second
    /// exits the process immediately with status 128 + signal number (130 for SIGINT, 143
    /// for SIGTERM), without waiting for connections. Calling it again does nothing.
    pub fn install_signal_handlers(&self) -> std::io::Result<()> {
        if self.inner.signals_installed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        signals::install(self.clone()).inspect_err(|_| {
            self.inner.signals_installed.store(false, Ordering::SeqCst);
        })
    }

    /// Starts the drain (idempotent). Wakes every shard waiting in `draining()`.
    pub fn trigger(&self) {
        self.inner.started.get_or_init(Instant::now);
        if self.inner.draining.swap(true, Ordering::SeqCst) {
            return;
        }
        // Take the wakers under the lock, wake them outside it: a waker may run arbitrary
        // code, and `draining()` polls take the same lock.
        let wakers = std::mem::take(&mut self.inner.lock_waiters().wakers);
        tracing::info!(
            timeout_ms = self.inner.drain_timeout.as_millis() as u64,
            "shutdown: draining"
        );
        for waker in wakers.into_values() {
            waker.wake();
        }
    }

    /// Whether the drain has started.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// How long the drain may last.
    pub fn drain_timeout(&self) -> Duration {
        self.inner.drain_timeout
    }

    /// A handle for one shard.
    pub fn handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl ShutdownHandle {
    /// Resolves when the drain starts, immediately if it already has.
    pub fn draining(&self) -> Draining<'_> {
        Draining {
            inner: &self.inner,
            key: None,
        }
    }

    /// Whether the drain has started.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// When open connections must be finished: drain start + drain timeout. `None` before
    /// the drain starts.
    pub fn deadline(&self) -> Option<Instant> {
        self.inner
            .started
            .get()
            .map(|start| *start + self.inner.drain_timeout)
    }
}

impl Inner {
    fn lock_waiters(&self) -> MutexGuard<'_, Waiters> {
        // A panic while holding this lock cannot leave the map inconsistent (every
        // operation is a single insert/remove/take), so a poisoned lock is still usable.
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Future returned by [`ShutdownHandle::draining`].
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Draining<'a> {
    inner: &'a Inner,
    key: Option<u64>,
}

impl Future for Draining<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.draining.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        let mut waiters = self.inner.lock_waiters();
        // Re-check under the lock: `trigger` sets the flag before taking the wakers under
        // this same lock, so either we see the flag now or our waker is taken and woken.
        if self.inner.draining.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(key) => key,
            None => {
                let key = waiters.next_key;
                waiters.next_key += 1;
                key
            }
        };
        waiters.wakers.insert(key, cx.waker().clone());
        drop(waiters);
        self.key = Some(key);
        Poll::Pending
    }
}

impl Drop for Draining<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.inner.lock_waiters().wakers.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future;

    #[test]
    fn trigger_sets_deadline_and_resolves_draining() {
        let shutdown = Shutdown::new(Duration::from_secs(3));
        let handle = shutdown.handle();
        assert!(!handle.is_draining());
        assert_eq!(handle.deadline(), None);
        let mut waiting = Box::pin(handle.draining());
        assert!(future::block_on(future::poll_once(&mut waiting)).is_none());
        shutdown.trigger();
        assert!(future::block_on(future::poll_once(&mut waiting)).is_some());
        let deadline = handle.deadline().unwrap();
        assert!(deadline > *shutdown.inner.started.get().unwrap());
        // Already draining: resolves at once, and a second trigger changes nothing.
        shutdown.trigger();
        assert_eq!(handle.deadline(), Some(deadline));
        future::block_on(handle.draining());
    }

    #[test]
    fn dropped_waiter_leaves_no_waker_behind() {
        let shutdown = Shutdown::new(Duration::from_secs(1));
        let handle = shutdown.handle();
        {
            let mut waiting = Box::pin(handle.draining());
            assert!(future::block_on(future::poll_once(&mut waiting)).is_none());
            assert_eq!(shutdown.inner.lock_waiters().wakers.len(), 1);
        }
        assert!(shutdown.inner.lock_waiters().wakers.is_empty());
    }

    #[test]
    fn handles_are_send_and_sync() {
        fn both<T: Send + Sync>() {}
        both::<Shutdown>();
        both::<ShutdownHandle>();
    }
}
