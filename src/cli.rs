//! The `edge` command line. Secrets never come from here: argv is visible to
//! every local user through /proc, so only paths and numbers are accepted.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("EDGE_GIT_HASH"),
    ")"
);

#[derive(Parser, Debug)]
#[command(name = "edge", version = VERSION, about = "OxPulse partner edge: one thread-per-core server for the cover site, app proxy, calls, tunnel and mesh")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// Configuration file (TOML). Without it, a dev node runs on localhost.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Number of shards (one per CPU); overrides runtime.cores. 0 = every allowed CPU.
    #[arg(long)]
    pub cores: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the node (the default).
    Run,
    /// Validate the configuration and print it with secrets redacted.
    Check,
    /// Print an invite path that lets a browser into the app (strict policy).
    /// Print the tunnel SNI picked for a node on a UTC date (default: today).
    Sni {
        /// Node id; default node.id from the config.
        #[arg(long)]
        node_id: Option<String>,
        /// UTC date, YYYY-MM-DD; default today.
        #[arg(long)]
        date: Option<String>,
        /// Comma-separated names; default tunnel.sni_pool from the config.
        #[arg(long, value_delimiter = ',')]
        pool: Vec<String>,
    },
    Invite {
        /// Seconds the invite stays valid; default front.session.invite_ttl_secs.
        #[arg(long)]
        ttl: Option<u64>,
    },
}
