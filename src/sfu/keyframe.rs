//! Keyframe detection on forwarded RTP and the one-per-second limit on keyframe
//! requests sent to a publisher.
//!
//! The payload is SFrame ciphertext, but the codec's RTP payload descriptor (VP8, VP9,
//! AV1) or NAL header (H.264/5) is written by the sender's packetizer in clear, and the
//! oxpulse clients leave the codec's clear prefix unencrypted: that is all the detectors
//! read.

use std::time::{Duration, Instant};

use str0m::format::{
    detect_av1_keyframe, detect_h264_keyframe, detect_h265_keyframe, detect_vp8_keyframe,
    detect_vp9_keyframe, Codec,
};

/// At most one keyframe request per source layer in this interval (PROTOCOLS.md:
/// "at most one per second per track"): a keyframe costs the publisher many times the
/// bandwidth of a delta frame, and every subscriber's decoder asks after a loss.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_secs(1);

/// Whether this packet starts a keyframe. `None` when the codec has no detector (then a
/// layer switch cannot wait for a keyframe and happens at once).
pub fn is_keyframe(codec: Codec, payload: &[u8]) -> Option<bool> {
    match codec {
        Codec::Vp8 => Some(detect_vp8_keyframe(payload)),
        Codec::Vp9 => Some(detect_vp9_keyframe(payload)),
        Codec::H264 => Some(detect_h264_keyframe(payload)),
        Codec::H265 => Some(detect_h265_keyframe(payload)),
        Codec::Av1 => Some(detect_av1_keyframe(payload)),
        _ => None,
    }
}

/// Lets one request through per [`KEYFRAME_REQUEST_INTERVAL`].
#[derive(Debug, Default, Clone)]
pub struct KeyframeLimiter {
    last: Option<Instant>,
}

impl KeyframeLimiter {
    /// True (and the window restarts) if a request may go now.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < KEYFRAME_REQUEST_INTERVAL => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_allows_one_per_second() {
        let t0 = Instant::now();
        let mut l = KeyframeLimiter::default();
        assert!(l.allow(t0));
        assert!(!l.allow(t0 + Duration::from_millis(10)));
        assert!(!l.allow(t0 + Duration::from_millis(999)));
        assert!(l.allow(t0 + Duration::from_millis(1000)));
        assert!(!l.allow(t0 + Duration::from_millis(1500)));
    }

    #[test]
    fn vp8_keyframe_bits() {
        // Descriptor: X=0, S=1, PID=0 (0x10); then the VP8 payload header with P=0.
        assert_eq!(is_keyframe(Codec::Vp8, &[0x10, 0x00, 0xAA]), Some(true));
        // P=1: an interframe.
        assert_eq!(is_keyframe(Codec::Vp8, &[0x10, 0x01, 0xAA]), Some(false));
        // Not the start of a partition.
        assert_eq!(is_keyframe(Codec::Vp8, &[0x00, 0x00, 0xAA]), Some(false));
        assert_eq!(is_keyframe(Codec::Opus, &[0x10, 0x00]), None);
    }

    #[test]
    fn h264_idr() {
        // A single NAL unit of type 5 (IDR).
        assert_eq!(is_keyframe(Codec::H264, &[0x65, 0x88]), Some(true));
        // Type 1 (non-IDR slice).
        assert_eq!(is_keyframe(Codec::H264, &[0x41, 0x9a]), Some(false));
    }
}
