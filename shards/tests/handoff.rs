//! Shard 0 accepts and reads the start of a request; shard 1 finishes and answers it.

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream as StdTcpStream,
    sync::mpsc,
};

use common::{run_two, PATIENCE};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpListener;
use shards::{attach, HandedConn};

#[test]
fn a_connection_read_on_shard_0_is_answered_by_shard_1() {
    let (port_tx, port_rx) = mpsc::channel::<u16>();
    let client = std::thread::spawn(move || {
        let port = port_rx.recv().unwrap();
        let mut conn = StdTcpStream::connect(("127.0.0.1", port)).unwrap();
        // Guards against a hang only; the test asserts on content.
        conn.set_read_timeout(Some(PATIENCE)).unwrap();
        conn.write_all(b"HELLO world\n").unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        (answer, conn.local_addr().unwrap())
    });

    run_two::<HandedConn<String>, _, _>(move |shard, shutdown| {
        let port_tx = port_tx.clone();
        async move {
            if shard.index == 0 {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                port_tx.send(listener.local_addr().unwrap().port()).unwrap();
                let mut stream = listener.accept().await.unwrap();
                let mut prefix = vec![0; 5];
                stream.read_exact(&mut prefix).await.unwrap();
                let conn =
                    HandedConn::new(stream, prefix, "state from shard 0".to_owned()).unwrap();
                shard.bus.send_to(1, conn).unwrap();
                shard.shutdown.draining().await;
                return;
            }
            let conn = shard.inbox.recv().await.unwrap();
            let mut stream = attach(conn.fd);
            // The rest of the line, after the prefix shard 0 consumed.
            let mut rest = Vec::new();
            let mut byte = [0u8];
            while byte[0] != b'\n' {
                stream.read_exact(&mut byte).await.unwrap();
                rest.push(byte[0]);
            }
            let answer = format!(
                "shard {} got {}{} with {} from port {}",
                shard.index,
                String::from_utf8_lossy(&conn.prefix),
                String::from_utf8_lossy(&rest).trim_end(),
                conn.state,
                conn.peer.port(),
            );
            stream.write_all(answer.as_bytes()).await.unwrap();
            stream.close().await.unwrap();
            drop(stream);
            shutdown.trigger();
        }
    })
    .unwrap();

    let (answer, client_addr) = client.join().unwrap();
    assert_eq!(
        answer,
        format!(
            "shard 1 got HELLO world with state from shard 0 from port {}",
            client_addr.port()
        )
    );
}
