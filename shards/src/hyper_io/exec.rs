//! hyper's executor hook (needed by the HTTP/2 server and by upgrades) on glommio.

use std::future::Future;

/// Spawns hyper's background tasks onto the current shard with `glommio::spawn_local`.
/// Tasks never leave the shard, so they need not be `Send`. Must be used on a glommio
/// executor.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn execute(&self, fut: F) {
        // Detached: hyper tracks completion through the future itself, not a join handle.
        drop(glommio::spawn_local(fut).detach());
    }
}
