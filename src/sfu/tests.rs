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
    let audio_mid = tracks
        .iter()
        .find(|t| t.kind == Kind::Audio)
        .unwrap()
        .mid
        .clone();
    let video_mid = tracks
        .iter()
        .find(|t| t.kind == Kind::Video)
        .unwrap()
        .mid
        .clone();
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
    assert!(got_audio == sent_audio, "audio payloads differ");
    assert!(got_video == sent_video, "video payloads differ");

    assert_eq!(w.metrics.get(Metric::SfuPacketsAudio), 20);
    assert_eq!(w.metrics.get(Metric::SfuPacketsVideo), 20);
    let audio_bytes: usize = sent_audio.iter().map(Vec::len).sum();
    assert_eq!(w.metrics.get(Metric::SfuBytesAudio), audio_bytes as u64);
    assert_eq!(w.metrics.get(Metric::SfuRooms), 1);
    assert_eq!(w.metrics.get(Metric::SfuParticipants), 2);
}

/// Payloads `peer` received on the m-line that carries `publisher`'s `kind`.
fn received(w: &mut World, peer: &str, publisher: &str, kind: Kind) -> Vec<Vec<u8>> {
    let c = w.client(peer);
    let Some(mid) = c
        .tracks()
        .into_iter()
        .find(|t| t.peer == publisher && t.kind == kind)
        .map(|t| t.mid)
    else {
        return Vec::new();
    };
    c.got
        .iter()
        .filter(|g| g.mid.is_some_and(|m| *m == *mid))
        .map(|g| g.payload.clone())
        .collect()
}

#[test]
fn a_new_publisher_is_offered_to_the_others_and_flows_after_their_answer() {
    let mut w = pair(AUDIO, AUDIO);
    // Alice, already in, got an offer for Bob's track, answered it, and was told whose
    // it is.
    let alice_msgs = w.client("alice").server_msgs();
    assert!(alice_msgs.contains(&ServerMsg::PeerJoined { peer: "bob".into() }));
    assert!(alice_msgs
        .iter()
        .any(|m| matches!(m, ServerMsg::Offer { .. })));
    let tracks = w.client("alice").tracks();
    assert_eq!(tracks.len(), 1);
    assert_eq!(
        (tracks[0].peer.as_str(), tracks[0].kind),
        ("bob", Kind::Audio)
    );
    // Bob's joined message names Alice.
    assert_eq!(
        w.client("bob").server_msgs().first(),
        Some(&ServerMsg::Joined {
            peer: "bob".into(),
            peers: vec!["alice".into()]
        })
    );

    let mut sent = Vec::new();
    for i in 0..10u8 {
        let now = w.now;
        let p = opaque(0x40 + i, 60);
        w.client("bob")
            .send_rtp(now, false, None, 960 * i as u32, &p);
        sent.push(p);
        w.run(Duration::from_millis(20));
    }
    assert_eq!(received(&mut w, "alice", "bob", Kind::Audio), sent);

    // A third participant: both others get an offer, and everyone hears everyone.
    w.join("carol", AUDIO).expect("carol joins");
    w.run(Duration::from_secs(1));
    for peer in ["alice", "bob"] {
        assert!(
            w.client(peer).tracks().iter().any(|t| t.peer == "carol"),
            "{peer}"
        );
    }
    assert_eq!(w.client("carol").tracks().len(), 2);
    let now = w.now;
    let p = opaque(0x77, 50);
    w.client("carol").send_rtp(now, false, None, 0, &p);
    w.run(Duration::from_millis(100));
    assert_eq!(
        received(&mut w, "alice", "carol", Kind::Audio),
        vec![p.clone()]
    );
    assert_eq!(received(&mut w, "bob", "carol", Kind::Audio), vec![p]);
}

#[test]
fn the_seventh_participant_is_refused_room_full() {
    let mut w = World::new(HubConfig::default());
    for i in 0..6 {
        w.join(&format!("p{i}"), AUDIO).expect("joins");
    }
    assert_eq!(w.join("p6", AUDIO).err(), Some(JoinRefusal::RoomFull));
    assert_eq!(w.hub.participant_count(), 6);
    // A rejoin under a present peer id is a replacement, not a seventh.
    assert!(w.join("p3", AUDIO).is_ok());
}

#[test]
fn shard_caps_refuse_with_capacity() {
    let cfg = HubConfig {
        max_rooms: 1,
        max_shard_participants: 2,
        ..HubConfig::default()
    };
    let mut w = World::new(cfg);
    w.join("a", AUDIO).expect("joins");
    w.join("b", AUDIO).expect("joins");
    assert_eq!(w.join("c", AUDIO).err(), Some(JoinRefusal::Capacity));
    let outbox: std::rc::Rc<dyn super::api::Outbox> =
        std::rc::Rc::new(super::testkit::RecOutbox::default());
    let offer = "v=0\r\n";
    assert_eq!(
        w.hub.join("other-room", "x", offer, outbox, w.now).err(),
        Some(JoinRefusal::BadOffer)
    );
}

#[test]
fn a_garbage_offer_is_a_bad_offer() {
    let mut w = World::new(HubConfig::default());
    let outbox: std::rc::Rc<dyn super::api::Outbox> =
        std::rc::Rc::new(super::testkit::RecOutbox::default());
    assert_eq!(
        w.hub.join(ROOM, "x", "not sdp", outbox, w.now).err(),
        Some(JoinRefusal::BadOffer)
    );
    assert_eq!(w.hub.room_count(), 0);
}

#[test]
fn the_same_peer_id_replaces_the_old_session() {
    let mut w = pair(AUDIO, AUDIO);
    w.join("alice", AUDIO).expect("alice again");
    let old = w
        .clients
        .iter()
        .find(|c| c.peer == "alice")
        .expect("old alice");
    assert_eq!(
        old.msgs().last(),
        Some(&Outgoing::Close(
            CloseCode::SessionReplaced,
            "the same peer joined again"
        ))
    );
    assert_eq!(w.hub.participant_count(), 2);
    w.run(Duration::from_secs(1));
    // Bob saw the old session go and the new one come, and gets its tracks.
    let bob = w.client("bob").server_msgs();
    assert!(bob.contains(&ServerMsg::PeerLeft {
        peer: "alice".into()
    }));
    assert_eq!(
        bob.iter()
            .filter(|m| **m
                == ServerMsg::PeerJoined {
                    peer: "alice".into()
                })
            .count(),
        1
    );
    let now = w.now;
    let p = opaque(9, 40);
    w.client("alice").send_rtp(now, false, None, 0, &p);
    w.run(Duration::from_millis(100));
    assert_eq!(received(&mut w, "bob", "alice", Kind::Audio), vec![p]);
}

#[test]
fn a_subscriber_pli_reaches_the_publisher_at_most_once_a_second() {
    let mut w = pair(AV, AUDIO);
    let video_mid = w
        .client("bob")
        .tracks()
        .into_iter()
        .find(|t| t.kind == Kind::Video)
        .expect("bob receives alice's video")
        .mid;
    // Media flowing, then quiet for a while so earlier requests are out of the window.
    for i in 0..5u8 {
        let now = w.now;
        w.client("alice")
            .send_rtp(now, true, None, 3000 * i as u32, &vp8(i == 0, i));
        w.run(Duration::from_millis(30));
    }
    w.run(Duration::from_secs(2));
    let before = w.client("alice").keyframe_requests.len();
    let counted_before = w.metrics.get(Metric::SfuKeyframeRequests);

    // A burst of five PLIs within 500 ms.
    let mid = str0m::media::Mid::from(video_mid.as_str());
    for _ in 0..5 {
        w.client("bob").request_keyframe(mid);
        w.run(Duration::from_millis(100));
    }
    let after_burst = w.client("alice").keyframe_requests.len();
    assert_eq!(after_burst - before, 1, "one request reaches the publisher");
    assert_eq!(
        w.metrics.get(Metric::SfuKeyframeRequests) - counted_before,
        1
    );

    // After the second has passed, the next PLI goes through again.
    w.run(Duration::from_millis(700));
    w.client("bob").request_keyframe(mid);
    w.run(Duration::from_millis(100));
    assert_eq!(w.client("alice").keyframe_requests.len() - after_burst, 1);
}

#[test]
fn data_channel_messages_are_relayed_verbatim_within_their_caps() {
    let with_channels = Publish {
        channels: true,
        ..AUDIO
    };
    let mut w = pair(with_channels, with_channels);
    w.join("carol", with_channels).expect("carol joins");
    w.run(Duration::from_secs(1));

    let key_msg: Vec<u8> = (0..=255u8).cycle().take(60 * 1024).collect();
    w.client("alice").write_channel("sframe-keys", &key_msg);
    w.client("alice").write_channel("chat", b"hello \x00\xff");
    w.run(Duration::from_millis(300));
    for peer in ["bob", "carol"] {
        let got = &w.client(peer).channel_data;
        assert!(
            got.contains(&("sframe-keys".to_owned(), key_msg.clone())),
            "{peer}"
        );
        assert!(
            got.contains(&("chat".to_owned(), b"hello \x00\xff".to_vec())),
            "{peer}"
        );
        assert_eq!(got.len(), 2, "{peer}");
    }
    assert!(
        w.client("alice").channel_data.is_empty(),
        "no echo to the sender"
    );
    assert_eq!(w.metrics.get(Metric::SfuDcRelayed), 2);

    // Over the chat cap (16 KiB): dropped and counted.
    w.client("bob")
        .write_channel("chat", &vec![7u8; 16 * 1024 + 1]);
    w.run(Duration::from_millis(300));
    assert_eq!(w.client("alice").channel_data.len(), 0);
    assert_eq!(w.metrics.get(Metric::SfuDcDropped), 1);
}

#[test]
fn the_room_is_gone_after_the_last_leave() {
    let mut w = pair(AUDIO, AUDIO);
    assert!(w.hub.has_room(ROOM));
    let now = w.now;
    w.hub.leave(ROOM, "alice", now);
    w.run(Duration::from_millis(500));
    let bob = w.client("bob");
    assert!(bob.server_msgs().contains(&ServerMsg::PeerLeft {
        peer: "alice".into()
    }));
    // Bob's m-line for Alice was renegotiated away.
    assert!(bob.tracks().is_empty());
    let now = w.now;
    w.hub.leave(ROOM, "bob", now);
    assert!(!w.hub.has_room(ROOM));
    assert_eq!(w.hub.room_count(), 0);
    assert_eq!(w.hub.participant_count(), 0);
    assert_eq!(w.metrics.get(Metric::SfuRooms), 0);
    assert_eq!(w.metrics.get(Metric::SfuParticipants), 0);
    assert_eq!(w.hub.next_timeout(), None);
    // Leaving twice, or a room that never was, is harmless.
    w.hub.leave(ROOM, "bob", now);
    w.hub.leave("nowhere", "x", now);
}

#[test]
fn an_unanswered_offer_closes_with_sdp_rejected() {
    let mut w = World::new(HubConfig::default());
    w.join("alice", AUDIO).expect("joins");
    w.run(Duration::from_millis(500));
    w.client("alice").auto_answer = false;
    w.join("bob", AUDIO).expect("joins");
    w.run(Duration::from_secs(9));
    assert!(w.client("alice").closed.is_none());
    w.run(Duration::from_secs(2));
    assert_eq!(
        w.client("alice").closed,
        Some(Outgoing::Close(
            CloseCode::SdpRejected,
            "no answer to the offer in time"
        ))
    );
    assert_eq!(w.hub.participant_count(), 1);
    assert!(w
        .client("bob")
        .server_msgs()
        .contains(&ServerMsg::PeerLeft {
            peer: "alice".into()
        }));
}

#[test]
fn silence_closes_with_media_failed() {
    let cfg = HubConfig {
        media_timeout: Duration::from_secs(8),
        ..HubConfig::default()
    };
    let mut w = World::new(cfg);
    w.join("alice", AUDIO).expect("joins");
    w.join("bob", AUDIO).expect("joins");
    w.run(Duration::from_secs(1));
    w.client("bob").offline = true;
    w.run(Duration::from_secs(10));
    assert!(
        matches!(
            w.client("bob").closed,
            Some(Outgoing::Close(CloseCode::MediaFailed, _))
        ),
        "{:?}",
        w.client("bob").closed
    );
    assert!(w.client("alice").closed.is_none(), "alice keeps talking");
    assert_eq!(w.hub.participant_count(), 1);
}

#[test]
fn an_answer_out_of_turn_is_a_protocol_error() {
    let mut w = pair(AUDIO, AUDIO);
    let now = w.now;
    assert_eq!(
        w.hub.answer(ROOM, "bob", "v=0", now),
        Err(CloseCode::Protocol)
    );
    assert_eq!(w.hub.participant_count(), 1);
    assert_eq!(
        w.hub.answer(ROOM, "nobody", "v=0", now),
        Err(CloseCode::Protocol)
    );
}

#[test]
fn simulcast_follows_the_wanted_layer_switching_on_keyframes() {
    let sim = Publish {
        simulcast: true,
        ..AV
    };
    let mut w = pair(sim, AUDIO);
    let mut seqs = Vec::new();
    let mut expect = Vec::new();
    // Each round: q, h and f each send a packet. Round 0 (delta frames) makes every
    // layer active and is held back (no keyframe yet); keyframes on round 1 (all) and
    // round 6 (h only).
    let send_round = |w: &mut World, round: u8, kf: &[&str]| {
        let mut sent = Vec::new();
        for (n, rid) in ["q", "h", "f"].into_iter().enumerate() {
            let mut p = vp8(kf.contains(&rid), round);
            p.push(n as u8); // tells the layers apart
            let now = w.now;
            w.client("alice")
                .send_rtp(now, true, Some(rid), 3000 * round as u32, &p);
            sent.push((rid, p));
            // One layer at a time, so the edge sees them in this order.
            w.run(Duration::from_millis(11));
        }
        sent
    };
    for round in 0..4 {
        let kf: &[&str] = if round == 1 { &["q", "h", "f"] } else { &[] };
        for (rid, p) in send_round(&mut w, round, kf) {
            if rid == "f" && round >= 1 {
                expect.push(p);
            }
        }
    }
    // Bob wants h: f keeps flowing until h's keyframe, then only h.
    w.hub.set_layer(ROOM, "bob", "alice", Rid::H);
    for round in 4..10 {
        let kf: &[&str] = if round == 6 { &["h"] } else { &[] };
        for (rid, p) in send_round(&mut w, round, kf) {
            if (round < 6 && rid == "f") || (round >= 6 && rid == "h") {
                expect.push(p);
            }
        }
    }
    w.run(Duration::from_millis(200));
    let got = received(&mut w, "bob", "alice", Kind::Video);
    let layers = |v: &[Vec<u8>]| v.iter().map(|p| (p[2], p[p.len() - 1])).collect::<Vec<_>>();
    assert_eq!(layers(&got), layers(&expect));
    assert!(
        got == expect,
        "bob gets exactly the selected layer's payloads"
    );
    let bob = w.client("bob");
    let video_mid = bob
        .tracks()
        .into_iter()
        .find(|t| t.kind == Kind::Video)
        .expect("video track")
        .mid;
    for g in &bob.got {
        if g.mid.is_some_and(|m| *m == *video_mid) {
            seqs.push(g.seq);
        }
    }
    // One continuous sequence across the switch.
    for pair in seqs.windows(2) {
        assert_eq!(pair[1], pair[0].wrapping_add(1), "{seqs:?}");
    }
}
