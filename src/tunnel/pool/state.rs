//! The pool's bookkeeping, sans-IO: which connection a new tunnel rides,
//! when to dial, when to wait. The driver does the dialing and tells the
//! pool what happened; time comes in as an argument.

use std::time::{Duration, Instant};

use super::limits::{Backoff, PoolLimits};

/// A pooled connection's handle within one pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId(u64);

/// Where a new tunnel should go.
#[derive(Debug, PartialEq, Eq)]
pub enum Checkout {
    /// Open it on this live connection (already counted as in use).
    Reuse(ConnId),
    /// Dial a new connection, then report [`Pool::connected`] or
    /// [`Pool::connect_failed`].
    Connect,
    /// The core failed recently: no dial before this instant.
    Backoff(Instant),
    /// Every connection is at its concurrency cap and no more may be opened.
    Full,
}

/// What operators see of the link to the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Nothing tried yet.
    Unknown,
    /// The last connection attempt succeeded.
    Up,
    /// The last `failures` attempts in a row failed.
    Down { failures: u32 },
}

/// A health change the driver should log (once, not per attempt).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    WentDown,
    CameBack,
}

#[derive(Debug)]
struct Entry<C> {
    id: ConnId,
    conn: C,
    born: Instant,
    /// When its last tunnel ended (`None` while it carries one).
    idle_since: Option<Instant>,
    active: u32,
    opened: u32,
    /// Takes no new tunnel (limits reached, or the connection failed).
    draining: bool,
}

/// One shard's connections to the core, generic over the connection type
/// (an h2 connection for XHTTP; nothing worth keeping for raw REALITY).
#[derive(Debug)]
pub struct Pool<C> {
    limits: PoolLimits,
    backoff: Backoff,
    entries: Vec<Entry<C>>,
    next_id: u64,
    /// Dials in progress (they count against `max_connections`).
    dialing: usize,
    failures: u32,
    retry_at: Option<Instant>,
    health: Health,
}

impl<C> Pool<C> {
    pub fn new(limits: PoolLimits, backoff: Backoff) -> Self {
        Pool {
            limits,
            backoff,
            entries: Vec::new(),
            next_id: 0,
            dialing: 0,
            failures: 0,
            retry_at: None,
            health: Health::Unknown,
        }
    }

    pub fn health(&self) -> Health {
        self.health
    }

    /// Connections held (taking tunnels or finishing their last ones).
    pub fn connections(&self) -> usize {
        self.entries.len()
    }

    /// The connection behind `id`, while the pool holds it.
    pub fn get(&self, id: ConnId) -> Option<&C> {
        self.entries.iter().find(|e| e.id == id).map(|e| &e.conn)
    }

    /// Picks a place for one new tunnel. A `Reuse` or `Connect` answer
    /// reserves it: the caller must later [`release`](Self::release) the
    /// tunnel, or report the dial's outcome.
    pub fn checkout(&mut self, now: Instant) -> Checkout {
        self.retire_aged(now);
        // The least busy usable connection: spreads tunnels so one slow
        // connection does not hold most of them.
        let pick = self
            .entries
            .iter_mut()
            .filter(|e| !e.draining && e.active < self.limits.max_concurrency)
            .min_by_key(|e| e.active);
        if let Some(e) = pick {
            e.active += 1;
            e.idle_since = None;
            e.opened += 1;
            if e.opened >= self.limits.max_reuse {
                e.draining = true;
            }
            return Checkout::Reuse(e.id);
        }
        if let Some(at) = self.retry_at {
            if at > now {
                return Checkout::Backoff(at);
            }
        }
        // While the link is down one dial at a time probes it; the others
        // look again a little later instead of all dialing at once when the
        // back-off ends.
        if matches!(self.health, Health::Down { .. }) && self.dialing > 0 {
            return Checkout::Backoff(now + self.backoff.base);
        }
        let taking = self.entries.iter().filter(|e| !e.draining).count();
        if taking + self.dialing >= self.limits.max_connections {
            return Checkout::Full;
        }
        self.dialing += 1;
        Checkout::Connect
    }

    /// A dial from [`Checkout::Connect`] succeeded; its first tunnel is
    /// already counted on it.
    pub fn connected(&mut self, conn: C, now: Instant) -> (ConnId, Option<Transition>) {
        self.dialing = self.dialing.saturating_sub(1);
        let came_back = matches!(self.health, Health::Down { .. });
        self.failures = 0;
        self.retry_at = None;
        self.health = Health::Up;
        let id = ConnId(self.next_id);
        self.next_id += 1;
        self.entries.push(Entry {
            id,
            conn,
            born: now,
            idle_since: None,
            active: 1,
            opened: 1,
            draining: self.limits.max_reuse <= 1,
        });
        (id, came_back.then_some(Transition::CameBack))
    }

    /// A dial from [`Checkout::Connect`] failed. Returns how long new dials
    /// wait, and whether this failure took the link down. `jitter` is a
    /// random number in 0.0..1.0.
    pub fn connect_failed(&mut self, now: Instant, jitter: f64) -> (Duration, Option<Transition>) {
        self.dialing = self.dialing.saturating_sub(1);
        self.failures = self.failures.saturating_add(1);
        let wait = self.backoff.delay(self.failures, jitter);
        self.retry_at = Some(now + wait);
        let went_down = !matches!(self.health, Health::Down { .. });
        self.health = Health::Down {
            failures: self.failures,
        };
        (wait, went_down.then_some(Transition::WentDown))
    }

    /// A dial from [`Checkout::Connect`] was not attempted after all (for a
    /// reason that says nothing about the core).
    pub fn dial_abandoned(&mut self) {
        self.dialing = self.dialing.saturating_sub(1);
    }

    /// A tunnel on `id` ended. Returns the connection when that was the last
    /// tunnel of a draining connection, for the caller to close.
    pub fn release(&mut self, id: ConnId, now: Instant) -> Option<C> {
        let i = self.entries.iter().position(|e| e.id == id)?;
        let e = &mut self.entries[i];
        e.active = e.active.saturating_sub(1);
        if e.active == 0 {
            if e.draining {
                return Some(self.entries.swap_remove(i).conn);
            }
            e.idle_since = Some(now);
        }
        None
    }

    /// Removes connections that are too old or idle too long and carry no
    /// tunnel; returns them for the caller to close. Run it now and then:
    /// an idle connection is otherwise only looked at by the next checkout.
    pub fn sweep(&mut self, now: Instant) -> Vec<C> {
        self.mark_expired(now);
        let mut gone = Vec::new();
        let mut i = 0;
        while i < self.entries.len() {
            if self.entries[i].draining && self.entries[i].active == 0 {
                gone.push(self.entries.swap_remove(i).conn);
            } else {
                i += 1;
            }
        }
        gone
    }

    /// The connection behind `id` broke (the peer closed it, a stream on it
    /// failed): it takes no new tunnel and goes once its tunnels end.
    /// Returns it if it has none left.
    pub fn broken(&mut self, id: ConnId) -> Option<C> {
        let i = self.entries.iter().position(|e| e.id == id)?;
        let e = &mut self.entries[i];
        e.draining = true;
        if e.active == 0 {
            return Some(self.entries.swap_remove(i).conn);
        }
        None
    }

    /// Idle connections that reached their age or idle limit are dropped
    /// here; busy ones stop taking tunnels.
    fn retire_aged(&mut self, now: Instant) {
        self.mark_expired(now);
        self.entries.retain(|e| !(e.draining && e.active == 0));
    }

    fn mark_expired(&mut self, now: Instant) {
        let (lifetime, max_idle) = (self.limits.max_lifetime, self.limits.max_idle);
        for e in &mut self.entries {
            let old = now.saturating_duration_since(e.born) >= lifetime;
            let idle = e
                .idle_since
                .is_some_and(|t| now.saturating_duration_since(t) >= max_idle);
            if old || idle {
                e.draining = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_connections: usize, max_concurrency: u32, max_reuse: u32) -> PoolLimits {
        PoolLimits {
            max_connections,
            max_concurrency,
            max_reuse,
            max_lifetime: Duration::from_secs(100),
            max_idle: Duration::from_secs(30),
        }
    }

    fn backoff() -> Backoff {
        Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(8),
        }
    }

    #[test]
    fn tunnels_share_a_connection_up_to_its_concurrency() {
        let t0 = Instant::now();
        let mut p = Pool::new(limits(2, 2, 100), backoff());
        assert_eq!(p.checkout(t0), Checkout::Connect);
        let (a, _) = p.connected("a", t0);
        assert_eq!(p.checkout(t0), Checkout::Reuse(a));
        // `a` is at 2 tunnels: the next one dials.
        assert_eq!(p.checkout(t0), Checkout::Connect);
        let (b, _) = p.connected("b", t0);
        assert_eq!(p.checkout(t0), Checkout::Reuse(b));
        assert_eq!(p.checkout(t0), Checkout::Full);
        assert_eq!(p.release(a, t0), None);
        assert_eq!(p.checkout(t0), Checkout::Reuse(a));
        assert_eq!(p.connections(), 2);
    }

    #[test]
    fn a_connection_retires_after_its_reuse_count_and_closes_when_empty() {
        let t0 = Instant::now();
        let mut p = Pool::new(limits(1, 10, 2), backoff());
        assert_eq!(p.checkout(t0), Checkout::Connect);
        let (a, _) = p.connected("a", t0);
        assert_eq!(p.checkout(t0), Checkout::Reuse(a));
        // Two tunnels carried: `a` drains, and a new one may be dialled
        // although `max_connections` is 1.
        assert_eq!(p.checkout(t0), Checkout::Connect);
        assert_eq!(p.release(a, t0), None);
        assert_eq!(p.release(a, t0), Some("a"));
        assert_eq!(p.get(a), None);
    }

    #[test]
    fn raw_tunnels_never_share() {
        let t0 = Instant::now();
        let mut p = Pool::new(PoolLimits::ONE_TUNNEL_PER_CONNECTION, backoff());
        for _ in 0..3 {
            assert_eq!(p.checkout(t0), Checkout::Connect);
        }
        let (a, _) = p.connected((), t0);
        assert_eq!(p.checkout(t0), Checkout::Connect);
        assert_eq!(p.release(a, t0), Some(()));
    }

    #[test]
    fn an_old_connection_takes_no_new_tunnel() {
        let t0 = Instant::now();
        let mut p = Pool::new(limits(1, 10, 100), backoff());
        assert_eq!(p.checkout(t0), Checkout::Connect);
        let (a, _) = p.connected("a", t0);
        let later = t0 + Duration::from_secs(100);
        assert_eq!(p.checkout(later), Checkout::Connect);
        // Its tunnel finishes; then it goes.
        assert_eq!(p.release(a, t0), Some("a"));

        // An idle old connection is dropped at the next checkout.
        let (b, _) = p.connected("b", later);
        assert_eq!(p.release(b, t0), None);
        assert_eq!(
            p.checkout(later + Duration::from_secs(100)),
            Checkout::Connect
        );
        assert_eq!(p.connections(), 0);
    }

    #[test]
    fn failures_back_off_exponentially_and_recovery_resets() {
        let t0 = Instant::now();
        let mut p = Pool::new(limits(1, 10, 100), backoff());
        assert_eq!(p.checkout(t0), Checkout::Connect);
        let (wait, tr) = p.connect_failed(t0, 1.0);
        assert_eq!(
            (wait, tr),
            (Duration::from_secs(1), Some(Transition::WentDown))
        );
        assert_eq!(p.health(), Health::Down { failures: 1 });
        assert_eq!(p.checkout(t0), Checkout::Backoff(t0 + wait));
        let t1 = t0 + wait;
        assert_eq!(p.checkout(t1), Checkout::Connect);
        let (wait, tr) = p.connect_failed(t1, 1.0);
        assert_eq!((wait, tr), (Duration::from_secs(2), None));
        let t2 = t1 + wait;
        assert_eq!(p.checkout(t2), Checkout::Connect);
        // One probe at a time while down.
        assert_eq!(
            p.checkout(t2),
            Checkout::Backoff(t2 + Duration::from_secs(1))
        );
        let (_, tr) = p.connected("a", t2);
        assert_eq!(tr, Some(Transition::CameBack));
        assert_eq!(p.health(), Health::Up);
        // A fresh failure starts from the base wait again.
        assert_eq!(p.checkout(t2), Checkout::Reuse(ConnId(0)));
    }

    #[test]
    fn an_idle_connection_is_swept() {
        let t0 = Instant::now();
        let mut p = Pool::new(limits(1, 10, 100), backoff());
        assert_eq!(p.checkout(t0), Checkout::Connect);
        let (a, _) = p.connected("a", t0);
        assert_eq!(p.release(a, t0), None);
        assert!(p.sweep(t0 + Duration::from_secs(29)).is_empty());
        // Reused before the limit: the idle clock starts again.
        assert_eq!(p.checkout(t0 + Duration::from_secs(29)), Checkout::Reuse(a));
        let t1 = t0 + Duration::from_secs(40);
        assert!(p.sweep(t1).is_empty(), "busy connections stay");
        assert_eq!(p.release(a, t1), None);
        assert_eq!(p.sweep(t1 + Duration::from_secs(30)), vec!["a"]);
        assert_eq!(p.connections(), 0);
    }

    #[test]
    fn a_broken_connection_is_dropped_once_its_tunnels_end() {
        let t0 = Instant::now();
        let mut p = Pool::new(limits(1, 10, 100), backoff());
        assert_eq!(p.checkout(t0), Checkout::Connect);
        let (a, _) = p.connected("a", t0);
        assert_eq!(p.checkout(t0), Checkout::Reuse(a));
        assert_eq!(p.broken(a), None);
        assert_eq!(p.checkout(t0), Checkout::Connect);
        assert_eq!(p.release(a, t0), None);
        assert_eq!(p.release(a, t0), Some("a"));
        // Unknown ids are ignored.
        assert_eq!(p.release(a, t0), None);
        assert_eq!(p.broken(a), None);
    }
}
