//! The media each participant sends and checks, without any I/O: frames are
//! built from [`frame`](super::frame) plaintext, SFrame-encrypted
//! (AES_128_GCM_SHA256_128) under the sender's own key (KID = participant
//! index) and shaped into RTP payloads; on the way back they are reassembled,
//! decrypted with the sender's key learned from `sframe-keys`, and counted.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use oxpulse_edge::sfu::signal::Kind;
use serde::{Deserialize, Serialize};
use sframe::{CipherSuite, ReceiverContext, SenderContext};

use super::frame::{self, FrameHeader, Reassembler};
use super::stats::Stats;

pub const SUITE: CipherSuite = CipherSuite::AesGcm128Sha256;
/// Audio frames per second (20 ms Opus frames).
pub const AUDIO_FPS: u32 = 50;
/// Video frames per second.
pub const VIDEO_FPS: u32 = 30;
/// Audio RTP clock.
pub const AUDIO_CLOCK: u32 = 48_000;
/// Video RTP clock.
pub const VIDEO_CLOCK: u32 = 90_000;

/// The message announcing a sender's key on `sframe-keys`.
///
/// This is a load tool, not a key exchange: the key travels in clear over
/// the data channel (DTLS protects it from the network, but the relaying edge
/// could read it). Real clients wrap keys end to end (SFU.md §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAnnouncement {
    pub kid: u64,
    pub key_b64: String,
}

impl KeyAnnouncement {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Sizes of this run's frames: audio alternates over a realistic Opus
/// spread, video is `kbps` spread over [`VIDEO_FPS`].
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub video_kbps: u32,
}

impl Shape {
    /// Plaintext bytes of audio frame `seq`: 80–160 bytes with the SFrame
    /// overhead (header ≤ 3 + tag 16) and the TOC byte.
    pub fn audio_len(&self, seq: u32) -> usize {
        const SIZES: [usize; 8] = [100, 120, 80, 140, 110, 60, 130, 90];
        SIZES[seq as usize % SIZES.len()]
    }

    /// Plaintext bytes of video frame `seq` (key frames are 3× larger).
    pub fn video_len(&self, key_frame: bool) -> usize {
        let per_frame = (self.video_kbps as usize * 1000 / 8) / VIDEO_FPS as usize;
        let len = if key_frame { per_frame * 3 } else { per_frame };
        len.max(frame::HEADER_LEN)
    }

    pub fn video_enabled(&self) -> bool {
        self.video_kbps > 0
    }
}

/// One participant's sending side.
pub struct MediaSender {
    index: u32,
    ctx: SenderContext,
    key: [u8; 16],
    seq: [u32; 2],
    pub shape: Shape,
}

impl MediaSender {
    /// A sender with a random 16-byte base key under KID `index`.
    pub fn new(index: u32, shape: Shape) -> anyhow::Result<Self> {
        let mut key = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
            .map_err(|_| anyhow::anyhow!("no system randomness"))?;
        Self::with_key(index, shape, key)
    }

    pub fn with_key(index: u32, shape: Shape, key: [u8; 16]) -> anyhow::Result<Self> {
        let mut ctx = SenderContext::new(SUITE);
        ctx.add_key(u64::from(index), &key)
            .map_err(|e| anyhow::anyhow!("sframe key: {e}"))?;
        Ok(Self {
            index,
            ctx,
            key,
            seq: [0; 2],
            shape,
        })
    }

    pub fn announcement(&self) -> KeyAnnouncement {
        KeyAnnouncement {
            kid: u64::from(self.index),
            key_b64: STANDARD.encode(self.key),
        }
    }

    fn next_frame(&mut self, kind: Kind, send_ns: u64, len: usize) -> anyhow::Result<Vec<u8>> {
        let slot = &mut self.seq[kind as usize];
        let h = FrameHeader {
            send_ns,
            sender: self.index,
            kind,
            seq: *slot,
        };
        *slot = slot.wrapping_add(1);
        let pt = frame::plaintext(&h, len);
        self.ctx
            .encrypt(u64::from(self.index), None, &[], &pt)
            .map_err(|e| anyhow::anyhow!("sframe encrypt: {e}"))
    }

    /// The next audio frame's single RTP payload.
    pub fn audio(&mut self, send_ns: u64) -> anyhow::Result<Vec<u8>> {
        let len = self.shape.audio_len(self.seq[Kind::Audio as usize]);
        Ok(frame::audio_payload(&self.next_frame(
            Kind::Audio,
            send_ns,
            len,
        )?))
    }

    /// The next video frame's RTP payloads (mark the last).
    pub fn video(&mut self, send_ns: u64, key_frame: bool) -> anyhow::Result<Vec<Vec<u8>>> {
        let len = self.shape.video_len(key_frame);
        let sframe = self.next_frame(Kind::Video, send_ns, len)?;
        Ok(frame::video_payloads(&sframe, key_frame))
    }
}

/// One participant's receiving side.
pub struct MediaReceiver {
    ctx: ReceiverContext,
    /// Per incoming SSRC: video reassembly state.
    video: HashMap<u32, Reassembler>,
    epoch: Instant,
    window: (Instant, Instant),
}

impl MediaReceiver {
    /// Counts frames whose send time is within `window` (relative to the
    /// shared `epoch`).
    pub fn new(epoch: Instant, window: (Instant, Instant)) -> Self {
        Self {
            ctx: ReceiverContext::new(SUITE),
            video: HashMap::new(),
            epoch,
            window,
        }
    }

    /// Learns a key from an `sframe-keys` message; false if it is not one.
    /// A KID already known is kept (keys never change within a run).
    pub fn learn_key(&mut self, msg: &[u8]) -> bool {
        let Ok(a) = serde_json::from_slice::<KeyAnnouncement>(msg) else {
            return false;
        };
        let Ok(key) = STANDARD.decode(a.key_b64.as_bytes()) else {
            return false;
        };
        if !self.ctx.has_key(a.kid) {
            return self.ctx.add_key(a.kid, &key).is_ok();
        }
        true
    }

    /// Feeds one received RTP packet (`kind` from the m-line it arrived on).
    #[allow(clippy::too_many_arguments)]
    pub fn packet(
        &mut self,
        stats: &mut Stats,
        kind: Kind,
        ssrc: u32,
        seq: u64,
        rtp_time: u32,
        marker: bool,
        payload: &[u8],
        arrived: Instant,
    ) {
        if arrived >= self.window.0 && arrived < self.window.1 {
            stats.packets_received += 1;
        }
        if payload.is_empty() {
            return; // padding / probe
        }
        let frame = match kind {
            Kind::Audio => Some(payload.to_vec()),
            Kind::Video => {
                let r = self.video.entry(ssrc).or_default();
                let before = r.broken;
                let f = r.push(seq, rtp_time, marker, payload);
                let broken = r.broken - before;
                if arrived >= self.window.0 && arrived < self.window.1 {
                    stats.frames_broken += broken;
                }
                f
            }
        };
        if let Some(frame) = frame {
            self.frame(stats, kind, &frame, arrived);
        }
    }

    /// Checks one reassembled frame.
    pub fn frame(&mut self, stats: &mut Stats, kind: Kind, frame: &[u8], arrived: Instant) {
        let Some(sframe) = frame::strip_prefix(kind, frame) else {
            stats.decrypt_failures += 1;
            return;
        };
        let plaintext = match self.ctx.decrypt(&[], sframe) {
            Ok((_, _, pt)) => pt,
            Err(sframe::Error::UnknownKid(_)) => {
                stats.frames_without_key += 1;
                return;
            }
            Err(e) => {
                stats.decrypt_failures += 1;
                stats.error(format!("sframe decrypt: {e}"));
                return;
            }
        };
        let Some(h) = frame::parse_plaintext(&plaintext) else {
            stats.decrypt_failures += 1;
            return;
        };
        if h.kind != kind {
            stats.decrypt_failures += 1;
            return;
        }
        let sent = self.epoch + Duration::from_nanos(h.send_ns);
        if sent < self.window.0 || sent >= self.window.1 {
            return;
        }
        stats.frame_received(
            h.sender,
            kind,
            h.seq,
            arrived.saturating_duration_since(sent),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(epoch: Instant) -> (Instant, Instant) {
        (epoch, epoch + Duration::from_secs(3600))
    }

    #[test]
    fn sframe_round_trip_through_send_and_receive_paths() {
        let epoch = Instant::now();
        let shape = Shape { video_kbps: 1000 };
        let mut tx = MediaSender::new(3, shape).unwrap();
        let mut rx = MediaReceiver::new(epoch, window(epoch));
        let mut stats = Stats::default();

        // Before the key: counted as "without key", not as failures.
        let a0 = tx.audio(0).unwrap();
        rx.packet(&mut stats, Kind::Audio, 1, 0, 0, false, &a0, epoch);
        assert_eq!(stats.frames_without_key, 1);

        assert!(rx.learn_key(tx.announcement().to_json().as_bytes()));
        assert!(!rx.learn_key(b"not json"));
        for i in 1..=3u64 {
            let a = tx.audio(i * 20_000_000).unwrap();
            assert!((80..=170).contains(&a.len()), "{}", a.len());
            rx.packet(
                &mut stats,
                Kind::Audio,
                1,
                i,
                0,
                false,
                &a,
                epoch + Duration::from_millis(i * 20 + 5),
            );
        }
        let mut seq = 0u64;
        for (f, key) in [(0u64, true), (1, false)] {
            let ps = tx.video(f * 33_000_000, key).unwrap();
            assert!(ps.len() > 1);
            let n = ps.len();
            for (i, p) in ps.iter().enumerate() {
                rx.packet(
                    &mut stats,
                    Kind::Video,
                    2,
                    seq,
                    f as u32 * 3000,
                    i == n - 1,
                    p,
                    epoch + Duration::from_millis(f * 33 + 7),
                );
                seq += 1;
            }
        }
        assert_eq!(stats.decrypt_failures, 0);
        assert_eq!(stats.frames_received, 5);
        assert_eq!(stats.latency.count(), 5);
        assert!(
            (stats.latency.quantile_ms(0.5) - 5.0).abs() < 0.1
                || (stats.latency.quantile_ms(0.5) - 7.0).abs() < 0.1
        );
        assert_eq!(stats.packets_received, 4 + seq);

        // A flipped ciphertext byte is a decrypt failure.
        let mut a = tx.audio(0).unwrap();
        let last = a.len() - 1;
        a[last] ^= 1;
        rx.packet(&mut stats, Kind::Audio, 1, 9, 0, false, &a, epoch);
        assert_eq!(stats.decrypt_failures, 1);

        // Audio seq 0 was sent before the key was known and 4 (the corrupted
        // frame) failed: the receiver saw seqs 1..=3 only, so no loss yet.
        let mut total = Stats::default();
        total.merge(stats);
        assert_eq!(total.frames_lost, 0);
    }

    #[test]
    fn frames_outside_the_window_are_not_counted() {
        let epoch = Instant::now();
        let win = (
            epoch + Duration::from_secs(1),
            epoch + Duration::from_secs(2),
        );
        let mut tx = MediaSender::new(0, Shape { video_kbps: 0 }).unwrap();
        let mut rx = MediaReceiver::new(epoch, win);
        rx.learn_key(tx.announcement().to_json().as_bytes());
        let mut stats = Stats::default();
        let early = tx.audio(500_000_000).unwrap();
        rx.packet(
            &mut stats,
            Kind::Audio,
            1,
            0,
            0,
            false,
            &early,
            epoch + Duration::from_millis(1200),
        );
        let inside = tx.audio(1_500_000_000).unwrap();
        rx.packet(
            &mut stats,
            Kind::Audio,
            1,
            1,
            0,
            false,
            &inside,
            epoch + Duration::from_millis(1510),
        );
        assert_eq!(stats.packets_received, 2);
        assert_eq!(stats.frames_received, 1);
        assert!((stats.latency.max_ms() - 10.0).abs() < 0.1);
    }
}
