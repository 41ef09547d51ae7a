//! What a media frame looks like, from plaintext to RTP payloads, and back.
//!
//! Plaintext (what SFrame encrypts), big-endian:
//!
//! ```text
//! send_ns u64 | sender u32 | kind u8 (0 audio, 1 video) | seq u32 | filler…
//! ```
//!
//! `send_ns` counts nanoseconds since the run's shared epoch (one `Instant`
//! for every participant: they all live in this process), so a receiver gets
//! the one-way forwarding latency by subtracting it from its own arrival time.
//! `seq` counts one sender's frames of one kind, from 0, for loss detection.
//!
//! On the wire each frame is shaped the way an oxpulse browser client shapes
//! it (SFU.md §4): a clear codec prefix, then the SFrame ciphertext —
//!
//! * audio (Opus): `[TOC byte][SFrame]`, one RTP payload per frame;
//! * video (VP8): `[VP8 frame tag: 10 bytes on key frames, 3 otherwise][SFrame]`,
//!   split into RTP payloads of at most [`MAX_RTP_PAYLOAD`] bytes, each
//!   starting with a one-byte VP8 payload descriptor (S=1 on the first), the
//!   last one marked.
//!
//! The edge forwards RTP payloads byte for byte, so the receiver reverses this
//! exactly; the clear prefix means an SFU that peeks at "is this a key frame"
//! sees the truth.

use oxpulse_edge::sfu::signal::Kind;

/// Bytes of the plaintext header.
pub const HEADER_LEN: usize = 17;
/// Largest RTP payload we send (leaves room for RTP header, extensions and
/// the SRTP tag under a 1200-byte datagram).
pub const MAX_RTP_PAYLOAD: usize = 1100;
/// The Opus TOC byte left in clear (config 15, stereo 0, one frame: 20 ms
/// hybrid full-band, what browsers send).
pub const OPUS_TOC: u8 = 0x78;
/// Clear prefix of a VP8 key frame: frame tag (key, version 0, shown), start
/// code, 640x360.
const VP8_KEY_PREFIX: [u8; 10] = [0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01];
/// Clear prefix of a VP8 inter frame: frame tag (inter, version 0, shown).
const VP8_DELTA_PREFIX: [u8; 3] = [0x11, 0x00, 0x00];
/// VP8 payload descriptor, first packet of a frame: S=1, partition 0.
const VP8_DESC_START: u8 = 0x10;
/// VP8 payload descriptor, continuation packet.
const VP8_DESC_CONT: u8 = 0x00;

/// The plaintext header of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub send_ns: u64,
    pub sender: u32,
    pub kind: Kind,
    pub seq: u32,
}

/// Plaintext of `len` bytes (at least [`HEADER_LEN`]) starting with `h`.
pub fn plaintext(h: &FrameHeader, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len.max(HEADER_LEN));
    out.extend_from_slice(&h.send_ns.to_be_bytes());
    out.extend_from_slice(&h.sender.to_be_bytes());
    out.push(match h.kind {
        Kind::Audio => 0,
        Kind::Video => 1,
    });
    out.extend_from_slice(&h.seq.to_be_bytes());
    // Filler: any bytes do, AES-GCM output looks random regardless.
    out.resize(len.max(HEADER_LEN), 0x5a);
    out
}

/// Reads the header back; `None` if too short or the kind byte is unknown.
pub fn parse_plaintext(pt: &[u8]) -> Option<FrameHeader> {
    let h = pt.get(..HEADER_LEN)?;
    let kind = match h[12] {
        0 => Kind::Audio,
        1 => Kind::Video,
        _ => return None,
    };
    Some(FrameHeader {
        send_ns: u64::from_be_bytes(h[0..8].try_into().ok()?),
        sender: u32::from_be_bytes(h[8..12].try_into().ok()?),
        kind,
        seq: u32::from_be_bytes(h[13..17].try_into().ok()?),
    })
}

/// The RTP payload of one audio frame.
pub fn audio_payload(sframe: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + sframe.len());
    out.push(OPUS_TOC);
    out.extend_from_slice(sframe);
    out
}

/// The RTP payloads of one video frame, in order; the last is to be marked.
pub fn video_payloads(sframe: &[u8], key_frame: bool) -> Vec<Vec<u8>> {
    let prefix: &[u8] = if key_frame {
        &VP8_KEY_PREFIX
    } else {
        &VP8_DELTA_PREFIX
    };
    let mut frame = Vec::with_capacity(prefix.len() + sframe.len());
    frame.extend_from_slice(prefix);
    frame.extend_from_slice(sframe);
    frame
        .chunks(MAX_RTP_PAYLOAD - 1)
        .enumerate()
        .map(|(i, chunk)| {
            let mut p = Vec::with_capacity(1 + chunk.len());
            p.push(if i == 0 {
                VP8_DESC_START
            } else {
                VP8_DESC_CONT
            });
            p.extend_from_slice(chunk);
            p
        })
        .collect()
}

/// The SFrame bytes of a reassembled frame: strips the clear codec prefix.
pub fn strip_prefix(kind: Kind, frame: &[u8]) -> Option<&[u8]> {
    match kind {
        Kind::Audio => frame.get(1..),
        // Frame tag bit 0 is P: 0 = key frame.
        Kind::Video if frame.first()? & 1 == 0 => frame.get(VP8_KEY_PREFIX.len()..),
        Kind::Video => frame.get(VP8_DELTA_PREFIX.len()..),
    }
}

/// Splits a VP8 RTP payload into (start-of-frame flag, data after the
/// payload descriptor), following RFC 7741 §4.2 so an SFU that extends the
/// descriptor (picture id, TL0PICIDX…) is still read correctly.
pub fn vp8_descriptor(payload: &[u8]) -> Option<(bool, &[u8])> {
    let first = *payload.first()?;
    let start = first & 0x10 != 0 && first & 0x07 == 0;
    let mut at = 1;
    if first & 0x80 != 0 {
        let ext = *payload.get(at)?;
        at += 1;
        if ext & 0x80 != 0 {
            // I: picture id, 7 or 15 bits (M flag).
            at += if payload.get(at)? & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            at += 1; // L: TL0PICIDX
        }
        if ext & 0x30 != 0 {
            at += 1; // T/K: TID|Y|KEYIDX
        }
    }
    Some((start, payload.get(at..)?))
}

/// Rebuilds video frames from one SSRC's RTP packets: a frame is complete
/// when its packets arrive with consecutive sequence numbers, one RTP
/// timestamp, from a start packet to a marked one. Anything else (a gap,
/// reordering across a frame) drops the frame, as a real depacketizer would
/// without a jitter buffer; the sender's `seq` then shows it as lost.
#[derive(Debug, Default)]
pub struct Reassembler {
    /// (RTP timestamp, next expected extended sequence number) of the frame
    /// being built; `None` when waiting for a start packet.
    current: Option<(u32, u64)>,
    buf: Vec<u8>,
    /// Frames abandoned half-built.
    pub broken: u64,
}

impl Reassembler {
    /// Feeds one packet; returns the frame when this packet completes one.
    pub fn push(
        &mut self,
        seq: u64,
        rtp_time: u32,
        marker: bool,
        payload: &[u8],
    ) -> Option<Vec<u8>> {
        let (start, data) = vp8_descriptor(payload)?;
        if start {
            if self.current.is_some() {
                self.broken += 1;
            }
            self.buf.clear();
            self.buf.extend_from_slice(data);
            self.current = Some((rtp_time, seq + 1));
        } else {
            match self.current {
                Some((t, next)) if t == rtp_time && next == seq => {
                    self.buf.extend_from_slice(data);
                    self.current = Some((t, next + 1));
                }
                Some(_) => {
                    self.broken += 1;
                    self.current = None;
                    return None;
                }
                None => return None,
            }
        }
        if marker {
            self.current = None;
            return Some(std::mem::take(&mut self.buf));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_layout() {
        let h = FrameHeader {
            send_ns: 0x0102_0304_0506_0708,
            sender: 9,
            kind: Kind::Video,
            seq: 0xaabb_ccdd,
        };
        let pt = plaintext(&h, 40);
        assert_eq!(pt.len(), 40);
        assert_eq!(
            &pt[..HEADER_LEN],
            &[1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 9, 1, 0xaa, 0xbb, 0xcc, 0xdd]
        );
        assert_eq!(parse_plaintext(&pt), Some(h));
        // Never shorter than the header.
        assert_eq!(plaintext(&h, 3).len(), HEADER_LEN);
        assert_eq!(parse_plaintext(&pt[..HEADER_LEN - 1]), None);
        let mut bad = pt.clone();
        bad[12] = 7;
        assert_eq!(parse_plaintext(&bad), None);
    }

    #[test]
    fn video_frames_split_and_reassemble() {
        let sframe: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        for key in [true, false] {
            let payloads = video_payloads(&sframe, key);
            assert_eq!(payloads.len(), 3);
            assert!(payloads.iter().all(|p| p.len() <= MAX_RTP_PAYLOAD));
            let mut r = Reassembler::default();
            let n = payloads.len();
            let mut out = None;
            for (i, p) in payloads.iter().enumerate() {
                out = r.push(100 + i as u64, 9000, i == n - 1, p);
                assert_eq!(out.is_some(), i == n - 1);
            }
            let frame = out.unwrap();
            assert_eq!(strip_prefix(Kind::Video, &frame).unwrap(), &sframe[..]);
        }
    }

    #[test]
    fn a_gap_breaks_the_frame_and_the_next_start_recovers() {
        let sframe = vec![7u8; 2500];
        let p = video_payloads(&sframe, false);
        let mut r = Reassembler::default();
        assert!(r.push(1, 10, false, &p[0]).is_none());
        // Packet 2 lost.
        assert!(r.push(3, 10, true, &p[2]).is_none());
        assert_eq!(r.broken, 1);
        // The next frame comes through whole.
        assert!(r.push(4, 20, false, &p[0]).is_none());
        assert!(r.push(5, 20, false, &p[1]).is_none());
        assert!(r.push(6, 20, true, &p[2]).is_some());
    }

    #[test]
    fn audio_prefix_and_extended_vp8_descriptor() {
        let a = audio_payload(b"xyz");
        assert_eq!(a[0], OPUS_TOC);
        assert_eq!(strip_prefix(Kind::Audio, &a), Some(&b"xyz"[..]));
        // X=1, S=1; I=1 with a 15-bit picture id; L=1.
        let ext = [0x90, 0xc0, 0x81, 0x23, 0x05, 0xaa, 0xbb];
        assert_eq!(vp8_descriptor(&ext), Some((true, &[0xaa, 0xbb][..])));
        assert_eq!(vp8_descriptor(&[0x00, 1]), Some((false, &[1][..])));
        assert_eq!(vp8_descriptor(&[]), None);
    }
}
