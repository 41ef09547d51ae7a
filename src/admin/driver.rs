//! The admin listener's glommio loop (plain HTTP/1.1 on loopback).

use std::convert::Infallible;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use glommio::net::TcpListener;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use shards::bus::Bus;
use shards::hyper_io::{GlommioTimer, HyperIo};
use shards::shutdown::ShutdownHandle;

use super::{plain, readiness};
use crate::server::{ShardMsg, Shared};
use crate::telemetry::metrics::{render_prometheus, ProcessInfo};

/// How long a scrape waits for a shard before reporting without it.
const SCRAPE_WAIT: Duration = Duration::from_secs(2);

pub struct AdminState {
    pub bus: Bus<ShardMsg>,
    pub shared: Arc<Shared>,
    pub shutdown: ShutdownHandle,
}

/// Serves until the shard stops (the admin stays up during a drain so
/// `/readyz` can say so).
pub async fn serve(listener: TcpListener, st: Rc<AdminState>) {
    loop {
        let Ok(stream) = listener.accept().await else {
            glommio::timer::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let st = st.clone();
        glommio::spawn_local(async move {
            let svc = service_fn(move |req| {
                let st = st.clone();
                async move { Ok::<_, Infallible>(handle(&st, req).await.map(Full::new)) }
            });
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(GlommioTimer)
                .header_read_timeout(Duration::from_secs(10));
            let _ = b.serve_connection(HyperIo(stream), svc).await;
        })
        .detach();
    }
}

async fn handle<B>(st: &AdminState, req: Request<B>) -> Response<Bytes> {
    let shards = st.bus.shards();
    match req.uri().path() {
        "/healthz" => plain(StatusCode::OK, "ok\n", "text/plain"),
        "/readyz" => readiness(
            st.shared.ready.load(Ordering::SeqCst),
            shards,
            st.shutdown.is_draining(),
        ),
        "/metrics" => {
            let mut snaps = Vec::with_capacity(shards);
            for i in 0..shards {
                if let Ok(s) = st.bus.request(i, ShardMsg::Metrics, SCRAPE_WAIT).await {
                    snaps.push(s);
                }
            }
            let info = ProcessInfo {
                shards,
                shards_answered: snaps.len(),
                ready: st.shared.ready.load(Ordering::SeqCst) == shards
                    && !st.shutdown.is_draining(),
                draining: st.shutdown.is_draining(),
                version: env!("CARGO_PKG_VERSION"),
            };
            plain(
                StatusCode::OK,
                render_prometheus(&snaps, &info),
                "text/plain; version=0.0.4",
            )
        }
        _ => plain(StatusCode::NOT_FOUND, "not found\n", "text/plain"),
    }
}
