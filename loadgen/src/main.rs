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
    /// Download throughput from a plain TCP port over C connections.
    Bulk(loadgen::bulk::BulkArgs),
    /// Group-call participants (str0m, SFrame media) against the edge's SFU.
    Sfu(loadgen::sfu::SfuArgs),
    /// The SFU benchmark's ceiling: a plain recvmmsg/sendmmsg UDP forwarder
    /// (`--listen`) and its traffic driver (`--drive`).
    UdpFanout(loadgen::udp_fanout::UdpFanoutArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.job {
        Job::Https(args) => {
            loadgen::https::run_cli(args).map(|r| (r.requests > 0, "no request completed"))
        }
        Job::Bulk(args) => loadgen::bulk::run_cli(args).map(|r| (r.bytes > 0, "no byte received")),
        Job::Sfu(args) => {
            loadgen::sfu::run_cli(args).map(|r| (r.received_anything(), "no media frame received"))
        }
        Job::UdpFanout(args) => loadgen::udp_fanout::run_cli(args)
            .map(|moved| (moved, "no packet forwarded or received")),
    };
    match outcome {
        Ok((true, _)) => ExitCode::SUCCESS,
        // The report was printed, but a run that moved nothing is a failed
        // benchmark; make scripts notice.
        Ok((false, what)) => {
            eprintln!("loadgen: {what}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("loadgen: {err:#}");
            ExitCode::FAILURE
        }
    }
}
