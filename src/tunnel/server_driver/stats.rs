//! Per-shard outcome counters of the REALITY + VLESS server.
//!
//! Plain `Cell`s: a shard's connections all run on its one thread, so
//! counting costs a load and a store. [`ServerStats::snapshot`] copies them
//! into a `Send` value for whoever aggregates shards (metrics, tests).

use std::cell::Cell;

use crate::tunnel::reality::server::KeyExchange;
use crate::tunnel::reality::RealityReject;

/// Why a connection was spliced to `dest` instead of served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FallbackCause {
    /// A well-formed ClientHello that failed a REALITY rule.
    Rejected(RealityReject),
    /// The first bytes are not a well-formed TLS ClientHello.
    NotTls,
    /// The client ended its stream before a whole hello.
    ClientClosed,
    /// No whole hello within the hello deadline.
    HelloTimeout,
}

const OWN_CAUSES: [FallbackCause; 3] = [
    FallbackCause::NotTls,
    FallbackCause::ClientClosed,
    FallbackCause::HelloTimeout,
];
const FALLBACK_SLOTS: usize = RealityReject::ALL.len() + OWN_CAUSES.len();

impl FallbackCause {
    /// Stable metric label; REALITY rejections keep their own labels.
    pub fn label(self) -> &'static str {
        match self {
            FallbackCause::Rejected(r) => r.label(),
            FallbackCause::NotTls => "not_tls",
            FallbackCause::ClientClosed => "client_closed",
            FallbackCause::HelloTimeout => "hello_timeout",
        }
    }

    fn slot(self) -> usize {
        Self::all()
            .position(|c| c == self)
            .expect("every cause has a slot")
    }

    fn all() -> impl Iterator<Item = FallbackCause> {
        RealityReject::ALL
            .iter()
            .copied()
            .map(FallbackCause::Rejected)
            .chain(OWN_CAUSES)
    }
}

/// Why an authenticated REALITY client got no tunnel (and no answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VlessRefusal {
    /// Not a VLESS request header (or an unknown command or address type).
    Malformed,
    /// The UUID is not one of ours.
    UnknownUser,
    /// A flow (`xtls-rprx-vision`) this server does not speak.
    Flow,
    /// Mux.Cool: not served here.
    Mux,
    /// The VLESS Encryption handshake failed (wrong key, replay, unknown
    /// ticket, garbage).
    Encryption,
}

impl VlessRefusal {
    pub const ALL: [VlessRefusal; 5] = [
        VlessRefusal::Malformed,
        VlessRefusal::UnknownUser,
        VlessRefusal::Flow,
        VlessRefusal::Mux,
        VlessRefusal::Encryption,
    ];

    pub fn label(self) -> &'static str {
        match self {
            VlessRefusal::Malformed => "malformed",
            VlessRefusal::UnknownUser => "unknown_user",
            VlessRefusal::Flow => "flow",
            VlessRefusal::Mux => "mux",
            VlessRefusal::Encryption => "encryption",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// One shard's counters.
#[derive(Debug, Default)]
pub struct ServerStats {
    fallbacks: [Cell<u64>; FALLBACK_SLOTS],
    refused: [Cell<u64>; VlessRefusal::ALL.len()],
    accepted: Cell<u64>,
    tls_failed: Cell<u64>,
    pq_handshakes: Cell<u64>,
    classical_handshakes: Cell<u64>,
    tunnels: Cell<u64>,
    dest_unreachable: Cell<u64>,
    target_unreachable: Cell<u64>,
    bytes_up: Cell<u64>,
    bytes_down: Cell<u64>,
    xhttp_sessions: Cell<u64>,
    xhttp_rejected: Cell<u64>,
    vlessenc_full: Cell<u64>,
    vlessenc_resumed: Cell<u64>,
}

fn bump(cell: &Cell<u64>, by: u64) {
    cell.set(cell.get().wrapping_add(by));
}

impl ServerStats {
    pub fn fallback(&self, cause: FallbackCause) {
        bump(&self.fallbacks[cause.slot()], 1);
    }

    pub fn refused(&self, why: VlessRefusal) {
        bump(&self.refused[why.slot()], 1);
    }

    /// A REALITY-authenticated client: TLS starts.
    pub fn accepted(&self) {
        bump(&self.accepted, 1);
    }

    /// An authenticated client whose TLS handshake or VLESS request read
    /// failed (for XHTTP: per session, the request read).
    pub fn tls_failed(&self) {
        bump(&self.tls_failed, 1);
    }

    /// An authenticated client finished its TLS handshake with `kx`.
    pub fn handshake(&self, kx: KeyExchange) {
        match kx {
            KeyExchange::PostQuantum => bump(&self.pq_handshakes, 1),
            KeyExchange::Classical => bump(&self.classical_handshakes, 1),
        }
    }

    /// A VLESS tunnel reached its target and started relaying.
    pub fn tunnel(&self) {
        bump(&self.tunnels, 1);
    }

    pub fn dest_unreachable(&self) {
        bump(&self.dest_unreachable, 1);
    }

    pub fn target_unreachable(&self) {
        bump(&self.target_unreachable, 1);
    }

    /// Bytes a finished tunnel moved: client → target, target → client.
    pub fn tunnel_bytes(&self, up: u64, down: u64) {
        bump(&self.bytes_up, up);
        bump(&self.bytes_down, down);
    }

    /// An XHTTP session was joined (its GET, or a stream-one POST, came)
    /// and its VLESS request is awaited.
    pub fn xhttp_session(&self) {
        bump(&self.xhttp_sessions, 1);
    }

    /// An HTTP request on an XHTTP connection got an error status.
    pub fn xhttp_rejected(&self) {
        bump(&self.xhttp_rejected, 1);
    }

    /// A VLESS Encryption handshake succeeded: a full key exchange (1-RTT)
    /// or a resumed ticket (0-RTT).
    pub fn vlessenc(&self, resumed: bool) {
        bump(
            if resumed {
                &self.vlessenc_resumed
            } else {
                &self.vlessenc_full
            },
            1,
        );
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            fallbacks: FallbackCause::all()
                .map(|c| (c.label(), self.fallbacks[c.slot()].get()))
                .collect(),
            refused: VlessRefusal::ALL
                .iter()
                .map(|r| (r.label(), self.refused[r.slot()].get()))
                .collect(),
            accepted: self.accepted.get(),
            tls_failed: self.tls_failed.get(),
            pq_handshakes: self.pq_handshakes.get(),
            classical_handshakes: self.classical_handshakes.get(),
            tunnels: self.tunnels.get(),
            dest_unreachable: self.dest_unreachable.get(),
            target_unreachable: self.target_unreachable.get(),
            bytes_up: self.bytes_up.get(),
            bytes_down: self.bytes_down.get(),
            xhttp_sessions: self.xhttp_sessions.get(),
            xhttp_rejected: self.xhttp_rejected.get(),
            vlessenc_full: self.vlessenc_full.get(),
            vlessenc_resumed: self.vlessenc_resumed.get(),
        }
    }
}

/// A copy of one shard's counters, labelled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub fallbacks: Vec<(&'static str, u64)>,
    pub refused: Vec<(&'static str, u64)>,
    pub accepted: u64,
    pub tls_failed: u64,
    /// Finished handshakes on X25519MLKEM768 (edge clients offering it).
    pub pq_handshakes: u64,
    /// Finished handshakes on a classical group (Xray 24.11.21 clients).
    pub classical_handshakes: u64,
    pub tunnels: u64,
    pub dest_unreachable: u64,
    pub target_unreachable: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// XHTTP sessions joined (each then counts like a raw connection's
    /// request: a tunnel, a refusal, …).
    pub xhttp_sessions: u64,
    /// XHTTP requests answered with an error status.
    pub xhttp_rejected: u64,
    /// VLESS Encryption handshakes: full key exchanges (1-RTT) …
    pub vlessenc_full: u64,
    /// … and resumed tickets (0-RTT).
    pub vlessenc_resumed: u64,
}

impl StatsSnapshot {
    /// Fallbacks counted under `label` (0 for an unknown label).
    pub fn fallback(&self, label: &str) -> u64 {
        lookup(&self.fallbacks, label)
    }

    pub fn fallbacks_total(&self) -> u64 {
        self.fallbacks.iter().map(|(_, n)| n).sum()
    }

    /// Refusals counted under `label` (0 for an unknown label).
    pub fn refused(&self, label: &str) -> u64 {
        lookup(&self.refused, label)
    }
}

fn lookup(pairs: &[(&'static str, u64)], label: &str) -> u64 {
    pairs
        .iter()
        .find(|(l, _)| *l == label)
        .map_or(0, |(_, n)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_has_its_own_slot_and_label() {
        let stats = ServerStats::default();
        for (i, cause) in FallbackCause::all().enumerate() {
            for _ in 0..=i {
                stats.fallback(cause);
            }
        }
        let snap = stats.snapshot();
        assert_eq!(snap.fallbacks.len(), FALLBACK_SLOTS);
        for (i, cause) in FallbackCause::all().enumerate() {
            assert_eq!(snap.fallback(cause.label()), i as u64 + 1, "{cause:?}");
        }
        let mut labels: Vec<_> = snap.fallbacks.iter().map(|(l, _)| *l).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), FALLBACK_SLOTS);
    }

    #[test]
    fn refusals_and_outcomes_are_counted_apart() {
        let stats = ServerStats::default();
        stats.refused(VlessRefusal::UnknownUser);
        stats.refused(VlessRefusal::UnknownUser);
        stats.refused(VlessRefusal::Mux);
        stats.accepted();
        stats.handshake(KeyExchange::PostQuantum);
        stats.handshake(KeyExchange::Classical);
        stats.handshake(KeyExchange::Classical);
        stats.tunnel();
        stats.tunnel_bytes(3, 4);
        stats.tunnel_bytes(1, 1);
        let snap = stats.snapshot();
        assert_eq!(snap.refused("unknown_user"), 2);
        assert_eq!(snap.refused("mux"), 1);
        assert_eq!(snap.refused("flow"), 0);
        assert_eq!((snap.accepted, snap.tunnels), (1, 1));
        assert_eq!((snap.pq_handshakes, snap.classical_handshakes), (1, 2));
        assert_eq!((snap.bytes_up, snap.bytes_down), (4, 5));
        assert_eq!(snap.fallbacks_total(), 0);
        assert_eq!(snap.fallback("no such label"), 0);
    }
}
