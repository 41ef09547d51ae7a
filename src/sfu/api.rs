//! The boundary between signalling (one WebSocket per participant, on the
//! room's owner shard) and the rooms (str0m sessions on that same shard).
//! Both sides are single-threaded on the owner shard, so plain `Rc`/`RefCell`
//! types cross it; nothing here is `Send`.

use std::net::SocketAddr;
use std::time::Instant;

use super::signal::{CloseCode, Rid, ServerMsg};

/// What the rooms push to one participant's WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A message to send as a text frame.
    Msg(ServerMsg),
    /// Send `error` (with this reason) and close with the code; the rooms
    /// have already forgotten the participant.
    Close(CloseCode, &'static str),
}

/// A participant's outbox: the signalling side drains it into its socket.
/// Implemented by the signalling driver (a local channel); a `Vec` in tests.
pub trait Outbox {
    fn push(&self, out: Outgoing);
}

/// Why a join was refused (the socket is then closed with the code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefusal {
    #[error("the offer is not a readable SDP offer")]
    BadOffer,
    #[error("the offer cannot be accepted")]
    SdpRejected,
    #[error("the room is full")]
    RoomFull,
    #[error("the node is at capacity")]
    Capacity,
}

impl JoinRefusal {
    pub fn close_code(self) -> CloseCode {
        match self {
            JoinRefusal::BadOffer => CloseCode::BadOffer,
            JoinRefusal::SdpRejected => CloseCode::SdpRejected,
            JoinRefusal::RoomFull => CloseCode::RoomFull,
            JoinRefusal::Capacity => CloseCode::Capacity,
        }
    }
}

/// The rooms of one shard, as signalling sees them. Every call is made on
/// the owner shard; `now` is the caller's clock.
pub trait Rooms {
    /// A participant's first offer. On success returns the SDP answer; the
    /// rooms then push `joined`, `peer_joined` to the others, renegotiation
    /// offers and `tracks` through `outbox`. A participant already in the
    /// room under the same `peer` id is replaced: its old outbox receives
    /// `Close(SessionReplaced)` first.
    fn join(
        &mut self,
        room: &str,
        peer: &str,
        offer_sdp: &str,
        outbox: std::rc::Rc<dyn Outbox>,
        now: Instant,
    ) -> Result<String, JoinRefusal>;

    /// The participant's answer to a server-initiated offer.
    fn answer(&mut self, room: &str, peer: &str, sdp: &str, now: Instant) -> Result<(), CloseCode>;

    /// The simulcast layer `peer` wants of `publisher`'s video.
    fn set_layer(&mut self, room: &str, peer: &str, publisher: &str, rid: Rid);

    /// The participant's socket ended (left, closed, or replaced): forget it,
    /// tell the others, close the room if it was the last.
    fn leave(&mut self, room: &str, peer: &str, now: Instant);
}

/// Where a shard's media socket is, as advertised in ICE candidates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaAddrs {
    /// The address the shard's UDP socket is bound to (str0m needs it as
    /// each packet's destination).
    pub bound: SocketAddr,
    /// Host candidates to advertise: the public address (and the private one
    /// behind NAT), each with the shard's port.
    pub candidates: Vec<SocketAddr>,
}
