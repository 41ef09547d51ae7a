//! Spawning the executors and joining them in the order they finish.
//!
//! glommio's `spawn()` returns Ok even when the executor cannot be built; the error only
//! comes out of `join()`, and `join()` blocks. Joining shard 0 first would hang forever if
//! shard 1 died at start-up while shard 0 serves happily. So every shard carries an
//! [`ExitNotice`] that reports its index when dropped — at the end of the shard future, during
//! a panic's unwinding, or when glommio drops the never-called start closure after failing
//! to build the executor — and we join shards as they report.

use std::{future::Future, io, sync::mpsc};

use glommio::{
    BuilderErrorKind, ExecutorJoinHandle, GlommioError, LocalExecutorBuilder, Placement,
};

use super::{RuntimeError, RuntimeOptions, Shard};
use crate::{bus::bus, shutdown::Shutdown};

/// Sends its shard index when dropped, however the shard ends.
struct ExitNotice {
    index: usize,
    tx: mpsc::Sender<usize>,
}

impl Drop for ExitNotice {
    fn drop(&mut self) {
        // The receiver lives until every shard is joined; if it is gone nobody is waiting.
        let _ = self.tx.send(self.index);
    }
}

pub(super) fn launch<M, F, Fut>(
    cpus: &[usize],
    opts: &RuntimeOptions,
    shutdown: &Shutdown,
    make: F,
) -> Result<(), RuntimeError>
where
    M: Send + 'static,
    F: Fn(Shard<M>) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let count = cpus.len();
    let (bus, inboxes) = bus::<M>(count, opts.bus_capacity);
    let (exit_tx, exit_rx) = mpsc::channel();
    let mut handles: Vec<Option<ExecutorJoinHandle<()>>> = Vec::with_capacity(count);
    let mut first_error = None;

    for ((index, &cpu), inbox) in cpus.iter().enumerate().zip(inboxes) {
        let shard = Shard {
            index,
            count,
            cpu,
            bus: bus.clone(),
            inbox,
            shutdown: shutdown.handle(),
        };
        let notice = ExitNotice {
            index,
            tx: exit_tx.clone(),
        };
        let make = make.clone();
        let spawned = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("{}-{index}", opts.name))
            .io_memory(opts.io_memory)
            .ring_depth(opts.ring_depth)
            .spawn(move || async move {
                let _notice = notice;
                make(shard).await;
            });
        match spawned {
            Ok(handle) => handles.push(Some(handle)),
            Err(err) => {
                let err = RuntimeError::ShardFailed {
                    index,
                    cpu,
                    source: to_io(err),
                };
                tracing::error!(%err, "shard did not start; draining the others");
                first_error = Some(err);
                shutdown.trigger();
                break;
            }
        }
    }
    // Only shards hold senders now: the exit channel closes when the last notice is gone.
    drop(exit_tx);
    drop(bus);

    let mut running = handles.len();
    while running > 0 {
        let Ok(index) = exit_rx.recv() else {
            // Unreachable: each running shard owns a notice that sends before it is dropped.
            break;
        };
        // A notice for a shard that never got a handle comes from a failed `spawn()`.
        let Some(handle) = handles.get_mut(index).and_then(Option::take) else {
            continue;
        };
        running -= 1;
        if let Err(err) = outcome(index, cpus[index], handle.join()) {
            tracing::error!(%err, "shard stopped abnormally; draining the others");
            shutdown.trigger();
            first_error.get_or_insert(err);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn outcome(index: usize, cpu: usize, joined: glommio::Result<(), ()>) -> Result<(), RuntimeError> {
    match joined {
        Ok(()) => Ok(()),
        Err(GlommioError::BuilderError(BuilderErrorKind::ThreadPanic(payload))) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_owned());
            Err(RuntimeError::ShardPanicked {
                index,
                cpu,
                message,
            })
        }
        Err(err) => Err(RuntimeError::ShardFailed {
            index,
            cpu,
            source: to_io(err),
        }),
    }
}

/// glommio's `Display` is more helpful than its `io::Error` conversion (compare "The memlock
/// resource limit is too low: 262144 (recommended 524288)" with "MemLockLimit(262144/524288)"),
/// so keep the kind of the conversion and both texts (the second one carries "os error N").
fn to_io(err: GlommioError<()>) -> io::Error {
    let text = err.to_string();
    let converted = io::Error::from(err);
    let detail = converted.to_string();
    if detail == text {
        converted
    } else if text.contains(&detail) {
        io::Error::new(converted.kind(), text)
    } else {
        io::Error::new(converted.kind(), format!("{text} [{detail}]"))
    }
}
