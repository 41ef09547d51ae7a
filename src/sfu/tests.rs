//! Rooms driven end to end in memory: str0m test clients ↔ `RoomHub` (see `testkit`).

use std::time::Duration;

use super::api::{JoinRefusal, Outgoing, Rooms};
use super::hub::HubConfig;
use super::signal::{CloseCode, Kind, Rid, ServerMsg};
use super::testkit::{Publish, World, ROOM};
use crate::telemetry::metrics::Metric;

const AUDIO: Publish = Publish {
    audio: true,
    video: false,
    simulcast: false,
    channels: false,
};

const AV: Publish = Publish {
    audio: true,
    video: true,
    simulcast: false,
    channels: false,
};

/// Bytes that look like SFrame ciphertext: nothing an SFU could parse.
fn opaque(tag: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ tag).collect()
}

/// A VP8 packet: descriptor (S=1, PID=0) + payload header with P=0 (keyframe) or 1.
fn vp8(keyframe: bool, tag: u8) -> Vec<u8> {
    let mut p = vec![0x10, if keyframe { 0x00 } else { 0x01 }];
    p.extend(opaque(tag, 300));
    p
}

/// Two participants, connected, each having answered its renegotiation.
fn pair(a: Publish, b: Publish) -> World {
    let mut w = World::new(HubConfig::default());
    w.join("alice", a).expect("alice joins");
    w.run(Duration::from_millis(500));
    w.join("bob", b).expect("bob joins");
    w.run(Duration::from_secs(1));
    w
}

#[test]
fn subscriber_gets_the_publisher_payload_bytes_unchanged() {
    let mut w = pair(AV, AUDIO);
    // Bob was told whose m-lines he receives.
    let tracks = w.client("bob").tracks();
    assert_eq!(tracks.len(), 2, "{tracks:?}");
    assert!(tracks.iter().all(|t| t.peer == "alice"));
    assert!(tracks.iter().any(|t| t.kind == Kind::Audio));
    assert!(tracks.iter().any(|t| t.kind == Kind::Video));

    let mut sent_audio = Vec::new();
    let mut sent_video = Vec::new();
    for i in 0..20u8 {
        let now = w.now;
        let a = opaque(i, 80 + i as usize);
        let v = vp8(i == 0, i);
        let alice = w.client("alice");
        alice.send_rtp(now, false, None, 960 * i as u32, &a);
        alice.send_rtp(now, true, None, 3000 * i as u32, &v);
        sent_audio.push(a);
        sent_video.push(v);
        w.run(Duration::from_millis(20));
    }
    w.run(Duration::from_millis(200));

    let bob = w.client("bob");
    let audio_mid = tracks.iter().find(|t| t.kind == Kind::Audio).unwrap().mid.clone();
    let video_mid = tracks.iter().find(|t| t.kind == Kind::Video).unwrap().mid.clone();
    let got_audio: Vec<Vec<u8>> = bob
        .got
        .iter()
        .filter(|g| g.mid.is_some_and(|m| *m == *audio_mid))
        .map(|g| g.payload.clone())
        .collect();
    let got_video: Vec<Vec<u8>> = bob
        .got
        .iter()
        .filter(|g| g.mid.is_some_and(|m| *m == *video_mid))
        .map(|g| g.payload.clone())
        .collect();
    eprintln!(
        "dropped {} video fwd {} got {} video {}",
        w.metrics.get(Metric::SfuPacketsDropped),
        w.metrics.get(Metric::SfuPacketsVideo),
        w.client("bob").got.len(),
        got_video.len()
    );
    assert!(got_audio == sent_audio, "audio payloads differ");
    assert!(got_video == sent_video, "video payloads differ");

    assert_eq!(w.metrics.get(Metric::SfuPacketsAudio), 20);
    assert_eq!(w.metrics.get(Metric::SfuPacketsVideo), 20);
    let audio_bytes: usize = sent_audio.iter().map(Vec::len).sum();
    assert_eq!(w.metrics.get(Metric::SfuBytesAudio), audio_bytes as u64);
    assert_eq!(w.metrics.get(Metric::SfuRooms), 1);
    assert_eq!(w.metrics.get(Metric::SfuParticipants), 2);
}
