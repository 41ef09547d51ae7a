//! hyper 1.x on glommio: HTTP/1 for a raw std client (including the header-read timeout,
//! which needs the timer) and HTTP/2 between two shards (which needs the executor).

mod common;

use std::{
    convert::Infallible,
    io::{Read, Write},
    net::TcpStream as StdTcpStream,
    sync::mpsc,
    time::Duration,
};

use bytes::Bytes;
use common::{run_two, PATIENCE};
use glommio::net::{TcpListener, TcpStream};
use http_body_util::{BodyExt, Empty, Full};
use hyper::{body::Incoming, service::service_fn, Request, Response};
use shards::{GlommioTimer, HyperIo, LocalExec};

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!("hello over {:?} at {}", req.version(), req.uri().path());
    Ok(Response::new(Full::new(Bytes::from(body))))
}

async fn serve_http1(listener: TcpListener, connections: usize) {
    let mut served = Vec::new();
    for _ in 0..connections {
        let stream = listener.accept().await.unwrap();
        served.push(glommio::spawn_local(async move {
            // The outcome differs per client (clean close or header timeout); both end the
            // connection, which is all the server side has to do.
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(GlommioTimer)
                .header_read_timeout(Duration::from_millis(50))
                .serve_connection(HyperIo(stream), service_fn(hello))
                .await;
        }));
    }
    for task in served {
        task.await;
    }
}

async fn serve_http2(listener: TcpListener) {
    let stream = listener.accept().await.unwrap();
    hyper::server::conn::http2::Builder::new(LocalExec)
        .timer(GlommioTimer)
        .serve_connection(HyperIo(stream), service_fn(hello))
        .await
        .unwrap();
}

async fn fetch_http2(port: u16) -> String {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(LocalExec)
        .timer(GlommioTimer)
        .handshake(HyperIo(stream))
        .await
        .unwrap();
    let driver = glommio::spawn_local(connection);
    let request = Request::get("http://shard0/h2")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    // Dropping the sender closes the connection; the driver then finishes.
    drop(sender);
    driver.await.unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

fn std_client(port: u16, request: &[u8]) -> String {
    let mut conn = StdTcpStream::connect(("127.0.0.1", port)).unwrap();
    // Guards against a hang only (it would mean the header timeout never fired).
    conn.set_read_timeout(Some(PATIENCE)).unwrap();
    conn.write_all(request).unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn hyper_serves_http1_and_http2_on_glommio() {
    let (port_tx, port_rx) = mpsc::channel::<u16>();
    let (h2_answer_tx, h2_answer_rx) = mpsc::channel::<String>();
    let clients = std::thread::spawn(move || {
        let port = port_rx.recv().unwrap();
        let full = std_client(
            port,
            b"GET /h1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        // Never finishes its headers: only hyper's header-read timeout closes this one.
        let stalled = std_client(port, b"GET /slow HTTP/1.1\r\nHost: x\r\n");
        (full, stalled)
    });

    run_two::<u16, _, _>(move |shard, _shutdown| {
        let (port_tx, h2_answer_tx) = (port_tx.clone(), h2_answer_tx.clone());
        async move {
            if shard.index == 0 {
                let h1 = TcpListener::bind("127.0.0.1:0").unwrap();
                let h2 = TcpListener::bind("127.0.0.1:0").unwrap();
                port_tx.send(h1.local_addr().unwrap().port()).unwrap();
                shard
                    .bus
                    .send_to(1, h2.local_addr().unwrap().port())
                    .unwrap();
                let h1 = glommio::spawn_local(serve_http1(h1, 2));
                serve_http2(h2).await;
                h1.await;
            } else {
                let port = shard.inbox.recv().await.unwrap();
                h2_answer_tx.send(fetch_http2(port).await).unwrap();
            }
        }
    })
    .unwrap();

    let (full, stalled) = clients.join().unwrap();
    assert!(full.starts_with("HTTP/1.1 200 OK\r\n"), "{full}");
    assert!(full.ends_with("hello over HTTP/1.1 at /h1"), "{full}");
    assert!(!stalled.contains("200 OK"), "{stalled}");
    assert_eq!(h2_answer_rx.recv().unwrap(), "hello over HTTP/2.0 at /h2");
}
