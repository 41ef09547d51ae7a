//! 0-RTT tickets: the server's cache (`ticket → pfsKey`, with anti-replay on
//! each ticket's nfsKeys) and the client's single cached ticket.
//!
//! Both take an injectable clock so tests can expire tickets without
//! sleeping. They lock a `Mutex` (uncontended within a shard) so one cache
//! can also be shared across threads.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::keys::TicketLifetime;

/// Where `now` comes from.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

pub const TICKET_LEN: usize = 16;
pub type Ticket = [u8; TICKET_LEN];
pub type PfsKey = Zeroizing<[u8; 64]>;

/// Extra time the server keeps a ticket after the longest lifetime it may
/// have announced: Xray sweeps once a minute, two minutes after the
/// longest lifetime, so a client near its deadline still gets 0-RTT.
pub const SERVER_GRACE: Duration = Duration::from_secs(120);

/// Bound on the server cache; the oldest ticket goes first. Xray has no
/// bound; a flood of 1-RTT handshakes must not grow memory without limit.
pub const MAX_SERVER_TICKETS: usize = 1 << 17;

fn system_clock() -> Clock {
    Arc::new(Instant::now)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain data behind;
    // keep serving rather than poisoning every later handshake.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct ServerSession {
    pfs_key: PfsKey,
    expires: Instant,
    /// nfsKeys already used with this ticket (0-RTT anti-replay).
    seen: HashSet<[u8; 32]>,
}

#[derive(Default)]
struct ServerInner {
    sessions: HashMap<Ticket, ServerSession>,
    /// Tickets in insertion order, which is expiry order (fixed retention).
    order: VecDeque<Ticket>,
}

impl ServerInner {
    fn prune(&mut self, now: Instant) {
        while let Some(t) = self.order.front() {
            match self.sessions.get(t) {
                Some(s) if s.expires > now && self.order.len() <= MAX_SERVER_TICKETS => break,
                _ => {
                    let t = self.order.pop_front().expect("front exists");
                    self.sessions.remove(&t);
                }
            }
        }
    }
}

/// Why a 0-RTT ticket was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redeem {
    Unknown,
    Replay,
}

/// A server's ticket cache (one per `decryption` config).
pub struct ServerTickets {
    lifetime: TicketLifetime,
    retention: Duration,
    clock: Clock,
    inner: Mutex<ServerInner>,
}

impl std::fmt::Debug for ServerTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTickets")
            .field("lifetime", &self.lifetime)
            .field("tickets", &self.len())
            .finish()
    }
}

impl ServerTickets {
    pub fn new(lifetime: TicketLifetime) -> ServerTickets {
        ServerTickets::with_clock(lifetime, system_clock())
    }

    pub fn with_clock(lifetime: TicketLifetime, clock: Clock) -> ServerTickets {
        ServerTickets {
            lifetime,
            retention: Duration::from_secs(lifetime.max_secs()) + SERVER_GRACE,
            clock,
            inner: Mutex::default(),
        }
    }

    pub fn lifetime(&self) -> TicketLifetime {
        self.lifetime
    }

    pub fn now(&self) -> Instant {
        (self.clock)()
    }

    pub fn len(&self) -> usize {
        lock(&self.inner).sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn insert(&self, ticket: Ticket, pfs_key: PfsKey, now: Instant) {
        let mut inner = lock(&self.inner);
        inner.prune(now);
        let session = ServerSession {
            pfs_key,
            expires: now + self.retention,
            seen: HashSet::new(),
        };
        if inner.sessions.insert(ticket, session).is_none() {
            inner.order.push_back(ticket);
        }
        inner.prune(now);
    }

    /// Looks a ticket up and records `nfs_key` against replays.
    pub(crate) fn redeem(
        &self,
        ticket: &Ticket,
        nfs_key: &[u8; 32],
        now: Instant,
    ) -> Result<PfsKey, Redeem> {
        let mut inner = lock(&self.inner);
        inner.prune(now);
        let session = inner.sessions.get_mut(ticket).ok_or(Redeem::Unknown)?;
        if !session.seen.insert(*nfs_key) {
            return Err(Redeem::Replay);
        }
        Ok(session.pfs_key.clone())
    }
}

struct CachedTicket {
    ticket: Ticket,
    pfs_key: PfsKey,
    expires: Instant,
}

/// A client's ticket for one server (one per `encryption` config), as
/// Xray's `ClientInstance` keeps it: the latest ticket replaces the last.
/// Clones share the same cache (a 0-RTT stream keeps one to drop a ticket
/// the server no longer knows).
#[derive(Clone)]
pub struct ClientTickets {
    clock: Clock,
    inner: Arc<Mutex<Option<CachedTicket>>>,
}

impl Default for ClientTickets {
    fn default() -> Self {
        ClientTickets::new()
    }
}

impl std::fmt::Debug for ClientTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTickets")
            .field("has_ticket", &self.has_ticket())
            .finish()
    }
}

impl ClientTickets {
    pub fn new() -> ClientTickets {
        ClientTickets::with_clock(system_clock())
    }

    pub fn with_clock(clock: Clock) -> ClientTickets {
        ClientTickets {
            clock,
            inner: Arc::new(Mutex::new(None)),
        }
    }

    pub fn now(&self) -> Instant {
        (self.clock)()
    }

    /// A ticket that is still valid now.
    pub fn has_ticket(&self) -> bool {
        self.get(self.now()).is_some()
    }

    pub(crate) fn get(&self, now: Instant) -> Option<(Ticket, PfsKey)> {
        let inner = lock(&self.inner);
        inner
            .as_ref()
            .filter(|c| now < c.expires)
            .map(|c| (c.ticket, c.pfs_key.clone()))
    }

    pub(crate) fn store(&self, ticket: Ticket, pfs_key: PfsKey, secs: u16, now: Instant) {
        *lock(&self.inner) = Some(CachedTicket {
            ticket,
            pfs_key,
            expires: now + Duration::from_secs(secs.into()),
        });
    }

    /// Drops `ticket` if it is still the cached one (a newer ticket from a
    /// concurrent handshake stays).
    pub fn forget(&self, ticket: &Ticket) {
        let mut inner = lock(&self.inner);
        if inner.as_ref().is_some_and(|c| &c.ticket == ticket) {
            *inner = None;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A clock the test moves by hand.
    pub(crate) fn manual_clock() -> (Clock, Arc<Mutex<Instant>>) {
        let at = Arc::new(Mutex::new(Instant::now()));
        let read = Arc::clone(&at);
        (Arc::new(move || *read.lock().unwrap()), at)
    }

    pub(crate) fn advance(at: &Mutex<Instant>, by: Duration) {
        *at.lock().unwrap() += by;
    }

    const LIFE: TicketLifetime = TicketLifetime { from: 600, to: 0 };

    #[test]
    fn server_tickets_expire_after_retention() {
        let (clock, at) = manual_clock();
        let cache = ServerTickets::with_clock(LIFE, clock);
        let now = cache.now();
        cache.insert([1; 16], Zeroizing::new([5; 64]), now);
        assert_eq!(*cache.redeem(&[1; 16], &[0; 32], now).unwrap(), [5; 64]);
        assert!(matches!(
            cache.redeem(&[2; 16], &[0; 32], now),
            Err(Redeem::Unknown)
        ));
        advance(&at, Duration::from_secs(600) + SERVER_GRACE);
        assert!(matches!(
            cache.redeem(&[1; 16], &[1; 32], cache.now()),
            Err(Redeem::Unknown)
        ));
        assert!(cache.is_empty());
    }

    #[test]
    fn server_tickets_refuse_replays() {
        let cache = ServerTickets::new(LIFE);
        let now = cache.now();
        cache.insert([1; 16], Zeroizing::new([5; 64]), now);
        assert!(cache.redeem(&[1; 16], &[9; 32], now).is_ok());
        assert!(matches!(
            cache.redeem(&[1; 16], &[9; 32], now),
            Err(Redeem::Replay)
        ));
        assert!(cache.redeem(&[1; 16], &[8; 32], now).is_ok());
    }

    #[test]
    fn client_ticket_expires_and_forget_is_selective() {
        let (clock, at) = manual_clock();
        let cache = ClientTickets::with_clock(clock);
        assert!(!cache.has_ticket());
        cache.store([1; 16], Zeroizing::new([3; 64]), 10, cache.now());
        assert!(cache.has_ticket());
        cache.forget(&[2; 16]);
        assert!(cache.has_ticket());
        advance(&at, Duration::from_secs(10));
        assert!(!cache.has_ticket());
        cache.store([1; 16], Zeroizing::new([3; 64]), 10, cache.now());
        cache.forget(&[1; 16]);
        assert!(!cache.has_ticket());
    }
}
