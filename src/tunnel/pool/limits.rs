//! How far one pooled connection to the core may be reused, and how fast a
//! failing core is retried.

use std::time::Duration;

/// Reuse limits of the connections one shard keeps to the core.
///
/// Mirrors Xray's XMUX knobs: a connection carries at most `max_concurrency`
/// tunnels at once and `max_reuse` over its life, and takes no new tunnel
/// once it is `max_lifetime` old (it finishes the ones it has). Reuse hides
/// the handshake rate (one REALITY handshake per tunnel is a pattern a
/// censor can count); the caps keep one connection from carrying a
/// conspicuous volume or living conspicuously long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolLimits {
    /// Connections that may take new tunnels at once (per shard).
    pub max_connections: usize,
    /// Tunnels open at once on one connection.
    pub max_concurrency: u32,
    /// Tunnels one connection carries over its life.
    pub max_reuse: u32,
    /// Age after which a connection takes no new tunnel.
    pub max_lifetime: Duration,
    /// A connection with no tunnel for this long is closed (Xray servers drop
    /// idle connections after 300 s anyway).
    pub max_idle: Duration,
}

impl PoolLimits {
    /// Raw REALITY: the TLS stream *is* the tunnel, so a connection carries
    /// exactly one.
    pub const ONE_TUNNEL_PER_CONNECTION: PoolLimits = PoolLimits {
        max_connections: usize::MAX,
        max_concurrency: 1,
        max_reuse: 1,
        max_lifetime: Duration::MAX,
        max_idle: Duration::MAX,
    };
}

impl Default for PoolLimits {
    /// Close to Xray's XMUX defaults for XHTTP over h2 (a few connections,
    /// hundreds of requests each, half an hour of life).
    fn default() -> Self {
        PoolLimits {
            max_connections: 3,
            max_concurrency: 16,
            max_reuse: 256,
            max_lifetime: Duration::from_secs(1800),
            max_idle: Duration::from_secs(240),
        }
    }
}

/// Exponential back-off between failed connection attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Wait after the first failure.
    pub base: Duration,
    /// The wait never grows past this.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The wait after `failures` consecutive failures (≥ 1): `base · 2^(n-1)`
    /// capped at `max`, then scaled into `[½, 1]` of itself by `jitter`
    /// (0.0..1.0, from the caller's random source) so that many edges losing
    /// the core together do not come back in lockstep.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let full = self
            .base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        full.mul_f64(0.5 + jitter / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let full: Vec<_> = (1..=6).map(|n| b.delay(n, 1.0).as_millis()).collect();
        assert_eq!(full, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay(1, 0.0), Duration::from_millis(50));
        assert_eq!(b.delay(u32::MAX, 1.0), Duration::from_secs(1));
        // A broken random source cannot make the wait vanish or explode.
        assert_eq!(b.delay(2, f64::NAN), Duration::from_millis(100));
        assert_eq!(b.delay(2, 7.0), Duration::from_millis(200));
        assert_eq!(b.delay(0, 1.0), Duration::from_millis(100));
    }
}
