//! A per-shard table of deadlines driven by one glommio timer.
//!
//! hyper requires its sleeps to be `Send + Sync`, but a glommio `Timer` holds an `Rc` into
//! its executor's reactor and is neither. So a sleep holds only an `Arc<Alarm>` (an atomic
//! flag plus a waker) and a key into this table; one driver task per shard owns the table
//! and a single glommio `Timer` armed for the earliest deadline. No unsafe, no extra thread.
//!
//! A sleep dropped on its own shard removes its entry at once (hyper drops and resets
//! header-read timers for every request, so entries must not pile up until they expire).
//! Dropped on another thread, it cannot reach the shard-local table; the entry then stays
//! until its deadline and fires into an alarm nobody watches.

use std::{
    cell::{Cell, RefCell},
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    rc::Rc,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll, Waker},
    time::Instant,
};

/// The shared, thread-safe half of one sleep.
#[derive(Debug, Default)]
pub(super) struct Alarm {
    fired: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Alarm {
    fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        let waker = self.lock_waker().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    pub(super) fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.fired.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        *self.lock_waker() = Some(cx.waker().clone());
        // Re-check: `fire` may have run between the first check and storing the waker.
        if self.fired.load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn lock_waker(&self) -> std::sync::MutexGuard<'_, Option<Waker>> {
        // Only `Option` take/replace happens under this lock, so poisoning cannot leave it
        // half-updated.
        self.waker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where a sleep is filed: which shard's table, under which key.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket {
    table: u64,
    key: (Instant, u64),
}

impl Ticket {
    pub(super) fn deadline(&self) -> Instant {
        self.key.0
    }
}

thread_local! {
    static TABLE: RefCell<Option<Rc<Table>>> = const { RefCell::new(None) };
}

/// Distinguishes tables so a ticket is only ever honoured by the table that issued it.
static NEXT_TABLE_ID: AtomicU64 = AtomicU64::new(1);

struct Table {
    id: u64,
    /// glommio executor that runs this table's driver (executor ids are process-unique).
    executor: usize,
    entries: RefCell<BTreeMap<(Instant, u64), Arc<Alarm>>>,
    next_seq: Cell<u64>,
    driver: RefCell<Option<Waker>>,
}

/// Files `alarm` to fire at `deadline` on the current shard. Must run on a glommio executor.
pub(super) fn file(deadline: Instant, alarm: Arc<Alarm>) -> Ticket {
    let table = current_table();
    let seq = table.next_seq.get();
    table.next_seq.set(seq + 1);
    let key = (deadline, seq);
    let becomes_first = {
        let mut entries = table.entries.borrow_mut();
        entries.insert(key, alarm);
        entries.keys().next() == Some(&key)
    };
    if becomes_first {
        // The driver's timer is armed for a later deadline (or none): make it re-arm.
        let driver = table.driver.borrow_mut().take();
        if let Some(driver) = driver {
            driver.wake();
        }
    }
    Ticket {
        table: table.id,
        key,
    }
}

/// Removes a ticket's entry if it belongs to this thread's table; otherwise does nothing.
pub(super) fn withdraw(ticket: &Ticket) {
    // `try_with`: a sleep may be dropped while thread-locals are being destroyed.
    let _ = TABLE.try_with(|slot| {
        if let Some(table) = slot.borrow().as_ref() {
            if table.id == ticket.table {
                table.entries.borrow_mut().remove(&ticket.key);
            }
        }
    });
}

/// Entries filed on this thread's table and not yet fired or withdrawn.
#[cfg(test)]
pub(super) fn pending_here() -> usize {
    TABLE.with(|slot| {
        slot.borrow()
            .as_ref()
            .map_or(0, |t| t.entries.borrow().len())
    })
}

/// This shard's table, created (with its driver task) on first use. A thread that runs a
/// new executor after an old one finished gets a new table: the old driver died with it.
fn current_table() -> Rc<Table> {
    let executor = glommio::executor().id();
    TABLE.with(|slot| {
        let mut slot = slot.borrow_mut();
        if let Some(table) = slot.as_ref().filter(|t| t.executor == executor) {
            return Rc::clone(table);
        }
        let table = Rc::new(Table {
            id: NEXT_TABLE_ID.fetch_add(1, Ordering::Relaxed),
            executor,
            entries: RefCell::new(BTreeMap::new()),
            next_seq: Cell::new(0),
            driver: RefCell::new(None),
        });
        let driver = Driver {
            table: Rc::clone(&table),
            armed: None,
        };
        drop(glommio::spawn_local(driver).detach());
        *slot = Some(Rc::clone(&table));
        table
    })
}

/// Fires due alarms and keeps one glommio timer armed for the earliest remaining deadline.
/// Never completes; it is dropped with its executor.
struct Driver {
    table: Rc<Table>,
    armed: Option<(Instant, glommio::timer::Timer)>,
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let now = Instant::now();
            let due = {
                let mut entries = self.table.entries.borrow_mut();
                let later = entries.split_off(&(now, u64::MAX));
                std::mem::replace(&mut *entries, later)
            };
            // Fire outside the borrow: waking may (on this thread) lead to new filings.
            for alarm in due.into_values() {
                alarm.fire();
            }
            *self.table.driver.borrow_mut() = Some(cx.waker().clone());
            let Some(next) = self.table.entries.borrow().keys().next().map(|k| k.0) else {
                self.armed = None;
                return Poll::Pending;
            };
            if self.armed.as_ref().map(|(at, _)| *at) != Some(next) {
                let timer = glommio::timer::Timer::new(next.saturating_duration_since(now));
                self.armed = Some((next, timer));
            }
            let (_, timer) = self.armed.as_mut().expect("armed just above");
            match Pin::new(timer).poll(cx) {
                Poll::Ready(_) => self.armed = None,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
