//! Validation of `[tunnel]`: the REALITY client settings and the forwards.
//! Kept apart from `validate.rs` because it parses tunnel-specific formats
//! (base64url keys, short ids, version triples, UUID files).

use std::path::Path;

use base64::Engine as _;

use super::problem::ConfigProblem;
use super::schema::{TunnelConfig, XhttpClientConfig};
use super::secret::{check_secret_file_mode, io_problem};
use crate::tunnel::vlessenc::ClientKeys;

/// Parses "x.y.z" (each 0..=255), the version bytes of the REALITY auth block.
pub fn parse_client_version(s: &str) -> Option<[u8; 3]> {
    let mut parts = s.split('.');
    let mut out = [0u8; 3];
    for slot in &mut out {
        *slot = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Decodes a REALITY public key as `xray x25519` prints it (base64url, no padding).
pub fn parse_public_key(s: &str) -> Option<[u8; 32]> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim())
        .ok()?;
    bytes.try_into().ok()
}

/// Reads the VLESS user id from its 0600 file.
pub fn load_uuid_file(path: &Path, key: &str) -> Result<uuid::Uuid, ConfigProblem> {
    check_secret_file_mode(path, key)?;
    let text = std::fs::read_to_string(path).map_err(|e| io_problem(path, key, &e))?;
    uuid::Uuid::parse_str(text.trim()).map_err(|_| {
        ConfigProblem::new(
            key,
            format!("{} does not hold a UUID", path.display()),
            "write the VLESS id the core gave this node, e.g. `uuidgen > FILE && chmod 600 FILE`",
        )
    })
}

fn valid_short_id(s: &str) -> bool {
    s.len() <= 16 && s.len() % 2 == 0 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn valid_target(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0),
        None => false,
    }
}

fn xhttp(x: &XhttpClientConfig, out: &mut Vec<ConfigProblem>) {
    let key = |k: &str| format!("tunnel.client.xhttp.{k}");
    if !x.path.starts_with('/') || x.path.contains(['?', '#', ' ']) {
        out.push(ConfigProblem::new(
            key("path"),
            format!("`{}` is not a URL path", x.path),
            "use the core inbound's xhttpSettings.path, e.g. \"/xh\"",
        ));
    }
    if !super::keys::XHTTP_MODES.contains(&x.mode.as_str()) {
        out.push(ConfigProblem::new(
            key("mode"),
            format!("`{}` is not an XHTTP mode", x.mode),
            "use \"stream-up\", \"packet-up\" or \"stream-one\"",
        ));
    }
    if x.host.contains(['/', ' ', '?']) {
        out.push(ConfigProblem::new(
            key("host"),
            format!("`{}` is not a host name", x.host),
            "leave it empty to send the day's SNI",
        ));
    }
    for (k, v, max) in [
        ("max_connections", x.max_connections, 64),
        ("max_concurrency", x.max_concurrency, 1024),
        ("max_reuse", x.max_reuse, 1_000_000),
        ("max_lifetime_secs", x.max_lifetime_secs, 86_400),
    ] {
        if v == 0 || v > max {
            out.push(ConfigProblem::new(
                key(k),
                format!("{v} is outside 1..={max}"),
                "leave it out for the default",
            ));
        }
    }
}

pub(super) fn check(t: &TunnelConfig, out: &mut Vec<ConfigProblem>) {
    if let Some(c) = &t.client {
        if c.server.port() == 0 || c.server.ip().is_unspecified() {
            out.push(ConfigProblem::new(
                "tunnel.client.server",
                "is required",
                "set the core's REALITY server as \"IP:port\"",
            ));
        }
        if parse_public_key(&c.public_key).is_none() {
            out.push(ConfigProblem::new(
                "tunnel.client.public_key",
                "is not a 32-byte base64url key",
                "copy the \"Public key\" that `xray x25519` printed for the core",
            ));
        }
        if !valid_short_id(&c.short_id) {
            out.push(ConfigProblem::new(
                "tunnel.client.short_id",
                format!(
                    "`{}` is not an even number of hex digits (at most 16)",
                    c.short_id
                ),
                "use one of the core's shortIds, e.g. \"0123456789abcdef\", or \"\"",
            ));
        }
        if parse_client_version(&c.client_version).is_none() {
            out.push(ConfigProblem::new(
                "tunnel.client.client_version",
                format!("`{}` is not a version x.y.z", c.client_version),
                "use \"26.3.27\" or newer",
            ));
        }
        if c.retry_min_ms < 10 || c.retry_min_ms > 60_000 {
            out.push(ConfigProblem::new(
                "tunnel.client.retry_min_ms",
                format!("{} is outside 10..=60000", c.retry_min_ms),
                "use the default 500",
            ));
        }
        if c.retry_max_secs == 0
            || c.retry_max_secs > 3600
            || c.retry_max_secs.saturating_mul(1000) < c.retry_min_ms
        {
            out.push(ConfigProblem::new(
                "tunnel.client.retry_max_secs",
                format!(
                    "{} is outside 1..=3600 or below retry_min_ms",
                    c.retry_max_secs
                ),
                "use the default 60",
            ));
        }
        xhttp(&c.xhttp, out);
        if c.encryption != "none" {
            if let Err(e) = ClientKeys::parse(&c.encryption) {
                out.push(ConfigProblem::new(
                    "tunnel.client.encryption",
                    e.to_string(),
                    "use \"none\" or the core's client string (mlkem768x25519plus.native.0rtt.<key>)",
                ));
            }
        }
        if c.uuid_file.as_os_str().is_empty() {
            out.push(ConfigProblem::new(
                "tunnel.client.uuid_file",
                "is required",
                "point it at a 0600 file holding the node's VLESS id",
            ));
        } else if let Err(p) = load_uuid_file(&c.uuid_file, "tunnel.client.uuid_file") {
            out.push(p);
        }
        if t.sni_pool.is_empty() {
            out.push(ConfigProblem::new(
                "tunnel.sni_pool",
                "is empty, but a tunnel client is configured",
                "list the 5 to 8 names the control plane gave this node",
            ));
        }
    }
    for (i, f) in t.forward.iter().enumerate() {
        if t.client.is_none() {
            out.push(ConfigProblem::new(
                format!("tunnel.forward[{i}]"),
                "needs a [tunnel.client] to carry it",
                "configure [tunnel.client] or remove the forward",
            ));
        }
        if !valid_target(&f.target) {
            out.push(ConfigProblem::new(
                format!("tunnel.forward[{i}].target"),
                format!("`{}` is not \"host:port\"", f.target),
                "write the address as the core sees it, e.g. \"10.8.0.1:8080\"",
            ));
        }
        if !f.listen.ip().is_loopback() {
            out.push(ConfigProblem::new(
                format!("tunnel.forward[{i}].listen"),
                format!("{} is not a loopback address", f.listen),
                "forwards serve local jobs only: use 127.0.0.1 or [::1]",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::{ForwardConfig, TunnelClientConfig};

    #[test]
    fn formats() {
        assert_eq!(parse_client_version("26.3.27"), Some([26, 3, 27]));
        for bad in ["26.3", "26.3.27.1", "256.0.0", "a.b.c", ""] {
            assert_eq!(parse_client_version(bad), None, "{bad}");
        }
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]);
        assert_eq!(parse_public_key(&key), Some([7; 32]));
        assert_eq!(parse_public_key("short"), None);
        assert!(valid_short_id("") && valid_short_id("0123456789abcdef"));
        assert!(
            !valid_short_id("abc")
                && !valid_short_id("0123456789abcdef00")
                && !valid_short_id("zz")
        );
        assert!(valid_target("core.example:443") && valid_target("10.0.0.1:8080"));
        assert!(!valid_target("core.example") && !valid_target(":80") && !valid_target("h:0"));
    }

    #[test]
    fn every_problem_is_reported() {
        let t = TunnelConfig {
            sni_pool: vec![],
            client: Some(TunnelClientConfig {
                public_key: "nope".into(),
                short_id: "xyz".into(),
                client_version: "1.2".into(),
                retry_min_ms: 5,
                retry_max_secs: 0,
                ..Default::default()
            }),
            forward: vec![ForwardConfig {
                listen: "0.0.0.0:1080".parse().unwrap(),
                target: "nowhere".into(),
            }],
        };
        let mut out = Vec::new();
        check(&t, &mut out);
        let keys: Vec<&str> = out.iter().map(|p| p.key.as_str()).collect();
        for k in [
            "tunnel.client.server",
            "tunnel.client.public_key",
            "tunnel.client.short_id",
            "tunnel.client.client_version",
            "tunnel.client.uuid_file",
            "tunnel.client.retry_min_ms",
            "tunnel.client.retry_max_secs",
            "tunnel.sni_pool",
            "tunnel.forward[0].target",
            "tunnel.forward[0].listen",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
    }

    #[test]
    fn uuid_file_must_be_private_and_valid() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("id");
        std::fs::write(&p, "9d2a51b3-8f0c-4a39-9d4e-2b1e6f0c7a11\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load_uuid_file(&p, "k").is_ok());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load_uuid_file(&p, "k").is_err());
        std::fs::write(&p, "not-a-uuid").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load_uuid_file(&p, "k").is_err());
    }
}
