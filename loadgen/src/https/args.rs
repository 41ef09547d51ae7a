//! Command-line arguments of `loadgen https`.

use std::path::PathBuf;

use clap::Parser;

/// Closed-loop HTTPS load against one URL: C connections each send the next
/// request as soon as the previous response body has been read.
#[derive(Parser, Clone, Debug)]
#[command(name = "https")]
pub struct HttpsArgs {
    /// Target, `https://host:port/path` (port defaults to 443).
    #[arg(long)]
    pub url: String,

    /// Concurrent connections (each with one request in flight).
    #[arg(long, short = 'c', default_value_t = 1)]
    pub connections: usize,

    /// Measured run time in seconds (after the warm-up).
    #[arg(long, short = 'd', default_value_t = 10.0)]
    pub duration: f64,

    /// Unmeasured warm-up time in seconds before the measured run.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,

    /// Open a brand-new TCP + TLS connection (full handshake) for every
    /// request and send `Connection: close`.
    #[arg(long)]
    pub new_conn: bool,

    /// Negotiate HTTP/2 via ALPN instead of HTTP/1.1.
    #[arg(long)]
    pub h2: bool,

    /// Worker threads, each a single-threaded runtime; connections are spread
    /// evenly over them.
    #[arg(long, short = 't', default_value_t = 1)]
    pub threads: usize,

    /// Accept any server certificate (self-signed dev and benchmark certs).
    #[arg(long)]
    pub insecure: bool,

    /// PEM file with the CA (or self-signed certificate) to trust.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// File of request paths, one per line (blank lines and `#` comments are
    /// skipped); each connection cycles through them. Defaults to the URL's
    /// path.
    #[arg(long, value_name = "FILE")]
    pub path_list: Option<PathBuf>,

    /// Extra request header, `"Name: value"`; repeatable.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}
