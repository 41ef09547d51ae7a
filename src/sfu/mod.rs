//! Group calls (issue "Group calls"): rooms owned by `shard_of(room_id)`,
//! WebSocket signalling authenticated by a room JWT, media forwarded as opaque
//! SFrame RTP with str0m. Being built; [`signal`] is the message set shared
//! by the server, the load generator and the tests.

pub mod api;
pub mod signal;
