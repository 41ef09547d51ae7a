//! Group calls (issue "Group calls"): rooms owned by `shard_of(room_id)`,
//! WebSocket signalling authenticated by a room JWT, media forwarded as opaque
//! SFrame RTP with str0m. Being built; [`signal`] is the message set shared
//! by the server, the load generator and the tests.
//!
//! Signalling, from the wire in: [`front_route`] decides what a request for
//! `/sfu/ws/{room}` gets (sans-IO: [`jwt`] tokens, [`ws`] handshake), [`upgrade`]
//! answers it on the front and moves the socket to the room's owner shard,
//! [`signalling`] drives one participant's [`session`] against the shard's [`api::Rooms`].

pub mod api;
pub mod front_route;
pub mod jwt;
pub mod session;
pub mod signal;
pub mod signalling;
pub mod upgrade;
pub mod ws;
