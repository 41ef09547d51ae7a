//! Waiting for a shard's connections to finish during a drain.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use shards::ConnTracker;

fn on_shard<F: Future<Output = ()> + 'static>(test: impl FnOnce() -> F + Send + 'static) {
    glommio::LocalExecutorBuilder::default()
        .io_memory(64 << 10)
        .spawn(test)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn idle_tracker_returns_true_even_past_the_deadline() {
    on_shard(|| async {
        let tracker = ConnTracker::new();
        assert_eq!(tracker.active(), 0);
        assert!(tracker.wait_idle(Instant::now()).await);
    });
}

#[test]
fn connections_that_finish_before_the_deadline() {
    on_shard(|| async {
        let tracker = ConnTracker::new();
        let guards: Vec<_> = (0..3).map(|_| tracker.enter()).collect();
        assert_eq!(tracker.active(), 3);
        let mut tasks = Vec::new();
        for (i, guard) in guards.into_iter().enumerate() {
            tasks.push(glommio::spawn_local(async move {
                glommio::timer::sleep(Duration::from_millis(i as u64)).await;
                drop(guard);
            }));
        }
        let far = Instant::now() + Duration::from_secs(3600);
        assert!(tracker.wait_idle(far).await);
        assert_eq!(tracker.active(), 0);
        for task in tasks {
            task.await;
        }
    });
}

#[test]
fn stragglers_make_wait_idle_return_false_at_the_deadline() {
    on_shard(|| async {
        let tracker = ConnTracker::new();
        let finishes = tracker.enter();
        let straggler = tracker.enter();
        drop(finishes);
        let soon = Instant::now() + Duration::from_millis(10);
        assert!(!tracker.wait_idle(soon).await);
        assert_eq!(tracker.active(), 1);
        // After the deadline the caller drops stragglers, and the tracker is idle again.
        drop(straggler);
        assert!(tracker.wait_idle(soon).await);
    });
}
