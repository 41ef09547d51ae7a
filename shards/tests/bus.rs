//! Cross-shard messaging between two real shards.

mod common;

use std::time::Duration;

use common::{options, run_two, run_two_with, PATIENCE};
use futures_lite::future;
use shards::{BusError, Inbox, Reply, RuntimeOptions, ShutdownHandle};

/// The next inbox message, or `None` once the drain has started.
async fn next<M>(inbox: &Inbox<M>, shutdown: &ShutdownHandle) -> Option<M> {
    future::or(inbox.recv(), async {
        shutdown.draining().await;
        None
    })
    .await
}

#[derive(Clone, Debug, PartialEq)]
enum Note {
    Ping(usize),
    Pong(usize),
    All(&'static str),
}

#[test]
fn send_to_and_broadcast_reach_the_other_shard() {
    let (seen_tx, seen_rx) = flume::unbounded();
    run_two::<Note, _, _>(move |shard, shutdown| {
        let seen = seen_tx.clone();
        async move {
            let me = shard.index;
            if me == 0 {
                shard.bus.send_to(1, Note::Ping(0)).unwrap();
                let outcome = shard.bus.broadcast(Note::All("hello"));
                assert!(outcome.all_delivered(), "{outcome:?}");
                assert_eq!(outcome.delivered, 2);
                // Our own broadcast copy and shard 1's answer, in either order.
                for _ in 0..2 {
                    let msg = shard.inbox.recv().await.unwrap();
                    seen.send((me, msg)).unwrap();
                }
                shutdown.trigger();
            } else {
                while let Some(msg) = next(&shard.inbox, &shard.shutdown).await {
                    if let Note::Ping(from) = msg {
                        shard.bus.send_to(from, Note::Pong(me)).unwrap();
                    }
                    seen.send((me, msg)).unwrap();
                }
            }
        }
    })
    .unwrap();
    let mut seen: Vec<_> = seen_rx.drain().collect();
    seen.sort_by_key(|(shard, msg)| (*shard, format!("{msg:?}")));
    assert_eq!(
        seen,
        vec![
            (0, Note::All("hello")),
            (0, Note::Pong(1)),
            (1, Note::All("hello")),
            (1, Note::Ping(0)),
        ]
    );
}

enum Ask {
    Double(u64, Reply<u64>),
    /// Held without answering until the drain.
    Silent(Reply<u64>),
    /// Dropped without answering.
    Refuse(Reply<u64>),
}

#[test]
fn request_gets_answers_timeouts_and_refusals() {
    let (results_tx, results_rx) = flume::unbounded();
    run_two::<Ask, _, _>(move |shard, shutdown| {
        let results = results_tx.clone();
        async move {
            if shard.index == 1 {
                let mut held = Vec::new();
                while let Some(ask) = next(&shard.inbox, &shard.shutdown).await {
                    match ask {
                        Ask::Double(x, reply) => reply.send(x * 2),
                        Ask::Silent(reply) => held.push(reply),
                        Ask::Refuse(reply) => drop(reply),
                    }
                }
                return;
            }
            let bus = &shard.bus;
            let answer = bus.request(1, |r| Ask::Double(21, r), PATIENCE).await;
            results.send(format!("{answer:?}")).unwrap();
            let silent = bus.request(1, Ask::Silent, Duration::from_millis(20)).await;
            results.send(format!("{silent:?}")).unwrap();
            let refused = bus.request(1, Ask::Refuse, PATIENCE).await;
            results.send(format!("{refused:?}")).unwrap();
            let nowhere = bus.request(7, Ask::Refuse, PATIENCE).await;
            results.send(format!("{nowhere:?}")).unwrap();
            shutdown.trigger();
        }
    })
    .unwrap();
    let results: Vec<String> = results_rx.drain().collect();
    assert_eq!(
        results,
        ["Ok(42)", "Err(Timeout)", "Err(NoReply)", "Err(NoSuchShard)"]
    );
}

#[test]
fn a_full_inbox_drops_and_counts_until_the_receiver_wakes() {
    let (go_tx, go_rx) = flume::bounded::<()>(1);
    let (got_tx, got_rx) = flume::unbounded();
    let (log_tx, log_rx) = flume::unbounded();
    let opts = RuntimeOptions {
        bus_capacity: 1,
        ..options()
    };
    run_two_with::<u32, _, _>(opts, move |shard, shutdown| {
        let (go_tx, go_rx, got, log) =
            (go_tx.clone(), go_rx.clone(), got_tx.clone(), log_tx.clone());
        async move {
            if shard.index == 1 {
                // Asleep until shard 0 has overfilled the inbox.
                go_rx.recv_async().await.unwrap();
                for _ in 0..2 {
                    got.send(shard.inbox.recv().await.unwrap()).unwrap();
                }
                shard.shutdown.draining().await;
                return;
            }
            let bus = &shard.bus;
            bus.send_to(1, 1).unwrap();
            let full = bus.send_to(1, 2);
            log.send(format!("{full:?} dropped={}", bus.dropped(1)))
                .unwrap();
            let gave_up = bus.send_to_within(1, 3, Duration::from_millis(5)).await;
            let returned = gave_up.map_err(|e| e.into_inner());
            log.send(format!("{returned:?} dropped={}", bus.dropped(1)))
                .unwrap();
            go_tx.send(()).unwrap();
            // Waits (retrying) until shard 1 has taken message 1 off the queue.
            bus.send_to_within(1, 4, PATIENCE).await.unwrap();
            log.send(format!(
                "dropped={} other={}",
                bus.dropped(1),
                bus.dropped(0)
            ))
            .unwrap();
            shutdown.trigger();
        }
    })
    .unwrap();
    let log: Vec<String> = log_rx.drain().collect();
    assert_eq!(
        log,
        [
            "Err(Full) dropped=1",
            "Err(Some(3)) dropped=2",
            "dropped=2 other=0"
        ]
    );
    assert_eq!(got_rx.drain().collect::<Vec<_>>(), vec![1, 4]);
}

#[derive(Clone, Debug)]
enum Life {
    Bye,
    Hello,
}

#[test]
fn a_finished_shard_is_disconnected() {
    let (log_tx, log_rx) = flume::unbounded();
    run_two::<Life, _, _>(move |shard, shutdown| {
        let log = log_tx.clone();
        async move {
            let shards::Shard {
                index, bus, inbox, ..
            } = shard;
            if index == 1 {
                // Stop receiving first, then tell shard 0, then finish.
                drop(inbox);
                bus.send_to(0, Life::Bye).unwrap();
                return;
            }
            assert!(matches!(inbox.recv().await, Some(Life::Bye)));
            let sent = bus.send_to(1, Life::Hello);
            log.send(format!("{sent:?}")).unwrap();
            let outcome = bus.broadcast(Life::Hello);
            log.send(format!("{}/{}", outcome.delivered, outcome.disconnected))
                .unwrap();
            let asked: Result<(), BusError<()>> = bus
                .request(1, |_reply: Reply<()>| Life::Hello, PATIENCE)
                .await;
            log.send(format!("{asked:?}")).unwrap();
            shutdown.trigger();
        }
    })
    .unwrap();
    let log: Vec<String> = log_rx.drain().collect();
    assert_eq!(log, ["Err(Disconnected)", "1/1", "Err(Disconnected)"]);
}
