//! Counting what one participant sent and received, and merging participants.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use oxpulse_edge::sfu::signal::Kind;

use crate::report::LatencyHistogram;

/// Loss of one sender's stream of one kind, as one receiver sees it, from
/// the gaps in the sender's frame `seq`: expected = highest − lowest + 1 of
/// the sequence numbers seen, lost = expected − distinct frames received.
/// Frames lost before the first or after the last one seen are not visible
/// (the run's warm-up and grace period keep those out of the window anyway).
#[derive(Debug, Default, Clone)]
pub struct SeqTracker {
    lowest: Option<u32>,
    highest: u32,
    received: u64,
    /// Sequence numbers above `highest - 64` seen so far (bit i = highest - i),
    /// so a duplicate is not counted twice and a late frame still fills a gap.
    window: u64,
}

impl SeqTracker {
    /// Records frame `seq`; returns false for a duplicate (not counted).
    pub fn record(&mut self, seq: u32) -> bool {
        let Some(lowest) = self.lowest else {
            self.lowest = Some(seq);
            self.highest = seq;
            self.window = 1;
            self.received = 1;
            return true;
        };
        if seq > self.highest {
            let shift = seq - self.highest;
            self.window = if shift >= 64 { 0 } else { self.window << shift };
            self.window |= 1;
            self.highest = seq;
        } else {
            let back = self.highest - seq;
            if back < 64 {
                if self.window & (1 << back) != 0 {
                    return false;
                }
                self.window |= 1 << back;
            }
            // Older than the window: counted (cannot tell a duplicate).
            if seq < lowest {
                self.lowest = Some(seq);
            }
        }
        self.received += 1;
        true
    }

    pub fn expected(&self) -> u64 {
        match self.lowest {
            Some(lo) => u64::from(self.highest - lo) + 1,
            None => 0,
        }
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }
}

/// Everything one participant counted in the measured window (plus join
/// and close outcomes, whenever they happened).
#[derive(Debug, Default)]
pub struct Stats {
    /// Participants that got `answer` and connected (ICE + DTLS).
    pub joined: u64,
    /// Participants that never got in: reason → count.
    pub join_failures: BTreeMap<String, u64>,
    /// WebSocket close codes (or `error` codes) received from the server.
    pub close_codes: BTreeMap<u16, u64>,
    /// RTP packets written to str0m within the window.
    pub packets_sent: u64,
    /// Frames sent within the window (audio + video).
    pub frames_sent: u64,
    /// RTP packets received within the window.
    pub packets_received: u64,
    /// Frames decrypted whose send time is within the window.
    pub frames_received: u64,
    /// Frames whose SFrame decryption (or plaintext check) failed.
    pub decrypt_failures: u64,
    /// Frames under a KID whose key had not arrived on `sframe-keys` yet.
    pub frames_without_key: u64,
    /// Video frames abandoned half-built (a packet missing or out of order).
    pub frames_broken: u64,
    /// Key announcements received on `sframe-keys`.
    pub key_messages: u64,
    /// Messages received on `chat`.
    pub chat_messages: u64,
    /// Server renegotiation offers answered.
    pub renegotiations: u64,
    /// One-way latency (receive − send) of frames in the window.
    pub latency: LatencyHistogram,
    /// Per (receiver, sender, kind) loss trackers; the receiver is implicit
    /// until merged, so key by (sender, kind) and sum at merge time.
    pub seq: HashMap<(u32, KindKey), SeqTracker>,
    /// Sum of the trackers of merged participants.
    pub frames_expected: u64,
    pub frames_lost: u64,
    /// First error seen, for the report.
    pub first_error: Option<String>,
}

/// `Kind` as a hash key (the shared type does not derive `Hash`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KindKey {
    Audio,
    Video,
}

impl From<Kind> for KindKey {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Audio => KindKey::Audio,
            Kind::Video => KindKey::Video,
        }
    }
}

impl Stats {
    /// Records one decrypted frame in the window.
    pub fn frame_received(&mut self, sender: u32, kind: Kind, seq: u32, latency: Duration) {
        if self
            .seq
            .entry((sender, kind.into()))
            .or_default()
            .record(seq)
        {
            self.frames_received += 1;
            self.latency.record(latency);
        }
    }

    pub fn error(&mut self, msg: impl Into<String>) {
        if self.first_error.is_none() {
            self.first_error = Some(msg.into());
        }
    }

    /// Folds this participant's loss trackers into the totals.
    fn settle(&mut self) {
        for t in self.seq.values() {
            self.frames_expected += t.expected();
            self.frames_lost += t.lost();
        }
        self.seq.clear();
    }

    /// Adds `other` (one participant, or an already merged group) into self.
    pub fn merge(&mut self, mut other: Stats) {
        self.settle();
        other.settle();
        self.joined += other.joined;
        for (k, v) in other.join_failures {
            *self.join_failures.entry(k).or_default() += v;
        }
        for (k, v) in other.close_codes {
            *self.close_codes.entry(k).or_default() += v;
        }
        self.packets_sent += other.packets_sent;
        self.frames_sent += other.frames_sent;
        self.packets_received += other.packets_received;
        self.frames_received += other.frames_received;
        self.decrypt_failures += other.decrypt_failures;
        self.frames_without_key += other.frames_without_key;
        self.frames_broken += other.frames_broken;
        self.key_messages += other.key_messages;
        self.chat_messages += other.chat_messages;
        self.renegotiations += other.renegotiations;
        self.latency.merge(&other.latency);
        self.frames_expected += other.frames_expected;
        self.frames_lost += other.frames_lost;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Lost frames as a percentage of expected ones (0 with none expected).
    pub fn loss_pct(&self) -> f64 {
        if self.frames_expected == 0 {
            0.0
        } else {
            100.0 * self.frames_lost as f64 / self.frames_expected as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_losses_duplicates_are_not() {
        let mut t = SeqTracker::default();
        for s in [5, 6, 8, 9, 9, 12] {
            t.record(s);
        }
        // 5..=12 expected (8); received 5, 6, 8, 9, 12 (the second 9 is a dup).
        assert_eq!(t.expected(), 8);
        assert_eq!(t.received(), 5);
        assert_eq!(t.lost(), 3);
        // A late frame fills its gap.
        assert!(t.record(7));
        assert_eq!(t.lost(), 2);
        assert!(!t.record(7));
        // Far jump: the window resets but counting goes on.
        assert!(t.record(1000));
        assert_eq!(t.expected(), 996);
        assert_eq!(t.received(), 7);
    }

    #[test]
    fn merge_sums_and_settles_loss_and_latency() {
        let mut a = Stats::default();
        a.frame_received(1, Kind::Audio, 0, Duration::from_millis(2));
        a.frame_received(1, Kind::Audio, 2, Duration::from_millis(4));
        a.frame_received(1, Kind::Audio, 2, Duration::from_millis(9)); // dup: ignored
        a.frame_received(2, Kind::Video, 10, Duration::from_millis(6));
        let mut b = Stats::default();
        b.frame_received(1, Kind::Audio, 0, Duration::from_millis(8));
        b.frame_received(1, Kind::Audio, 1, Duration::from_millis(8));
        b.close_codes.insert(4004, 1);
        b.error("boom");
        let mut total = Stats::default();
        total.merge(a);
        total.merge(b);
        assert_eq!(total.frames_received, 5);
        // a: sender 1 audio 0..=2 with 1 missing; sender 2 video 1 of 1. b: 0..=1 whole.
        assert_eq!(total.frames_expected, 3 + 1 + 2);
        assert_eq!(total.frames_lost, 1);
        assert!((total.loss_pct() - 100.0 / 6.0).abs() < 1e-9);
        assert_eq!(total.latency.count(), 5);
        assert!((total.latency.max_ms() - 8.0).abs() < 0.01);
        assert_eq!(total.close_codes.get(&4004), Some(&1));
        assert_eq!(total.first_error.as_deref(), Some("boom"));
    }
}
