//! `edge`: parse the command line, load and check the config, run the shards.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use oxpulse_edge::cli::{Cli, Command, RunArgs};
use oxpulse_edge::config::{self, Config, LogFormat};
use oxpulse_edge::front::probe;
use oxpulse_edge::server;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match load(&cli.run) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edge: configuration has problems:\n{e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Some(Command::Check) => {
            println!("{}", cfg.to_redacted_toml());
            eprintln!("edge: configuration is valid");
            ExitCode::SUCCESS
        }
        Some(Command::Invite { ttl }) => invite(&cfg, ttl),
        Some(Command::Sni {
            node_id,
            date,
            pool,
        }) => sni(&cfg, node_id, date, pool),
        Some(Command::Run) | None => run(cfg),
    }
}

fn load(args: &RunArgs) -> Result<Config, config::ConfigErrors> {
    let mut cfg = match &args.config {
        Some(path) => config::load_file(path)?,
        None => config::dev_default(),
    };
    if let Some(n) = args.cores {
        cfg.runtime.cores = n;
    }
    cfg.validate()?;
    Ok(cfg)
}

fn init_logs(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cfg.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match cfg.log.format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.init(),
    }
}

fn run(cfg: Config) -> ExitCode {
    init_logs(&cfg);
    let drain = Duration::from_secs(cfg.shutdown.drain_timeout_secs);
    let shared = match server::prepare(cfg) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("edge: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if shared.cfg.node.dev {
        announce_dev(&shared);
    }
    let shutdown = shards::shutdown::Shutdown::new(drain);
    if let Err(e) = shutdown.install_signal_handlers() {
        eprintln!("edge: cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    match server::runtime::run(shared, &shutdown) {
        Ok(()) => {
            tracing::info!("edge stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edge: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A dev node has a random session secret, so it prints its own invite link.
fn announce_dev(shared: &server::Shared) {
    let now = probe::unix_now();
    let token = shared.classifier.keys.mint_invite(
        now,
        shared.cfg.front.session.invite_ttl_secs,
        probe::random_nonce(),
    );
    let host = shared
        .cfg
        .front
        .domains
        .first()
        .map(String::as_str)
        .unwrap_or("localhost");
    eprintln!(
        "edge: dev node on https://{host}:{port}/ (self-signed certificate; admin on http://{admin}/metrics)\n\
         edge: app invite for this run: https://{host}:{port}{prefix}{token}",
        port = shared.front_addr.port(),
        admin = shared.admin_addr,
        prefix = probe::INVITE_PREFIX,
    );
}

fn invite(cfg: &Config, ttl: Option<u64>) -> ExitCode {
    let shared = match server::prepare(cfg.clone()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("edge: {e}");
            return ExitCode::FAILURE;
        }
    };
    if cfg.node.dev
        && cfg.front.session.secret_file.is_none()
        && cfg.front.session.secret_env.is_none()
    {
        eprintln!("edge: this config has no session secret (dev node); a running dev node prints its own invite");
        return ExitCode::FAILURE;
    }
    let ttl = ttl.unwrap_or(cfg.front.session.invite_ttl_secs);
    let token = shared
        .classifier
        .keys
        .mint_invite(probe::unix_now(), ttl, probe::random_nonce());
    println!("{}{token}", probe::INVITE_PREFIX);
    ExitCode::SUCCESS
}

/// `edge sni`: the documented daily pick, for operators and auditors.
fn sni(cfg: &Config, node_id: Option<String>, date: Option<String>, pool: Vec<String>) -> ExitCode {
    use oxpulse_edge::tunnel::sni;
    let node_id = node_id.unwrap_or_else(|| cfg.node.id.clone());
    let pool = if pool.is_empty() {
        cfg.tunnel.sni_pool.clone()
    } else {
        pool
    };
    let pool: Vec<String> = pool
        .into_iter()
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    if node_id.is_empty() || pool.is_empty() {
        eprintln!("edge sni: needs a node id and a pool (--node-id, --pool a,b,c, or node.id and tunnel.sni_pool in --config)");
        return ExitCode::from(2);
    }
    let date = match date {
        Some(d) => match sni::Date::parse(&d) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("edge sni: {e}");
                return ExitCode::from(2);
            }
        },
        None => sni::Date::from_unix(probe::unix_now()),
    };
    let i = sni::pick_index(&node_id, date, pool.len());
    println!("{}", pool[i]);
    eprintln!(
        "edge sni: sha256(\"{node_id}:{date}\") mod {} = {i}",
        pool.len()
    );
    ExitCode::SUCCESS
}
