//! One room: its participants and everything that moves between them — media packets,
//! keyframe requests, data-channel messages and the renegotiations that follow
//! membership. Sans-IO: datagrams go to `Ctx::out`, signalling to each outbox.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use str0m::channel::ChannelData;
use str0m::media::{KeyframeRequest, KeyframeRequestKind, MediaAdded, Mid};
use str0m::rtp::{RtpPacket, RtpWrite};
use str0m::{Event, IceConnectionState};

use super::datachannel;
use super::forward::media_extensions;
use super::keyframe::is_keyframe;
use super::participant::{kind_of, Member, Outbound, TrackIn, TrackOut};
use super::signal::{Kind, Rid};
use crate::telemetry::metrics::{Metric, ShardMetrics};

/// What the room needs from its hub while it runs.
pub(crate) struct Ctx {
    pub out: VecDeque<Outbound>,
    pub metrics: Option<Rc<ShardMetrics>>,
    pub answer_timeout: Duration,
}

impl Ctx {
    pub fn count(&self, m: Metric, n: u64) {
        if let Some(metrics) = &self.metrics {
            metrics.add(m, n);
        }
    }
}

#[derive(Default)]
pub(crate) struct Room {
    pub members: Vec<Member>,
}

fn push_work(work: &mut Vec<usize>, i: usize) {
    if !work.contains(&i) {
        work.push(i);
    }
}

impl Room {
    pub fn index_of(&self, peer: &str) -> Option<usize> {
        self.members.iter().position(|m| m.peer == peer)
    }

    pub fn index_of_pid(&self, pid: u64) -> Option<usize> {
        self.members.iter().position(|m| m.pid == pid)
    }

    /// Drains the sessions in `start` and everything their events touch, until every
    /// changed session has been drained to its next timeout.
    pub fn drive(&mut self, now: Instant, ctx: &mut Ctx, start: &[usize]) {
        let mut work: Vec<usize> = Vec::with_capacity(self.members.len());
        for &i in start {
            push_work(&mut work, i);
        }
        while let Some(i) = work.pop() {
            let events = self.members[i].drain(&mut ctx.out);
            for event in events {
                self.on_event(i, event, now, ctx, &mut work);
            }
            if self.members[i].negotiate(now, ctx.answer_timeout) {
                push_work(&mut work, i);
            }
        }
    }

    fn on_event(
        &mut self,
        i: usize,
        event: Event,
        now: Instant,
        ctx: &mut Ctx,
        work: &mut Vec<usize>,
    ) {
        match event {
            Event::Connected => self.members[i].connected = true,
            Event::IceConnectionStateChange(state) => {
                let m = &mut self.members[i];
                match state {
                    IceConnectionState::Disconnected => {
                        m.disconnected_since.get_or_insert(now);
                    }
                    IceConnectionState::Connected | IceConnectionState::Completed => {
                        m.disconnected_since = None;
                    }
                    _ => {}
                }
            }
            Event::MediaAdded(added) => self.on_media_added(i, added, work),
            Event::RtpPacket(packet) => self.forward(i, packet, now, ctx, work),
            Event::KeyframeRequest(req) => self.on_keyframe_request(i, req, now, ctx, work),
            Event::ChannelOpen(id, label) => self.members[i].channels.opened(id, &label),
            Event::ChannelClose(id) => self.members[i].channels.closed(id),
            Event::ChannelData(data) => self.relay(i, data, ctx, work),
            Event::Closed => self.members[i].fail("the peer closed the media session"),
            _ => {}
        }
    }

    /// A participant's offer declared a track it sends: every other participant gets a
    /// receiving m-line for it in its next server offer.
    fn on_media_added(&mut self, i: usize, added: MediaAdded, work: &mut Vec<usize>) {
        if !added.direction.is_receiving() {
            return;
        }
        let kind = kind_of(added.kind);
        let simulcast = added
            .simulcast
            .is_some_and(|s| !s.send.is_empty() || !s.recv.is_empty());
        let publisher = &mut self.members[i];
        if publisher.tracks_in.iter().any(|t| t.mid == added.mid) {
            return;
        }
        publisher.tracks_in.push(TrackIn {
            mid: added.mid,
            kind,
            simulcast,
            layers: Default::default(),
            limiters: Default::default(),
        });
        let (pid, peer) = (publisher.pid, publisher.peer.clone());
        for (j, m) in self.members.iter_mut().enumerate() {
            if j != i {
                m.tracks_out
                    .push(TrackOut::new((pid, added.mid), &peer, kind));
                push_work(work, j);
            }
        }
    }

    /// One RTP packet from publisher `i`, written to every subscriber whose m-line it
    /// feeds: same payload bytes, the subscriber's SSRC, rewritten seq/timestamp.
    fn forward(
        &mut self,
        i: usize,
        packet: RtpPacket,
        now: Instant,
        ctx: &mut Ctx,
        work: &mut Vec<usize>,
    ) {
        let publisher = &mut self.members[i];
        let ssrc = packet.header.ssrc;
        let Some((mid, rid_raw)) = publisher
            .rtc
            .direct_api()
            .stream_rx(&ssrc)
            .map(|s| (s.mid(), s.rid()))
        else {
            ctx.count(Metric::SfuPacketsDropped, 1);
            return;
        };
        let pt = packet.header.payload_type;
        let Some(params) = publisher.rtc.codec_config().find(|p| p.pt() == pt).copied() else {
            ctx.count(Metric::SfuPacketsDropped, 1);
            return;
        };
        let pid = publisher.pid;
        let Some(track) = publisher.tracks_in.iter_mut().find(|t| t.mid == mid) else {
            ctx.count(Metric::SfuPacketsDropped, 1);
            return;
        };
        let kind = track.kind;
        let rid = rid_raw.and_then(|r| Rid::parse(&r));
        if track.simulcast && rid.is_none() {
            // A simulcast layer with a rid other than q/h/f: not ours to rank.
            ctx.count(Metric::SfuPacketsDropped, 1);
            return;
        }
        if let Some(rid) = rid {
            track.layers.saw(rid, now);
        }
        let layers = track.layers.clone();
        let keyframe = match kind {
            Kind::Video => is_keyframe(params.spec().codec, &packet.payload),
            Kind::Audio => None,
        };
        let publisher_peer = publisher.peer.clone();

        let mut keyframe_wanted: Option<Rid> = None;
        let mut new_subscriber_wants_keyframe = false;
        let seq: u64 = *packet.seq_no;
        let ts = packet.header.timestamp;
        for j in 0..self.members.len() {
            if j == i {
                continue;
            }
            let sub = &mut self.members[j];
            let desired = sub.wanted_of(&publisher_peer);
            let Some(k) = sub
                .tracks_out
                .iter()
                .position(|t| t.source == Some((pid, mid)) && t.open_mid().is_some())
            else {
                continue;
            };
            let Some(out_mid) = sub.tracks_out[k].open_mid() else {
                continue;
            };
            let cached = sub.tracks_out[k]
                .pt_map
                .iter()
                .find(|(p, _)| *p == *pt)
                .map(|(_, out)| *out);
            let out_pt = match cached {
                Some(out) => out,
                None => {
                    let out = subscriber_pt(sub, out_mid, params);
                    sub.tracks_out[k].pt_map.push((*pt, out));
                    out
                }
            };
            let Some(out_pt) = out_pt else {
                ctx.count(Metric::SfuPacketsDropped, 1);
                continue;
            };
            let track_out = &mut sub.tracks_out[k];
            let switched = match rid {
                Some(rid) => {
                    let target = layers.best_fit(desired, now);
                    let d = track_out.selector.on_packet(rid, keyframe, target);
                    if d.want_keyframe.is_some() {
                        keyframe_wanted = d.want_keyframe;
                    }
                    if !d.forward {
                        continue;
                    }
                    d.switched
                }
                None => {
                    if !track_out.rewriter.started() && kind == Kind::Video {
                        new_subscriber_wants_keyframe = true;
                    }
                    !track_out.rewriter.started()
                }
            };
            if switched {
                track_out.rewriter.rebase(seq, ts, packet.timestamp);
            }
            let Some((out_seq, out_ts)) = track_out.rewriter.map(seq, ts, packet.timestamp) else {
                ctx.count(Metric::SfuPacketsDropped, 1);
                continue;
            };
            let mut api = sub.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(out_mid, None) else {
                ctx.count(Metric::SfuPacketsDropped, 1);
                continue;
            };
            let write = RtpWrite::new(
                out_pt.into(),
                out_seq.into(),
                out_ts,
                packet.timestamp,
                packet.payload.clone(),
            )
            .marker(packet.header.marker)
            .ext_vals(media_extensions(&packet.header.ext_vals))
            // str0m keeps sent video for RTX so a subscriber's NACK is answered here,
            // without a round trip to the publisher.
            .nackable(kind == Kind::Video);
            tx.write_rtp(write);
            let bytes = packet.payload.len() as u64;
            match kind {
                Kind::Audio => {
                    ctx.count(Metric::SfuPacketsAudio, 1);
                    ctx.count(Metric::SfuBytesAudio, bytes);
                }
                Kind::Video => {
                    ctx.count(Metric::SfuPacketsVideo, 1);
                    ctx.count(Metric::SfuBytesVideo, bytes);
                }
            }
            push_work(work, j);
        }
        if keyframe_wanted.is_some() || new_subscriber_wants_keyframe {
            self.request_keyframe(i, mid, keyframe_wanted, KeyframeRequestKind::Pli, now, ctx);
            push_work(work, i);
        }
    }

    /// A subscriber's PLI/FIR for one of its receiving m-lines goes to the publisher's
    /// stream that feeds it (the layer forwarded now).
    fn on_keyframe_request(
        &mut self,
        i: usize,
        req: KeyframeRequest,
        now: Instant,
        ctx: &mut Ctx,
        work: &mut Vec<usize>,
    ) {
        let Some(track_out) = self.members[i]
            .tracks_out
            .iter()
            .find(|t| t.open_mid() == Some(req.mid))
        else {
            return;
        };
        let Some((pid, mid)) = track_out.source else {
            return;
        };
        let rid = track_out.selector.current();
        let Some(j) = self.index_of_pid(pid) else {
            return;
        };
        if self.request_keyframe(j, mid, rid, req.kind, now, ctx) {
            push_work(work, j);
        }
    }

    /// Asks publisher `j` for a keyframe on `mid` (layer `rid`), at most once a second
    /// per layer. Returns whether a request went out.
    fn request_keyframe(
        &mut self,
        j: usize,
        mid: Mid,
        rid: Option<Rid>,
        kind: KeyframeRequestKind,
        now: Instant,
        ctx: &mut Ctx,
    ) -> bool {
        let publisher = &mut self.members[j];
        let Some(track) = publisher.tracks_in.iter_mut().find(|t| t.mid == mid) else {
            return false;
        };
        // Without simulcast the stream has no rid, whatever the subscriber's selector says.
        let rid = if track.simulcast { rid } else { None };
        if !track.limiter(rid).allow(now) {
            return false;
        }
        let str0m_rid = rid.map(|r| str0m::media::Rid::from(r.as_str()));
        let mut api = publisher.rtc.direct_api();
        let Some(rx) = api.stream_rx_by_mid(mid, str0m_rid) else {
            return false;
        };
        rx.request_keyframe(kind);
        ctx.count(Metric::SfuKeyframeRequests, 1);
        true
    }

    /// A data-channel message from participant `i`, copied verbatim to every other
    /// participant's channel of the same label.
    fn relay(&mut self, i: usize, data: ChannelData, ctx: &mut Ctx, work: &mut Vec<usize>) {
        let Some(label) = self.members[i].channels.label(data.id) else {
            ctx.count(Metric::SfuDcDropped, 1);
            return;
        };
        let cap = datachannel::cap(label).unwrap_or(0);
        if data.data.len() > cap {
            ctx.count(Metric::SfuDcDropped, 1);
            return;
        }
        for j in 0..self.members.len() {
            if j == i {
                continue;
            }
            let m = &mut self.members[j];
            let Some(id) = m.channels.id(label) else {
                continue;
            };
            if let Some(mut channel) = m.rtc.channel(id) {
                // A receiver whose SCTP buffer is full misses this message; a slow
                // reader must not make the edge buffer without bound.
                if !matches!(channel.write(data.binary, &data.data), Ok(true)) {
                    tracing::debug!("sfu data-channel message not accepted by a receiver");
                }
                push_work(work, j);
            }
        }
        ctx.count(Metric::SfuDcRelayed, 1);
    }

    /// Removes participant `idx`: closes its session, tells the others, and queues the
    /// removal of its tracks from their sessions.
    pub fn remove(&mut self, idx: usize, now: Instant, ctx: &mut Ctx) -> Member {
        let mut gone = self.members.remove(idx);
        gone.close(&mut ctx.out);
        for m in &mut self.members {
            m.send(super::signal::ServerMsg::PeerLeft {
                peer: gone.peer.clone(),
            });
            m.drop_source(gone.pid);
            m.wanted.retain(|(p, _)| *p != gone.peer);
        }
        let all: Vec<usize> = (0..self.members.len()).collect();
        self.drive(now, ctx, &all);
        gone
    }

    /// Checks the deadlines of every participant: answer timeouts, silence, ICE lost.
    /// Returns the participants to close, with the code's reason.
    pub fn expired(
        &mut self,
        now: Instant,
        media_timeout: Duration,
        ice_grace: Duration,
    ) -> Vec<(u64, super::signal::CloseCode, &'static str)> {
        use super::signal::CloseCode;
        let mut out = Vec::new();
        for m in &mut self.members {
            if let Some(why) = m.failed {
                out.push((m.pid, CloseCode::MediaFailed, why));
            } else if m.pending.as_ref().is_some_and(|p| now >= p.deadline) {
                out.push((
                    m.pid,
                    CloseCode::SdpRejected,
                    "no answer to the offer in time",
                ));
            } else if now.saturating_duration_since(m.last_rx) >= media_timeout {
                out.push((m.pid, CloseCode::MediaFailed, "no media for too long"));
            } else if m
                .disconnected_since
                .is_some_and(|t| now.saturating_duration_since(t) >= ice_grace)
            {
                out.push((m.pid, CloseCode::MediaFailed, "ICE connection lost"));
            } else if !m.rtc.is_alive() {
                out.push((m.pid, CloseCode::MediaFailed, "the media session ended"));
            }
        }
        out
    }

    /// The earliest instant anything in this room needs attention.
    pub fn next_deadline(&self, media_timeout: Duration, ice_grace: Duration) -> Option<Instant> {
        self.members
            .iter()
            .flat_map(|m| {
                [
                    Some(m.rtc_timeout),
                    m.pending.as_ref().map(|p| p.deadline),
                    Some(m.last_rx + media_timeout),
                    m.disconnected_since.map(|t| t + ice_grace),
                ]
            })
            .flatten()
            .min()
    }
}

/// This subscriber's PT for the publisher's codec on m-line `mid`: str0m matches codec
/// and format parameters; the PT must also be one the client accepted for that m-line.
fn subscriber_pt(sub: &Member, mid: Mid, params: str0m::format::PayloadParams) -> Option<u8> {
    let local = sub.rtc.codec_config().match_params(params)?.pt();
    let accepted = sub
        .rtc
        .media(mid)
        .is_none_or(|m| m.remote_pts().is_empty() || m.remote_pts().contains(&local));
    accepted.then_some(*local)
}
