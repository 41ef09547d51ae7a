//! Semantic validation: ranges, names, cross-field rules. File checks live in
//! `files.rs`. Every check pushes to one list so the operator sees all problems at once.

use std::net::SocketAddr;
use std::ops::RangeInclusive;

use tracing_subscriber::EnvFilter;

use super::files;
use super::names;
use super::problem::{ConfigErrors, ConfigProblem};
use super::schema::{Config, FrontLimits, NodeConfig, RuntimeConfig, SessionConfig};

impl Config {
    /// Checks everything that can be checked before start-up, including that the files
    /// the config names exist with safe permissions. Secret contents are read only to
    /// check their length and are never put into a problem message.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut out = Vec::new();
        node(&self.node, &mut out);
        runtime(&self.runtime, &mut out);
        front(self, &mut out);
        session(&self.front.session, self.node.dev, &mut out);
        limits(&self.front.limits, &mut out);
        listeners(self.front.listen, self.admin.listen, &mut out);
        in_range(
            &mut out,
            "shutdown.drain_timeout_secs",
            self.shutdown.drain_timeout_secs,
            0..=3600,
            "seconds",
        );
        log_level(&self.log.level, &mut out);
        sni_pool(&self.tunnel.sni_pool, &mut out);
        super::tunnel::check(&self.tunnel, &mut out);
        super::sfu::check(&self.sfu, &mut out);
        sfu_media(self, &mut out);
        files::check(self, &mut out);
        if out.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(out))
        }
    }
}

pub(super) fn in_range(
    out: &mut Vec<ConfigProblem>,
    key: &str,
    value: u64,
    range: RangeInclusive<u64>,
    unit: &str,
) {
    if !range.contains(&value) {
        out.push(ConfigProblem::new(
            key,
            format!("{value} is out of range"),
            format!(
                "use a value from {} to {} {unit}",
                range.start(),
                range.end()
            ),
        ));
    }
}

/// Upper bound on the SNI pool; the control plane supplies 5 to 8 names.
const MAX_SNI_POOL: usize = 16;

fn sni_pool(pool: &[String], out: &mut Vec<ConfigProblem>) {
    let key = "tunnel.sni_pool";
    if pool.len() > MAX_SNI_POOL {
        out.push(ConfigProblem::new(
            key,
            format!(
                "has {} names; at most {MAX_SNI_POOL} are allowed",
                pool.len()
            ),
            "keep the 5 to 8 names the control plane suggests",
        ));
    }
    for (i, name) in pool.iter().enumerate() {
        if !names::is_dns_name(name) {
            out.push(ConfigProblem::new(
                key,
                format!("`{name}` is not a lowercase DNS name"),
                "write host names only, e.g. \"login.microsoftonline.com\"",
            ));
        } else if pool[..i].contains(name) {
            out.push(ConfigProblem::new(
                key,
                format!("`{name}` is listed twice"),
                "list each name once: duplicates skew the daily pick",
            ));
        }
    }
}

fn node(node: &NodeConfig, out: &mut Vec<ConfigProblem>) {
    if node.id.is_empty() {
        if !node.dev {
            out.push(ConfigProblem::new(
                "node.id",
                "is required when node.dev is false",
                "set a name of 1 to 64 characters from a-z, 0-9 and '-', e.g. id = \"edge-fra-1\"",
            ));
        }
    } else if !names::is_node_id(&node.id) {
        out.push(ConfigProblem::new(
            "node.id",
            format!("`{}` is not a valid node id", node.id),
            "use 1 to 64 characters from a-z, 0-9 and '-'",
        ));
    }
}

fn runtime(rt: &RuntimeConfig, out: &mut Vec<ConfigProblem>) {
    in_range(
        out,
        "runtime.cores",
        rt.cores,
        0..=4096,
        "(0 = every allowed CPU)",
    );
    in_range(
        out,
        "runtime.io_memory_kib",
        rt.io_memory_kib,
        64..=65536,
        "KiB",
    );
    in_range(
        out,
        "runtime.ring_depth",
        rt.ring_depth,
        8..=4096,
        "entries",
    );
    if !rt.ring_depth.is_power_of_two() && (8..=4096).contains(&rt.ring_depth) {
        out.push(ConfigProblem::new(
            "runtime.ring_depth",
            format!("{} is not a power of two", rt.ring_depth),
            format!(
                "use {} or {}",
                rt.ring_depth.next_power_of_two() / 2,
                rt.ring_depth.next_power_of_two()
            ),
        ));
    }
    in_range(
        out,
        "runtime.bus_capacity",
        rt.bus_capacity,
        16..=65536,
        "messages",
    );
}

fn front(config: &Config, out: &mut Vec<ConfigProblem>) {
    let front = &config.front;
    if front.domains.is_empty() {
        out.push(ConfigProblem::new(
            "front.domains",
            "is empty",
            "list the partner domain(s), e.g. domains = [\"example.org\"]",
        ));
    }
    for (i, domain) in front.domains.iter().enumerate() {
        let key = format!("front.domains[{i}]");
        if !names::is_dns_name(domain) {
            out.push(ConfigProblem::new(
                key,
                format!("`{domain}` is not a lowercase DNS name"),
                "write just the host name, lowercase, without scheme, port, path or trailing dot",
            ));
        } else if front.domains[..i].contains(domain) {
            out.push(ConfigProblem::new(
                key,
                format!("`{domain}` is listed twice"),
                "remove the duplicate",
            ));
        }
    }
    if !names::is_plain_header_value(&front.server_header) {
        out.push(ConfigProblem::new(
            "front.server_header",
            "must be at most 128 visible ASCII characters without leading or trailing spaces",
            "use a plain value such as \"nginx\", or \"\" to send no Server header",
        ));
    }
    certs(config, out);
}

fn certs(config: &Config, out: &mut Vec<ConfigProblem>) {
    let front = &config.front;
    if front.certs.is_empty() {
        if !config.node.dev {
            out.push(ConfigProblem::new(
                "front.certs",
                "no certificate is configured and node.dev is false",
                "add a [[front.certs]] section with cert and key paths",
            ));
        }
        return;
    }
    // (name, index of the cert that claimed it first)
    let mut claimed: Vec<(&str, usize)> = Vec::new();
    for (i, cert) in front.certs.iter().enumerate() {
        let key = format!("front.certs[{i}].names");
        let names = if cert.names.is_empty() {
            &front.domains
        } else {
            &cert.names
        };
        for name in names {
            if !names::is_cert_name(name) {
                if front.domains.contains(name) {
                    // Already reported under front.domains, where the fix belongs.
                    continue;
                }
                out.push(ConfigProblem::new(
                    key.clone(),
                    format!("`{name}` is not a lowercase DNS name or *.wildcard"),
                    "write host names such as \"example.org\" or \"*.example.org\"",
                ));
            } else if let Some((_, first)) = claimed.iter().find(|(n, _)| *n == name.as_str()) {
                out.push(ConfigProblem::new(
                    key.clone(),
                    format!("`{name}` is already served by front.certs[{first}]"),
                    "list each name in one certificate only",
                ));
            } else {
                claimed.push((name, i));
            }
        }
    }
    for (i, domain) in front.domains.iter().enumerate() {
        let covered = claimed
            .iter()
            .any(|(pattern, _)| names::cert_name_covers(pattern, domain));
        if !covered && names::is_dns_name(domain) {
            out.push(ConfigProblem::new(
                format!("front.domains[{i}]"),
                format!("`{domain}` is not covered by any [[front.certs]] entry"),
                "add it to the names of a certificate that is valid for it",
            ));
        }
    }
}

fn session(session: &SessionConfig, dev: bool, out: &mut Vec<ConfigProblem>) {
    match (&session.secret_file, &session.secret_env) {
        (Some(_), Some(_)) => out.push(ConfigProblem::new(
            "front.session.secret_env",
            "both secret_file and secret_env are set",
            "keep only one of front.session.secret_file and front.session.secret_env",
        )),
        (None, None) if !dev => out.push(ConfigProblem::new(
            "front.session.secret_file",
            "no session secret source is set and node.dev is false",
            "set secret_file to a file made with `openssl rand -hex 32 > FILE && chmod 600 FILE`, or secret_env to the name of an environment variable",
        )),
        // The variable's value is checked when the node starts, not here: `edge check`
        // usually runs in an operator's shell, which lacks the service's environment.
        (None, Some(name)) if !names::is_env_name(name) => out.push(ConfigProblem::new(
            "front.session.secret_env",
            format!("`{name}` is not a valid environment variable name"),
            "use letters, digits and '_', not starting with a digit, e.g. OXPULSE_SESSION_SECRET",
        )),
        _ => {}
    }
    if !names::is_cookie_name(&session.cookie_name) {
        out.push(ConfigProblem::new(
            "front.session.cookie_name",
            format!("`{}` is not a valid cookie name", session.cookie_name),
            "use 1 to 64 letters, digits or one of !#$%&'*+-.^_`|~",
        ));
    }
    in_range(
        out,
        "front.session.cookie_ttl_secs",
        session.cookie_ttl_secs,
        60..=365 * 24 * 3600,
        "seconds (1 minute to 1 year)",
    );
    in_range(
        out,
        "front.session.invite_ttl_secs",
        session.invite_ttl_secs,
        60..=30 * 24 * 3600,
        "seconds (1 minute to 30 days)",
    );
}

fn limits(l: &FrontLimits, out: &mut Vec<ConfigProblem>) {
    let k = |name: &str| format!("front.limits.{name}");
    in_range(
        out,
        &k("max_connections"),
        l.max_connections,
        1..=1_000_000,
        "connections",
    );
    in_range(
        out,
        &k("handshake_timeout_ms"),
        l.handshake_timeout_ms,
        100..=600_000,
        "ms",
    );
    in_range(
        out,
        &k("header_timeout_ms"),
        l.header_timeout_ms,
        100..=600_000,
        "ms",
    );
    in_range(
        out,
        &k("idle_timeout_ms"),
        l.idle_timeout_ms,
        1000..=3_600_000,
        "ms",
    );
    in_range(
        out,
        &k("max_header_bytes"),
        l.max_header_bytes,
        1024..=1 << 20,
        "bytes",
    );
    in_range(
        out,
        &k("max_body_bytes"),
        l.max_body_bytes,
        0..=1 << 30,
        "bytes",
    );
    in_range(
        out,
        &k("max_requests_per_conn"),
        l.max_requests_per_conn,
        1..=1_000_000,
        "requests",
    );
}

/// Two sockets cannot bind one port when the addresses are equal or either is a
/// wildcard. Port 0 (the kernel picks one, used by tests) never collides.
fn listeners(front: SocketAddr, admin: SocketAddr, out: &mut Vec<ConfigProblem>) {
    let overlap =
        front.ip() == admin.ip() || front.ip().is_unspecified() || admin.ip().is_unspecified();
    if front.port() != 0 && front.port() == admin.port() && overlap {
        out.push(ConfigProblem::new(
            "admin.listen",
            format!("{admin} collides with front.listen {front}"),
            "give the admin endpoint its own port, e.g. \"127.0.0.1:9317\"",
        ));
    }
}

fn log_level(level: &str, out: &mut Vec<ConfigProblem>) {
    let problem = if level.trim().is_empty() {
        Some("is empty".to_owned())
    } else {
        EnvFilter::try_new(level)
            .err()
            .map(|e| format!("`{level}` is not a valid filter: {e}"))
    };
    if let Some(message) = problem {
        out.push(ConfigProblem::new(
            "log.level",
            message,
            "use error, warn, info, debug or trace, optionally with per-module directives like \"info,oxpulse_edge::front=debug\"",
        ));
    }
}

/// The media keys of `[sfu]`: the port range must fit every shard, the advertised
/// addresses must be ones a client can send to.
fn sfu_media(config: &Config, out: &mut Vec<ConfigProblem>) {
    let sfu = &config.sfu;
    // `cores = 0` means "every CPU"; the bound is checked again at start with the real
    // count, here against the configured one (or 1).
    let shards = config.runtime.cores.max(1);
    // 0 = every shard takes an ephemeral port (tests, dev nodes).
    if sfu.media_port_base != 0 {
        in_range(
            out,
            "sfu.media_port_base",
            sfu.media_port_base,
            1024..=65535u64.saturating_sub(shards - 1),
            "(shard i binds base + i; all must be ports below 65536; 0 = ephemeral)",
        );
    }
    for (key, ip) in [
        ("sfu.public_ip", Some(sfu.public_ip)),
        ("sfu.private_ip", sfu.private_ip),
    ] {
        if let Some(ip) = ip {
            if ip.is_unspecified() || ip.is_multicast() {
                out.push(ConfigProblem::new(
                    key,
                    format!("{ip} cannot be advertised to clients"),
                    "give the address clients reach this node on, e.g. \"203.0.113.7\"",
                ));
            }
        }
    }
    if sfu.private_ip.is_some() && sfu.private_ip == Some(sfu.public_ip) {
        out.push(ConfigProblem::new(
            "sfu.private_ip",
            "equals sfu.public_ip",
            "remove private_ip, or set it to the node's address on the private network",
        ));
    }
    in_range(
        out,
        "sfu.max_rooms_per_shard",
        sfu.max_rooms_per_shard,
        1..=100_000,
        "rooms",
    );
    in_range(
        out,
        "sfu.max_participants_per_shard",
        sfu.max_participants_per_shard,
        1..=1_000_000,
        "participants",
    );
    in_range(
        out,
        "sfu.media_timeout_secs",
        sfu.media_timeout_secs,
        5..=600,
        "seconds",
    );
}
