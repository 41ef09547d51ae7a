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
use std::sync::atomic::{AtomicU64, Ordering};
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

/// An XHTTP server: its options, and (per shard) its live sessions.
///
/// `Send`, so a config can be built on one thread and moved to its shard:
/// the session table is not stored here but in a thread-local registry
/// under this server's id, created on first use by the shard that serves.
#[derive(Debug)]
pub struct XhttpServer {
    options: XhttpServerOptions,
    rules: RouteRules,
    id: u64,
}

/// Tells servers' session tables apart in the per-thread registry.
static NEXT_SERVER_ID: AtomicU64 = AtomicU64::new(1);

impl XhttpServer {
    pub fn new(options: XhttpServerOptions) -> Self {
        let rules = RouteRules {
            path: request::normalize_path(&options.path),
            host: options.host.clone(),
            x_padding: options.x_padding.clone(),
            mode: options.mode,
        };
        XhttpServer {
            options,
            rules,
            id: NEXT_SERVER_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// This shard's sessions of this server.
    fn table(&self) -> Rc<SessionTable> {
        SessionTable::of_server(
            self.id,
            self.options.max_sessions,
            self.options.max_buffered_posts,
            self.options.max_each_post_bytes,
        )
    }

    pub fn options(&self) -> &XhttpServerOptions {
        &self.options
    }

    /// Sessions this shard knows now (waiting for a GET, or running).
    pub fn sessions(&self) -> usize {
        self.table().len()
    }
}

impl Drop for XhttpServer {
    fn drop(&mut self) {
        // Only reaches this thread's table; a table on another shard stays
        // (empty once its sessions end) until that thread exits.
        SessionTable::forget_server(self.id);
    }
}
