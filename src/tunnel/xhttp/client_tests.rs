//! The driver against a toy in-process h2 server (plain TCP, no REALITY): what the
//! requests look like on the wire, stream-one in both directions with the VLESS response
//! header stripped (Xray 24.11.21 has no stream-one server to test against), and a refused
//! packet-up POST ending the tunnel.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::Future;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};

use super::*;
use crate::tunnel::vless::{Address, Decoded};
use crate::tunnel::xhttp::path::is_session_id;
use crate::tunnel::xhttp::uplink::UplinkWriter;

/// One request as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: http::Method,
    path: String,
    authority: String,
    grpc: bool,
    padding: usize,
}

fn on_glommio<F, Fut, T>(test: F) -> T
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

async fn write_all(w: &UplinkWriter, mut data: &[u8]) {
    while !data.is_empty() {
        let n = std::future::poll_fn(|cx| w.poll_write(cx, data))
            .await
            .expect("toy server write");
        data = &data[n..];
    }
}

/// Echoes a stream-one POST body after its VLESS request header, behind a VLESS response
/// header; ends when the request body ends.
async fn echo(mut body: Incoming, w: UplinkWriter) {
    let mut head = Vec::new();
    let mut header_done = false;
    while let Some(Ok(frame)) = body.frame().await {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if header_done {
            write_all(&w, &data).await;
            continue;
        }
        head.extend_from_slice(&data);
        if let Ok(Decoded::Complete { value, consumed }) = VlessRequest::decode(&head) {
            assert_eq!(value.flow, None, "no flow over XHTTP");
            header_done = true;
            write_all(&w, &head[consumed..]).await;
        }
    }
    w.close();
}

/// Serves one h2 connection: stream-one POSTs are echoed, GETs get an endless download
/// (the response header only), packet-up POSTs get `packet_status`.
async fn toy_server(listener: TcpListener, seen: Rc<RefCell<Vec<Seen>>>, packet_status: u16) {
    let stream = listener.accept().await.expect("accept");
    // Downloads stay open while the server runs.
    let downloads: Rc<RefCell<Vec<UplinkWriter>>> = Rc::default();
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let uri = req.uri();
        let saw = Seen {
            method: req.method().clone(),
            path: uri.path().to_owned(),
            authority: uri.authority().map(|a| a.to_string()).unwrap_or_default(),
            grpc: req
                .headers()
                .get(CONTENT_TYPE)
                .is_some_and(|v| v == "application/grpc"),
            padding: uri
                .query()
                .and_then(|q| q.strip_prefix("x_padding="))
                .map_or(0, str::len),
        };
        seen.borrow_mut().push(saw.clone());
        let downloads = Rc::clone(&downloads);
        async move {
            let segments = saw.path.trim_start_matches("/xh/").split('/').count();
            let response = if saw.method == http::Method::GET {
                let (w, r) = pipe(1 << 16);
                w.push_first(Bytes::from_static(&[0, 0]));
                downloads.borrow_mut().push(w);
                Response::new(XhttpBody::Stream(r))
            } else if saw.path == "/xh/" {
                let (w, r) = pipe(1 << 16);
                w.push_first(Bytes::from_static(&[0, 0]));
                glommio::spawn_local(echo(req.into_body(), w)).detach();
                Response::new(XhttpBody::Stream(r))
            } else {
                assert_eq!(segments, 2, "packet POST {}", saw.path);
                let mut response = Response::new(XhttpBody::Empty);
                *response.status_mut() = StatusCode::from_u16(packet_status).unwrap();
                response
            };
            Ok::<_, Infallible>(response)
        }
    });
    let _ = hyper::server::conn::http2::Builder::new(LocalExec)
        .timer(GlommioTimer)
        .serve_connection(HyperIo(stream), service)
        .await;
}

/// A client connection to a fresh toy server, and what the server sees.
async fn toy(mode: XhttpMode, packet_status: u16) -> (XhttpConnection, Rc<RefCell<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Rc::default();
    glommio::spawn_local(toy_server(listener, Rc::clone(&seen), packet_status)).detach();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let opts = XhttpClientOptions::new("xh", mode);
    let requests = Requests::new(&opts, "example.com").unwrap();
    let tls = TlsSummary {
        cipher_suite: None,
        key_exchange: None,
    };
    let conn = XhttpConnection::over(HyperIo(tcp), requests, &opts, tls)
        .await
        .unwrap();
    (conn, seen)
}

fn target() -> Target {
    Target {
        addr: Address::Ipv4([10, 0, 0, 1]),
        port: 443,
    }
}

#[test]
fn stream_one_echoes_with_the_response_header_stripped() {
    let seen = on_glommio(|| async {
        let (conn, seen) = toy(XhttpMode::StreamOne, 200).await;
        let mut tunnel = conn
            .open(Uuid::from_bytes([7; 16]), target())
            .await
            .unwrap();
        assert_eq!(conn.opened(), 1);
        tunnel.write_all(b"ping over stream-one").await.unwrap();
        tunnel.flush().await.unwrap();
        tunnel.close().await.unwrap();
        let mut echoed = Vec::new();
        tunnel.read_to_end(&mut echoed).await.unwrap();
        assert_eq!(echoed, b"ping over stream-one");
        let seen = seen.borrow().clone();
        seen
    });
    assert_eq!(seen.len(), 1, "{seen:?}");
    let post = &seen[0];
    assert_eq!(post.method, http::Method::POST);
    assert_eq!(post.path, "/xh/");
    assert_eq!(post.authority, "example.com");
    assert!(post.grpc);
    assert!((100..=1000).contains(&post.padding), "{}", post.padding);
}

#[test]
fn a_refused_packet_up_post_ends_the_tunnel() {
    let (err, seen) = on_glommio(|| async {
        let (conn, seen) = toy(XhttpMode::PacketUp, 500).await;
        let mut tunnel = conn
            .open(Uuid::from_bytes([7; 16]), target())
            .await
            .unwrap();
        // seq 0 carries the VLESS request header and is refused.
        let mut buf = [0u8; 8];
        let err = tunnel.read(&mut buf).await.unwrap_err();
        let later = tunnel.write(b"more").await.unwrap_err();
        assert_eq!(later.kind(), err.kind());
        let seen = seen.borrow().clone();
        (err, seen)
    });
    let cause = err.get_ref().and_then(|e| e.downcast_ref::<XhttpError>());
    assert!(
        matches!(
            cause,
            Some(XhttpError::Status {
                request: "packet-up POST",
                status: 500
            })
        ),
        "{err:?}"
    );
    assert_eq!(seen.len(), 2, "{seen:?}");
    let (get, post) = (&seen[0], &seen[1]);
    assert_eq!(get.method, http::Method::GET);
    assert!(!get.grpc && !post.grpc);
    let sid = get.path.strip_prefix("/xh/").unwrap();
    assert!(is_session_id(sid), "{sid}");
    assert_eq!(post.method, http::Method::POST);
    assert_eq!(post.path, format!("/xh/{sid}/0"));
    for request in &seen {
        assert!((100..=1000).contains(&request.padding), "{request:?}");
    }
}
