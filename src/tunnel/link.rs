//! One shard's link to the core: every tunnel session of the shard's
//! forwards is opened here, through the shard's [`Pool`] (reuse limits,
//! back-off, health), under the shard's current SNI pick.
//!
//! Raw REALITY carries one session per connection, so its pool only
//! rate-limits dials and tracks health; XHTTP sessions share h2 connections.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncWrite};
use ring::rand::{SecureRandom, SystemRandom};

use super::client_driver;
use super::pool::{Checkout, ConnId, Health, Pool, Transition};
use super::settings::Transport;
use super::settings::TunnelSettings;
use super::vless::Target;
use super::vless_stream::open_vless;
use super::vlessenc::{client_handshake, ClientTickets};
use super::xhttp::XhttpConnection;
use crate::front::driver::within;
use crate::telemetry::metrics::{Metric, ShardMetrics};

/// What the pool keeps of a connection to the core.
#[derive(Debug)]
enum PooledConn {
    /// Nothing to reuse: the session owns the TLS stream.
    Raw,
    /// An h2 connection; dropping the last handle closes it once its
    /// streams are done.
    Xhttp(Rc<XhttpConnection>),
}

/// How often idle pooled connections are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Why no session could be opened. Messages name the cause, never a key,
/// id or the core's address beyond what the operator configured.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("no SNI picked yet")]
    NoSni,
    #[error("the core failed recently; next attempt in {0:?}")]
    Backoff(Duration),
    #[error("every pooled connection to the core is full")]
    Full,
    #[error("dialing the core timed out")]
    Timeout,
    #[error(transparent)]
    Dial(io::Error),
}

/// A shard's link: settings, SNI pick, pool.
pub struct CoreLink {
    settings: Arc<TunnelSettings>,
    sni: Rc<RefCell<Option<Arc<str>>>>,
    metrics: Rc<ShardMetrics>,
    pool: RefCell<Pool<PooledConn>>,
    rng: SystemRandom,
    /// The shard's VLESS Encryption 0-RTT ticket (one cache per shard, as
    /// per Xray client instance).
    tickets: ClientTickets,
}

impl fmt::Debug for CoreLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoreLink")
            .field("health", &self.pool.borrow().health())
            .finish_non_exhaustive()
    }
}

impl CoreLink {
    pub fn new(
        settings: Arc<TunnelSettings>,
        sni: Rc<RefCell<Option<Arc<str>>>>,
        metrics: Rc<ShardMetrics>,
    ) -> Rc<Self> {
        let pool = Pool::new(settings.transport.pool_limits(), settings.backoff);
        let link = Rc::new(CoreLink {
            settings,
            sni,
            metrics,
            pool: RefCell::new(pool),
            rng: SystemRandom::new(),
            tickets: ClientTickets::new(),
        });
        if matches!(link.settings.transport, Transport::Xhttp { .. }) {
            glommio::spawn_local(sweep_idle(Rc::downgrade(&link))).detach();
        }
        link
    }

    pub fn health(&self) -> Health {
        self.pool.borrow().health()
    }

    /// Opens a session to `target`, waiting out a back-off that ends before
    /// `deadline` and giving up at `deadline`.
    pub async fn open(
        self: &Rc<Self>,
        target: Target,
        deadline: Instant,
    ) -> Result<Session, LinkError> {
        loop {
            let now = Instant::now();
            let step = self.pool.borrow_mut().checkout(now);
            match step {
                Checkout::Connect => return self.dial(target, deadline).await,
                Checkout::Reuse(id) => match self.reuse(id, &target).await {
                    Ok(session) => return Ok(session),
                    Err(Some(e)) => return Err(e),
                    // That connection is gone: look again (it no longer
                    // counts against the limits).
                    Err(None) => {}
                },
                Checkout::Backoff(at) if at <= deadline => {
                    glommio::timer::sleep(at.saturating_duration_since(now)).await;
                }
                Checkout::Backoff(at) => {
                    self.metrics.inc(Metric::TunnelRefusedBackoff);
                    return Err(LinkError::Backoff(at.saturating_duration_since(now)));
                }
                Checkout::Full => {
                    self.metrics.inc(Metric::TunnelRefusedFull);
                    return Err(LinkError::Full);
                }
            }
        }
    }

    /// Dials for a [`Checkout::Connect`] and reports the outcome to the pool.
    async fn dial(
        self: &Rc<Self>,
        target: Target,
        deadline: Instant,
    ) -> Result<Session, LinkError> {
        let sni = self.sni.borrow().clone();
        let Some(sni) = sni else {
            // Not a failure of the core: no back-off, just no session.
            self.pool.borrow_mut().dial_abandoned();
            return Err(LinkError::NoSni);
        };
        let reality = self.settings.reality(&sni);
        let limit = deadline.saturating_duration_since(Instant::now());
        let server = self.settings.server;
        let uuid = self.settings.uuid;
        let encryption = self.settings.encryption.as_ref();
        let dialed = within(limit, async {
            match (&self.settings.transport, encryption) {
                (Transport::Raw, None) => client_driver::connect(server, &reality, uuid, target)
                    .await
                    .map(|s| (PooledConn::Raw, Box::new(s) as CoreStream)),
                (Transport::Raw, Some(keys)) => {
                    let tls = client_driver::reality_handshake(server, &reality).await?;
                    let enc = client_handshake(tls, keys, &self.tickets).await?;
                    let stream = open_vless(enc, uuid, target).await?;
                    Ok((PooledConn::Raw, Box::new(stream) as CoreStream))
                }
                (Transport::Xhttp { options, .. }, _) => {
                    let conn = Rc::new(XhttpConnection::connect(server, &reality, options).await?);
                    let stream = self.xhttp_session(&conn, target).await?;
                    Ok((PooledConn::Xhttp(conn), stream))
                }
            }
        })
        .await;
        let result = match dialed {
            Some(Ok(opened)) => Ok(opened),
            Some(Err(e)) => Err(LinkError::Dial(e)),
            None => Err(LinkError::Timeout),
        };
        match result {
            Ok((conn, stream)) => {
                let (id, change) = self.pool.borrow_mut().connected(conn, Instant::now());
                self.metrics.inc(Metric::TunnelDialOk);
                self.after_change(change, None);
                Ok(Session {
                    stream,
                    lease: Lease {
                        link: self.clone(),
                        id,
                    },
                })
            }
            Err(e) => {
                let jitter = self.jitter();
                let (wait, change) = self
                    .pool
                    .borrow_mut()
                    .connect_failed(Instant::now(), jitter);
                self.metrics.inc(Metric::TunnelDialFailed);
                self.after_change(change, Some((&e, wait)));
                Err(e)
            }
        }
    }

    /// Opens a session on pooled connection `id` (already reserved by the
    /// checkout). `None` if the connection turned out dead: it is marked
    /// broken and the reservation given back.
    /// `Err(None)`: the connection is dead (marked broken, reservation given
    /// back), try another. `Err(Some(_))`: the connection is fine but this
    /// session failed (e.g. a 0-RTT ticket the core forgot).
    async fn reuse(
        self: &Rc<Self>,
        id: ConnId,
        target: &Target,
    ) -> Result<Session, Option<LinkError>> {
        let conn = match self.pool.borrow().get(id) {
            Some(PooledConn::Xhttp(c)) if !c.is_closed() => Some(c.clone()),
            _ => None,
        };
        let lease = Lease {
            link: self.clone(),
            id,
        };
        let opened = match &conn {
            Some(c) => Some(self.xhttp_session(c, target.clone()).await),
            None => None,
        };
        match opened {
            Some(Ok(stream)) => {
                self.metrics.inc(Metric::TunnelReused);
                Ok(Session { stream, lease })
            }
            Some(Err(e)) if conn.as_ref().is_some_and(|c| !c.is_closed()) => {
                Err(Some(LinkError::Dial(e)))
            }
            _ => {
                tracing::debug!("pooled connection to the core has closed; not reusing it");
                let _gone = self.pool.borrow_mut().broken(id);
                drop(lease);
                Err(None)
            }
        }
    }

    /// One session on an XHTTP connection: VLESS right on the XHTTP stream,
    /// or VLESS inside VLESS Encryption inside it.
    async fn xhttp_session(
        &self,
        conn: &XhttpConnection,
        target: Target,
    ) -> io::Result<CoreStream> {
        let uuid = self.settings.uuid;
        match &self.settings.encryption {
            None => Ok(Box::new(conn.open(uuid, target).await?)),
            Some(keys) => {
                let bare = conn.open_bare().await?;
                let enc = client_handshake(bare, keys, &self.tickets).await?;
                Ok(Box::new(open_vless(enc, uuid, target).await?))
            }
        }
    }

    fn release(&self, id: ConnId) {
        // A connection handed back here had its last session end: dropping
        // it closes it (for h2, once its streams are done).
        let _closed = self.pool.borrow_mut().release(id, Instant::now());
        self.sync_gauge();
    }

    /// Logs a health change once (not once per attempt) and keeps the gauges
    /// in step.
    fn after_change(&self, change: Option<Transition>, failure: Option<(&LinkError, Duration)>) {
        match change {
            Some(Transition::WentDown) => {
                self.metrics.inc(Metric::TunnelShardsDown);
                if let Some((e, wait)) = failure {
                    tracing::warn!(error = %e, retry_in = ?wait, "link to the core is down");
                }
            }
            Some(Transition::CameBack) => {
                self.metrics.dec(Metric::TunnelShardsDown);
                tracing::info!("link to the core is up again");
            }
            None => {
                if let Some((e, wait)) = failure {
                    tracing::debug!(error = %e, retry_in = ?wait, "link to the core still down");
                }
            }
        }
        self.sync_gauge();
    }

    fn sync_gauge(&self) {
        let held = self.pool.borrow().connections() as u64;
        self.metrics.set(Metric::TunnelPoolConns, held);
    }

    /// A uniform number in 0.0..1.0 for back-off jitter. A failing system
    /// random source gives no jitter rather than no back-off.
    fn jitter(&self) -> f64 {
        let mut b = [0u8; 8];
        if self.rng.fill(&mut b).is_err() {
            return 0.0;
        }
        (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Closes pooled connections that idled past their limit, for as long as the
/// link exists.
async fn sweep_idle(link: std::rc::Weak<CoreLink>) {
    loop {
        glommio::timer::sleep(SWEEP_EVERY).await;
        let Some(link) = link.upgrade() else { return };
        let gone = link.pool.borrow_mut().sweep(Instant::now());
        if !gone.is_empty() {
            tracing::debug!(closed = gone.len(), "idle connections to the core closed");
            link.sync_gauge();
        }
    }
}

/// Gives the session's place in the pool back when the session ends.
struct Lease {
    link: Rc<CoreLink>,
    id: ConnId,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.link.release(self.id);
    }
}

/// The byte stream of one session, whatever carries it (raw TLS or an XHTTP
/// request pair); boxed, as the two differ a lot in size.
trait Duplex: AsyncRead + AsyncWrite + Unpin {}

impl<T: AsyncRead + AsyncWrite + Unpin> Duplex for T {}

type CoreStream = Box<dyn Duplex>;

/// An open tunnel session: bytes written reach the target, bytes read come
/// from it. Dropping it frees its place in the pool.
pub struct Session {
    stream: CoreStream,
    lease: Lease,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("conn", &self.lease.id)
            .finish_non_exhaustive()
    }
}

impl AsyncRead for Session {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Session {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_close(cx)
    }
}
