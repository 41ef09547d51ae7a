//! SIGINT/SIGTERM → drain, second signal → immediate exit.
//!
//! Signal handlers may only do async-signal-safe work, so signal-hook's handler just writes
//! to a self-pipe, and a plain std thread (not a shard: it must keep working while every
//! shard is busy draining) reads it and acts.

use std::io;

use signal_hook::{
    consts::{SIGINT, SIGTERM},
    iterator::Signals,
};

use super::Shutdown;

pub(super) fn install(shutdown: Shutdown) -> io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("shutdown-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if shutdown.is_draining() {
                    // The operator asked twice: stop now. `exit` skips the drain but still
                    // flushes stdio; open connections are reset by the kernel.
                    tracing::warn!(signal, "second shutdown signal: exiting immediately");
                    std::process::exit(128 + signal);
                }
                tracing::info!(
                    signal,
                    "shutdown signal: draining (send it again to exit immediately)"
                );
                shutdown.trigger();
            }
        })?;
    Ok(())
}
