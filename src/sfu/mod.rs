//! Group calls (issue "Group calls"): rooms owned by `shard_of(room_id)`,
//! WebSocket signalling authenticated by a room JWT, media forwarded as opaque
//! SFrame RTP with str0m. [`signal`] is the message set shared by the server,
//! the load generator and the tests; [`api`] the boundary between signalling and
//! the rooms; [`hub::RoomHub`] the rooms of one shard (sans-IO) and
//! [`media_driver`] the glommio loop that feeds it from the shard's UDP port.

pub mod api;
pub mod datachannel;
pub mod forward;
pub mod hub;
pub mod keyframe;
pub mod media_driver;
mod participant;
mod room;
pub mod signal;
pub mod simulcast;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

pub use hub::{media_addrs, HubConfig, RoomHub};
pub use participant::Outbound;
