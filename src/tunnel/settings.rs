//! The tunnel client's settings as the node uses them: parsed once from config at
//! start, shared read-only by every shard (sans-IO).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use uuid::Uuid;

use super::pool::{Backoff, PoolLimits};
use super::reality::auth::{parse_short_id, ShortId};
use super::reality::client::RealityClientConfig;
use super::vless::{Address, Target};
use super::vlessenc::ClientKeys;
use super::xhttp::{XhttpClientOptions, XhttpMode};
use crate::config::tunnel::{load_uuid_file, parse_client_version, parse_public_key};
use crate::config::{ConfigProblem, TunnelClientConfig, TunnelTransport, XhttpClientConfig};

/// Everything needed to open a tunnel except the SNI, which rotates daily.
pub struct TunnelSettings {
    pub server: SocketAddr,
    pub server_public_key: [u8; 32],
    pub short_id: ShortId,
    pub client_version: [u8; 3],
    pub offer_pq: bool,
    /// The VLESS user id: a credential, never logged.
    pub uuid: Uuid,
    /// Waits between failed dials.
    pub backoff: Backoff,
    pub transport: Transport,
    /// VLESS Encryption toward the core; `None` is "none".
    pub encryption: Option<ClientKeys>,
}

/// How sessions ride on REALITY.
#[derive(Clone, Debug)]
pub enum Transport {
    /// One TCP + REALITY connection per session.
    Raw,
    /// Sessions as XHTTP requests on pooled h2 connections.
    Xhttp {
        options: XhttpClientOptions,
        limits: PoolLimits,
    },
}

impl Transport {
    /// The pool limits this transport implies.
    pub fn pool_limits(&self) -> PoolLimits {
        match self {
            Transport::Raw => PoolLimits::ONE_TUNNEL_PER_CONNECTION,
            Transport::Xhttp { limits, .. } => *limits,
        }
    }
}

impl std::fmt::Debug for TunnelSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelSettings")
            .field("server", &self.server)
            .field("offer_pq", &self.offer_pq)
            .finish_non_exhaustive()
    }
}

impl TunnelSettings {
    /// Reads the config (already validated) and the UUID file.
    pub fn from_config(c: &TunnelClientConfig) -> Result<Self, ConfigProblem> {
        let bad = |key: &str, what: &str| {
            ConfigProblem::new(
                format!("tunnel.client.{key}"),
                what.to_owned(),
                "run `edge check`",
            )
        };
        Ok(Self {
            server: c.server,
            server_public_key: parse_public_key(&c.public_key)
                .ok_or_else(|| bad("public_key", "is not a 32-byte base64url key"))?,
            short_id: parse_short_id(&c.short_id)
                .map_err(|_| bad("short_id", "is not a valid short id"))?,
            client_version: parse_client_version(&c.client_version)
                .ok_or_else(|| bad("client_version", "is not x.y.z"))?,
            offer_pq: c.pq,
            uuid: load_uuid_file(&c.uuid_file, "tunnel.client.uuid_file")?,
            backoff: Backoff {
                base: Duration::from_millis(c.retry_min_ms),
                max: Duration::from_secs(c.retry_max_secs),
            },
            transport: match c.transport {
                TunnelTransport::Raw => Transport::Raw,
                TunnelTransport::Xhttp => {
                    xhttp_transport(&c.xhttp).ok_or_else(|| bad("xhttp", "has invalid settings"))?
                }
            },
            encryption: match c.encryption.as_str() {
                "none" => None,
                s => {
                    Some(ClientKeys::parse(s).map_err(|_| {
                        bad("encryption", "is not a VLESS Encryption client string")
                    })?)
                }
            },
        })
    }

    /// The REALITY client configuration for a new session under today's SNI.
    pub fn reality(&self, sni: &str) -> RealityClientConfig {
        let mut r = RealityClientConfig::new(sni, self.server_public_key, self.short_id);
        r.client_version = self.client_version;
        r.offer_pq = self.offer_pq;
        r
    }
}

/// XHTTP options and pool limits from validated config; `None` if a value is
/// out of range (validation reports which).
fn xhttp_transport(x: &XhttpClientConfig) -> Option<Transport> {
    let mode: XhttpMode = x.mode.parse().ok()?;
    let mut options = XhttpClientOptions::new(x.path.clone(), mode);
    options.host = (!x.host.is_empty()).then(|| x.host.clone());
    let limits = PoolLimits {
        max_connections: usize::try_from(x.max_connections).ok()?,
        max_concurrency: u32::try_from(x.max_concurrency).ok()?,
        max_reuse: u32::try_from(x.max_reuse).ok()?,
        max_lifetime: Duration::from_secs(x.max_lifetime_secs),
        ..PoolLimits::default()
    };
    Some(Transport::Xhttp { options, limits })
}

/// Parses a forward target, "host:port" or "[v6]:port", into a VLESS target.
pub fn parse_target(s: &str) -> Option<Target> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addr = match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => Address::Ipv4(v4.octets()),
        Ok(IpAddr::V6(v6)) => Address::Ipv6(v6.octets()),
        Err(_) if !host.is_empty() => Address::Domain(host.to_owned()),
        Err(_) => return None,
    };
    Some(Target { addr, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("10.8.0.1:8080"),
            Some(Target {
                addr: Address::Ipv4([10, 8, 0, 1]),
                port: 8080
            })
        );
        assert_eq!(
            parse_target("[::1]:443").map(|t| t.addr),
            Some(Address::Ipv6(std::net::Ipv6Addr::LOCALHOST.octets()))
        );
        assert_eq!(
            parse_target("core.internal:80").map(|t| t.addr),
            Some(Address::Domain("core.internal".into()))
        );
        for bad in ["core", ":80", "core:0", "core:x"] {
            assert_eq!(parse_target(bad), None, "{bad}");
        }
    }
}
