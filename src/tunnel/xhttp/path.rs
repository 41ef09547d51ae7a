//! What the URI of each XHTTP request looks like (TUNNEL.md §3 "Path and session",
//! "Padding"): the normalised path, the session id, the packet sequence number and the
//! `x_padding` query. Randomness is passed in, so every shape is testable.

use http::Method;
use uuid::Uuid;

use super::mode::XhttpMode;

/// Shortest `x_padding` value; servers ≥ Xray 24.11.30 answer 400 to less (default range).
pub const PADDING_MIN: usize = 100;
/// Longest `x_padding` value; servers ≥ Xray 24.11.30 answer 400 to more (default range).
pub const PADDING_MAX: usize = 1000;
/// The padding character. 'X' has an 8-bit HPACK Huffman code, so the padding is as long on
/// the wire as in the URI (Xray's current clients use it for the same reason; servers only
/// check the length).
pub const PADDING_CHAR: char = 'X';

/// A configured XHTTP path, normalised as Xray does: the part before any `?` starts and ends
/// with `/`; a query after `?` is kept and sent before the padding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XhttpPath {
    path: String,
    query: String,
}

impl XhttpPath {
    /// Normalises a configured path: `"xh"` and `"/xh"` become `"/xh/"`, `""` becomes `"/"`.
    pub fn new(config: &str) -> Self {
        let (path, query) = config.split_once('?').unwrap_or((config, ""));
        let mut normalised = String::with_capacity(path.len() + 2);
        if !path.starts_with('/') {
            normalised.push('/');
        }
        normalised.push_str(path);
        if !normalised.ends_with('/') {
            normalised.push('/');
        }
        XhttpPath {
            path: normalised,
            query: query.to_owned(),
        }
    }

    /// The normalised path, with leading and trailing `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The configured query (without `?`), sent before the padding; usually empty.
    pub fn query(&self) -> &str {
        &self.query
    }
}

/// One request of an XHTTP tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XhttpRequest<'a> {
    /// stream-up and packet-up: GET `{path}{sid}`, the downlink.
    Download { session: &'a str },
    /// stream-up: one streaming POST `{path}{sid}`, the uplink.
    Upload { session: &'a str },
    /// packet-up: POST `{path}{sid}/{seq}`, one piece of the uplink.
    Packet { session: &'a str, seq: u64 },
    /// stream-one: one POST `{path}` (no session), both directions.
    StreamOne,
}

impl XhttpRequest<'_> {
    pub fn method(&self) -> Method {
        match self {
            XhttpRequest::Download { .. } => Method::GET,
            _ => Method::POST,
        }
    }

    /// Whether the request carries `Content-Type: application/grpc`: Xray puts it on
    /// streaming uploads (unless `noGRPCHeader`), so middleboxes expect a long body.
    pub fn grpc_content_type(&self) -> bool {
        matches!(self, XhttpRequest::Upload { .. } | XhttpRequest::StreamOne)
    }

    /// A short name for error messages (never the session id).
    pub fn name(&self) -> &'static str {
        match self {
            XhttpRequest::Download { .. } => "download GET",
            XhttpRequest::Upload { .. } => "stream-up POST",
            XhttpRequest::Packet { .. } => "packet-up POST",
            XhttpRequest::StreamOne => "stream-one POST",
        }
    }

    /// The request's path and query: `{path}[{sid}[/{seq}]]?[{query}&]x_padding=XXX…`, with
    /// `padding_len` padding characters (see [`padding_len`]).
    pub fn path_and_query(&self, path: &XhttpPath, padding_len: usize) -> String {
        let mut out = String::with_capacity(path.path.len() + path.query.len() + 64 + padding_len);
        out.push_str(&path.path);
        match self {
            XhttpRequest::Download { session } | XhttpRequest::Upload { session } => {
                out.push_str(session);
            }
            XhttpRequest::Packet { session, seq } => {
                out.push_str(session);
                out.push('/');
                out.push_str(&seq.to_string());
            }
            XhttpRequest::StreamOne => {}
        }
        out.push('?');
        if !path.query.is_empty() {
            out.push_str(&path.query);
            out.push('&');
        }
        out.push_str("x_padding=");
        out.extend(std::iter::repeat_n(PADDING_CHAR, padding_len));
        out
    }
}

/// The requests that open a tunnel in `mode`, in the order they are sent: the downlink
/// first (the server creates the session on either, but only the GET starts the tunnel).
pub fn opening_requests(mode: XhttpMode, session: &str) -> Vec<XhttpRequest<'_>> {
    match mode {
        XhttpMode::StreamOne => vec![XhttpRequest::StreamOne],
        XhttpMode::StreamUp => vec![
            XhttpRequest::Download { session },
            XhttpRequest::Upload { session },
        ],
        // The POSTs follow as uplink data arrives.
        XhttpMode::PacketUp => vec![XhttpRequest::Download { session }],
    }
}

/// A padding length in [`PADDING_MIN`]`..=`[`PADDING_MAX`] from 4 random bytes. The modulo
/// bias (< 1e-6) does not matter for padding.
pub fn padding_len(random: [u8; 4]) -> usize {
    let span = (PADDING_MAX - PADDING_MIN + 1) as u32;
    PADDING_MIN + (u32::from_le_bytes(random) % span) as usize
}

/// A session id as Xray makes it: a random UUIDv4 in its hyphenated lowercase form.
pub fn session_id(random: [u8; 16]) -> String {
    uuid::Builder::from_random_bytes(random)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// Whether `text` is a session id this client could have made (for tests and sanity
/// checks).
pub fn is_session_id(text: &str) -> bool {
    Uuid::try_parse(text)
        .is_ok_and(|u| u.get_version_num() == 4 && u.hyphenated().to_string() == text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SID: &str = "0b7ac2a4-77cf-4e5b-9e0c-6a7a0f0b5e21";

    fn padding_of(uri: &str) -> &str {
        uri.split_once("x_padding=").expect("has padding").1
    }

    #[test]
    fn paths_are_normalised_like_xray() {
        assert_eq!(XhttpPath::new("xh").path(), "/xh/");
        assert_eq!(XhttpPath::new("/xh").path(), "/xh/");
        assert_eq!(XhttpPath::new("/xh/").path(), "/xh/");
        assert_eq!(XhttpPath::new("").path(), "/");
        assert_eq!(XhttpPath::new("/").path(), "/");
        assert_eq!(XhttpPath::new("a/b").path(), "/a/b/");
        let with_query = XhttpPath::new("/xh?ed=2048");
        assert_eq!(with_query.path(), "/xh/");
        assert_eq!(with_query.query(), "ed=2048");
        assert_eq!(XhttpPath::new("/xh").query(), "");
    }

    #[test]
    fn uris_per_request() {
        let path = XhttpPath::new("/xh");
        let pad = "X".repeat(100);
        assert_eq!(
            XhttpRequest::Download { session: SID }.path_and_query(&path, 100),
            format!("/xh/{SID}?x_padding={pad}")
        );
        assert_eq!(
            XhttpRequest::Upload { session: SID }.path_and_query(&path, 100),
            format!("/xh/{SID}?x_padding={pad}")
        );
        assert_eq!(
            XhttpRequest::Packet {
                session: SID,
                seq: 0
            }
            .path_and_query(&path, 100),
            format!("/xh/{SID}/0?x_padding={pad}")
        );
        assert_eq!(
            XhttpRequest::Packet {
                session: SID,
                seq: 12345
            }
            .path_and_query(&path, 100),
            format!("/xh/{SID}/12345?x_padding={pad}")
        );
        // stream-one: the trailing slash, no session.
        assert_eq!(
            XhttpRequest::StreamOne.path_and_query(&path, 100),
            format!("/xh/?x_padding={pad}")
        );
    }

    #[test]
    fn a_configured_query_comes_before_the_padding() {
        let path = XhttpPath::new("xh?ed=2048");
        let uri = XhttpRequest::StreamOne.path_and_query(&path, 150);
        assert_eq!(uri, format!("/xh/?ed=2048&x_padding={}", "X".repeat(150)));
    }

    #[test]
    fn methods_and_headers_per_request() {
        assert_eq!(
            XhttpRequest::Download { session: SID }.method(),
            Method::GET
        );
        assert_eq!(XhttpRequest::Upload { session: SID }.method(), Method::POST);
        assert_eq!(
            XhttpRequest::Packet {
                session: SID,
                seq: 1
            }
            .method(),
            Method::POST
        );
        assert_eq!(XhttpRequest::StreamOne.method(), Method::POST);
        assert!(XhttpRequest::Upload { session: SID }.grpc_content_type());
        assert!(XhttpRequest::StreamOne.grpc_content_type());
        assert!(!XhttpRequest::Download { session: SID }.grpc_content_type());
        assert!(!XhttpRequest::Packet {
            session: SID,
            seq: 1
        }
        .grpc_content_type());
    }

    #[test]
    fn opening_requests_per_mode() {
        assert_eq!(
            opening_requests(XhttpMode::StreamOne, SID),
            vec![XhttpRequest::StreamOne]
        );
        assert_eq!(
            opening_requests(XhttpMode::StreamUp, SID),
            vec![
                XhttpRequest::Download { session: SID },
                XhttpRequest::Upload { session: SID }
            ]
        );
        assert_eq!(
            opening_requests(XhttpMode::PacketUp, SID),
            vec![XhttpRequest::Download { session: SID }]
        );
    }

    #[test]
    fn padding_length_is_always_in_range() {
        let extremes = [
            [0, 0, 0, 0],
            [0xff; 4],
            900u32.to_le_bytes(),
            901u32.to_le_bytes(),
            (900u32 + 901).to_le_bytes(),
        ];
        for random in extremes {
            let n = padding_len(random);
            assert!((PADDING_MIN..=PADDING_MAX).contains(&n), "{n}");
        }
        assert_eq!(padding_len([0; 4]), PADDING_MIN);
        assert_eq!(padding_len(900u32.to_le_bytes()), PADDING_MAX);
        // A sweep over a deterministic sequence reaches both ends and never leaves the range.
        let (mut lo, mut hi) = (usize::MAX, 0);
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let n = padding_len(x.to_le_bytes());
            assert!((PADDING_MIN..=PADDING_MAX).contains(&n), "{n}");
            lo = lo.min(n);
            hi = hi.max(n);
        }
        assert_eq!((lo, hi), (PADDING_MIN, PADDING_MAX));
    }

    #[test]
    fn padding_is_only_the_padding_char() {
        let path = XhttpPath::new("/xh");
        for len in [PADDING_MIN, 555, PADDING_MAX] {
            let uri = XhttpRequest::Download { session: SID }.path_and_query(&path, len);
            let padding = padding_of(&uri);
            assert_eq!(padding.len(), len);
            assert!(padding.chars().all(|c| c == PADDING_CHAR), "{padding}");
            // Nothing that would need percent-encoding in a query.
            assert!(uri.bytes().all(|b| b.is_ascii_graphic()));
            assert!(uri.parse::<http::Uri>().is_ok());
        }
    }

    #[test]
    fn session_ids_are_uuid_v4_strings() {
        let sid = session_id([0xab; 16]);
        assert_eq!(sid.len(), 36);
        assert!(is_session_id(&sid), "{sid}");
        assert_eq!(&sid[14..15], "4");
        assert!(matches!(&sid[19..20], "8" | "9" | "a" | "b"), "{sid}");
        assert_ne!(session_id([0; 16]), session_id([1; 16]));
        assert!(!is_session_id("not-a-session"));
        assert!(!is_session_id(&SID.to_uppercase()));
    }
}
