//! Helpers shared by the integration tests. Each test crate uses a different subset, hence
//! the `dead_code` allowance.
#![allow(dead_code)]

use std::{future::Future, time::Duration};

use shards::{run_on, RuntimeError, RuntimeOptions, Shard, Shutdown};

/// Upper bound for waits that only end early if something is broken; never asserted on.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Two CPUs to run two shards on: two distinct allowed CPUs when there are, otherwise the
/// one allowed CPU twice (so the tests also run on single-CPU machines).
pub fn two_cpus() -> Vec<usize> {
    let allowed = shards::allowed_cpus().expect("read allowed CPUs");
    allowed.iter().cycle().take(2).copied().collect()
}

/// Small executors: many tests run in parallel under one memlock limit.
pub fn options() -> RuntimeOptions {
    RuntimeOptions {
        cores: None,
        io_memory: 64 << 10,
        ring_depth: 64,
        bus_capacity: 16,
        name: "test".to_owned(),
    }
}

/// Runs two shards; each gets the process-wide `Shutdown` too, so it can end the test.
pub fn run_two<M, F, Fut>(make: F) -> Result<(), RuntimeError>
where
    M: Send + 'static,
    F: Fn(Shard<M>, Shutdown) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    run_two_with(options(), make)
}

/// [`run_two`] with explicit options.
pub fn run_two_with<M, F, Fut>(opts: RuntimeOptions, make: F) -> Result<(), RuntimeError>
where
    M: Send + 'static,
    F: Fn(Shard<M>, Shutdown) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let shutdown = Shutdown::new(Duration::from_secs(5));
    let for_shards = shutdown.clone();
    run_on(two_cpus(), opts, &shutdown, move |shard| {
        make(shard, for_shards.clone())
    })
}
