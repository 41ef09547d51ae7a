//! The configuration types, their defaults and the handful of accessors other modules use.
//!
//! Every section is `#[serde(default)]` so an operator writes only what differs from the
//! defaults. Integers are unsigned and wide enough that any value an operator can mean
//! fits; the allowed range is checked in `validate.rs` so a bad number is reported with its
//! range instead of as a serde overflow.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::policy::CoverPolicy;

/// The whole configuration of one edge node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub node: NodeConfig,
    pub runtime: RuntimeConfig,
    pub front: FrontConfig,
    pub admin: AdminConfig,
    pub shutdown: ShutdownConfig,
    pub log: LogConfig,
    pub tunnel: TunnelConfig,
    pub sfu: SfuConfig,
}

/// Who this node is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Node name, `[a-z0-9-]`, 1..=64; required unless `dev`.
    pub id: String,
    /// A dev node makes a self-signed certificate and a random session secret at start.
    /// Defaults to `false` so a production file that forgets the key fails validation
    /// (no certificate, no secret) instead of quietly serving a self-signed certificate.
    pub dev: bool,
}

/// Shard runtime sizing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Number of shards; 0 = every CPU the process may use. `--cores` overrides it.
    pub cores: u64,
    /// glommio `io_memory` per shard, KiB.
    pub io_memory_kib: u64,
    /// io_uring ring depth per shard; a power of two.
    pub ring_depth: u64,
    /// Capacity of each shard's cross-shard channel.
    pub bus_capacity: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cores: 0,
            io_memory_kib: 1024,
            ring_depth: 128,
            bus_capacity: 1024,
        }
    }
}

/// The HTTPS front on the partner domain.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrontConfig {
    pub listen: SocketAddr,
    /// Partner domains, lowercase DNS names.
    pub domains: Vec<String>,
    /// How eagerly a connection is treated as a probe and shown the cover site.
    pub policy: CoverPolicy,
    /// Empty = the built-in cover site; else a directory with `index.html` and `404.html`.
    pub cover_dir: PathBuf,
    /// Value of the `Server` response header; empty = no header.
    pub server_header: String,
    /// TLS certificates; the first one is served when SNI is absent or unknown.
    pub certs: Vec<CertConfig>,
    pub session: SessionConfig,
    pub limits: FrontLimits,
}

impl Default for FrontConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8443)),
            domains: vec!["localhost".to_owned()],
            policy: CoverPolicy::Strict,
            cover_dir: PathBuf::new(),
            // nginx is what most of the sites we must look like answer with.
            server_header: "nginx".to_owned(),
            certs: Vec::new(),
            session: SessionConfig::default(),
            limits: FrontLimits::default(),
        }
    }
}

/// One certificate chain and its private key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CertConfig {
    /// Names this certificate serves; left empty in the file it becomes `front.domains`
    /// at load time, so the effective config always lists them.
    pub names: Vec<String>,
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key; must not be group- or world-readable.
    pub key: PathBuf,
}

/// Session cookies and invites. The secret itself never lives in this struct: only
/// where to read it from, so printing the config can never leak it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    pub cookie_name: String,
    pub cookie_ttl_secs: u64,
    pub invite_ttl_secs: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            secret_file: None,
            secret_env: None,
            cookie_name: "oxpulse_session".to_owned(),
            cookie_ttl_secs: 7 * 24 * 3600,
            invite_ttl_secs: 24 * 3600,
        }
    }
}

impl SessionConfig {
    pub fn cookie_ttl(&self) -> Duration {
        Duration::from_secs(self.cookie_ttl_secs)
    }

    pub fn invite_ttl(&self) -> Duration {
        Duration::from_secs(self.invite_ttl_secs)
    }
}

/// Per-shard connection limits. Defaults copy nginx's so timing and size behaviour
/// under probing matches the web servers the front imitates.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrontLimits {
    pub max_connections: u64,
    pub handshake_timeout_ms: u64,
    /// nginx `client_header_timeout`.
    pub header_timeout_ms: u64,
    /// nginx `keepalive_timeout`.
    pub idle_timeout_ms: u64,
    /// nginx `large_client_header_buffers 4 8k`.
    pub max_header_bytes: u64,
    /// nginx `client_max_body_size 1m`.
    pub max_body_bytes: u64,
    /// nginx `keepalive_requests`.
    pub max_requests_per_conn: u64,
}

impl Default for FrontLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            handshake_timeout_ms: 10_000,
            header_timeout_ms: 60_000,
            idle_timeout_ms: 75_000,
            max_header_bytes: 32 * 1024,
            max_body_bytes: 1024 * 1024,
            max_requests_per_conn: 1000,
        }
    }
}

impl FrontLimits {
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
}

/// Metrics and health endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9317)),
        }
    }
}

/// Graceful shutdown.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long open connections may finish after a stop signal.
    pub drain_timeout_secs: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain_timeout_secs: 10,
        }
    }
}

impl ShutdownConfig {
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }
}

/// The tunnel to the core (being built; today only the SNI pool is read).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TunnelConfig {
    /// Names the tunnel's TLS disguises itself as; one is picked per node and UTC day
    /// (`oxpulse_edge::tunnel::sni`). Empty = no tunnel configured.
    pub sni_pool: Vec<String>,
    /// The edge's REALITY + VLESS link to the core; absent = no tunnel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<TunnelClientConfig>,
    /// Local listeners whose connections are carried through the tunnel to a fixed target.
    pub forward: Vec<ForwardConfig>,
}

/// Where the core's REALITY server is and how to authenticate to it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TunnelClientConfig {
    /// The core's REALITY server, "IP:port".
    pub server: SocketAddr,
    /// The REALITY server's X25519 public key, base64url without padding (as `xray x25519` prints it).
    pub public_key: String,
    /// The REALITY short id, up to 16 hex digits ("" = none).
    pub short_id: String,
    /// File holding the VLESS user id (a UUID): a credential, so a 0600 file, never inline.
    pub uuid_file: PathBuf,
    /// Version bytes sent in the REALITY auth block; servers since Xray 26.7.11 refuse < 26.3.27.
    pub client_version: String,
    /// Offer X25519MLKEM768 (post-quantum) besides X25519.
    pub pq: bool,
    /// Wait after the first failed dial to the core; doubles per failure.
    pub retry_min_ms: u64,
    /// The wait between dials never grows past this.
    pub retry_max_secs: u64,
    /// How VLESS rides on REALITY: straight on the TLS stream, or inside XHTTP (h2).
    pub transport: TunnelTransport,
    /// VLESS Encryption toward the core (Xray's client `encryption`): "none", or
    /// "mlkem768x25519plus.native.<0rtt|1rtt>.[padding.]<server public key>".
    pub encryption: String,
    /// XHTTP settings (used when `transport = "xhttp"`).
    pub xhttp: XhttpClientConfig,
}

/// The tunnel's carrier inside REALITY.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelTransport {
    /// VLESS directly on the REALITY stream (Xray `network: raw`), one TCP connection per session.
    #[default]
    Raw,
    /// VLESS over XHTTP over h2 (Xray `network: xhttp`); sessions share pooled connections.
    Xhttp,
}

/// Xray's client `xhttpSettings` plus the pool limits (XMUX).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct XhttpClientConfig {
    /// The core inbound's `path`.
    pub path: String,
    /// "stream-up", "packet-up" or "stream-one" (the last needs Xray ≥ 24.11.30 at the core).
    pub mode: String,
    /// HTTP Host / :authority; "" = the day's SNI.
    pub host: String,
    /// h2 connections per shard that take new sessions.
    pub max_connections: u64,
    /// Sessions open at once on one h2 connection.
    pub max_concurrency: u64,
    /// Sessions one h2 connection carries over its life.
    pub max_reuse: u64,
    /// Age after which an h2 connection takes no new session.
    pub max_lifetime_secs: u64,
}

impl Default for XhttpClientConfig {
    fn default() -> Self {
        Self {
            path: "/".to_owned(),
            mode: "stream-up".to_owned(),
            host: String::new(),
            max_connections: 3,
            max_concurrency: 16,
            max_reuse: 256,
            max_lifetime_secs: 1800,
        }
    }
}

impl Default for TunnelClientConfig {
    fn default() -> Self {
        Self {
            server: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
            public_key: String::new(),
            short_id: String::new(),
            uuid_file: PathBuf::new(),
            client_version: "26.3.27".to_owned(),
            pq: true,
            retry_min_ms: 500,
            retry_max_secs: 60,
            transport: TunnelTransport::Raw,
            encryption: "none".to_owned(),
            xhttp: XhttpClientConfig::default(),
        }
    }
}

/// A loopback listener forwarded through the tunnel (like today's bundle's local inbound).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardConfig {
    pub listen: SocketAddr,
    /// "IP:port" or "host:port" as seen from the core.
    pub target: String,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
            target: String::new(),
        }
    }
}

/// Group calls: signalling authentication and room limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SfuConfig {
    /// The HS256 key room tokens are signed with (0600, at least 32 bytes). Unset: the
    /// `/sfu/ws/` route is off (a dev node uses a random key per run instead).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// Participants per room, 1..=6.
    pub max_participants: u64,
    /// Seconds from the WebSocket upgrade to the client's first offer.
    pub offer_timeout_secs: u64,
    // --- media (rooms, forwarding, per-shard UDP) ---
    /// Shard `i` binds its media socket at UDP `media_port_base + i`.
    pub media_port_base: u64,
    /// The address advertised in ICE host candidates (what clients send media to).
    pub public_ip: IpAddr,
    /// A second advertised address for clients on the same private network (behind NAT).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<IpAddr>,
    /// Rooms one shard carries at most (joins beyond close with 4005).
    pub max_rooms_per_shard: u64,
    /// Participants one shard carries at most, over all its rooms.
    pub max_participants_per_shard: u64,
    /// Seconds without a packet (or with ICE/DTLS failed) before a participant is closed
    /// with 4008.
    pub media_timeout_secs: u64,
    // --- end media ---
}

impl Default for SfuConfig {
    fn default() -> Self {
        Self {
            secret_file: None,
            max_participants: 6,
            offer_timeout_secs: 30,
            media_port_base: 20000,
            public_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            private_ip: None,
            max_rooms_per_shard: 200,
            max_participants_per_shard: 600,
            media_timeout_secs: 30,
        }
    }
}

impl SfuConfig {
    pub fn offer_timeout(&self) -> Duration {
        Duration::from_secs(self.offer_timeout_secs)
    }

    /// The UDP port shard `shard` binds and advertises.
    pub fn media_port(&self, shard: usize) -> u16 {
        if self.media_port_base == 0 {
            // Ephemeral: the shard binds port 0 and advertises what it got.
            return 0;
        }
        // Validation keeps base + shards within u16; saturate rather than wrap otherwise.
        u16::try_from(self.media_port_base.saturating_add(shard as u64)).unwrap_or(u16::MAX)
    }

    pub fn media_timeout(&self) -> Duration {
        Duration::from_secs(self.media_timeout_secs)
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing_subscriber::EnvFilter` directive such as `info` or `info,oxpulse_edge::front=debug`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}
