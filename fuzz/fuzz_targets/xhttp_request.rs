//! Feeds arbitrary request lines to the XHTTP server's router: it must never
//! panic, and whatever it routes must be something the rest of the server can
//! hold (a bounded, printable session id; an upload only by POST, a download
//! only by GET).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxpulse_edge::tunnel::xhttp_server::request::{MAX_SID_LEN, DEFAULT_X_PADDING};
use oxpulse_edge::tunnel::xhttp_server::{parse_request, RouteRules, XhttpMode, XhttpRequest};

fuzz_target!(|data: &[u8]| {
    // Five fields split at NUL: method, path, query, host, referer; the first
    // byte picks the mode and whether Host and padding are checked.
    let Some((&knobs, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut f = text.split('\0');
    let (method, path) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
    let (query, host, referer) = (f.next(), f.next(), f.next());
    let mode = match knobs & 3 {
        0 => XhttpMode::Auto,
        1 => XhttpMode::StreamOne,
        2 => XhttpMode::StreamUp,
        _ => XhttpMode::PacketUp,
    };
    let rules = RouteRules {
        path: "/xh/".into(),
        host: (knobs & 4 != 0).then(|| "example.com".into()),
        x_padding: (knobs & 8 != 0).then_some(DEFAULT_X_PADDING),
        mode,
    };
    let Ok(req) = parse_request(&rules, method, path, query, host, referer) else {
        return;
    };
    assert!(path.starts_with("/xh"), "{path:?} routed");
    match &req {
        XhttpRequest::StreamOne => assert_eq!(method, "POST"),
        XhttpRequest::Download { .. } => assert_eq!(method, "GET"),
        XhttpRequest::StreamUpload { .. } | XhttpRequest::PacketUpload { .. } => {
            assert_eq!(method, "POST")
        }
    }
    if let Some(s) = req.session() {
        assert!(!s.sid.is_empty() && s.sid.len() <= MAX_SID_LEN, "{:?}", s.sid);
        assert!(!s.sid.contains('/') && !s.sid.contains('?'), "{:?}", s.sid);
    }
});
