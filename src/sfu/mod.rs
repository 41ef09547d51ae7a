//! Group calls (issue "Group calls"): rooms owned by `shard_of(room_id)`,
//! WebSocket signalling authenticated by a room JWT, media forwarded as opaque
//! SFrame RTP with str0m. [`signal`] is the message set shared by the server,
//! the load generator and the tests; [`api`] the boundary between signalling and
//! the rooms.
//!
//! Signalling, from the wire in: [`front_route`] decides what a request for
//! `/sfu/ws/{room}` gets (sans-IO: [`jwt`] tokens, [`ws`] handshake), [`upgrade`]
//! answers it on the front and moves the socket to the room's owner shard,
//! [`signalling`] drives one participant's [`session`] against the shard's
//! [`api::Rooms`].
//!
//! Media: [`hub::RoomHub`] is the rooms of one shard (sans-IO, str0m in RTP
//! mode) and [`media_driver`] the glommio loop that feeds it from the shard's
//! UDP port.

pub mod api;
pub mod datachannel;
pub mod forward;
pub mod front_route;
pub mod hub;
pub mod jwt;
pub mod keyframe;
pub mod media_driver;
mod participant;
mod room;
pub mod session;
pub mod signal;
pub mod signalling;
pub mod simulcast;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;
pub mod upgrade;
pub mod ws;

pub use hub::{media_addrs, HubConfig, RoomHub};
pub use participant::Outbound;
