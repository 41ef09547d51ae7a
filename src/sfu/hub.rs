//! The rooms of one shard: implements [`Rooms`] for signalling and the I/O-free entry
//! points the media driver feeds (`handle_udp`, `handle_timeout`, `poll_transmit`,
//! `next_timeout`). One `str0m::Rtc` per participant, in RTP mode: payloads are
//! forwarded as received, never depacketized.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Rtc};

use super::api::{JoinRefusal, MediaAddrs, Outbox, Outgoing, Rooms};
use super::participant::{Member, Outbound, TrackOut, MAX_ROUTES};
use super::room::{Ctx, Room};
use super::signal::{CloseCode, Rid, ServerMsg};
use crate::config::SfuConfig;
use crate::telemetry::metrics::{Metric, ShardMetrics};

/// Limits and timers of a shard's rooms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// Participants per room (PROTOCOLS.md: 6 by default).
    pub max_participants: usize,
    /// Rooms this shard carries at most.
    pub max_rooms: usize,
    /// Participants this shard carries at most, over all rooms.
    pub max_shard_participants: usize,
    /// Nothing received from a participant for this long: closed with `MediaFailed`.
    pub media_timeout: Duration,
    /// A server offer unanswered for this long: closed with `SdpRejected`.
    pub answer_timeout: Duration,
    /// ICE reported disconnected for this long: closed with `MediaFailed`. str0m's
    /// "disconnected" can flap on a lossy path and recover; a short grace avoids
    /// dropping a call over one missed consent check.
    pub ice_grace: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            max_participants: 6,
            max_rooms: 200,
            max_shard_participants: 600,
            media_timeout: Duration::from_secs(30),
            answer_timeout: Duration::from_secs(10),
            ice_grace: Duration::from_secs(5),
        }
    }
}

impl HubConfig {
    /// From the `[sfu]` media keys; `max_participants` is the per-room limit the
    /// signalling keys carry.
    pub fn from_config(sfu: &SfuConfig, max_participants: usize) -> Self {
        Self {
            max_participants,
            max_rooms: sfu.max_rooms_per_shard as usize,
            max_shard_participants: sfu.max_participants_per_shard as usize,
            media_timeout: sfu.media_timeout(),
            ..Self::default()
        }
    }
}

/// Where shard `shard`'s media socket binds and what it advertises.
pub fn media_addrs(sfu: &SfuConfig, shard: usize) -> MediaAddrs {
    let port = sfu.media_port(shard);
    let unspecified: IpAddr = if sfu.public_ip.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    let mut candidates = vec![SocketAddr::new(sfu.public_ip, port)];
    if let Some(private) = sfu.private_ip {
        candidates.push(SocketAddr::new(private, port));
    }
    MediaAddrs {
        // The advertised public address is often not on the host (NAT), so bind the
        // wildcard and map each packet to a candidate (`local_destination`).
        bound: SocketAddr::new(unspecified, port),
        candidates,
    }
}

pub struct RoomHub {
    cfg: HubConfig,
    addrs: MediaAddrs,
    rooms: HashMap<String, Room>,
    /// Demux cache: remote address → (room, participant id). Checked with
    /// `Rtc::accepts` before use, so a stale entry only costs a scan.
    routes: HashMap<SocketAddr, (String, u64)>,
    ctx: Ctx,
    participants: usize,
    next_pid: u64,
    /// Called when a signalling call queued datagrams or moved a deadline, so the
    /// driver wakes up (it otherwise sleeps until a packet or `next_timeout`).
    waker: Option<Rc<dyn Fn()>>,
}

impl RoomHub {
    pub fn new(addrs: MediaAddrs, cfg: HubConfig, metrics: Option<Rc<ShardMetrics>>) -> Self {
        let ctx = Ctx {
            out: VecDeque::new(),
            metrics,
            answer_timeout: cfg.answer_timeout,
        };
        Self {
            cfg,
            addrs,
            rooms: HashMap::new(),
            routes: HashMap::new(),
            ctx,
            participants: 0,
            next_pid: 1,
            waker: None,
        }
    }

    /// Lets the media driver be woken after signalling changed something.
    pub fn set_waker(&mut self, waker: Rc<dyn Fn()>) {
        self.waker = Some(waker);
    }

    pub fn media_addrs(&self) -> &MediaAddrs {
        &self.addrs
    }

    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    pub fn participant_count(&self) -> usize {
        self.participants
    }

    pub fn has_room(&self, room: &str) -> bool {
        self.rooms.contains_key(room)
    }

    /// One datagram from the media socket. `destination` is the socket's bound address;
    /// a wildcard is replaced by the advertised candidate the packet was most likely
    /// sent to (str0m matches it against its local candidates).
    pub fn handle_udp(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        let destination = self.local_destination(source, destination);
        let Ok(contents) = data.try_into() else {
            self.ctx.count(Metric::SfuPacketsDropped, 1);
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        let Some((room_key, idx)) = self.find_owner(source, &input) else {
            // Routine for STUN that races a join, and for strays.
            self.ctx.count(Metric::SfuPacketsDropped, 1);
            return;
        };
        let Some(room) = self.rooms.get_mut(&room_key) else {
            return;
        };
        let member = &mut room.members[idx];
        member.last_rx = now;
        if let Err(e) = member.rtc.handle_input(input) {
            tracing::debug!(error = %e, "sfu input rejected");
            member.fail("the media session failed");
        }
        let pid = member.pid;
        if !member.routes.contains(&source) {
            if member.routes.len() >= MAX_ROUTES {
                if let Some(old) = member.routes.pop_front() {
                    self.routes.remove(&old);
                }
            }
            member.routes.push_back(source);
            self.routes.insert(source, (room_key.clone(), pid));
        }
        room.drive(now, &mut self.ctx, &[idx]);
        self.reap(&room_key, now);
    }

    /// Time passed: str0m timers, answer deadlines, silence and ICE checks.
    pub fn handle_timeout(&mut self, now: Instant) {
        let keys: Vec<String> = self.rooms.keys().cloned().collect();
        for key in keys {
            let Some(room) = self.rooms.get_mut(&key) else {
                continue;
            };
            let mut due = Vec::new();
            for (i, m) in room.members.iter_mut().enumerate() {
                if m.rtc_timeout <= now {
                    if let Err(e) = m.rtc.handle_input(Input::Timeout(now)) {
                        tracing::debug!(error = %e, "sfu timeout input failed");
                        m.fail("the media session failed");
                    }
                    due.push(i);
                }
            }
            if !due.is_empty() {
                room.drive(now, &mut self.ctx, &due);
            }
            self.reap(&key, now);
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Outbound> {
        self.ctx.out.pop_front()
    }

    /// When [`RoomHub::handle_timeout`] should run next.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.rooms
            .values()
            .filter_map(|r| r.next_deadline(self.cfg.media_timeout, self.cfg.ice_grace))
            .min()
    }

    /// Which participant's session takes this packet: the cached owner of the source
    /// address if it still accepts, else the first session that does.
    fn find_owner(&self, source: SocketAddr, input: &Input) -> Option<(String, usize)> {
        if let Some((room_key, pid)) = self.routes.get(&source) {
            if let Some(room) = self.rooms.get(room_key) {
                if let Some(idx) = room.index_of_pid(*pid) {
                    if room.members[idx].rtc.accepts(input) {
                        return Some((room_key.clone(), idx));
                    }
                }
            }
        }
        self.rooms.iter().find_map(|(key, room)| {
            room.members
                .iter()
                .position(|m| m.rtc.accepts(input))
                .map(|idx| (key.clone(), idx))
        })
    }

    fn local_destination(&self, source: SocketAddr, destination: SocketAddr) -> SocketAddr {
        if !destination.ip().is_unspecified() {
            return destination;
        }
        // Without IP_PKTINFO the socket does not say which local address a packet hit:
        // a client on the private network reached the private candidate, anyone else
        // the public one.
        let private = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
            IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
        };
        let same_family = |c: &&SocketAddr| c.is_ipv4() == source.is_ipv4();
        let cands = &self.addrs.candidates;
        cands
            .iter()
            .filter(same_family)
            .find(|c| private(c.ip()) == private(source.ip()))
            .or_else(|| cands.iter().find(same_family))
            .or_else(|| cands.first())
            .copied()
            .unwrap_or(destination)
    }

    fn build_rtc(&self, now: Instant) -> Option<Rtc> {
        let mut rtc = Rtc::builder()
            // RTP mode: SFrame payloads pass through untouched (frame mode would
            // depacketize and re-packetize ciphertext, splitting it at byte patterns).
            .set_rtp_mode(true)
            // Full ICE: the edge answers with host candidates only, and full ICE keeps
            // consent checks running both ways (browsers drop lite peers in some cases).
            .set_ice_lite(false)
            .build(now);
        for addr in &self.addrs.candidates {
            let candidate = Candidate::host(*addr, "udp").ok()?;
            rtc.add_local_candidate(candidate)?;
        }
        Some(rtc)
    }

    /// Closes every participant whose session failed or whose deadline passed, then
    /// drops the room if it is empty.
    fn reap(&mut self, room_key: &str, now: Instant) {
        loop {
            let Some(room) = self.rooms.get_mut(room_key) else {
                return;
            };
            let expired = room.expired(now, self.cfg.media_timeout, self.cfg.ice_grace);
            if expired.is_empty() {
                break;
            }
            for (pid, code, why) in expired {
                if let Some(idx) = room.index_of_pid(pid) {
                    let gone = room.remove(idx, now, &mut self.ctx);
                    gone.outbox.push(Outgoing::Close(code, why));
                    tracing::debug!(reason = why, "sfu participant closed");
                    forget(&mut self.routes, &mut self.participants, &gone);
                }
            }
        }
        self.drop_if_empty(room_key);
        self.update_gauges();
    }

    fn drop_if_empty(&mut self, room_key: &str) {
        if self
            .rooms
            .get(room_key)
            .is_some_and(|r| r.members.is_empty())
        {
            // Nothing about a call outlives it: the room and all its state go now.
            self.rooms.remove(room_key);
        }
    }

    fn update_gauges(&self) {
        if let Some(m) = &self.ctx.metrics {
            m.set(Metric::SfuRooms, self.rooms.len() as u64);
            m.set(Metric::SfuParticipants, self.participants as u64);
        }
    }

    fn wake(&self) {
        if let Some(w) = &self.waker {
            w();
        }
    }

    /// Removes a participant without a close message (signalling already closes it).
    fn remove_quietly(&mut self, room_key: &str, idx: usize, now: Instant) {
        let Some(room) = self.rooms.get_mut(room_key) else {
            return;
        };
        let gone = room.remove(idx, now, &mut self.ctx);
        forget(&mut self.routes, &mut self.participants, &gone);
        self.reap(room_key, now);
    }
}

fn forget(
    routes: &mut HashMap<SocketAddr, (String, u64)>,
    participants: &mut usize,
    gone: &Member,
) {
    for addr in &gone.routes {
        if routes.get(addr).is_some_and(|(_, pid)| *pid == gone.pid) {
            routes.remove(addr);
        }
    }
    *participants = participants.saturating_sub(1);
}

impl Rooms for RoomHub {
    fn join(
        &mut self,
        room: &str,
        peer: &str,
        offer_sdp: &str,
        outbox: Rc<dyn Outbox>,
        now: Instant,
    ) -> Result<String, JoinRefusal> {
        let offer = SdpOffer::from_sdp_string(offer_sdp).map_err(|_| JoinRefusal::BadOffer)?;
        let existing = self.rooms.get(room);
        let replacing = existing.and_then(|r| r.index_of(peer)).is_some();
        if !replacing {
            match existing {
                Some(r) if r.members.len() >= self.cfg.max_participants => {
                    return Err(JoinRefusal::RoomFull)
                }
                None if self.rooms.len() >= self.cfg.max_rooms => {
                    return Err(JoinRefusal::Capacity)
                }
                _ => {}
            }
            if self.participants >= self.cfg.max_shard_participants {
                return Err(JoinRefusal::Capacity);
            }
        }
        let Some(mut rtc) = self.build_rtc(now) else {
            tracing::warn!("sfu media candidates are not usable host addresses");
            return Err(JoinRefusal::Capacity);
        };
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|_| JoinRefusal::SdpRejected)?;

        if replacing {
            if let Some(r) = self.rooms.get_mut(room) {
                if let Some(idx) = r.index_of(peer) {
                    let old = r.remove(idx, now, &mut self.ctx);
                    old.outbox.push(Outgoing::Close(
                        CloseCode::SessionReplaced,
                        "the same peer joined again",
                    ));
                    forget(&mut self.routes, &mut self.participants, &old);
                }
            }
        }

        let pid = self.next_pid;
        self.next_pid += 1;
        let room_state = self.rooms.entry(room.to_owned()).or_default();
        let mut member = Member::new(pid, peer, rtc, outbox, now);
        member.send(ServerMsg::Joined {
            peer: peer.to_owned(),
            peers: room_state.members.iter().map(|m| m.peer.clone()).collect(),
        });
        for other in &room_state.members {
            other.send(ServerMsg::PeerJoined {
                peer: peer.to_owned(),
            });
            // The newcomer receives every track already published (offered once its
            // DTLS is up, i.e. after it applied our answer).
            for t in &other.tracks_in {
                member
                    .tracks_out
                    .push(TrackOut::new((other.pid, t.mid), &other.peer, t.kind));
            }
        }
        room_state.members.push(member);
        self.participants += 1;
        let idx = room_state.members.len() - 1;
        // Its offer's tracks appear as events now and are queued for the others.
        room_state.drive(now, &mut self.ctx, &[idx]);
        self.reap(room, now);
        self.update_gauges();
        self.wake();
        Ok(answer.to_sdp_string())
    }

    fn answer(&mut self, room: &str, peer: &str, sdp: &str, now: Instant) -> Result<(), CloseCode> {
        let Some(r) = self.rooms.get_mut(room) else {
            return Err(CloseCode::Protocol);
        };
        let Some(idx) = r.index_of(peer) else {
            return Err(CloseCode::Protocol);
        };
        let member = &mut r.members[idx];
        let outcome = match member.pending.take() {
            // An answer with no offer in flight is out of turn.
            None => Err(CloseCode::Protocol),
            Some(pending) => SdpAnswer::from_sdp_string(sdp)
                .ok()
                .and_then(|a| member.rtc.sdp_api().accept_answer(pending.offer, a).ok())
                .ok_or(CloseCode::SdpRejected),
        };
        match outcome {
            Ok(()) => {
                member.settle_after_answer();
                member.send(member.tracks_msg());
                r.drive(now, &mut self.ctx, &[idx]);
                self.reap(room, now);
            }
            Err(_) => self.remove_quietly(room, idx, now),
        }
        self.wake();
        outcome
    }

    fn set_layer(&mut self, room: &str, peer: &str, publisher: &str, rid: Rid) {
        let Some(member) = self
            .rooms
            .get_mut(room)
            .and_then(|r| r.members.iter_mut().find(|m| m.peer == peer))
        else {
            return;
        };
        // The switch itself happens at the next keyframe of the new layer.
        match member.wanted.iter_mut().find(|(p, _)| p == publisher) {
            Some(entry) => entry.1 = rid,
            None => member.wanted.push((publisher.to_owned(), rid)),
        }
    }

    fn leave(&mut self, room: &str, peer: &str, now: Instant) {
        let Some(idx) = self.rooms.get(room).and_then(|r| r.index_of(peer)) else {
            return;
        };
        self.remove_quietly(room, idx, now);
        self.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_destination_maps_to_the_candidate_the_client_could_reach() {
        let addrs = MediaAddrs {
            bound: "0.0.0.0:20000".parse().unwrap(),
            candidates: vec![
                "203.0.113.7:20000".parse().unwrap(),
                "10.0.0.7:20000".parse().unwrap(),
            ],
        };
        let hub = RoomHub::new(addrs, HubConfig::default(), None);
        let wild: SocketAddr = "0.0.0.0:20000".parse().unwrap();
        let from_internet: SocketAddr = "198.51.100.9:4000".parse().unwrap();
        let from_lan: SocketAddr = "10.0.0.99:4000".parse().unwrap();
        assert_eq!(
            hub.local_destination(from_internet, wild),
            "203.0.113.7:20000".parse().unwrap()
        );
        assert_eq!(
            hub.local_destination(from_lan, wild),
            "10.0.0.7:20000".parse().unwrap()
        );
        // A socket bound to one address needs no guess.
        let bound: SocketAddr = "203.0.113.7:20000".parse().unwrap();
        assert_eq!(hub.local_destination(from_lan, bound), bound);
    }
}
