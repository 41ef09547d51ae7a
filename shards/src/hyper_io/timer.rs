//! `hyper::rt::Timer` on glommio, so hyper's `header_read_timeout` and keep-alive timers work.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use super::deadlines::{self, Alarm, Ticket};

/// hyper's timer. Sleeps are filed in the current shard's deadline table (see
/// `deadlines.rs` for why a glommio `Timer` cannot be used directly), so `sleep` and
/// `sleep_until` must be called on a glommio executor — which is where hyper calls them
/// when the connection future runs on a shard.
#[derive(Clone, Copy, Debug, Default)]
pub struct GlommioTimer;

impl hyper::rt::Timer for GlommioTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(GlommioSleep::after(duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(GlommioSleep::until(deadline))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<GlommioSleep>() {
            Some(mine) => mine.get_mut().reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// A `Send + Sync` sleep backed by the shard's deadline table. Create it on a shard; it
/// may be polled anywhere but only fires while that shard's executor runs.
#[derive(Debug)]
pub struct GlommioSleep {
    alarm: Arc<Alarm>,
    ticket: Ticket,
}

impl GlommioSleep {
    /// Sleeps until `deadline`.
    pub fn until(deadline: Instant) -> Self {
        let alarm = Arc::new(Alarm::default());
        let ticket = deadlines::file(deadline, Arc::clone(&alarm));
        GlommioSleep { alarm, ticket }
    }

    /// Sleeps for `duration` (saturating at a far-future deadline).
    pub fn after(duration: Duration) -> Self {
        let now = Instant::now();
        // ~30 years: beyond any timeout we use, and far from `Instant` overflow.
        let deadline = now
            .checked_add(duration)
            .unwrap_or(now + Duration::from_secs(1 << 30));
        Self::until(deadline)
    }

    /// When this sleep fires.
    pub fn deadline(&self) -> Instant {
        self.ticket.deadline()
    }

    /// Moves the deadline, re-arming a sleep that already fired.
    pub fn reset(&mut self, deadline: Instant) {
        // A fresh alarm, because the old one may have fired already; assigning drops the
        // old sleep, whose `Drop` withdraws its entry.
        *self = Self::until(deadline);
    }
}

impl Future for GlommioSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.alarm.poll(cx)
    }
}

impl hyper::rt::Sleep for GlommioSleep {}

impl Drop for GlommioSleep {
    fn drop(&mut self) {
        deadlines::withdraw(&self.ticket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Timer;

    fn on_executor(test: impl FnOnce() -> Pin<Box<dyn Future<Output = ()>>> + Send + 'static) {
        glommio::LocalExecutorBuilder::default()
            .io_memory(64 << 10)
            .spawn(test)
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn sleep_is_send_and_sync() {
        fn both<T: Send + Sync + Unpin>() {}
        both::<GlommioSleep>();
    }

    #[test]
    fn sleeps_fire_in_deadline_order() {
        on_executor(|| {
            Box::pin(async {
                let order = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
                let mut tasks = Vec::new();
                for (label, ms) in [(3, 30u64), (1, 10), (2, 20)] {
                    let order = order.clone();
                    let sleep = GlommioTimer.sleep(Duration::from_millis(ms));
                    tasks.push(glommio::spawn_local(async move {
                        sleep.await;
                        order.borrow_mut().push(label);
                    }));
                }
                for task in tasks {
                    task.await;
                }
                assert_eq!(*order.borrow(), vec![1, 2, 3]);
                assert_eq!(deadlines::pending_here(), 0);
            })
        });
    }

    #[test]
    fn dropping_or_resetting_withdraws_the_entry() {
        on_executor(|| {
            Box::pin(async {
                let far = Instant::now() + Duration::from_secs(3600);
                let sleep = GlommioSleep::until(far);
                assert_eq!(deadlines::pending_here(), 1);
                drop(sleep);
                assert_eq!(deadlines::pending_here(), 0);

                // hyper's reset path: a far deadline moved close must fire.
                let mut boxed = GlommioTimer.sleep_until(far);
                GlommioTimer.reset(&mut boxed, Instant::now() + Duration::from_millis(5));
                assert_eq!(deadlines::pending_here(), 1);
                boxed.await;
                assert_eq!(deadlines::pending_here(), 0);
            })
        });
    }

    #[test]
    fn a_past_deadline_fires_at_once_and_a_fired_sleep_can_rearm() {
        on_executor(|| {
            Box::pin(async {
                let mut sleep = GlommioSleep::until(Instant::now());
                (&mut sleep).await;
                sleep.reset(Instant::now() + Duration::from_millis(1));
                sleep.await;
            })
        });
    }
}
