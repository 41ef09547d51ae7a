//! `loadgen`: the oxpulse-edge load generator. One subcommand per job.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "loadgen", version, about = "Load generator for oxpulse-edge")]
struct Cli {
    #[command(subcommand)]
    job: Job,
}

#[derive(Subcommand)]
enum Job {
    /// HTTPS request / TLS handshake load against one URL.
    Https(loadgen::https::HttpsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.job {
        Job::Https(args) => loadgen::https::run_cli(args).map(|r| r.requests > 0),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        // The report was printed, but a run with no completed request is a
        // failed benchmark; make scripts notice.
        Ok(false) => {
            eprintln!("loadgen: no request completed");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("loadgen: {err:#}");
            ExitCode::FAILURE
        }
    }
}
