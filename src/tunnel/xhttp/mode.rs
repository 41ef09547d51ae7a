//! The XHTTP transfer modes (TUNNEL.md §3 "Modes") and their names as Xray spells them.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// How the tunnel's two directions map onto HTTP requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XhttpMode {
    /// One POST `{path}/`: request body = uplink, response body = downlink. Needs an XHTTP
    /// server ≥ Xray 24.11.30 (or the edge's own server).
    StreamOne,
    /// GET `{path}/{sid}` for the downlink and one streaming POST `{path}/{sid}` for the
    /// uplink.
    StreamUp,
    /// GET `{path}/{sid}` for the downlink and numbered POSTs `{path}/{sid}/{seq}` for the
    /// uplink; for middleboxes that buffer request bodies.
    PacketUp,
}

impl XhttpMode {
    /// The mode's name in Xray configs.
    pub fn as_str(self) -> &'static str {
        match self {
            XhttpMode::StreamOne => "stream-one",
            XhttpMode::StreamUp => "stream-up",
            XhttpMode::PacketUp => "packet-up",
        }
    }

    /// Whether the mode's requests carry a session id (all but stream-one).
    pub fn has_session(self) -> bool {
        !matches!(self, XhttpMode::StreamOne)
    }
}

impl fmt::Display for XhttpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode name that is none of Xray's.
#[derive(Error, Debug, Clone, PartialEq, Eq)]
#[error("unknown XHTTP mode {0:?}; expected one of \"auto\", \"stream-one\", \"stream-up\", \"packet-up\"")]
pub struct ParseModeError(String);

impl FromStr for XhttpMode {
    type Err = ParseModeError;

    /// Xray's names. `"auto"` is stream-up: over REALITY, Xray 24.11.21 clients pick it for
    /// "auto" too, and unlike stream-one it works with every XHTTP server version.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stream-one" => Ok(XhttpMode::StreamOne),
            "stream-up" | "auto" => Ok(XhttpMode::StreamUp),
            "packet-up" => Ok(XhttpMode::PacketUp),
            other => Err(ParseModeError(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for mode in [
            XhttpMode::StreamOne,
            XhttpMode::StreamUp,
            XhttpMode::PacketUp,
        ] {
            assert_eq!(mode.to_string().parse::<XhttpMode>(), Ok(mode));
        }
        assert_eq!("stream-one".parse(), Ok(XhttpMode::StreamOne));
        assert_eq!("packet-up".parse(), Ok(XhttpMode::PacketUp));
    }

    #[test]
    fn auto_is_stream_up() {
        assert_eq!("auto".parse(), Ok(XhttpMode::StreamUp));
    }

    #[test]
    fn unknown_names_are_refused_with_the_choices() {
        let err = "Stream-Up".parse::<XhttpMode>().unwrap_err();
        assert!(err.to_string().contains("\"Stream-Up\""), "{err}");
        assert!(err.to_string().contains("packet-up"), "{err}");
        assert!("".parse::<XhttpMode>().is_err());
    }

    #[test]
    fn only_stream_one_has_no_session() {
        assert!(!XhttpMode::StreamOne.has_session());
        assert!(XhttpMode::StreamUp.has_session());
        assert!(XhttpMode::PacketUp.has_session());
    }
}
