//! Counting a shard's open connections so the drain knows when it is done.
//!
//! Shard-local on purpose (`Rc`, `Cell`): connections never leave their shard while counted,
//! so no atomics are needed.

use std::{
    cell::{Cell, RefCell},
    future::Future,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, Waker},
    time::Instant,
};

/// Counts live connections on one shard. Clones share the count.
#[derive(Clone, Debug, Default)]
pub struct ConnTracker {
    inner: Rc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    active: Cell<usize>,
    /// Tasks waiting in `wait_idle`, woken when `active` drops to zero.
    idle_waiters: RefCell<Vec<Waker>>,
}

/// Proof that one connection is open; dropping it (however the connection ends, panics
/// included) marks the connection closed.
#[derive(Debug)]
#[must_use = "the connection counts as open only while the guard lives"]
pub struct ConnGuard {
    inner: Rc<Inner>,
}

impl ConnTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a new connection; keep the guard alive for as long as it is open.
    pub fn enter(&self) -> ConnGuard {
        self.inner.active.set(self.inner.active.get() + 1);
        ConnGuard {
            inner: Rc::clone(&self.inner),
        }
    }

    /// Connections currently open.
    pub fn active(&self) -> usize {
        self.inner.active.get()
    }

    /// Waits until no connection is open or `until` passes. Returns `true` if the shard went
    /// idle in time, `false` if stragglers remained at the deadline (the caller then drops
    /// them). Must run on a glommio executor (it uses a glommio timer).
    pub async fn wait_idle(&self, until: Instant) -> bool {
        let idle = async {
            Idle { inner: &self.inner }.await;
            true
        };
        let expired = async {
            glommio::timer::sleep(until.saturating_duration_since(Instant::now())).await;
            false
        };
        // `or` polls `idle` first, so a shard that is idle already wins even at a past
        // deadline.
        futures_lite::future::or(idle, expired).await
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let left = self.inner.active.get() - 1;
        self.inner.active.set(left);
        if left == 0 {
            // Take the list first so a woken waiter that re-registers does not hit a
            // RefCell borrow still held here.
            let waiters = std::mem::take(&mut *self.inner.idle_waiters.borrow_mut());
            for waker in waiters {
                waker.wake();
            }
        }
    }
}

struct Idle<'a> {
    inner: &'a Inner,
}

impl Future for Idle<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.active.get() == 0 {
            return Poll::Ready(());
        }
        let mut waiters = self.inner.idle_waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
