//! One participant of a room: its str0m session (RTP mode), what it publishes, what it
//! receives from the others, its pending renegotiation and its relayed data channels.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use str0m::change::SdpPendingOffer;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::{Event, Output, Rtc};

use super::api::{Outbox, Outgoing};
use super::datachannel::Channels;
use super::forward::Rewriter;
use super::keyframe::KeyframeLimiter;
use super::signal::{Kind, Rid, ServerMsg, TrackInfo};
use super::simulcast::{Layers, Selector};

/// A datagram for the driver to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// The local candidate address str0m chose (the driver's socket has it).
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

/// Remote addresses remembered per participant for the demux cache; more than this and
/// the oldest is forgotten (ICE tries a few pairs, then settles on one).
pub(crate) const MAX_ROUTES: usize = 8;

pub(crate) fn kind_of(k: MediaKind) -> Kind {
    if k.is_audio() {
        Kind::Audio
    } else {
        Kind::Video
    }
}

/// A track the participant sends (one of its offer's m-lines).
pub(crate) struct TrackIn {
    pub mid: Mid,
    pub kind: Kind,
    /// Whether the m-line declared simulcast (then packets carry q/h/f rids).
    pub simulcast: bool,
    pub layers: Layers,
    /// Keyframe-request limits: index 0 without rid, then q, h, f.
    pub limiters: [KeyframeLimiter; 4],
}

impl TrackIn {
    pub fn limiter(&mut self, rid: Option<Rid>) -> &mut KeyframeLimiter {
        let i = match rid {
            None => 0,
            Some(Rid::Q) => 1,
            Some(Rid::H) => 2,
            Some(Rid::F) => 3,
        };
        &mut self.limiters[i]
    }
}

/// Where a receiving m-line stands in the offer/answer cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutState {
    /// Waiting for the next server offer.
    ToOpen,
    /// In the offer in flight.
    Negotiating(Mid),
    /// Negotiated: media flows.
    Open(Mid),
    /// The source left: stop the m-line in the next offer.
    ToStop(Mid),
    /// The stop is in the offer in flight.
    Stopping(Mid),
}

/// A track the participant receives: another participant's [`TrackIn`].
pub(crate) struct TrackOut {
    /// (publisher's participant id, publisher's mid); `None` once the publisher left.
    pub source: Option<(u64, Mid)>,
    pub publisher: String,
    pub kind: Kind,
    pub state: OutState,
    pub selector: Selector,
    pub rewriter: Rewriter,
    /// Publisher PT → this session's PT (`None`: this subscriber cannot take that codec).
    pub pt_map: Vec<(u8, Option<u8>)>,
}

impl TrackOut {
    pub fn new(source: (u64, Mid), publisher: &str, kind: Kind) -> Self {
        Self {
            source: Some(source),
            publisher: publisher.to_owned(),
            kind,
            state: OutState::ToOpen,
            selector: Selector::default(),
            rewriter: Rewriter::new(match kind {
                Kind::Audio => 48_000,
                Kind::Video => 90_000,
            }),
            pt_map: Vec::new(),
        }
    }

    pub fn open_mid(&self) -> Option<Mid> {
        match self.state {
            OutState::Open(m) => Some(m),
            _ => None,
        }
    }
}

/// A server offer waiting for the client's answer.
pub(crate) struct PendingOffer {
    pub offer: SdpPendingOffer,
    pub deadline: Instant,
}

pub(crate) struct Member {
    /// Shard-unique id (peer ids repeat across rooms and after a replacement).
    pub pid: u64,
    pub peer: String,
    pub rtc: Rtc,
    pub outbox: Rc<dyn Outbox>,
    /// DTLS is up: the client has applied our answer, so server offers may go.
    pub connected: bool,
    pub rtc_timeout: Instant,
    pub last_rx: Instant,
    pub disconnected_since: Option<Instant>,
    /// Set when the session must end; the hub closes it with `MediaFailed`.
    pub failed: Option<&'static str>,
    pub tracks_in: Vec<TrackIn>,
    pub tracks_out: Vec<TrackOut>,
    pub pending: Option<PendingOffer>,
    pub channels: Channels,
    /// Layer this participant wants of each publisher (by peer id); default `f`.
    pub wanted: Vec<(String, Rid)>,
    /// Remote addresses in the hub's demux cache, oldest first.
    pub routes: VecDeque<SocketAddr>,
}

impl Member {
    pub fn new(pid: u64, peer: &str, rtc: Rtc, outbox: Rc<dyn Outbox>, now: Instant) -> Self {
        Self {
            pid,
            peer: peer.to_owned(),
            rtc,
            outbox,
            connected: false,
            rtc_timeout: now,
            last_rx: now,
            disconnected_since: None,
            failed: None,
            tracks_in: Vec::new(),
            tracks_out: Vec::new(),
            pending: None,
            channels: Channels::default(),
            wanted: Vec::new(),
            routes: VecDeque::new(),
        }
    }

    pub fn send(&self, msg: ServerMsg) {
        self.outbox.push(Outgoing::Msg(msg));
    }

    pub fn fail(&mut self, why: &'static str) {
        if self.failed.is_none() {
            self.failed = Some(why);
        }
    }

    pub fn wanted_of(&self, publisher: &str) -> Rid {
        self.wanted
            .iter()
            .find(|(p, _)| p == publisher)
            .map(|(_, r)| *r)
            .unwrap_or(Rid::F)
    }

    /// Drains str0m's output until its next timeout (str0m's contract after every
    /// input or change): datagrams go to `out`, events are returned.
    pub fn drain(&mut self, out: &mut VecDeque<Outbound>) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.rtc_timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => out.push_back(Outbound {
                    source: t.source,
                    destination: t.destination,
                    contents: t.contents.into(),
                }),
                Ok(Output::Event(e)) => events.push(e),
                Err(e) => {
                    tracing::debug!(error = %e, "sfu session failed");
                    self.fail("the media session failed");
                    break;
                }
            }
        }
        events
    }

    /// Starts str0m's close (RTCP BYE, DTLS close_notify) and sends what it produces,
    /// so the client learns at once instead of by timeout.
    pub fn close(&mut self, out: &mut VecDeque<Outbound>) {
        if self.rtc.close().is_ok() {
            // Bounded: a closing session only flushes what it has queued.
            for _ in 0..64 {
                match self.rtc.poll_output() {
                    Ok(Output::Transmit(t)) => out.push_back(Outbound {
                        source: t.source,
                        destination: t.destination,
                        contents: t.contents.into(),
                    }),
                    Ok(Output::Event(_)) => {}
                    Ok(Output::Timeout(_)) | Err(_) => break,
                }
            }
        }
    }

    /// The `tracks` message: this participant's open receiving m-lines and whose.
    pub fn tracks_msg(&self) -> ServerMsg {
        let tracks = self
            .tracks_out
            .iter()
            .filter(|t| t.source.is_some())
            .filter_map(|t| {
                t.open_mid().map(|mid| TrackInfo {
                    mid: mid.to_string(),
                    peer: t.publisher.clone(),
                    kind: t.kind,
                })
            })
            .collect();
        ServerMsg::Tracks { tracks }
    }

    /// If the client can take an offer now (connected, none in flight) and something
    /// changed, creates the offer and pushes it. Returns whether one was sent.
    pub fn negotiate(&mut self, now: Instant, answer_timeout: std::time::Duration) -> bool {
        if !self.connected || self.pending.is_some() || self.failed.is_some() {
            return false;
        }
        let wanted: Vec<usize> = (0..self.tracks_out.len())
            .filter(|&i| {
                matches!(
                    self.tracks_out[i].state,
                    OutState::ToOpen | OutState::ToStop(_)
                )
            })
            .collect();
        if wanted.is_empty() {
            return false;
        }
        let mut change = self.rtc.sdp_api();
        for &i in &wanted {
            let t = &mut self.tracks_out[i];
            match t.state {
                OutState::ToOpen => {
                    let Some((src_pid, _)) = t.source else {
                        continue;
                    };
                    let kind = match t.kind {
                        Kind::Audio => MediaKind::Audio,
                        Kind::Video => MediaKind::Video,
                    };
                    // One msid stream per publisher, so the client syncs its audio
                    // and video; an opaque number, not the peer id.
                    let stream = format!("p{src_pid}");
                    let mid = change.add_media(kind, Direction::SendOnly, Some(stream), None, None);
                    t.state = OutState::Negotiating(mid);
                }
                OutState::ToStop(mid) => {
                    change.stop_media(mid);
                    t.state = OutState::Stopping(mid);
                }
                _ => {}
            }
        }
        let Some((offer, pending)) = change.apply() else {
            return false;
        };
        self.pending = Some(PendingOffer {
            offer: pending,
            deadline: now + answer_timeout,
        });
        self.send(ServerMsg::Offer {
            sdp: offer.to_sdp_string(),
        });
        true
    }

    /// After the client's answer was accepted: offered m-lines are open, stopped ones
    /// are gone, and m-lines whose publisher left meanwhile are queued to stop.
    pub fn settle_after_answer(&mut self) {
        self.tracks_out
            .retain(|t| !matches!(t.state, OutState::Stopping(_)));
        for t in &mut self.tracks_out {
            if let OutState::Negotiating(mid) = t.state {
                t.state = if t.source.is_some() {
                    OutState::Open(mid)
                } else {
                    OutState::ToStop(mid)
                };
            }
        }
    }

    /// Ends every receiving m-line fed by participant `pid` (it left).
    pub fn drop_source(&mut self, pid: u64) {
        self.tracks_out
            .retain(|t| !(t.source.is_some_and(|(p, _)| p == pid) && t.state == OutState::ToOpen));
        for t in &mut self.tracks_out {
            if t.source.is_some_and(|(p, _)| p == pid) {
                t.source = None;
                if let OutState::Open(mid) = t.state {
                    t.state = OutState::ToStop(mid);
                }
            }
        }
    }
}
