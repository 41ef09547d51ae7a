//! The glommio loop of a tunnel forward: accept on a loopback port, open a
//! REALITY + VLESS tunnel to the fixed target under today's SNI, splice.
//!
//! Each shard runs its own listener (SO_REUSEPORT) and its own tunnels; the SNI
//! comes from the shard's copy of the daily pick (a rotation event updates it,
//! so new sessions use the new name while open ones finish under the old one).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use glommio::net::{TcpListener, TcpStream};
use shards::accept::accept_until_drain;
use shards::shutdown::{ConnTracker, ShutdownHandle};

use super::client_driver;
use super::settings::TunnelSettings;
use super::splice::{splice_with_idle, SpliceCounters};
use super::vless::Target;
use crate::front::driver::within;
use crate::telemetry::metrics::{Metric, ShardMetrics};

/// How long opening a tunnel (TCP + REALITY + VLESS) may take.
const OPEN_DEADLINE: Duration = Duration::from_secs(15);
/// A forwarded connection with no byte either way for this long is closed.
const IDLE: Duration = Duration::from_secs(600);

/// One shard's view of a forward.
pub struct Forward {
    pub target: Target,
    pub settings: Arc<TunnelSettings>,
    /// The shard's current SNI pick; `None` until the first rotation event.
    pub sni: Rc<RefCell<Option<Arc<str>>>>,
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
    let Some(sni) = forward.sni.borrow().clone() else {
        // No pick yet (empty pool is refused by config, so this is the first
        // instants after start): refuse rather than guess a name.
        forward.metrics.inc(Metric::TunnelFailed);
        return;
    };
    let reality = forward.settings.reality(&sni);
    let opened = within(
        OPEN_DEADLINE,
        client_driver::connect(
            forward.settings.server,
            &reality,
            forward.settings.uuid,
            forward.target.clone(),
        ),
    )
    .await;
    let mut remote = match opened {
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            forward.metrics.inc(Metric::TunnelFailed);
            tracing::warn!(error = %e, "tunnel to the core failed");
            return;
        }
        None => {
            forward.metrics.inc(Metric::TunnelFailed);
            tracing::warn!("tunnel to the core timed out");
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
