//! The signalling messages of a group call, as JSON text frames on the room's
//! WebSocket (`docs/PROTOCOLS.md` is the reference for clients). Sans-IO:
//! parse and render only.

use serde::{Deserialize, Serialize};

/// Longest text frame a client may send (an SDP offer with simulcast and a
/// few data channels is a few KiB).
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// What a client sends. Unknown fields are ignored (newer clients may add
/// some); an unknown `type` is an error.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// The first message: the client's complete (non-trickle) offer.
    Offer {
        sdp: String,
    },
    /// The answer to a server-initiated [`ServerMsg::Offer`].
    Answer {
        sdp: String,
    },
    /// The simulcast layer this client wants of `peer`'s video.
    Layer {
        peer: String,
        rid: Rid,
    },
    Ping,
    /// Leaving on purpose (the server closes with 1000).
    Leave,
}

/// Simulcast layers, lowest first (LiveKit's names, as the oxpulse clients use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rid {
    Q,
    H,
    F,
}

impl Rid {
    pub fn as_str(self) -> &'static str {
        match self {
            Rid::Q => "q",
            Rid::H => "h",
            Rid::F => "f",
        }
    }

    pub fn parse(s: &str) -> Option<Rid> {
        match s {
            "q" => Some(Rid::Q),
            "h" => Some(Rid::H),
            "f" => Some(Rid::F),
            _ => None,
        }
    }
}

/// Media kinds in the tracks map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Audio,
    Video,
}

/// One m-line of a subscriber's session and whose media it carries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct TrackInfo {
    pub mid: String,
    pub peer: String,
    pub kind: Kind,
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// The answer to the client's first offer.
    Answer {
        sdp: String,
    },
    /// Server-initiated renegotiation (tracks added or removed); at most one
    /// in flight per client.
    Offer {
        sdp: String,
    },
    /// Which of the client's receiving m-lines carries which peer's media;
    /// sent after each negotiation that changed it.
    Tracks {
        tracks: Vec<TrackInfo>,
    },
    /// The client is in: its peer id and the peers already there.
    Joined {
        peer: String,
        peers: Vec<String>,
    },
    PeerJoined {
        peer: String,
    },
    PeerLeft {
        peer: String,
    },
    Pong,
    /// Sent just before the server closes with `code`.
    Error {
        code: u16,
        message: String,
    },
}

/// WebSocket close codes the server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum CloseCode {
    Normal = 1000,
    /// The node is draining or shutting down.
    GoingAway = 1001,
    /// Not JSON, an unknown type, or a message out of turn.
    Protocol = 4000,
    /// No offer within the join deadline.
    OfferTimeout = 4001,
    /// The offer is not an SDP offer the server can read.
    BadOffer = 4002,
    /// The SDP was read but cannot be accepted (no usable media, no ICE/DTLS).
    SdpRejected = 4003,
    /// The room has its maximum number of participants.
    RoomFull = 4004,
    /// The shard carries its maximum number of rooms or participants.
    Capacity = 4005,
    /// ICE or DTLS failed, or no media or consent for too long.
    MediaFailed = 4008,
    /// The same peer id joined again; this older session is closed.
    SessionReplaced = 4031,
}

impl CloseCode {
    pub fn code(self) -> u16 {
        self as u16
    }
}

/// Why a client frame was not a message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignalError {
    #[error("message of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("not a signalling message: {0}")]
    Invalid(String),
}

/// Parses one client text frame.
pub fn parse_client(text: &str) -> Result<ClientMsg, SignalError> {
    if text.len() > MAX_CLIENT_MESSAGE {
        return Err(SignalError::TooLarge(text.len()));
    }
    // serde's message names the field or variant, never echoes the SDP.
    serde_json::from_str(text).map_err(|e| SignalError::Invalid(e.to_string()))
}

/// Renders one server message as a text frame's payload.
pub fn render(msg: &ServerMsg) -> String {
    // Serialising these plain types cannot fail (no maps with non-string
    // keys, no foreign Serialize impls).
    serde_json::to_string(msg).unwrap_or_else(|_| String::from("{}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse() {
        assert_eq!(
            parse_client(r#"{"type":"offer","sdp":"v=0"}"#),
            Ok(ClientMsg::Offer { sdp: "v=0".into() })
        );
        assert_eq!(
            parse_client(r#"{"type":"layer","peer":"bob","rid":"h"}"#),
            Ok(ClientMsg::Layer {
                peer: "bob".into(),
                rid: Rid::H
            })
        );
        assert_eq!(parse_client(r#"{"type":"ping"}"#), Ok(ClientMsg::Ping));
        assert_eq!(parse_client(r#"{"type":"leave"}"#), Ok(ClientMsg::Leave));
        assert_eq!(
            parse_client(r#"{"type":"ping","later_field":1}"#),
            Ok(ClientMsg::Ping)
        );
    }

    #[test]
    fn bad_client_messages_are_errors() {
        for bad in [
            "",
            "null",
            "{}",
            r#"{"type":"offer"}"#,
            r#"{"type":"offer","sdp":1}"#,
            r#"{"type":"hello"}"#,
            r#"{"type":"layer","peer":"b","rid":"x"}"#,
        ] {
            assert!(
                matches!(parse_client(bad), Err(SignalError::Invalid(_))),
                "{bad}"
            );
        }
        let huge = format!(
            r#"{{"type":"offer","sdp":"{}"}}"#,
            "a".repeat(MAX_CLIENT_MESSAGE)
        );
        assert!(matches!(parse_client(&huge), Err(SignalError::TooLarge(_))));
    }

    #[test]
    fn server_messages_render_as_documented() {
        assert_eq!(
            render(&ServerMsg::PeerJoined { peer: "bob".into() }),
            r#"{"type":"peer_joined","peer":"bob"}"#
        );
        assert_eq!(
            render(&ServerMsg::Tracks {
                tracks: vec![TrackInfo {
                    mid: "2".into(),
                    peer: "bob".into(),
                    kind: Kind::Video
                }]
            }),
            r#"{"type":"tracks","tracks":[{"mid":"2","peer":"bob","kind":"video"}]}"#
        );
        assert_eq!(
            render(&ServerMsg::Error {
                code: CloseCode::RoomFull.code(),
                message: "room full".into()
            }),
            r#"{"type":"error","code":4004,"message":"room full"}"#
        );
        assert_eq!(render(&ServerMsg::Pong), r#"{"type":"pong"}"#);
    }

    #[test]
    fn rids_order_lowest_first() {
        assert!(Rid::Q < Rid::H && Rid::H < Rid::F);
        for r in [Rid::Q, Rid::H, Rid::F] {
            assert_eq!(Rid::parse(r.as_str()), Some(r));
        }
        assert_eq!(Rid::parse("x"), None);
    }
}
