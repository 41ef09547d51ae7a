//! Running a test body on a glommio executor, with every wait bounded, and the
//! "digest target" the tunnel tests send through: shared by the tunnel tests
//! (each includes this file with `#[path]`).
#![allow(dead_code)]

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddrV4, TcpListener};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long any one step of a tunnel test may take before it fails.
pub const STEP_LIMIT: Duration = Duration::from_secs(60);

/// Runs `test` on a fresh glommio executor (unpinned) and returns its result.
pub fn on_glommio<F, Fut, T>(test: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(64 << 10)
        .spawn(test)
        .unwrap()
        .join()
        .unwrap()
}

/// `fut`, or a panic naming `what` once [`STEP_LIMIT`] has passed.
pub async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    let late = async {
        glommio::timer::sleep(STEP_LIMIT).await;
        panic!("{what} took longer than {STEP_LIMIT:?}");
    };
    futures_lite::future::or(fut, late).await
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    d.as_ref().try_into().unwrap()
}

/// A target serving `connections` in turn: each reads `up_len` bytes, answers
/// their SHA-256 then `download`, half-closes, and drains until the tunnel
/// closes (so the close sends no reset).
pub fn spawn_digest_target(
    connections: usize,
    up_len: usize,
    download: Vec<u8>,
) -> (SocketAddrV4, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = match listener.local_addr().unwrap() {
        std::net::SocketAddr::V4(a) => a,
        other => panic!("not IPv4: {other}"),
    };
    let serve = std::thread::spawn(move || {
        for _ in 0..connections {
            let (mut conn, _) = listener.accept().expect("target accept");
            conn.set_read_timeout(Some(STEP_LIMIT)).unwrap();
            conn.set_write_timeout(Some(STEP_LIMIT)).unwrap();
            let mut up = vec![0u8; up_len];
            conn.read_exact(&mut up)
                .expect("the upload reaches the target");
            conn.write_all(&sha256(&up)).unwrap();
            conn.write_all(&download).unwrap();
            conn.shutdown(Shutdown::Write).unwrap();
            io::copy(&mut conn, &mut io::sink()).expect("the tunnel closes");
        }
    });
    (addr, serve)
}
