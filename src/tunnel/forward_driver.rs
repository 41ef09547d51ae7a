//! The glommio loop of a tunnel forward: accept on a loopback port, open a
//! session to the fixed target through the shard's [`CoreLink`], splice.
//!
//! Each shard runs its own listener (SO_REUSEPORT) and its own link; the link
//! uses the shard's copy of the daily SNI pick (a rotation event updates it,
//! so new sessions use the new name while open ones finish under the old one).

use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::net::{TcpListener, TcpStream};
use shards::accept::accept_until_drain;
use shards::shutdown::{ConnTracker, ShutdownHandle};

use super::link::{CoreLink, LinkError};
use super::splice::{splice_with_idle, SpliceCounters};
use super::vless::Target;
use crate::telemetry::metrics::{Metric, ShardMetrics};

/// How long opening a session (back-off wait, TCP, REALITY, VLESS) may take.
const OPEN_DEADLINE: Duration = Duration::from_secs(15);
/// A forwarded connection with no byte either way for this long is closed.
const IDLE: Duration = Duration::from_secs(600);

/// One shard's view of a forward.
pub struct Forward {
    pub target: Target,
    /// The shard's link to the core, shared by all its forwards.
    pub link: Rc<CoreLink>,
    pub metrics: Rc<ShardMetrics>,
    pub conns: ConnTracker,
}

/// Accepts until the drain starts; open tunnels are tracked by `conns`, which
/// the shard waits on with the front's connections.
pub async fn serve(forward: Rc<Forward>, listener: TcpListener, shutdown: ShutdownHandle) {
    accept_until_drain(listener, &shutdown, |local| {
        let f = forward.clone();
        glommio::spawn_local(async move { carry(f, local).await }).detach();
    })
    .await;
}

async fn carry(forward: Rc<Forward>, mut local: TcpStream) {
    let _guard = forward.conns.enter();
    let _ = local.set_nodelay(true);
    let deadline = Instant::now() + OPEN_DEADLINE;
    let mut remote = match forward.link.open(forward.target.clone(), deadline).await {
        Ok(session) => session,
        Err(e) => {
            forward.metrics.inc(Metric::TunnelFailed);
            match e {
                // The link logs its own health changes; a refusal while it is
                // down is routine.
                LinkError::Backoff(_) | LinkError::Full | LinkError::NoSni => {
                    tracing::debug!(error = %e, "tunnel session refused")
                }
                LinkError::Dial(_) | LinkError::Timeout => {
                    tracing::warn!(error = %e, "tunnel to the core failed")
                }
            }
            return;
        }
    };
    forward.metrics.inc(Metric::TunnelOpened);
    let counters = SpliceCounters::default();
    let _ = splice_with_idle(&mut local, &mut remote, IDLE, &counters).await;
    forward
        .metrics
        .add(Metric::TunnelBytesUp, counters.a_to_b());
    forward
        .metrics
        .add(Metric::TunnelBytesDown, counters.b_to_a());
}
