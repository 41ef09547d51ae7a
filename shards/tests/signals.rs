//! SIGINT/SIGTERM handling, in a child process (this test binary re-run with an env var)
//! because the second signal ends the whole process.

use std::{process::Command, time::Duration};

use shards::Shutdown;

const CHILD_ENV: &str = "SHARDS_SIGNALS_CHILD";

fn send_to_self(signal: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; it only takes integers.
    let rc = unsafe { libc::kill(libc::getpid(), signal) };
    assert_eq!(rc, 0, "kill failed");
}

/// Child side: the first signal starts the drain, the second exits with 128 + signal.
#[test]
fn signal_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return; // Only meaningful when started by `first_signal_drains_second_exits`.
    }
    let shutdown = Shutdown::new(Duration::from_secs(60));
    shutdown.install_signal_handlers().unwrap();
    shutdown.install_signal_handlers().unwrap(); // idempotent
    let handle = shutdown.handle();
    send_to_self(libc::SIGTERM);
    futures_lite::future::block_on(handle.draining());
    println!("drain started");
    send_to_self(libc::SIGINT);
    // The signal thread exits the process; nothing after this should ever run.
    loop {
        std::thread::park();
    }
}

#[test]
fn first_signal_drains_second_exits() {
    let me = std::env::current_exe().unwrap();
    // `timeout` guards against a hang only (status 124 fails the test).
    let out = Command::new("timeout")
        .arg("60")
        .arg(me)
        .args(["--exact", "signal_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGINT),
        "stdout: {stdout} stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("drain started"), "{stdout}");
}
