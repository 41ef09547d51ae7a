//! Validated, ready-to-run settings for the https job, built from
//! [`HttpsArgs`]. Everything that can fail (URL parsing, DNS, reading files,
//! TLS set-up, building the request templates) happens here, once, so the
//! workers' hot loop has nothing left to check.

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context as _};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONNECTION, HOST};
use http::uri::{PathAndQuery, Scheme, Uri};
use http::{HeaderMap, Method, Request, Version};
use http_body_util::Empty;
use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use super::args::HttpsArgs;
use crate::tls::{self, Trust};

/// Slack after the measured window before workers still waiting on a
/// response are abandoned, so a stalled server can never hang a benchmark.
pub const HARD_CAP_GRACE: Duration = Duration::from_secs(10);

/// A fully resolved https job.
#[derive(Clone)]
pub struct HttpsConfig {
    /// The URL as given, for the report.
    pub url: String,
    /// Resolved once up front: no DNS inside the measured loop.
    pub addr: SocketAddr,
    pub server_name: ServerName<'static>,
    pub connector: TlsConnector,
    pub http2: bool,
    pub new_conn: bool,
    pub connections: usize,
    pub threads: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Time allowed past the measured window before in-flight work is cut off.
    pub grace: Duration,
    /// One prebuilt request per path; workers clone these instead of building
    /// a request (URI parsing, header map) every time.
    pub requests: Vec<Request<Empty<Bytes>>>,
}

impl HttpsConfig {
    pub fn from_args(args: &HttpsArgs) -> anyhow::Result<Self> {
        ensure!(args.connections >= 1, "--connections must be at least 1");
        ensure!(args.threads >= 1, "--threads must be at least 1");
        let duration = seconds("--duration", args.duration)?;
        ensure!(!duration.is_zero(), "--duration must be positive");
        let warmup = seconds("--warmup", args.warmup)?;

        let target = Target::parse(&args.url)?;
        let addr = (target.host.as_str(), target.port)
            .to_socket_addrs()
            .with_context(|| format!("resolving {}", target.host))?
            .next()
            .with_context(|| format!("{} resolved to no address", target.host))?;
        let server_name = ServerName::try_from(target.host.clone())
            .with_context(|| format!("{} is not a valid TLS server name", target.host))?;

        let trust = Trust::from_flags(args.insecure, args.ca.as_deref())?;
        let alpn: &[&[u8]] = if args.h2 { &[b"h2"] } else { &[b"http/1.1"] };
        let connector = TlsConnector::from(tls::client_config(&trust, alpn)?);

        let extra = parse_headers(&args.headers)?;
        let paths = match &args.path_list {
            Some(file) => read_path_list(file)?,
            None => vec![target.path.clone()],
        };
        let requests = paths
            .iter()
            .map(|path| build_request(&target, path, &extra, args.h2, args.new_conn))
            .collect::<anyhow::Result<Vec<_>>>()?;

        Ok(Self {
            url: args.url.clone(),
            addr,
            server_name,
            connector,
            http2: args.h2,
            new_conn: args.new_conn,
            connections: args.connections,
            // More threads than connections would only add idle runtimes.
            threads: args.threads.min(args.connections),
            duration,
            warmup,
            grace: HARD_CAP_GRACE,
            requests,
        })
    }

    /// `"keepalive"` or `"new-conn"`, as used in the report.
    pub fn mode_name(&self) -> &'static str {
        if self.new_conn {
            "new-conn"
        } else {
            "keepalive"
        }
    }

    /// `"1.1"` or `"2"`, as used in the report.
    pub fn http_name(&self) -> &'static str {
        if self.http2 {
            "2"
        } else {
            "1.1"
        }
    }
}

fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("{flag} must be a non-negative number of seconds"))
}

/// The parts of the URL the job needs.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// Host without IPv6 brackets: used for DNS and the TLS server name.
    host: String,
    port: u16,
    /// `host[:port]` exactly as written: used for `Host` / `:authority`.
    authority: String,
    path: PathAndQuery,
}

impl Target {
    fn parse(url: &str) -> anyhow::Result<Self> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("invalid URL {url:?}"))?;
        ensure!(
            uri.scheme() == Some(&Scheme::HTTPS),
            "only https:// URLs are supported, got {url:?}"
        );
        let authority = uri
            .authority()
            .with_context(|| format!("URL {url:?} has no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        ensure!(!host.is_empty(), "URL {url:?} has an empty host");
        Ok(Self {
            host: host.to_string(),
            port: authority.port_u16().unwrap_or(443),
            authority: authority.as_str().to_string(),
            path: uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        })
    }
}

fn parse_headers(raw: &[String]) -> anyhow::Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    for line in raw {
        let Some((name, value)) = line.split_once(':') else {
            bail!("header {line:?} is not of the form \"Name: value\"");
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .with_context(|| format!("invalid header name in {line:?}"))?;
        let value = HeaderValue::from_str(value.trim())
            .with_context(|| format!("invalid header value in {line:?}"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

fn read_path_list(file: &Path) -> anyhow::Result<Vec<PathAndQuery>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading path list {}", file.display()))?;
    let mut paths = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        ensure!(
            line.starts_with('/'),
            "path {line:?} in {} must start with '/'",
            file.display()
        );
        let path = PathAndQuery::try_from(line)
            .with_context(|| format!("invalid path {line:?} in {}", file.display()))?;
        paths.push(path);
    }
    ensure!(!paths.is_empty(), "path list {} is empty", file.display());
    Ok(paths)
}

fn build_request(
    target: &Target,
    path: &PathAndQuery,
    extra: &HeaderMap,
    http2: bool,
    new_conn: bool,
) -> anyhow::Result<Request<Empty<Bytes>>> {
    let mut request = Request::new(Empty::new());
    *request.method_mut() = Method::GET;
    let headers = request.headers_mut();
    if http2 {
        // HTTP/2 carries scheme and authority as pseudo-headers taken from an
        // absolute URI; `Host` and `Connection` are not used there.
        *request.uri_mut() = Uri::builder()
            .scheme(Scheme::HTTPS)
            .authority(target.authority.as_str())
            .path_and_query(path.clone())
            .build()
            .context("building request URI")?;
        *request.version_mut() = Version::HTTP_2;
    } else {
        // HTTP/1.1 wants origin-form (`/path`) plus a Host header; hyper's
        // low-level client sends the URI exactly as given and adds no Host.
        if !extra.contains_key(HOST) {
            headers.insert(
                HOST,
                HeaderValue::from_str(&target.authority).context("authority as Host")?,
            );
        }
        if new_conn {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        *request.uri_mut() = Uri::from(path.clone());
        *request.version_mut() = Version::HTTP_11;
    }
    let headers = request.headers_mut();
    for (name, value) in extra {
        headers.append(name, value.clone());
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_url_parts() {
        let t = Target::parse("https://example.test:8443/a/b?c=1").unwrap();
        assert_eq!(t.host, "example.test");
        assert_eq!(t.port, 8443);
        assert_eq!(t.authority, "example.test:8443");
        assert_eq!(t.path.as_str(), "/a/b?c=1");

        let t = Target::parse("https://[::1]/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 443));
        assert_eq!(t.authority, "[::1]");

        let t = Target::parse("https://h").unwrap();
        assert_eq!(t.path.as_str(), "/");
    }

    #[test]
    fn rejects_non_https_urls() {
        assert!(Target::parse("http://h/").is_err());
        assert!(Target::parse("/just/a/path").is_err());
        assert!(Target::parse("not a url").is_err());
    }

    #[test]
    fn parses_headers() {
        let h = parse_headers(&["X-A: 1".into(), "x-a:2".into(), "Y: a: b".into()]).unwrap();
        assert_eq!(h.get_all("x-a").iter().count(), 2);
        assert_eq!(h["y"], "a: b");
        assert!(parse_headers(&["no colon".into()]).is_err());
        assert!(parse_headers(&["bad name: v".into()]).is_err());
    }

    #[test]
    fn h1_request_has_host_and_origin_form() {
        let t = Target::parse("https://h:1/p").unwrap();
        let r = build_request(&t, &t.path, &HeaderMap::new(), false, true).unwrap();
        assert_eq!(r.uri().to_string(), "/p");
        assert_eq!(r.headers()[HOST], "h:1");
        assert_eq!(r.headers()[CONNECTION], "close");
        assert_eq!(r.version(), Version::HTTP_11);
    }

    #[test]
    fn h1_request_keeps_user_host() {
        let t = Target::parse("https://h:1/p").unwrap();
        let extra = parse_headers(&["Host: other".into()]).unwrap();
        let r = build_request(&t, &t.path, &extra, false, false).unwrap();
        assert_eq!(r.headers().get_all(HOST).iter().count(), 1);
        assert_eq!(r.headers()[HOST], "other");
        assert!(!r.headers().contains_key(CONNECTION));
    }

    #[test]
    fn h2_request_is_absolute_without_connection_headers() {
        let t = Target::parse("https://h:1/p").unwrap();
        let r = build_request(&t, &t.path, &HeaderMap::new(), true, true).unwrap();
        assert_eq!(r.uri().to_string(), "https://h:1/p");
        assert!(!r.headers().contains_key(HOST));
        assert!(!r.headers().contains_key(CONNECTION));
        assert_eq!(r.version(), Version::HTTP_2);
    }

    #[test]
    fn reads_path_list() {
        let dir = std::env::temp_dir().join(format!("loadgen-paths-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("paths.txt");
        std::fs::write(&file, "# comment\n/a\n\n  /b?x=1  \n").unwrap();
        let paths = read_path_list(&file).unwrap();
        assert_eq!(paths, vec!["/a", "/b?x=1"]);
        std::fs::write(&file, "relative\n").unwrap();
        assert!(read_path_list(&file).is_err());
        std::fs::write(&file, "# only comments\n").unwrap();
        assert!(read_path_list(&file).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
