//! Preflight on this host, and in a child process whose memlock limit is too low.

use std::process::Command;

use shards::{preflight, preflight::GLOMMIO_MIN_MEMLOCK};

const CHECK: &str = env!("CARGO_BIN_EXE_shards-check");

#[test]
fn preflight_passes_here() {
    let report = preflight(2, 1 << 20).unwrap();
    assert!(report.memlock_soft >= GLOMMIO_MIN_MEMLOCK);
    assert!(report.memlock_soft <= report.memlock_hard);
    assert!(report.recommended >= GLOMMIO_MIN_MEMLOCK);
}

/// Runs `shards-check` under a shell `ulimit` line. `timeout` only guards against a hang
/// (exit status 124 fails the test); nothing here measures time.
fn check_under(ulimit: &str, args: &str) -> std::process::Output {
    let script = format!("{ulimit} && exec timeout 60 \"$0\" {args}");
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(CHECK)
        .output()
        .expect("run sh")
}

#[test]
fn hard_limit_below_glommio_minimum_fails_fast_with_the_fix() {
    let out = check_under("ulimit -l 64", "--cores 1 --start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("RLIMIT_MEMLOCK is too low"), "{stderr}");
    assert!(stderr.contains("hard 64 KiB"), "{stderr}");
    assert!(stderr.contains("ulimit -l"), "{stderr}");
    assert!(stderr.contains("LimitMEMLOCK=infinity"), "{stderr}");
    assert!(stderr.contains("--ulimit memlock=-1:-1"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("started on cpu"));
}

#[test]
fn low_soft_limit_is_raised_and_shards_start() {
    // Soft 256 KiB would make glommio refuse the executor (MemLockLimit from join()); the
    // hard limit allows more, so preflight raises the soft one.
    let hard = shards::preflight(1, 0).unwrap().memlock_hard;
    assert!(
        hard >= 1 << 20,
        "this test needs a hard memlock limit of at least 1 MiB"
    );
    let out = check_under("ulimit -S -l 256", "--cores 1 --io-memory 65536 --start");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout} stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("raised true"), "{stdout}");
    assert!(stdout.contains("shard 0 of 1 started"), "{stdout}");
}
