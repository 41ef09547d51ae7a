//! Wiring: turns a validated [`Config`] into the state every shard starts from,
//! then runs the shards (see `runtime.rs`).
//!
//! Everything built here is immutable and shared read-only (`Arc`); mutable
//! state is created inside each shard and never leaves it.

pub mod runtime;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use shards::bus::Reply;

use crate::config::{self, Config};
use crate::front::cover::CoverSite;
use crate::front::probe::{Classifier, Policy, SessionKeys};
use crate::front::tls::{self, CertSet, TlsSetupError};
use crate::sfu::upgrade::HandedSignalling;
use crate::telemetry::metrics::Snapshot;
use crate::tunnel::settings::{parse_target, TunnelSettings};
use crate::tunnel::vless::Target;

/// Messages between shards: registration, rotation and metrics only.
pub enum ShardMsg {
    /// Metrics aggregation on scrape.
    Metrics(Reply<Snapshot>),
    /// New certificates after SIGHUP: rebuild the TLS config for new connections.
    Certs(Arc<CertSet>),
    /// The tunnel's daily SNI pick changed: new tunnel sessions use this name.
    Sni(Arc<str>),
    /// A group-call signalling socket, upgraded on another shard, for the shard that owns
    /// its room (registration: once per participant, never per message).
    Signalling(Box<HandedSignalling>),
}

/// Why the node could not start. Each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("TLS: {0}")]
    Tls(#[from] TlsSetupError),
    #[error("cover site: {0}")]
    Cover(String),
    #[error("{0}")]
    Config(#[from] config::ConfigErrors),
    #[error("cannot bind {what} {addr}: {source} (is another process using it? pick another address in the config)")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Runtime(#[from] shards::runtime::RuntimeError),
    #[error("shard failed: {0}")]
    Shard(String),
}

/// Read-only state handed to every shard.
pub struct Shared {
    pub cfg: Arc<Config>,
    pub cover: Arc<CoverSite>,
    pub classifier: Arc<Classifier>,
    pub certs: Arc<CertSet>,
    pub ticketer: Arc<dyn rustls::server::ProducesTickets>,
    /// Addresses with any port 0 replaced by the port actually chosen.
    pub front_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// Shards that have bound their listeners and are serving.
    pub ready: Arc<AtomicUsize>,
    /// Fatal problems reported by shards; non-empty means exit non-zero.
    pub fatal: Arc<Mutex<Vec<String>>>,
    /// The dev node's self-signed certificate in PEM (None in production).
    pub dev_cert_pem: Option<String>,
    /// The tunnel client, when `[tunnel.client]` is configured.
    pub tunnel: Option<Arc<TunnelSettings>>,
    /// Forward listeners (port 0 resolved) and their targets.
    pub forwards: Vec<(SocketAddr, Target)>,
    /// Sockets holding ports chosen for port 0 (see `resolve_port`).
    pub port_holds: Vec<socket2::Socket>,
    /// The group-call room-token key; `None` turns the `/sfu/ws/` route off.
    pub sfu_secret: Option<Arc<config::Secret>>,
}

/// Loads the certificates named in the config (or makes the dev one).
pub fn load_certs(cfg: &Config) -> Result<(CertSet, Option<String>), TlsSetupError> {
    if cfg.front.certs.is_empty() && cfg.node.dev {
        let mut names = cfg.front.domains.clone();
        if !names.iter().any(|n| n == "localhost") {
            names.push("localhost".into());
        }
        let (ck, pem) = tls::self_signed(&names)?;
        return Ok((CertSet::new(vec![(names, ck)])?, Some(pem)));
    }
    let mut entries = Vec::new();
    for c in &cfg.front.certs {
        let names = if c.names.is_empty() {
            cfg.front.domains.clone()
        } else {
            c.names.clone()
        };
        entries.push((names, tls::load_pem_pair(&c.cert, &c.key)?));
    }
    Ok((CertSet::new(entries)?, None))
}

fn load_cover(dir: &Path) -> Result<CoverSite, StartError> {
    if dir.as_os_str().is_empty() {
        return Ok(CoverSite::builtin());
    }
    CoverSite::load(dir).map_err(|e| StartError::Cover(format!("{}: {e}", dir.display())))
}

fn session_keys(cfg: &Config) -> Result<SessionKeys, StartError> {
    let s = &cfg.front.session;
    if s.secret_file.is_none() && s.secret_env.is_none() && cfg.node.dev {
        // A dev node has no secret on disk: a fresh random one per start is
        // enough, since dev cookies need not survive a restart.
        use ring::rand::SecureRandom;
        let mut k = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut k)
            .map_err(|_| StartError::Shard("no system randomness".into()))?;
        return Ok(SessionKeys::new(&k));
    }
    let secret = config::load_secret(
        s.secret_file.as_deref(),
        s.secret_env.as_deref(),
        "front.session",
    )
    .map_err(|p| config::ConfigErrors(vec![p]))?;
    Ok(SessionKeys::new(secret.expose()))
}

/// The room-token key: from `[sfu] secret_file`, or random per run on a dev node
/// (like the session secret), or none (the route is off).
fn sfu_secret(cfg: &Config) -> Result<Option<Arc<config::Secret>>, StartError> {
    match &cfg.sfu.secret_file {
        Some(path) => {
            let secret = config::load_secret(Some(path), None, "sfu")
                .map_err(|p| config::ConfigErrors(vec![p]))?;
            Ok(Some(Arc::new(secret)))
        }
        None if cfg.node.dev => {
            let secret = config::Secret::generate()
                .map_err(|_| StartError::Shard("no system randomness".into()))?;
            Ok(Some(Arc::new(secret)))
        }
        None => Ok(None),
    }
}

/// Replaces port 0 by a free port, so every shard binds the same one with SO_REUSEPORT.
///
/// The chosen port stays held by a bound, non-listening SO_REUSEPORT socket for the
/// node's life: closing the probe would let another process's `bind(0)` get the same
/// port, and a second process of the same user would then silently share it with our
/// reuseport listeners.
fn resolve_port(
    addr: SocketAddr,
    what: &'static str,
    holds: &mut Vec<socket2::Socket>,
) -> Result<SocketAddr, StartError> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    let err = |source| StartError::Bind { what, addr, source };
    let local = std::net::TcpListener::bind(addr)
        .and_then(|probe| probe.local_addr())
        .map_err(err)?;
    let hold = socket2::Socket::new(
        socket2::Domain::for_address(local),
        socket2::Type::STREAM,
        None,
    )
    .map_err(err)?;
    hold.set_reuse_port(true).map_err(err)?;
    hold.bind(&local.into()).map_err(err)?;
    holds.push(hold);
    Ok(local)
}

/// Builds the shared start state from a validated config.
pub fn prepare(cfg: Config) -> Result<Shared, StartError> {
    let (certs, dev_cert_pem) = load_certs(&cfg)?;
    let cover = load_cover(&cfg.front.cover_dir)?.with_server_name(&cfg.front.server_header);
    let keys = session_keys(&cfg)?;
    let sfu_secret = sfu_secret(&cfg)?;
    let policy = match cfg.front.policy {
        config::CoverPolicy::Strict => Policy::Strict,
        config::CoverPolicy::Heuristic => Policy::Heuristic,
    };
    let classifier = Classifier {
        policy,
        keys,
        cookie_name: cfg.front.session.cookie_name.clone(),
        cookie_ttl_secs: cfg.front.session.cookie_ttl_secs,
        partner_domains: cfg.front.domains.clone(),
    };
    let tunnel = match &cfg.tunnel.client {
        Some(c) => Some(Arc::new(
            TunnelSettings::from_config(c).map_err(|p| config::ConfigErrors(vec![p]))?,
        )),
        None => None,
    };
    let mut forwards = Vec::new();
    let mut port_holds = Vec::new();
    for (i, f) in cfg.tunnel.forward.iter().enumerate() {
        let target = parse_target(&f.target).ok_or_else(|| {
            config::ConfigErrors(vec![config::ConfigProblem::new(
                format!("tunnel.forward[{i}].target"),
                "is not host:port",
                "run `edge check`",
            )])
        })?;
        forwards.push((
            resolve_port(f.listen, "tunnel forward", &mut port_holds)?,
            target,
        ));
    }
    let front_addr = resolve_port(cfg.front.listen, "front listener", &mut port_holds)?;
    let admin_addr = resolve_port(cfg.admin.listen, "admin listener", &mut port_holds)?;
    Ok(Shared {
        cover: Arc::new(cover),
        classifier: Arc::new(classifier),
        certs: Arc::new(certs),
        ticketer: tls::ticketer()?,
        front_addr,
        admin_addr,
        ready: Arc::new(AtomicUsize::new(0)),
        fatal: Arc::new(Mutex::new(Vec::new())),
        dev_cert_pem,
        tunnel,
        forwards,
        port_holds,
        sfu_secret,
        cfg: Arc::new(cfg),
    })
}
