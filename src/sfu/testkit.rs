//! In-process test clients for the rooms: str0m sessions (RTP mode, so the test
//! controls every payload byte) wired to a [`RoomHub`] by handing datagrams across in
//! memory under a virtual clock. No sockets, no threads, deterministic.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::channel::ChannelId;
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};

use super::api::{JoinRefusal, MediaAddrs, Outbox, Outgoing, Rooms};
use super::hub::{HubConfig, RoomHub};
use super::signal::ServerMsg;
use crate::telemetry::metrics::ShardMetrics;

pub const ROOM: &str = "room-1";

/// Records what the rooms push to one participant.
#[derive(Default)]
pub struct RecOutbox {
    pub msgs: RefCell<Vec<Outgoing>>,
}

impl Outbox for RecOutbox {
    fn push(&self, out: Outgoing) {
        self.msgs.borrow_mut().push(out);
    }
}

/// One RTP packet a client received.
#[derive(Debug, Clone)]
pub struct Got {
    pub mid: Option<Mid>,
    pub seq: u16,
    pub payload: Vec<u8>,
}

/// What a test client sends.
#[derive(Debug, Clone, Copy, Default)]
pub struct Publish {
    pub audio: bool,
    pub video: bool,
    pub simulcast: bool,
    pub channels: bool,
}

pub struct Client {
    pub peer: String,
    pub addr: SocketAddr,
    pub rtc: Rtc,
    pub outbox: Rc<RecOutbox>,
    /// How many outbox messages the harness has acted on.
    seen: usize,
    pub audio_mid: Option<Mid>,
    pub video_mid: Option<Mid>,
    pub got: Vec<Got>,
    pub keyframe_requests: Vec<(Instant, Option<String>)>,
    pub channel_data: Vec<(String, Vec<u8>)>,
    pub channels: Vec<(ChannelId, String)>,
    /// Answer server offers automatically.
    pub auto_answer: bool,
    /// Cut off from the network (its datagrams are lost both ways).
    pub offline: bool,
    pub closed: Option<Outgoing>,
    /// Next sequence number per sending stream (m-line kind, rid): each stream is
    /// numbered on its own, as a browser's simulcast layers are.
    seqs: Vec<((bool, Option<String>), u64)>,
}

impl Client {
    pub fn msgs(&self) -> Vec<Outgoing> {
        self.outbox.msgs.borrow().clone()
    }

    pub fn server_msgs(&self) -> Vec<ServerMsg> {
        self.msgs()
            .into_iter()
            .filter_map(|m| match m {
                Outgoing::Msg(m) => Some(m),
                Outgoing::Close(..) => None,
            })
            .collect()
    }

    pub fn pt(&self, codec: Codec) -> u8 {
        *self
            .rtc
            .codec_config()
            .find(|p| p.spec().codec == codec)
            .expect("codec configured")
            .pt()
    }

    /// Writes one RTP packet on its audio (or video, with an optional rid) m-line.
    pub fn send_rtp(
        &mut self,
        now: Instant,
        video: bool,
        rid: Option<&str>,
        ts: u32,
        payload: &[u8],
    ) {
        let (mid, codec) = if video {
            (self.video_mid.expect("publishes video"), Codec::Vp8)
        } else {
            (self.audio_mid.expect("publishes audio"), Codec::Opus)
        };
        let pt = self.pt(codec);
        let key = (video, rid.map(str::to_owned));
        let seq = match self.seqs.iter_mut().find(|(k, _)| *k == key) {
            Some((_, s)) => {
                *s += 1;
                *s
            }
            None => {
                self.seqs.push((key, 1000));
                1000
            }
        };
        let mut api = self.rtc.direct_api();
        let tx = api
            .stream_tx_by_mid(mid, rid.map(Into::into))
            .expect("a send stream for the m-line");
        tx.write_rtp(RtpWrite::new(pt.into(), seq.into(), ts, now, payload.to_vec()).marker(true));
    }

    pub fn channel(&self, label: &str) -> ChannelId {
        self.channels
            .iter()
            .find(|(_, l)| l == label)
            .map(|(id, _)| *id)
            .expect("channel open")
    }

    pub fn write_channel(&mut self, label: &str, data: &[u8]) {
        let id = self.channel(label);
        let accepted = self
            .rtc
            .channel(id)
            .expect("channel")
            .write(true, data)
            .expect("write");
        assert!(accepted);
    }

    /// Sends a PLI for the m-line `mid` it receives.
    pub fn request_keyframe(&mut self, mid: Mid) {
        let mut api = self.rtc.direct_api();
        api.stream_rx_by_mid(mid, None)
            .expect("a receive stream for the m-line")
            .request_keyframe(KeyframeRequestKind::Pli);
    }

    /// Mids of the receiving m-lines, from the last `tracks` message.
    pub fn tracks(&self) -> Vec<super::signal::TrackInfo> {
        self.server_msgs()
            .into_iter()
            .rev()
            .find_map(|m| match m {
                ServerMsg::Tracks { tracks } => Some(tracks),
                _ => None,
            })
            .unwrap_or_default()
    }
}

/// A hub and its clients on one virtual clock.
pub struct World {
    pub now: Instant,
    pub hub: RoomHub,
    pub clients: Vec<Client>,
    pub metrics: Rc<ShardMetrics>,
}

impl World {
    pub fn new(cfg: HubConfig) -> Self {
        let server: SocketAddr = "198.51.100.1:20000".parse().expect("addr");
        let addrs = MediaAddrs {
            bound: "0.0.0.0:20000".parse().expect("addr"),
            candidates: vec![server],
        };
        let metrics = Rc::new(ShardMetrics::default());
        Self {
            now: Instant::now(),
            hub: RoomHub::new(addrs, cfg, Some(metrics.clone())),
            clients: Vec::new(),
            metrics,
        }
    }

    pub fn client(&mut self, peer: &str) -> &mut Client {
        self.clients
            .iter_mut()
            .rev()
            .find(|c| c.peer == peer)
            .expect("client")
    }

    /// Builds a client, sends its offer through `Rooms::join` and applies the answer.
    pub fn join(&mut self, peer: &str, publish: Publish) -> Result<usize, JoinRefusal> {
        let n = self.clients.len() as u8 + 1;
        let addr: SocketAddr = format!("203.0.113.{n}:5000").parse().expect("addr");
        let mut rtc = Rtc::builder().set_rtp_mode(true).build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
        let mut change = rtc.sdp_api();
        let audio_mid = publish
            .audio
            .then(|| change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
        let video_mid = publish.video.then(|| {
            let simulcast = publish.simulcast.then(|| {
                let mut s = Simulcast::new();
                for rid in ["q", "h", "f"] {
                    s.add_send_layer(SimulcastLayer::new(rid));
                }
                s
            });
            change.add_media(MediaKind::Video, Direction::SendOnly, None, None, simulcast)
        });
        if publish.channels {
            change.add_channel("sframe-keys".to_owned());
            change.add_channel("chat".to_owned());
        }
        let (offer, pending) = change.apply().expect("an offer");
        let outbox = Rc::new(RecOutbox::default());
        let answer = self
            .hub
            .join(ROOM, peer, &offer.to_sdp_string(), outbox.clone(), self.now)?;
        let answer = SdpAnswer::from_sdp_string(&answer).expect("an SDP answer");
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .expect("answer accepted");
        self.clients.push(Client {
            peer: peer.to_owned(),
            addr,
            rtc,
            outbox,
            seen: 0,
            audio_mid,
            video_mid,
            got: Vec::new(),
            keyframe_requests: Vec::new(),
            channel_data: Vec::new(),
            channels: Vec::new(),
            auto_answer: true,
            offline: false,
            closed: None,
            seqs: Vec::new(),
        });
        Ok(self.clients.len() - 1)
    }

    /// Moves every pending datagram and signalling message until nothing moves.
    pub fn settle(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            for i in 0..self.clients.len() {
                moved |= self.drain_client(i);
            }
            while let Some(out) = self.hub.poll_transmit() {
                moved = true;
                let now = self.now;
                let Some(i) = self
                    .clients
                    .iter()
                    .position(|c| c.addr == out.destination && c.closed.is_none() && !c.offline)
                else {
                    continue;
                };
                let input = Input::Receive(
                    now,
                    Receive {
                        proto: Protocol::Udp,
                        source: out.source,
                        destination: out.destination,
                        contents: out.contents.as_slice().try_into().expect("a datagram"),
                    },
                );
                self.clients[i]
                    .rtc
                    .handle_input(input)
                    .expect("client input");
                // str0m (RTP mode) holds one received packet until the next poll.
                self.drain_client(i);
            }
            for i in 0..self.clients.len() {
                moved |= self.signalling(i);
            }
            if !moved {
                return;
            }
        }
        panic!("the world did not settle");
    }

    fn drain_client(&mut self, i: usize) -> bool {
        let mut moved = false;
        let now = self.now;
        loop {
            let c = &mut self.clients[i];
            if c.closed.is_some() {
                return moved;
            }
            match c.rtc.poll_output().expect("client output") {
                Output::Timeout(_) => return moved,
                Output::Transmit(t) => {
                    moved = true;
                    if !c.offline {
                        let data: Vec<u8> = t.contents.into();
                        self.hub.handle_udp(
                            now,
                            t.source,
                            "0.0.0.0:20000".parse().expect("addr"),
                            &data,
                        );
                    }
                }
                Output::Event(e) => {
                    moved = true;
                    record(c, e, now);
                }
            }
        }
    }

    /// Acts on new outbox messages: answers offers (if `auto_answer`), notes closes.
    fn signalling(&mut self, i: usize) -> bool {
        let msgs = self.clients[i].msgs();
        let start = self.clients[i].seen;
        self.clients[i].seen = msgs.len();
        let mut moved = false;
        for m in &msgs[start..] {
            moved = true;
            match m {
                Outgoing::Msg(ServerMsg::Offer { sdp }) if self.clients[i].auto_answer => {
                    let c = &mut self.clients[i];
                    let offer = SdpOffer::from_sdp_string(sdp).expect("server offer parses");
                    let answer = c.rtc.sdp_api().accept_offer(offer).expect("offer accepted");
                    let peer = c.peer.clone();
                    let now = self.now;
                    self.hub
                        .answer(ROOM, &peer, &answer.to_sdp_string(), now)
                        .expect("answer accepted by the hub");
                }
                Outgoing::Close(..) => self.clients[i].closed = Some(m.clone()),
                _ => {}
            }
        }
        moved
    }

    /// Advances the virtual clock by `dt` in 5 ms ticks, driving everyone.
    pub fn run(&mut self, dt: Duration) {
        let end = self.now + dt;
        while self.now < end {
            self.now += Duration::from_millis(5);
            self.tick();
        }
    }

    /// Advances to `now` and delivers every timer due.
    pub fn tick(&mut self) {
        let now = self.now;
        for c in &mut self.clients {
            if c.closed.is_none() {
                c.rtc
                    .handle_input(Input::Timeout(now))
                    .expect("client timeout");
            }
        }
        if self.hub.next_timeout().is_some_and(|t| t <= now) {
            self.hub.handle_timeout(now);
        }
        self.settle();
    }
}

fn record(c: &mut Client, e: Event, now: Instant) {
    match e {
        Event::RtpPacket(p) => {
            let mid = c
                .rtc
                .direct_api()
                .stream_rx(&p.header.ssrc)
                .map(|s| s.mid());
            c.got.push(Got {
                mid,
                seq: p.header.sequence_number,
                payload: p.payload.to_vec(),
            });
        }
        Event::KeyframeRequest(r) => c
            .keyframe_requests
            .push((now, r.rid.map(|r| r.to_string()))),
        Event::ChannelOpen(id, label) => c.channels.push((id, label)),
        Event::ChannelData(d) => {
            let label = c
                .channels
                .iter()
                .find(|(id, _)| *id == d.id)
                .map(|(_, l)| l.clone())
                .unwrap_or_default();
            c.channel_data.push((label, d.data));
        }
        _ => {}
    }
}
