//! The admin listener (loopback by default): `/metrics`, `/healthz`, `/readyz`.
//!
//! It runs on shard 0 only; a scrape asks every shard for its counters over
//! the bus and sums them, so the data path never takes a lock for metrics.

pub mod driver;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

/// What the admin endpoints answer, given what is known at request time.
pub fn plain(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<Bytes> {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `/readyz`: 200 only when every shard serves and no drain has started.
pub fn readiness(ready_shards: usize, shards: usize, draining: bool) -> Response<Bytes> {
    if draining {
        plain(StatusCode::SERVICE_UNAVAILABLE, "draining\n", "text/plain")
    } else if ready_shards < shards {
        plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("starting: {ready_shards}/{shards} shards\n"),
            "text/plain",
        )
    } else {
        plain(StatusCode::OK, "ready\n", "text/plain")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_states() {
        assert_eq!(readiness(2, 2, false).status(), StatusCode::OK);
        assert_eq!(
            readiness(1, 2, false).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            readiness(2, 2, true).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
