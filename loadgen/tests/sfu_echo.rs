//! End-to-end check of `loadgen sfu` against a tiny in-test "SFU" that speaks
//! the signalling of `docs/PROTOCOLS.md` and echoes each participant's own
//! media (and `sframe-keys` messages) back to it on receive m-lines added by
//! a server `offer`. It exercises the WebSocket upgrade with the bearer
//! subprotocol, offer/answer, ICE + DTLS, data channels, renegotiation,
//! RTP-mode send/receive, SFrame decryption and the report. It is not the
//! edge: one participant, no rooms, no fan-out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use futures_util::{SinkExt as _, StreamExt as _};
use oxpulse_edge::sfu::signal::{ClientMsg, Kind, ServerMsg, TrackInfo};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, Ssrc};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::{TcpListener, UdpSocket};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

fn text(m: &ServerMsg) -> Message {
    Message::text(serde_json::to_string(m).unwrap())
}

async fn drain(rtc: &mut Rtc, socket: &UdpSocket, events: &mut Vec<Event>) -> Instant {
    loop {
        match rtc.poll_output().unwrap() {
            Output::Timeout(t) => return t,
            Output::Transmit(t) => {
                let _ = socket.send_to(&t.contents, t.destination).await;
            }
            Output::Event(e) => events.push(e),
        }
    }
}

/// Serves one participant until its WebSocket closes.
#[allow(clippy::result_large_err)] // tungstenite's callback signature
async fn echo_server(listener: TcpListener) {
    let (tcp, _) = listener.accept().await.unwrap();
    let mut bearer = false;
    let callback = |req: &Request, mut resp: Response| {
        let protos = req
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        bearer = protos.starts_with("oxpulse-sfu.v1, bearer.") && protos.matches('.').count() == 4;
        resp.headers_mut()
            .insert("Sec-WebSocket-Protocol", "oxpulse-sfu.v1".parse().unwrap());
        Ok(resp)
    };
    let mut ws = tokio_tungstenite::accept_hdr_async(tcp, callback)
        .await
        .unwrap();
    assert!(bearer, "token not offered as a subprotocol");

    let Some(Ok(Message::Text(first))) = ws.next().await else {
        panic!("no offer")
    };
    let ClientMsg::Offer { sdp } = serde_json::from_str(first.as_str()).unwrap() else {
        panic!("first message is not an offer")
    };
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local: SocketAddr = socket.local_addr().unwrap();
    let mut rtc = RtcConfig::new()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .set_rtp_mode(true)
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
    let answer = rtc
        .sdp_api()
        .accept_offer(SdpOffer::from_sdp_string(&sdp).unwrap())
        .unwrap();
    ws.send(text(&ServerMsg::Answer {
        sdp: answer.to_sdp_string(),
    }))
    .await
    .unwrap();

    let mut events = Vec::new();
    let mut timeout = drain(&mut rtc, &socket, &mut events).await;
    let mut buf = vec![0u8; 2048];
    let mut offered = false;
    let mut pending = None;
    // (kind, server send mid) once negotiated.
    let mut out: Vec<(Kind, Mid, Ssrc, str0m::media::Pt)> = Vec::new();
    let mut in_kind: std::collections::HashMap<Mid, Kind> = Default::default();
    loop {
        for e in std::mem::take(&mut events) {
            match e {
                Event::Connected if !offered => {
                    offered = true;
                    let mut api = rtc.sdp_api();
                    let a = api.add_media(
                        MediaKind::Audio,
                        Direction::SendOnly,
                        Some("echo".into()),
                        None,
                        None,
                    );
                    let v = api.add_media(
                        MediaKind::Video,
                        Direction::SendOnly,
                        Some("echo".into()),
                        None,
                        None,
                    );
                    let (offer, p) = api.apply().unwrap();
                    pending = Some(p);
                    ws.send(text(&ServerMsg::Offer {
                        sdp: offer.to_sdp_string(),
                    }))
                    .await
                    .unwrap();
                    ws.send(text(&ServerMsg::Tracks {
                        tracks: vec![
                            TrackInfo {
                                mid: a.to_string(),
                                peer: "p0".into(),
                                kind: Kind::Audio,
                            },
                            TrackInfo {
                                mid: v.to_string(),
                                peer: "p0".into(),
                                kind: Kind::Video,
                            },
                        ],
                    }))
                    .await
                    .unwrap();
                    out = vec![
                        (Kind::Audio, a, 0.into(), 0.into()),
                        (Kind::Video, v, 0.into(), 0.into()),
                    ];
                }
                Event::MediaAdded(m) => {
                    in_kind.insert(
                        m.mid,
                        if m.kind == MediaKind::Audio {
                            Kind::Audio
                        } else {
                            Kind::Video
                        },
                    );
                }
                Event::ChannelData(d) => {
                    // Relay verbatim, here to the sender itself.
                    if let Some(mut ch) = rtc.channel(d.id) {
                        let _ = ch.write(d.binary, &d.data);
                    }
                }
                Event::RtpPacket(pkt) => {
                    let mid = rtc
                        .direct_api()
                        .stream_rx(&pkt.header.ssrc)
                        .map(|s| s.mid());
                    let Some(kind) = mid.and_then(|m| in_kind.get(&m).copied()) else {
                        continue;
                    };
                    let Some(&(_, _, ssrc, pt)) = out.iter().find(|o| o.0 == kind && *o.2 != 0)
                    else {
                        continue;
                    };
                    if let Some(tx) = rtc.direct_api().stream_tx(&ssrc) {
                        tx.write_rtp(
                            RtpWrite::new(
                                pt,
                                pkt.seq_no,
                                pkt.header.timestamp,
                                pkt.timestamp,
                                pkt.payload.clone(),
                            )
                            .marker(pkt.header.marker),
                        );
                    }
                }
                _ => {}
            }
        }
        timeout = timeout.min(drain(&mut rtc, &socket, &mut events).await);
        let wake = tokio::time::Instant::from_std(timeout.max(Instant::now()));
        tokio::select! {
            msg = ws.next() => {
                let Some(Ok(msg)) = msg else { return };
                let Message::Text(t) = msg else {
                    if matches!(msg, Message::Close(_)) { return } else { continue }
                };
                match serde_json::from_str::<ClientMsg>(t.as_str()).unwrap() {
                    ClientMsg::Answer { sdp } => {
                        rtc.sdp_api()
                            .accept_answer(pending.take().unwrap(), SdpAnswer::from_sdp_string(&sdp).unwrap())
                            .unwrap();
                        for o in out.iter_mut() {
                            let remote = rtc.media(o.1).unwrap().remote_pts().to_vec();
                            let codec = if o.0 == Kind::Audio { Codec::Opus } else { Codec::Vp8 };
                            o.3 = rtc
                                .codec_config()
                                .params()
                                .iter()
                                .find(|p| p.spec().codec == codec && remote.contains(&p.pt()))
                                .unwrap()
                                .pt();
                            o.2 = rtc.direct_api().stream_tx_by_mid(o.1, None).unwrap().ssrc();
                        }
                    }
                    ClientMsg::Ping => ws.send(text(&ServerMsg::Pong)).await.unwrap(),
                    ClientMsg::Leave => {
                        let _ = ws.close(None).await;
                        return;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            got = socket.recv_from(&mut buf) => {
                let (n, source) = got.unwrap();
                rtc.handle_input(Input::Receive(Instant::now(), Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: local,
                    contents: buf[..n].try_into().unwrap(),
                })).unwrap();
            }
            _ = tokio::time::sleep_until(wake) => {
                rtc.handle_input(Input::Timeout(Instant::now())).unwrap();
            }
        }
        timeout = drain(&mut rtc, &socket, &mut events).await;
    }
}

#[test]
fn one_participant_gets_its_own_media_back_through_an_echo_sfu() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").unwrap();
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async { echo_server(TcpListener::from_std(std_listener).unwrap()).await });
    });
    let args = loadgen::sfu::SfuArgs {
        url: format!("ws://{addr}"),
        secret_file: secret,
        rooms: 1,
        participants: 1,
        duration: 2.0,
        warmup: 2.0,
        video_kbps: 500,
        stagger_ms: 0,
        threads: 1,
        insecure: false,
        ca: None,
        media_ip: "127.0.0.1".parse().unwrap(),
        connect_to: None,
        cores_pid: Some(std::process::id()),
        run_id: Some("t".into()),
        json: None,
    };
    let r = loadgen::sfu::run(&args).unwrap();
    print!("{}", r.table());
    server.join().unwrap();
    assert_eq!(r.joined, 1, "{:?}", r.first_error);
    assert!(r.join_failures.is_empty(), "{:?}", r.join_failures);
    assert_eq!(r.renegotiations, 1);
    assert!(r.key_messages >= 1);
    assert_eq!(r.decrypt_failures, 0, "{:?}", r.first_error);
    // 50 audio + 30 × 2 video packets a second, echoed one to one.
    assert!(r.pps_in > 90.0, "{}", r.pps_in);
    assert!(r.fanout > 0.9, "{}", r.fanout);
    assert!(r.frames_received > 100);
    assert!(r.loss_pct < 1.0);
    assert!(r.p50_ms > 0.0 && r.p99_ms < 200.0);
    assert!(r.edge_cpu_pct.is_some() && r.edge_rss_mib.is_some());
}
