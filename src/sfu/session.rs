//! One participant's signalling session, sans-IO: bytes, room events and `now` in; frames
//! to write and a deadline out. The driver (`signalling.rs`) owns the socket and the clock.
//!
//! Turn rules (`docs/PROTOCOLS.md`): the first message must be an `offer` within the offer
//! deadline (else 4001); after the join, `answer`, `layer`, `ping` and `leave` are allowed;
//! anything else, unreadable JSON or a binary frame closes with 4000. A socket that sends no
//! frame at all for the idle timeout is closed with 1001. A refused join closes with the
//! refusal's code. Every 4xxx close is preceded by an `error` message.
//!
//! The rooms are told `leave` exactly once for a participant that joined, as soon as the
//! session decides to end (not when the socket finally closes), except when the rooms
//! themselves closed the participant (`Outgoing::Close`), since they have forgotten it.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::api::{Outbox, Outgoing, Rooms};
use super::signal::{self, ClientMsg, CloseCode, ServerMsg, MAX_CLIENT_MESSAGE};
use super::ws::{self, Decoder, Frame};

/// The session's deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From the upgrade to the client's offer.
    pub offer: Duration,
    /// Longest time without any frame from the client.
    pub idle: Duration,
    /// After the server's close frame, how long to wait for the client's.
    pub close_linger: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            offer: Duration::from_secs(30),
            idle: Duration::from_secs(60),
            close_linger: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitOffer,
    Joined,
    /// Our close frame is queued; waiting for the client's until the deadline.
    Closing(Instant),
    Done,
}

/// A participant's signalling state machine.
pub struct Session {
    room: String,
    peer: String,
    outbox: Rc<dyn Outbox>,
    decoder: Decoder,
    rx: Vec<u8>,
    tx: VecDeque<Vec<u8>>,
    state: State,
    /// The rooms know this participant (joined and not yet left or closed by them).
    in_room: bool,
    offer_deadline: Instant,
    last_frame: Instant,
    timeouts: Timeouts,
    /// The code of the close frame the server sent, once it has.
    sent_close: Option<u16>,
}

impl Session {
    /// A session that starts now, right after the 101. `outbox` is what the rooms will
    /// push to; the driver drains it into [`Session::on_outgoing`].
    pub fn new(
        room: String,
        peer: String,
        outbox: Rc<dyn Outbox>,
        timeouts: Timeouts,
        now: Instant,
    ) -> Self {
        Session {
            room,
            peer,
            outbox,
            decoder: Decoder::new(MAX_CLIENT_MESSAGE),
            rx: Vec::new(),
            tx: VecDeque::new(),
            state: State::AwaitOffer,
            in_room: false,
            offer_deadline: now + timeouts.offer,
            last_frame: now,
            timeouts,
            sent_close: None,
        }
    }

    /// Bytes read from the socket (plaintext after TLS).
    pub fn on_bytes(&mut self, data: &[u8], now: Instant, rooms: &mut dyn Rooms) {
        if self.state == State::Done {
            return;
        }
        self.rx.extend_from_slice(data);
        loop {
            match self.decoder.decode(&mut self.rx) {
                Ok(Some(frame)) => {
                    self.last_frame = now;
                    self.on_frame(frame, now, rooms);
                    if self.state == State::Done {
                        self.rx.clear();
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    // A framing error: no JSON `error`, the WebSocket close code says it.
                    self.rx.clear();
                    self.close(e.close_code(), None, now, rooms);
                    self.state = State::Done;
                    return;
                }
            }
        }
    }

    fn on_frame(&mut self, frame: Frame, now: Instant, rooms: &mut dyn Rooms) {
        if let State::Closing(_) = self.state {
            // Only the client's close matters now; anything else is dropped.
            if let Frame::Close(_) = frame {
                self.state = State::Done;
            }
            return;
        }
        match frame {
            Frame::Ping(p) => self.tx.push_back(ws::encode_pong(&p)),
            Frame::Pong(_) => {}
            Frame::Close(c) => {
                // Echo the client's code (RFC 6455 §5.5.1) and end.
                let code = c.map_or(CloseCode::Normal.code(), |(code, _)| code);
                self.close(code, None, now, rooms);
                self.state = State::Done;
            }
            Frame::Binary(_) => self.protocol_error("binary frames are not used", now, rooms),
            Frame::Text(text) => match signal::parse_client(&text) {
                Ok(msg) => self.on_message(msg, now, rooms),
                Err(_) => self.protocol_error("not a signalling message", now, rooms),
            },
        }
    }

    fn on_message(&mut self, msg: ClientMsg, now: Instant, rooms: &mut dyn Rooms) {
        match (self.state, msg) {
            (State::AwaitOffer, ClientMsg::Offer { sdp }) => {
                match rooms.join(&self.room, &self.peer, &sdp, self.outbox.clone(), now) {
                    Ok(answer) => {
                        self.in_room = true;
                        self.state = State::Joined;
                        self.send(&ServerMsg::Answer { sdp: answer });
                    }
                    Err(refusal) => {
                        let code = refusal.close_code();
                        self.close(code.code(), Some(refusal_text(code)), now, rooms);
                    }
                }
            }
            (_, ClientMsg::Leave) => self.close(CloseCode::Normal.code(), None, now, rooms),
            (State::Joined, ClientMsg::Ping) => self.send(&ServerMsg::Pong),
            (State::Joined, ClientMsg::Answer { sdp }) => {
                if let Err(code) = rooms.answer(&self.room, &self.peer, &sdp, now) {
                    self.close(code.code(), Some(refusal_text(code)), now, rooms);
                }
            }
            (State::Joined, ClientMsg::Layer { peer, rid }) => {
                rooms.set_layer(&self.room, &self.peer, &peer, rid)
            }
            (State::AwaitOffer, _) => self.protocol_error("offer expected first", now, rooms),
            (_, _) => self.protocol_error("message out of turn", now, rooms),
        }
    }

    /// Something the rooms pushed to this participant.
    pub fn on_outgoing(&mut self, out: Outgoing, now: Instant, rooms: &mut dyn Rooms) {
        if !matches!(self.state, State::AwaitOffer | State::Joined) {
            return;
        }
        match out {
            Outgoing::Msg(msg) => self.send(&msg),
            Outgoing::Close(code, reason) => {
                // The rooms have already forgotten the participant: no `leave`.
                self.in_room = false;
                self.close(code.code(), Some(reason), now, rooms);
            }
        }
    }

    /// The socket ended (EOF, reset, TLS error or a write that failed).
    pub fn on_eof(&mut self, now: Instant, rooms: &mut dyn Rooms) {
        self.leave(now, rooms);
        self.tx.clear();
        self.state = State::Done;
    }

    /// The node is draining: close with 1001.
    pub fn on_drain(&mut self, now: Instant, rooms: &mut dyn Rooms) {
        if matches!(self.state, State::AwaitOffer | State::Joined) {
            self.close(CloseCode::GoingAway.code(), None, now, rooms);
        }
    }

    /// When [`Session::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = self.last_frame + self.timeouts.idle;
        match self.state {
            State::AwaitOffer => Some(idle.min(self.offer_deadline)),
            State::Joined => Some(idle),
            State::Closing(until) => Some(until),
            State::Done => None,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant, rooms: &mut dyn Rooms) {
        match self.state {
            State::AwaitOffer if now >= self.offer_deadline => {
                let code = CloseCode::OfferTimeout;
                self.close(code.code(), Some("no offer in time"), now, rooms);
            }
            State::AwaitOffer | State::Joined if now >= self.last_frame + self.timeouts.idle => {
                self.close(CloseCode::GoingAway.code(), None, now, rooms);
            }
            State::Closing(until) if now >= until => self.state = State::Done,
            _ => {}
        }
    }

    /// The next frame to write.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.tx.pop_front()
    }

    /// Nothing more to read or decide: write what is queued, then close the socket.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The code of the close frame the server sent, if it sent one.
    pub fn sent_close(&self) -> Option<u16> {
        self.sent_close
    }

    fn send(&mut self, msg: &ServerMsg) {
        self.tx.push_back(ws::encode_text(&signal::render(msg)));
    }

    fn protocol_error(&mut self, why: &'static str, now: Instant, rooms: &mut dyn Rooms) {
        self.close(CloseCode::Protocol.code(), Some(why), now, rooms);
    }

    /// Queues `error` (when `error` is given) and the close frame, and tells the rooms.
    fn close(&mut self, code: u16, error: Option<&str>, now: Instant, rooms: &mut dyn Rooms) {
        if self.sent_close.is_some() {
            return;
        }
        if let Some(message) = error {
            self.send(&ServerMsg::Error {
                code,
                message: message.to_owned(),
            });
        }
        self.tx.push_back(ws::encode_close(code, ""));
        self.sent_close = Some(code);
        self.leave(now, rooms);
        self.state = State::Closing(now + self.timeouts.close_linger);
    }

    fn leave(&mut self, now: Instant, rooms: &mut dyn Rooms) {
        if std::mem::take(&mut self.in_room) {
            rooms.leave(&self.room, &self.peer, now);
        }
    }
}

/// The `error` message for a close code the rooms chose.
fn refusal_text(code: CloseCode) -> &'static str {
    match code {
        CloseCode::Normal => "bye",
        CloseCode::GoingAway => "going away",
        CloseCode::Protocol => "protocol error",
        CloseCode::OfferTimeout => "no offer in time",
        CloseCode::BadOffer => "bad offer",
        CloseCode::SdpRejected => "SDP rejected",
        CloseCode::RoomFull => "room full",
        CloseCode::Capacity => "node at capacity",
        CloseCode::MediaFailed => "media failed",
        CloseCode::SessionReplaced => "session replaced",
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::sfu::api::JoinRefusal;
    use crate::sfu::signal::Rid;
    use crate::sfu::ws::{encode_client_frame, Opcode};

    /// Records every call; `join` answers "v=0 answer" unless `refuse` is set.
    #[derive(Default)]
    struct FakeRooms {
        calls: Vec<String>,
        refuse: Option<JoinRefusal>,
        answer_fails: Option<CloseCode>,
        outboxes: Vec<Rc<dyn Outbox>>,
    }

    impl Rooms for FakeRooms {
        fn join(
            &mut self,
            room: &str,
            peer: &str,
            offer_sdp: &str,
            outbox: Rc<dyn Outbox>,
            _now: Instant,
        ) -> Result<String, JoinRefusal> {
            self.calls.push(format!("join {room} {peer} {offer_sdp}"));
            if let Some(r) = self.refuse {
                return Err(r);
            }
            outbox.push(Outgoing::Msg(ServerMsg::Joined {
                peer: peer.into(),
                peers: vec![],
            }));
            self.outboxes.push(outbox);
            Ok("v=0 answer".into())
        }
        fn answer(&mut self, _: &str, peer: &str, sdp: &str, _: Instant) -> Result<(), CloseCode> {
            self.calls.push(format!("answer {peer} {sdp}"));
            self.answer_fails.map_or(Ok(()), Err)
        }
        fn set_layer(&mut self, _: &str, peer: &str, publisher: &str, rid: Rid) {
            self.calls
                .push(format!("layer {peer} {publisher} {}", rid.as_str()));
        }
        fn leave(&mut self, room: &str, peer: &str, _: Instant) {
            self.calls.push(format!("leave {room} {peer}"));
        }
    }

    #[derive(Default)]
    struct VecOutbox(RefCell<Vec<Outgoing>>);
    impl Outbox for VecOutbox {
        fn push(&self, out: Outgoing) {
            self.0.borrow_mut().push(out);
        }
    }

    struct Harness {
        s: Session,
        rooms: FakeRooms,
        outbox: Rc<VecOutbox>,
        t0: Instant,
    }

    impl Harness {
        fn new() -> Self {
            let t0 = Instant::now();
            let outbox = Rc::new(VecOutbox::default());
            let s = Session::new(
                "r1".into(),
                "alice".into(),
                outbox.clone(),
                Timeouts::default(),
                t0,
            );
            Harness {
                s,
                rooms: FakeRooms::default(),
                outbox,
                t0,
            }
        }

        fn send_frame(&mut self, op: Opcode, payload: &[u8]) {
            let f = encode_client_frame(op, true, payload, [1, 2, 3, 4]);
            self.s.on_bytes(&f, self.t0, &mut self.rooms);
            self.pump();
        }

        fn text(&mut self, t: &str) {
            self.send_frame(Opcode::Text, t.as_bytes());
        }

        /// Moves what the rooms pushed into the session, as the driver does.
        fn pump(&mut self) {
            let pushed: Vec<_> = self.outbox.0.borrow_mut().drain(..).collect();
            for o in pushed {
                self.s.on_outgoing(o, self.t0, &mut self.rooms);
            }
        }

        /// Everything written, decoded as (text | "close N" | "pong ...").
        fn written(&mut self) -> Vec<String> {
            let mut out = Vec::new();
            while let Some(f) = self.s.poll_transmit() {
                out.push(describe(&f));
            }
            out
        }
    }

    fn describe(f: &[u8]) -> String {
        let len = (f[1] & 0x7f) as usize;
        let (payload, op) = if len == 126 {
            (&f[4..], f[0] & 0xf)
        } else {
            (&f[2..], f[0] & 0xf)
        };
        match op {
            0x1 => String::from_utf8(payload.to_vec()).unwrap(),
            0x8 => format!("close {}", u16::from_be_bytes([payload[0], payload[1]])),
            0xA => format!("pong {}", String::from_utf8_lossy(payload)),
            _ => format!("op {op}"),
        }
    }

    #[test]
    fn offer_join_answer_then_room_messages() {
        let mut h = Harness::new();
        h.text(r#"{"type":"offer","sdp":"v=0 offer"}"#);
        assert_eq!(h.rooms.calls, ["join r1 alice v=0 offer"]);
        assert_eq!(
            h.written(),
            [
                r#"{"type":"answer","sdp":"v=0 answer"}"#,
                r#"{"type":"joined","peer":"alice","peers":[]}"#,
            ]
        );
        h.text(r#"{"type":"ping"}"#);
        h.text(r#"{"type":"answer","sdp":"v=0 re"}"#);
        h.text(r#"{"type":"layer","peer":"bob","rid":"q"}"#);
        assert_eq!(h.written(), [r#"{"type":"pong"}"#]);
        h.send_frame(Opcode::Ping, b"hb");
        assert_eq!(h.written(), ["pong hb"]);
        h.text(r#"{"type":"leave"}"#);
        assert_eq!(h.written(), ["close 1000"]);
        assert_eq!(
            h.rooms.calls[1..],
            ["answer alice v=0 re", "layer alice bob q", "leave r1 alice"]
        );
        assert!(!h.s.is_done(), "waits for the client's close");
        h.send_frame(Opcode::Close, &1000u16.to_be_bytes());
        assert!(h.s.is_done());
        assert_eq!(h.s.sent_close(), Some(1000));
        assert_eq!(h.rooms.calls.len(), 4, "leave once");
    }

    #[test]
    fn the_first_message_must_be_an_offer() {
        for first in [
            r#"{"type":"ping"}"#,
            r#"{"type":"answer","sdp":"x"}"#,
            r#"{"type":"layer","peer":"b","rid":"h"}"#,
        ] {
            let mut h = Harness::new();
            h.text(first);
            assert_eq!(
                h.written(),
                [
                    r#"{"type":"error","code":4000,"message":"offer expected first"}"#,
                    "close 4000"
                ],
                "{first}"
            );
            assert!(h.rooms.calls.is_empty());
        }
    }

    #[test]
    fn garbage_unknown_types_binary_and_second_offers_close_4000() {
        for bad in ["{not json", r#"{"type":"hello"}"#, "null"] {
            let mut h = Harness::new();
            h.text(bad);
            assert_eq!(h.written().last().unwrap(), "close 4000", "{bad}");
        }
        let mut h = Harness::new();
        h.send_frame(Opcode::Binary, b"{}");
        assert_eq!(h.written().last().unwrap(), "close 4000");
        let mut h = Harness::new();
        h.text(r#"{"type":"offer","sdp":"a"}"#);
        h.written();
        h.text(r#"{"type":"offer","sdp":"b"}"#);
        assert_eq!(
            h.written(),
            [
                r#"{"type":"error","code":4000,"message":"message out of turn"}"#,
                "close 4000"
            ]
        );
        assert_eq!(h.rooms.calls.last().unwrap(), "leave r1 alice");
    }

    #[test]
    fn a_refused_join_closes_with_its_code_and_no_leave() {
        let mut h = Harness::new();
        h.rooms.refuse = Some(JoinRefusal::SdpRejected);
        h.text(r#"{"type":"offer","sdp":"a"}"#);
        assert_eq!(
            h.written(),
            [
                r#"{"type":"error","code":4003,"message":"SDP rejected"}"#,
                "close 4003"
            ]
        );
        assert_eq!(h.rooms.calls, ["join r1 alice a"]);
        h.rooms.refuse = Some(JoinRefusal::RoomFull);
        let mut h2 = Harness::new();
        h2.rooms.refuse = Some(JoinRefusal::RoomFull);
        h2.text(r#"{"type":"offer","sdp":"a"}"#);
        assert_eq!(h2.written().last().unwrap(), "close 4004");
    }

    #[test]
    fn a_close_from_the_rooms_is_not_answered_with_leave() {
        let mut h = Harness::new();
        h.text(r#"{"type":"offer","sdp":"a"}"#);
        h.written();
        h.s.on_outgoing(
            Outgoing::Close(CloseCode::SessionReplaced, "session replaced"),
            h.t0,
            &mut h.rooms,
        );
        assert_eq!(
            h.written(),
            [
                r#"{"type":"error","code":4031,"message":"session replaced"}"#,
                "close 4031"
            ]
        );
        assert_eq!(h.rooms.calls, ["join r1 alice a"]);
        // Later pushes are dropped.
        h.s.on_outgoing(Outgoing::Msg(ServerMsg::Pong), h.t0, &mut h.rooms);
        assert!(h.written().is_empty());
    }

    #[test]
    fn a_failed_answer_closes_with_the_rooms_code() {
        let mut h = Harness::new();
        h.rooms.answer_fails = Some(CloseCode::SdpRejected);
        h.text(r#"{"type":"offer","sdp":"a"}"#);
        h.written();
        h.text(r#"{"type":"answer","sdp":"b"}"#);
        assert_eq!(h.written().last().unwrap(), "close 4003");
        assert_eq!(h.rooms.calls.last().unwrap(), "leave r1 alice");
    }

    #[test]
    fn offer_deadline_idle_and_linger() {
        let mut h = Harness::new();
        let t = Timeouts::default();
        assert_eq!(h.s.poll_timeout(), Some(h.t0 + t.offer));
        h.s.handle_timeout(h.t0 + t.offer - Duration::from_millis(1), &mut h.rooms);
        assert!(h.written().is_empty());
        h.s.handle_timeout(h.t0 + t.offer, &mut h.rooms);
        assert_eq!(
            h.written(),
            [
                r#"{"type":"error","code":4001,"message":"no offer in time"}"#,
                "close 4001"
            ]
        );
        let until = h.t0 + t.offer + t.close_linger;
        assert_eq!(h.s.poll_timeout(), Some(until));
        h.s.handle_timeout(until, &mut h.rooms);
        assert!(h.s.is_done());

        let mut h = Harness::new();
        h.text(r#"{"type":"offer","sdp":"a"}"#);
        h.written();
        assert_eq!(h.s.poll_timeout(), Some(h.t0 + t.idle));
        h.s.handle_timeout(h.t0 + t.idle, &mut h.rooms);
        assert_eq!(h.written(), ["close 1001"]);
        assert_eq!(h.rooms.calls.last().unwrap(), "leave r1 alice");
    }

    #[test]
    fn drain_eof_and_client_close() {
        let mut h = Harness::new();
        h.text(r#"{"type":"offer","sdp":"a"}"#);
        h.written();
        h.s.on_drain(h.t0, &mut h.rooms);
        assert_eq!(h.written(), ["close 1001"]);
        assert_eq!(h.rooms.calls.last().unwrap(), "leave r1 alice");

        let mut h = Harness::new();
        h.text(r#"{"type":"offer","sdp":"a"}"#);
        h.s.on_eof(h.t0, &mut h.rooms);
        assert!(h.s.is_done());
        assert_eq!(h.rooms.calls.last().unwrap(), "leave r1 alice");
        assert_eq!(h.s.sent_close(), None);

        let mut h = Harness::new();
        h.send_frame(Opcode::Close, &4321u16.to_be_bytes());
        assert_eq!(h.written(), ["close 4321"]);
        assert!(h.s.is_done());
    }

    #[test]
    fn framing_errors_close_with_websocket_codes() {
        let mut h = Harness::new();
        h.s.on_bytes(&ws::encode_text("unmasked"), h.t0, &mut h.rooms);
        assert_eq!(h.written(), ["close 1002"]);
        assert!(h.s.is_done());
        let mut h = Harness::new();
        h.send_frame(Opcode::Text, &[0xff]);
        assert_eq!(h.written(), ["close 1007"]);
        let mut h = Harness::new();
        let big = vec![b' '; MAX_CLIENT_MESSAGE + 1];
        h.send_frame(Opcode::Text, &big);
        assert_eq!(h.written(), ["close 1009"]);
    }
}
