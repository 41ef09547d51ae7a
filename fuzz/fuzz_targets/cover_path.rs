//! Feeds arbitrary request paths (and, after a newline, an Accept-Encoding
//! value) to the cover site: no panic, no status outside the expected set,
//! and a 200 only ever carries one of the site's own files.
#![no_main]

use std::collections::HashSet;
use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use libfuzzer_sys::fuzz_target;
use oxpulse_edge::front::cover::{normalize_path, CoverSite};

const FILES: [&str; 8] = [
    "/index.html",
    "/about.html",
    "/contact.html",
    "/404.html",
    "/robots.txt",
    "/favicon.svg",
    "/css/site.css",
    "/css/site.css.gz",
];

struct Fixture {
    site: CoverSite,
    /// Every body a 200 may legitimately carry, precompressed ones included.
    bodies: HashSet<Vec<u8>>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let site = CoverSite::builtin();
        let mut accept = HeaderMap::new();
        accept.insert("accept-encoding", HeaderValue::from_static("gzip"));
        let mut bodies = HashSet::new();
        for path in FILES {
            for headers in [&HeaderMap::new(), &accept] {
                let resp = site.respond(&Method::GET, path, headers);
                assert_eq!(resp.status(), StatusCode::OK, "{path}");
                bodies.insert(resp.body().to_vec());
            }
        }
        Fixture { site, bodies }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, accept) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(clean) = normalize_path(path) {
        assert!(clean.starts_with(b"/"));
        assert!(!clean.contains(&0));
        assert!(!clean.windows(2).any(|w| w == b"//"));
        assert!(clean
            .split(|&b| b == b'/')
            .all(|segment| segment != b"." && segment != b".."));
    }
    let f = fixture();
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(accept) {
        headers.insert("accept-encoding", value);
    }
    for method in [Method::GET, Method::HEAD, Method::POST] {
        let resp = f.site.respond(&method, path, &headers);
        let status = resp.status().as_u16();
        assert!(
            matches!(status, 200 | 301 | 400 | 403 | 404 | 405),
            "{status}"
        );
        if method == Method::GET {
            let len = resp.headers()["content-length"].to_str().unwrap();
            assert_eq!(len, resp.body().len().to_string());
            if status == 200 {
                assert!(f.bodies.contains(resp.body().as_ref()), "{path:?}");
            }
        } else if method == Method::HEAD {
            assert!(resp.body().is_empty());
        }
    }
});
