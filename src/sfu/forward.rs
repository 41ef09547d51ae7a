//! Per-subscriber RTP header rewriting. The payload is never touched; what changes is
//! the sequence number and timestamp space: each subscriber m-line is one continuous
//! RTP stream even when the source behind it switches simulcast layers (each layer has
//! its own SSRC, sequence and timestamp base). str0m writes the subscriber's own SSRC.

use std::time::Instant;

use str0m::rtp::ExtensionValues;

/// Maps a source's (extended) sequence numbers and timestamps into one outgoing stream.
#[derive(Debug, Clone)]
pub struct Rewriter {
    clock_rate: u32,
    seq_offset: u64,
    ts_offset: u32,
    /// First source sequence number of the current base; older packets of that source
    /// (reordered from before a switch) would collide with numbers already sent.
    base_seq: u64,
    /// Highest sequence number written, and the timestamp and time of that packet.
    last: Option<(u64, u32, Instant)>,
}

impl Rewriter {
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate,
            seq_offset: 0,
            ts_offset: 0,
            base_seq: 0,
            last: None,
        }
    }

    /// Starts a new base at this source packet (the first packet, or the first packet of
    /// a new layer): the next outgoing number follows the last one sent, and the
    /// timestamp advances by the wall time since then.
    pub fn rebase(&mut self, seq: u64, ts: u32, at: Instant) {
        self.base_seq = seq;
        match self.last {
            None => {
                // A fresh outgoing stream starts below 2^16 so the receiver's rollover
                // counter starts at 0 (str0m `RtpWrite::new`); keep the source's low bits.
                let out = seq & 0xFFFF;
                self.seq_offset = out.wrapping_sub(seq);
                self.ts_offset = 0;
            }
            Some((last_seq, last_ts, last_at)) => {
                self.seq_offset = (last_seq + 1).wrapping_sub(seq);
                let elapsed = at.saturating_duration_since(last_at);
                let ticks = (elapsed.as_micros() as u64 * self.clock_rate as u64 / 1_000_000)
                    .clamp(1, u32::MAX as u64) as u32;
                self.ts_offset = last_ts.wrapping_add(ticks).wrapping_sub(ts);
            }
        }
    }

    /// The outgoing (sequence, timestamp) for a source packet, or `None` if it predates
    /// the current base. Call [`Rewriter::rebase`] before the first packet.
    pub fn map(&mut self, seq: u64, ts: u32, at: Instant) -> Option<(u64, u32)> {
        if seq < self.base_seq {
            return None;
        }
        let out_seq = seq.wrapping_add(self.seq_offset);
        let out_ts = ts.wrapping_add(self.ts_offset);
        if self.last.is_none_or(|(s, _, _)| out_seq > s) {
            self.last = Some((out_seq, out_ts, at));
        }
        Some((out_seq, out_ts))
    }

    pub fn started(&self) -> bool {
        self.last.is_some()
    }
}

/// The header extensions a subscriber gets from the publisher's packet: the ones that
/// describe the media (level, activity, orientation). Transport extensions (abs-send-time,
/// transport-cc, mid, rid) are the subscriber session's own and str0m writes them.
pub fn media_extensions(src: &ExtensionValues) -> ExtensionValues {
    ExtensionValues {
        audio_level: src.audio_level,
        voice_activity: src.voice_activity,
        video_orientation: src.video_orientation,
        video_content_type: src.video_content_type,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn continuous_across_a_switch() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(90_000);
        r.rebase(70_000, 1000, t0);
        assert_eq!(r.map(70_000, 1000, t0), Some((70_000 & 0xFFFF, 1000)));
        assert_eq!(r.map(70_001, 4000, t0), Some(((70_000 & 0xFFFF) + 1, 4000)));
        // Switch to a layer with unrelated numbering, 33 ms later.
        let t1 = t0 + Duration::from_millis(33);
        r.rebase(5, 999_999, t1);
        let (s, ts) = r.map(5, 999_999, t1).unwrap();
        assert_eq!(s, (70_000 & 0xFFFF) + 2);
        assert_eq!(ts, 4000 + 2970);
        assert_eq!(r.map(6, 1_002_999, t1).unwrap(), (s + 1, ts + 3000));
        // A reordered packet from before the new base is not sent.
        assert_eq!(r.map(4, 999_000, t1), None);
    }

    #[test]
    fn timestamps_wrap() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(48_000);
        r.rebase(1, u32::MAX - 10, t0);
        assert_eq!(r.map(1, u32::MAX - 10, t0), Some((1, u32::MAX - 10)));
        assert_eq!(r.map(2, 949, t0), Some((2, 949)));
    }
}
