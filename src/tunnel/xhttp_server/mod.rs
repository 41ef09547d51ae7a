//! The XHTTP (SplitHTTP) server side of the REALITY + VLESS inbound:
//! VLESS over XHTTP over HTTP/2 (prior knowledge) over REALITY, as an Xray
//! 24.11.21 client speaks it (TUNNEL.md §3).
//!
//! - [`request`]: which route a request is (sans-IO, fuzzable);
//! - [`reorder`]: packet-up posts back in order (sans-IO);
//! - [`session`]: GET + POST(s) joined into one byte stream;
//! - [`pipe`]: the downlink as a response body;
//! - [`driver`]: the hyper HTTP/2 server on a REALITY connection.
//!
//! Each joined session runs the same VLESS code as the raw transport
//! ([`crate::tunnel::server_driver::serve_vless`]).

pub mod driver;
pub mod pipe;
pub mod reorder;
pub mod request;
pub mod session;

use std::ops::RangeInclusive;
use std::rc::Rc;
use std::time::Duration;

pub use driver::serve_xhttp;
pub use reorder::{ReorderBuffer, ReorderError};
pub use request::{parse_request, Reject, RouteRules, XhttpMode, XhttpRequest};

use session::SessionTable;

/// What an XHTTP inbound configures (Xray's `xhttpSettings`, server side).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XhttpServerOptions {
    /// Xray's `path`; normalised to start and end with `/`.
    pub path: String,
    /// Xray's `host`: the only Host accepted; `None` accepts any.
    pub host: Option<String>,
    pub mode: XhttpMode,
    /// Accepted `x_padding` length; `None` skips the check (see
    /// [`request`] for why it is on by default).
    pub x_padding: Option<RangeInclusive<usize>>,
    /// Xray's `scMaxEachPostBytes`: the largest packet-up POST body.
    pub max_each_post_bytes: usize,
    /// Xray's `scMaxBufferedPosts`: posts held per session for reordering.
    pub max_buffered_posts: usize,
    /// A session whose GET does not come within this is forgotten.
    pub join_timeout: Duration,
    /// Sessions one shard keeps at once (waiting or running); more get 503.
    pub max_sessions: usize,
    /// HTTP/2 streams per connection. Xray 24.11.21 keeps up to 100
    /// packet-up POSTs in flight next to its GET.
    pub max_concurrent_streams: u32,
}

impl XhttpServerOptions {
    /// Xray's defaults with `path`.
    pub fn new(path: &str) -> Self {
        XhttpServerOptions {
            path: path.to_owned(),
            host: None,
            mode: XhttpMode::Auto,
            x_padding: Some(request::DEFAULT_X_PADDING),
            max_each_post_bytes: reorder::DEFAULT_MAX_POST_BYTES,
            max_buffered_posts: reorder::DEFAULT_MAX_POSTS,
            join_timeout: Duration::from_secs(30),
            max_sessions: 4096,
            max_concurrent_streams: 128,
        }
    }
}

impl Default for XhttpServerOptions {
    fn default() -> Self {
        XhttpServerOptions::new("/")
    }
}

/// One shard's XHTTP server: its options and its live sessions.
#[derive(Debug)]
pub struct XhttpServer {
    options: XhttpServerOptions,
    rules: RouteRules,
    sessions: Rc<SessionTable>,
}

impl XhttpServer {
    pub fn new(options: XhttpServerOptions) -> Self {
        let rules = RouteRules {
            path: request::normalize_path(&options.path),
            host: options.host.clone(),
            x_padding: options.x_padding.clone(),
            mode: options.mode,
        };
        let sessions = SessionTable::new(
            options.max_sessions,
            options.max_buffered_posts,
            options.max_each_post_bytes,
        );
        XhttpServer {
            options,
            rules,
            sessions,
        }
    }

    pub fn options(&self) -> &XhttpServerOptions {
        &self.options
    }

    /// Sessions this shard knows now (waiting for a GET, or running).
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }
}
