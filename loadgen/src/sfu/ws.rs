//! The signalling WebSocket: `wss://host/sfu/ws/{room}` with the room token
//! in `Sec-WebSocket-Protocol: oxpulse-sfu.v1, bearer.<jwt>` (the browser
//! form; `docs/PROTOCOLS.md`). TLS is tokio-rustls with loadgen's own client
//! config (no root stores: `--ca` or `--insecure`), so tungstenite only does
//! the WebSocket handshake.

use std::sync::Arc;

use anyhow::{bail, Context as _};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::WebSocketStream;

/// The subprotocol the edge selects.
pub const SUBPROTOCOL: &str = "oxpulse-sfu.v1";

/// A plain or TLS byte stream.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type Ws = WebSocketStream<Box<dyn Io>>;

/// The room's URL from `--url`: `{room}` in it is replaced, otherwise
/// `/sfu/ws/<room>` is appended to the base (`wss://host[:port]`).
pub fn room_url(base: &str, room: &str) -> String {
    if base.contains("{room}") {
        base.replace("{room}", room)
    } else {
        format!("{}/sfu/ws/{room}", base.trim_end_matches('/'))
    }
}

/// Whether `url` needs TLS (`wss`), checking the scheme.
pub fn needs_tls(url: &str) -> anyhow::Result<bool> {
    match url.split_once("://").map(|(s, _)| s) {
        Some("wss") => Ok(true),
        Some("ws") => Ok(false),
        _ => bail!("--url must start with wss:// or ws://, got {url}"),
    }
}

/// Why a connection did not become a signalling socket, as a short label
/// for the report (`http 404` is the edge's answer to a bad token).
pub fn failure_label(err: &anyhow::Error) -> String {
    use tokio_tungstenite::tungstenite::Error as WsError;
    for cause in err.chain() {
        if let Some(ws) = cause.downcast_ref::<WsError>() {
            return match ws {
                WsError::Http(resp) => format!("http {}", resp.status().as_u16()),
                WsError::Protocol(p) => format!("ws protocol: {p}"),
                other => format!("ws: {other}"),
            };
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return format!("io: {:?}", io.kind());
        }
    }
    format!("{err:#}")
}

/// Opens the socket and completes the upgrade.
/// `connect_to`, when set, is the address to dial instead of resolving the URL's
/// host, which still names the TLS server and the Host header (curl's
/// `--connect-to`: reach a node before its DNS points at it).
pub async fn connect(
    url: &str,
    jwt: &str,
    tls: Option<&Arc<ClientConfig>>,
    connect_to: Option<std::net::SocketAddr>,
) -> anyhow::Result<Ws> {
    let mut request = url
        .into_client_request()
        .with_context(|| format!("bad URL {url}"))?;
    let protocols = HeaderValue::from_str(&format!("{SUBPROTOCOL}, bearer.{jwt}"))
        .context("token is not a header value")?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", protocols);
    let uri = request.uri().clone();
    let host = uri.host().context("URL has no host")?;
    // `[::1]` in a URL; rustls and connect want the bare address.
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let tls_needed = needs_tls(url)?;
    let port = uri.port_u16().unwrap_or(if tls_needed { 443 } else { 80 });
    let tcp = match connect_to {
        Some(addr) => TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?,
        None => TcpStream::connect((host.as_str(), port))
            .await
            .with_context(|| format!("connecting to {host}:{port}"))?,
    };
    tcp.set_nodelay(true).ok();
    let stream: Box<dyn Io> = if tls_needed {
        let config = tls.context("wss:// needs a TLS config (--ca or --insecure)")?;
        let name = ServerName::try_from(host.clone()).context("bad TLS server name")?;
        let tls = TlsConnector::from(Arc::clone(config))
            .connect(name, tcp)
            .await
            .context("TLS handshake")?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let (ws, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .context("WebSocket upgrade")?;
    let chosen = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok());
    if chosen != Some(SUBPROTOCOL) {
        bail!("server selected subprotocol {chosen:?}, not {SUBPROTOCOL}");
    }
    Ok(ws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_urls() {
        assert_eq!(room_url("wss://h:8443/", "r1"), "wss://h:8443/sfu/ws/r1");
        assert_eq!(room_url("wss://h/x/{room}?a=1", "r1"), "wss://h/x/r1?a=1");
        assert!(needs_tls("wss://h").unwrap());
        assert!(!needs_tls("ws://h").unwrap());
        assert!(needs_tls("https://h").is_err());
    }

    #[tokio::test]
    async fn refused_upgrade_is_labelled_with_the_status() {
        // A one-shot HTTP server that answers 404 like the cover site.
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            s.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            req
        });
        let url = room_url(&format!("ws://{addr}"), "room-1");
        let Err(err) = connect(&url, "a.b.c", None, None).await else {
            panic!("a 404 must not upgrade");
        };
        assert_eq!(failure_label(&err), "http 404");
        let req = server.await.unwrap();
        assert!(req.starts_with("GET /sfu/ws/room-1 HTTP/1.1\r\n"), "{req}");
        assert!(
            req.to_ascii_lowercase()
                .contains("sec-websocket-protocol: oxpulse-sfu.v1, bearer.a.b.c\r\n"),
            "{req}"
        );
    }
}
