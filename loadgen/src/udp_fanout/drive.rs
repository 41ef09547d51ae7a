//! The driver: R rooms of P simulated participants, each one UDP socket that
//! sends the traffic of one `loadgen sfu` participant (50 audio packets/s of
//! Opus+SFrame size, `--video-kbps` of video at 30 fps in ≤ 1100-byte
//! payloads, every datagram padded by the RTP + SRTP overhead a real one
//! carries) to the forwarder and counts what comes back.
//!
//! Datagram layout (big-endian): `room u32 | sender u32 | kind u8 | seq u32 |
//! send_ns u64 | padding`; `seq` counts one sender's packets of one kind, so
//! loss is counted per packet from sequence gaps. The report has the same
//! fields as `loadgen sfu`'s, so the two runs compare line by line (the
//! SFrame-specific counts stay 0; "frames" are packets here).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use oxpulse_edge::sfu::signal::Kind;
use tokio::net::UdpSocket;

use crate::sfu::participant::pace;
use crate::sfu::{media::Shape, stats::Stats};

/// RTP header (12) + header extensions (12) + SRTP AES-GCM tag (16).
const DATAGRAM_OVERHEAD: usize = 40;
/// Clear codec prefix + SFrame header + SFrame tag.
const SFRAME_OVERHEAD: usize = 3 + 16;
/// Bytes of our header.
pub const HEADER: usize = 21;
const MAX_PAYLOAD: usize = 1100;
const AUDIO_EVERY: Duration = Duration::from_millis(20);

/// One simulated participant.
pub struct Sim {
    pub room: u32,
    pub index: u32,
    pub target: SocketAddr,
    pub media_ip: IpAddr,
    pub shape: Shape,
    pub epoch: Instant,
    pub start_at: Instant,
    pub window: (Instant, Instant),
    pub leave_at: Instant,
}

/// The datagram sizes of one video frame.
pub fn video_packet_sizes(shape: &Shape) -> Vec<usize> {
    let frame = shape.video_len(false) + 3 + SFRAME_OVERHEAD;
    let chunk = MAX_PAYLOAD - 1;
    let n = frame.div_ceil(chunk);
    (0..n)
        .map(|i| {
            let len = if i + 1 == n {
                frame - chunk * (n - 1)
            } else {
                chunk
            };
            (len + 1 + DATAGRAM_OVERHEAD).max(HEADER)
        })
        .collect()
}

/// The datagram size of audio packet `seq`.
pub fn audio_packet_size(shape: &Shape, seq: u32) -> usize {
    (shape.audio_len(seq) + 1 + SFRAME_OVERHEAD + DATAGRAM_OVERHEAD).max(HEADER)
}

/// Builds one datagram.
pub fn datagram(room: u32, sender: u32, kind: Kind, seq: u32, send_ns: u64, len: usize) -> Vec<u8> {
    let mut d = Vec::with_capacity(len.max(HEADER));
    d.extend_from_slice(&room.to_be_bytes());
    d.extend_from_slice(&sender.to_be_bytes());
    d.push(match kind {
        Kind::Audio => 0,
        Kind::Video => 1,
    });
    d.extend_from_slice(&seq.to_be_bytes());
    d.extend_from_slice(&send_ns.to_be_bytes());
    d.resize(len.max(HEADER), 0);
    d
}

/// Reads (sender, kind, seq, send_ns) back.
pub fn parse(d: &[u8]) -> Option<(u32, Kind, u32, u64)> {
    let h = d.get(..HEADER)?;
    let kind = match h[8] {
        0 => Kind::Audio,
        1 => Kind::Video,
        _ => return None,
    };
    Some((
        u32::from_be_bytes(h[4..8].try_into().ok()?),
        kind,
        u32::from_be_bytes(h[9..13].try_into().ok()?),
        u64::from_be_bytes(h[13..21].try_into().ok()?),
    ))
}

fn in_window(w: (Instant, Instant), t: Instant) -> bool {
    t >= w.0 && t < w.1
}

/// Runs one simulated participant.
pub async fn run(s: Sim) -> anyhow::Result<Stats> {
    let mut stats = Stats::default();
    let socket = UdpSocket::bind((s.media_ip, 0))
        .await
        .with_context(|| format!("binding UDP on {}", s.media_ip))?;
    tokio::time::sleep_until(s.start_at.into()).await;
    stats.joined = 1;
    let video = s
        .shape
        .video_enabled()
        .then(|| video_packet_sizes(&s.shape));
    let video_every = Duration::from_secs(1) / crate::sfu::media::VIDEO_FPS;
    let (mut next_audio, mut next_video) = (Instant::now(), Instant::now());
    let mut seq = [0u32; 2];
    let mut buf = vec![0u8; 2048];
    loop {
        let now = Instant::now();
        if now >= s.leave_at {
            break;
        }
        let sending = now < s.window.1;
        if sending && now >= next_audio {
            let d = datagram(
                s.room,
                s.index,
                Kind::Audio,
                seq[0],
                nanos(s.epoch, now),
                audio_packet_size(&s.shape, seq[0]),
            );
            seq[0] = seq[0].wrapping_add(1);
            let _ = socket.send_to(&d, s.target).await;
            if in_window(s.window, now) {
                stats.packets_sent += 1;
                stats.frames_sent += 1;
            }
            next_audio = pace(next_audio, now, AUDIO_EVERY);
        }
        if let (true, Some(sizes)) = (sending && now >= next_video, &video) {
            for &len in sizes {
                let d = datagram(
                    s.room,
                    s.index,
                    Kind::Video,
                    seq[1],
                    nanos(s.epoch, now),
                    len,
                );
                seq[1] = seq[1].wrapping_add(1);
                let _ = socket.send_to(&d, s.target).await;
            }
            if in_window(s.window, now) {
                stats.packets_sent += sizes.len() as u64;
                stats.frames_sent += sizes.len() as u64;
            }
            next_video = pace(next_video, now, video_every);
        }
        let mut wake = s.leave_at;
        if sending {
            wake = wake.min(next_audio);
            if video.is_some() {
                wake = wake.min(next_video);
            }
        }
        tokio::select! {
            got = socket.recv_from(&mut buf) => {
                let arrived = Instant::now();
                let Ok((n, _)) = got else { continue };
                if in_window(s.window, arrived) {
                    stats.packets_received += 1;
                }
                let Some((sender, kind, seq, send_ns)) = parse(&buf[..n]) else {
                    stats.decrypt_failures += 1;
                    continue;
                };
                let sent = s.epoch + Duration::from_nanos(send_ns);
                if in_window(s.window, sent) {
                    stats.frame_received(sender, kind, seq, arrived.saturating_duration_since(sent));
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
    Ok(stats)
}

fn nanos(epoch: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_round_trip_and_match_the_sfu_shape() {
        let d = datagram(7, 3, Kind::Video, 99, 123_456, 500);
        assert_eq!(d.len(), 500);
        assert_eq!(&d[..4], &[0, 0, 0, 7]);
        assert_eq!(parse(&d), Some((3, Kind::Video, 99, 123_456)));
        assert_eq!(parse(&d[..HEADER - 1]), None);
        let shape = Shape { video_kbps: 1000 };
        let sizes = video_packet_sizes(&shape);
        // 1000 kbit/s at 30 fps ≈ 4167 bytes a frame: 4 packets.
        assert_eq!(sizes.len(), 4);
        assert!(sizes.iter().all(|&s| s <= MAX_PAYLOAD + DATAGRAM_OVERHEAD));
        let a = audio_packet_size(&shape, 0);
        assert!((120..=220).contains(&a), "{a}");
    }
}
