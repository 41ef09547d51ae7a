//! The data channels the edge relays (PROTOCOLS.md "Data channels"): each client opens
//! its own in-band channels; a message on one is copied, verbatim, to the channel with
//! the same label of every other participant in the room.

use str0m::channel::ChannelId;

/// Key-exchange messages (end-to-end wrapped epoch keys).
pub const SFRAME_KEYS: &str = "sframe-keys";
pub const CHAT: &str = "chat";

/// The largest message relayed on a channel with this label; `None` for labels the edge
/// does not relay.
pub fn cap(label: &str) -> Option<usize> {
    match label {
        SFRAME_KEYS => Some(64 * 1024),
        CHAT => Some(16 * 1024),
        _ => None,
    }
}

/// The relayed channels one participant has open.
#[derive(Debug, Default)]
pub struct Channels {
    open: Vec<(ChannelId, &'static str)>,
}

impl Channels {
    /// Records an opened channel; labels the edge does not relay are ignored.
    pub fn opened(&mut self, id: ChannelId, label: &str) {
        let label = match label {
            SFRAME_KEYS => SFRAME_KEYS,
            CHAT => CHAT,
            _ => return,
        };
        self.open.retain(|(i, l)| *i != id && *l != label);
        self.open.push((id, label));
    }

    pub fn closed(&mut self, id: ChannelId) {
        self.open.retain(|(i, _)| *i != id);
    }

    pub fn label(&self, id: ChannelId) -> Option<&'static str> {
        self.open.iter().find(|(i, _)| *i == id).map(|(_, l)| *l)
    }

    pub fn id(&self, label: &str) -> Option<ChannelId> {
        self.open.iter().find(|(_, l)| *l == label).map(|(i, _)| *i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps() {
        assert_eq!(cap("sframe-keys"), Some(65536));
        assert_eq!(cap("chat"), Some(16384));
        assert_eq!(cap("other"), None);
    }
}
