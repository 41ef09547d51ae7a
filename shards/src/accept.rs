//! The accept loop every listener on a shard runs: take connections until the
//! drain starts, back off briefly on accept errors (EMFILE and friends) instead
//! of spinning.

use std::time::Duration;

use glommio::net::{TcpListener, TcpStream};

use crate::shutdown::ShutdownHandle;

/// How long to pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Calls `on_accept` for every accepted connection until the drain starts,
/// then drops the listener (new connections are refused from then on).
pub async fn accept_until_drain<F>(
    listener: TcpListener,
    shutdown: &ShutdownHandle,
    mut on_accept: F,
) where
    F: FnMut(TcpStream),
{
    enum Ev {
        Accepted(glommio::Result<TcpStream, ()>),
        Drain,
    }
    loop {
        let ev = futures_lite::future::or(async { Ev::Accepted(listener.accept().await) }, async {
            shutdown.draining().await;
            Ev::Drain
        })
        .await;
        match ev {
            Ev::Drain => break,
            Ev::Accepted(Ok(stream)) => on_accept(stream),
            Ev::Accepted(Err(e)) => {
                tracing::debug!(error = %e, "accept failed");
                glommio::timer::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    drop(listener);
}
