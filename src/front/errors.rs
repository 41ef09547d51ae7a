//! Error answers shaped like a mainstream web server's (nginx's), so that odd
//! requests reveal nothing about what software answers them.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

/// nginx's standard error body: a title, a heading, an optional detail line
/// and a footer naming the server (omitted when `server` is empty).
pub fn page(status: StatusCode, detail: Option<&str>, server: &str) -> Response<Bytes> {
    let reason = nginx_reason(status);
    let code = status.as_u16();
    let title = match detail {
        Some(d) => format!("{code} {d}"),
        None => format!("{code} {reason}"),
    };
    let mut body = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n"
    );
    if let Some(d) = detail {
        body.push_str(&format!("<center>{d}</center>\r\n"));
    }
    if !server.is_empty() {
        body.push_str(&format!("<hr><center>{server}</center>\r\n"));
    }
    body.push_str("</body>\r\n</html>\r\n");
    let len = body.len();
    let mut resp = Response::new(Bytes::from(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if reason != status.canonical_reason().unwrap_or("") {
        // The HTTP/1 status line carries nginx's wording too (hyper's extension).
        resp.extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(reason.as_bytes()));
    }
    resp
}

/// nginx's reason phrases, which differ from RFC 9110's for a few codes.
fn nginx_reason(status: StatusCode) -> &'static str {
    match status.as_u16() {
        405 => "Not Allowed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        _ => status.canonical_reason().unwrap_or("Error"),
    }
}

/// The full HTTP/1.1 answer nginx gives to a plain HTTP request on its TLS
/// port, written straight to the socket since no TLS or HTTP layer exists yet.
pub fn plain_http_on_tls_port(server: &str, date: &str) -> Vec<u8> {
    let resp = page(
        StatusCode::BAD_REQUEST,
        Some("The plain HTTP request was sent to HTTPS port"),
        server,
    );
    let body = resp.body();
    let mut out = String::from("HTTP/1.1 400 Bad Request\r\n");
    if !server.is_empty() {
        out.push_str(&format!("Server: {server}\r\n"));
    }
    out.push_str(&format!(
        "Date: {date}\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_shaped_page() {
        let r = page(StatusCode::NOT_FOUND, None, "nginx");
        let body = std::str::from_utf8(r.body()).unwrap();
        assert!(body.contains("<title>404 Not Found</title>"));
        let r = page(StatusCode::PAYLOAD_TOO_LARGE, None, "nginx");
        let body = std::str::from_utf8(r.body()).unwrap();
        assert!(body.contains("<h1>413 Request Entity Too Large</h1>"));
        assert!(r.extensions().get::<hyper::ext::ReasonPhrase>().is_some());
        assert!(body.contains("<hr><center>nginx</center>"));
        let r = page(StatusCode::NOT_FOUND, None, "");
        assert!(!std::str::from_utf8(r.body()).unwrap().contains("<hr>"));
    }

    #[test]
    fn plain_http_answer_is_complete() {
        let raw = plain_http_on_tls_port("nginx", "Sat, 28 Nov 2026 08:00:00 GMT");
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(body.contains("The plain HTTP request was sent to HTTPS port"));
    }
}
