//! `shards-check`: tells an operator whether this host can run the edge's shards, before
//! the edge itself fails less helpfully.
//!
//! ```text
//! shards-check [--cores N] [--io-memory BYTES] [--start]
//! ```
//! Prints the CPUs that would be used and the memlock situation; with `--start` it also
//! starts every shard (through the same `runtime::run` the edge uses) and stops them again.
//! Exits 0 when everything is fine, 1 with an explanation on stderr when not, 2 on bad usage.

use std::{process::ExitCode, time::Duration};

use shards::{preflight, runtime, RuntimeOptions, Shutdown};

struct Args {
    cores: Option<usize>,
    io_memory: usize,
    start: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        cores: None,
        io_memory: RuntimeOptions::default().io_memory,
        start: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--cores" => args.cores = Some(number("--cores")?),
            "--io-memory" => args.io_memory = number("--io-memory")?,
            "--start" => args.start = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn check(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let cpus = shards::choose_cpus(args.cores)?;
    println!("cpus: {cpus:?}");
    let report = preflight(cpus.len(), args.io_memory)?;
    println!(
        "memlock: soft {} hard {} recommended {} raised {} fixed-buffers {}",
        report.memlock_soft,
        report.memlock_hard,
        report.recommended,
        report.raised,
        report.fixed_buffers
    );
    if args.start {
        let opts = RuntimeOptions {
            cores: Some(cpus.len()),
            io_memory: args.io_memory,
            ..RuntimeOptions::default()
        };
        let shutdown = Shutdown::new(Duration::from_secs(1));
        runtime::run::<(), _, _>(opts, &shutdown, |shard| async move {
            println!(
                "shard {} of {} started on cpu {}",
                shard.index, shard.count, shard.cpu
            );
        })?;
        println!("all shards started and stopped");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(usage) => {
            eprintln!("shards-check: {usage}\nusage: shards-check [--cores N] [--io-memory BYTES] [--start]");
            return ExitCode::from(2);
        }
    };
    match check(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("shards-check: {err}");
            ExitCode::FAILURE
        }
    }
}
