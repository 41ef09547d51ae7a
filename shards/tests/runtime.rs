//! Starting, draining and supervising real shards.

mod common;

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use common::{options, run_two, run_two_with, two_cpus};
use shards::{run_on, RuntimeError, RuntimeOptions, Shutdown};

#[test]
fn trigger_drains_every_shard_and_run_returns_ok() {
    let started = Arc::new(AtomicUsize::new(0));
    let drained = Arc::new(Mutex::new(Vec::new()));
    let (s, d) = (started.clone(), drained.clone());
    run_two::<(), _, _>(move |shard, shutdown| {
        let (started, drained) = (s.clone(), d.clone());
        async move {
            // The last shard to start pulls the switch, so the drain reaches running shards.
            if started.fetch_add(1, Ordering::SeqCst) + 1 == shard.count {
                shutdown.trigger();
            }
            shard.shutdown.draining().await;
            assert!(shard.shutdown.is_draining());
            assert!(shard.shutdown.deadline().is_some());
            drained
                .lock()
                .unwrap()
                .push((shard.index, shard.count, shard.cpu));
        }
    })
    .unwrap();
    let mut seen = drained.lock().unwrap().clone();
    seen.sort();
    let cpus = two_cpus();
    assert_eq!(seen, vec![(0, 2, cpus[0]), (1, 2, cpus[1])]);
}

#[test]
fn a_panicking_shard_is_reported_and_the_others_are_drained() {
    let result = run_two::<(), _, _>(|shard, _shutdown| async move {
        if shard.index == 1 {
            panic!("shard one gives up");
        }
        // Shard 0 would wait forever without the supervisor's drain.
        shard.shutdown.draining().await;
    });
    match result {
        Err(RuntimeError::ShardPanicked { index, message, .. }) => {
            assert_eq!(index, 1);
            assert_eq!(message, "shard one gives up");
        }
        other => panic!("expected ShardPanicked, got {other:?}"),
    }
}

#[test]
fn a_panic_in_a_detached_task_also_stops_the_runtime() {
    let result = run_two::<(), _, _>(|shard, _shutdown| async move {
        if shard.index == 0 {
            drop(glommio::spawn_local(async { panic!("background task fails") }).detach());
        }
        shard.shutdown.draining().await;
    });
    match result {
        Err(RuntimeError::ShardPanicked { index, message, .. }) => {
            assert_eq!((index, message.as_str()), (0, "background task fails"));
        }
        other => panic!("expected ShardPanicked, got {other:?}"),
    }
}

#[test]
fn executor_creation_failure_surfaces_from_join_without_hanging() {
    // io_uring refuses rings deeper than 32768 entries; glommio's spawn() still returns Ok
    // and the error only appears when the shard is joined.
    let opts = RuntimeOptions {
        ring_depth: 1 << 20,
        ..options()
    };
    let result = run_two_with::<(), _, _>(opts, |shard, _shutdown| async move {
        shard.shutdown.draining().await;
    });
    match result {
        Err(err @ RuntimeError::ShardFailed { .. }) => {
            let text = err.to_string();
            assert!(text.starts_with("shard "), "{text}");
            assert!(text.contains("os error 22"), "{text}");
            assert!(text.contains("ring_depth"), "{text}");
        }
        other => panic!("expected ShardFailed, got {other:?}"),
    }
}

#[test]
fn a_cpu_that_cannot_be_used_fails_that_shard_and_drains_the_rest() {
    let good = two_cpus()[0];
    let shutdown = Shutdown::new(Duration::from_secs(5));
    let ran = Arc::new(Mutex::new(BTreeSet::new()));
    let r = ran.clone();
    let result = run_on::<(), _, _>(vec![good, 100_000], options(), &shutdown, move |shard| {
        let ran = r.clone();
        async move {
            ran.lock().unwrap().insert(shard.index);
            shard.shutdown.draining().await;
        }
    });
    match result {
        Err(RuntimeError::ShardFailed { index, cpu, .. }) => {
            assert_eq!((index, cpu), (1, 100_000));
        }
        other => panic!("expected ShardFailed, got {other:?}"),
    }
    assert!(shutdown.is_draining());
    assert!(!ran.lock().unwrap().contains(&1));
}
