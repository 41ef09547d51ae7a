//! The cover site: a small static website served from memory.
//!
//! Strangers and probes get this site, so it must look like an ordinary
//! nginx serving a static directory — status codes, headers and error bodies
//! included. Every choice that mirrors (or departs from) nginx is listed in
//! `docs/PROBE_DEFENCE.md`. Everything is loaded once at start; answering a
//! request never touches the file system.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{
    HeaderMap, HeaderValue, ACCEPT_ENCODING, ALLOW, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE,
    ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, LOCATION, VARY,
};
use http::{Method, Response, StatusCode};
use thiserror::Error;

/// Refuse cover directories larger than this: the whole site lives in RAM on
/// every shard's shared copy, and a huge one is almost surely a mistake.
pub const MAX_TOTAL_BYTES: u64 = 64 * 1024 * 1024;
/// Cap on the number of files, for the same reason.
pub const MAX_FILES: usize = 10_000;
/// Directory nesting we follow, which also stops symlink loops.
const MAX_DEPTH: usize = 32;
/// Last-Modified of the built-in site: a fixed moment (2025-01-14 10:22:07
/// UTC) so that every build and every node serves identical headers.
pub const BUILTIN_MTIME_UNIX: u64 = 1_736_850_127;
/// Latest date `httpdate` can print (9999-12-31 23:59:59 UTC).
const MAX_HTTP_DATE_UNIX: u64 = 253_402_300_799;

/// One file of a cover site.
#[derive(Clone, Debug)]
pub struct CoverFile {
    /// Path relative to the site root with '/' separators, e.g. `css/site.css`.
    pub path: String,
    pub body: Bytes,
    pub modified: SystemTime,
}

#[derive(Error, Debug)]
pub enum CoverError {
    #[error("cover site: cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cover site: {path} is a symlink to a place outside {root}; copy the file in instead")]
    SymlinkOutside { path: PathBuf, root: PathBuf },
    #[error("cover site: files add up to more than {MAX_TOTAL_BYTES} bytes (reached at {path}); make the site smaller")]
    TooLarge { path: String },
    #[error("cover site: more than {MAX_FILES} files; make the site smaller")]
    TooManyFiles,
    #[error("cover site: {0} is missing; a cover site needs index.html and 404.html at its root")]
    Missing(&'static str),
    #[error("cover site: file name {0:?} cannot be served (not UTF-8, a control character, '.' or '..')")]
    BadName(String),
    #[error("cover site: {0} is listed twice")]
    Duplicate(String),
}

/// Why a request path is refused with 400, as nginx refuses it.
#[derive(Error, Debug, PartialEq, Eq)]
pub enum PathError {
    #[error("path does not start with '/'")]
    NotAbsolute,
    #[error("'%' not followed by two hex digits")]
    BadEscape,
    #[error("NUL byte in path")]
    Nul,
    #[error("'..' climbs above the root")]
    AboveRoot,
}

/// One encoding of a file's content.
struct Representation {
    body: Bytes,
    etag: HeaderValue,
}

struct Entry {
    content_type: HeaderValue,
    mtime_unix: u64,
    last_modified: HeaderValue,
    identity: Representation,
    gzip: Option<Representation>,
    br: Option<Representation>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coding {
    Identity,
    Gzip,
    Br,
}

/// An immutable, in-memory static site.
pub struct CoverSite {
    /// Keyed by absolute path, e.g. `/css/site.css`.
    files: HashMap<String, Entry>,
    /// Every directory, with a trailing slash: `/`, `/css/`.
    dirs: HashSet<String>,
    /// Footer of built-in error pages; should match the `Server` header.
    server_name: String,
}

impl CoverSite {
    /// Reads every regular file under `dir`. Symlinks are followed only while
    /// they stay inside `dir`.
    pub fn load(dir: &Path) -> Result<CoverSite, CoverError> {
        let root = fs::canonicalize(dir).map_err(io_err(dir))?;
        let mut walk = Walk {
            root: root.clone(),
            files: Vec::new(),
            total: 0,
            ancestors: Vec::new(),
        };
        walk.dir(&root, "", 0)?;
        CoverSite::from_files(walk.files)
    }

    /// The default site from the repository's `cover/` directory, compiled in.
    pub fn builtin() -> CoverSite {
        let mtime = UNIX_EPOCH + Duration::from_secs(BUILTIN_MTIME_UNIX);
        let file = |path: &str, body: &'static [u8]| CoverFile {
            path: path.to_owned(),
            body: Bytes::from_static(body),
            modified: mtime,
        };
        let files = vec![
            file("index.html", include_bytes!("../../cover/index.html")),
            file("about.html", include_bytes!("../../cover/about.html")),
            file("contact.html", include_bytes!("../../cover/contact.html")),
            file("404.html", include_bytes!("../../cover/404.html")),
            file("robots.txt", include_bytes!("../../cover/robots.txt")),
            file("favicon.svg", include_bytes!("../../cover/favicon.svg")),
            file("css/site.css", include_bytes!("../../cover/css/site.css")),
            file(
                "css/site.css.gz",
                include_bytes!("../../cover/css/site.css.gz"),
            ),
        ];
        match CoverSite::from_files(files) {
            Ok(site) => site,
            // The list above is fixed; the builtin_site test proves it valid.
            Err(e) => panic!("built-in cover site is invalid: {e}"),
        }
    }

    /// Builds a site from files already in memory.
    pub fn from_files(files: Vec<CoverFile>) -> Result<CoverSite, CoverError> {
        if files.len() > MAX_FILES {
            return Err(CoverError::TooManyFiles);
        }
        let mut total = 0u64;
        let mut bodies: HashMap<String, CoverFile> = HashMap::new();
        let mut dirs = HashSet::from(["/".to_owned()]);
        for file in files {
            let key = validate_relative(&file.path)?;
            total += file.body.len() as u64;
            if total > MAX_TOTAL_BYTES {
                return Err(CoverError::TooLarge { path: file.path });
            }
            let mut parent = String::from("/");
            let segments: Vec<&str> = key[1..].split('/').collect();
            for segment in &segments[..segments.len() - 1] {
                parent.push_str(segment);
                parent.push('/');
                dirs.insert(parent.clone());
            }
            if bodies.contains_key(&key) {
                return Err(CoverError::Duplicate(file.path));
            }
            bodies.insert(key, file);
        }
        for required in ["index.html", "404.html"] {
            if !bodies.contains_key(&format!("/{required}")) {
                return Err(CoverError::Missing(required));
            }
        }
        let variant = |key: &str, suffix: &str| {
            bodies
                .get(&format!("{key}{suffix}"))
                .map(|f| representation(f.body.clone()))
        };
        let mut entries = HashMap::with_capacity(bodies.len());
        for (key, file) in &bodies {
            if dirs.contains(&format!("{key}/")) {
                // A file and a directory of the same name cannot both exist on
                // disk; from_files refuses what load could never produce.
                return Err(CoverError::Duplicate(file.path.clone()));
            }
            let mtime_unix = file
                .modified
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                .min(MAX_HTTP_DATE_UNIX);
            let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(mtime_unix));
            let entry = Entry {
                content_type: HeaderValue::from_static(content_type(key)),
                mtime_unix,
                last_modified: header_value(&date),
                identity: representation(file.body.clone()),
                gzip: variant(key, ".gz"),
                br: variant(key, ".br"),
            };
            entries.insert(key.clone(), entry);
        }
        Ok(CoverSite {
            files: entries,
            dirs,
            server_name: "nginx".to_owned(),
        })
    }

    /// Names the server in the footer of built-in error pages ("nginx" by
    /// default); keep it equal to the `Server` header. Empty drops the footer.
    pub fn with_server_name(mut self, name: &str) -> CoverSite {
        self.server_name = name.to_owned();
        self
    }

    /// Answers one request the way nginx answers for a static directory.
    pub fn respond(&self, method: &Method, path: &str, headers: &HeaderMap) -> Response<Bytes> {
        let head = method == Method::HEAD;
        let resp = self.route(method, path, headers);
        if head {
            // HEAD: the same headers (Content-Length included), no body.
            let (parts, _) = resp.into_parts();
            return Response::from_parts(parts, Bytes::new());
        }
        resp
    }

    fn route(&self, method: &Method, path: &str, headers: &HeaderMap) -> Response<Bytes> {
        let server = self.server_name.as_str();
        // nginx's request-line parser accepts only A–Z, '_' and '-' in a method.
        let method_ok = method
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'_' || b == b'-');
        if !method_ok {
            return error_page(StatusCode::BAD_REQUEST, server);
        }
        // The static module refuses everything but GET, HEAD and POST up front.
        if method != Method::GET && method != Method::HEAD && method != Method::POST {
            return not_allowed(server);
        }
        let Ok(decoded) = normalize_path(path) else {
            return error_page(StatusCode::BAD_REQUEST, server);
        };
        // A path that is not UTF-8 cannot name one of our files.
        let Ok(key) = String::from_utf8(decoded) else {
            return self.not_found(headers);
        };
        let target = if key.ends_with('/') {
            if !self.dirs.contains(&key) {
                return self.not_found(headers);
            }
            match self.files.get(&format!("{key}index.html")) {
                Some(entry) => entry,
                // No index and no autoindex: nginx forbids listing.
                None => return error_page(StatusCode::FORBIDDEN, server),
            }
        } else if let Some(entry) = self.files.get(&key) {
            entry
        } else if self.dirs.contains(&format!("{key}/")) {
            return redirect_to_dir(&key, path, server);
        } else {
            return self.not_found(headers);
        };
        // POST reaches the file lookup in nginx and is refused only here.
        if method == Method::POST {
            return not_allowed(server);
        }
        serve(target, StatusCode::OK, headers)
    }

    /// The site's own 404.html with status 404 (nginx `error_page 404`).
    fn not_found(&self, headers: &HeaderMap) -> Response<Bytes> {
        match self.files.get("/404.html") {
            Some(entry) => serve(entry, StatusCode::NOT_FOUND, headers),
            None => error_page(StatusCode::NOT_FOUND, &self.server_name),
        }
    }
}

/// Recursive reader behind [`CoverSite::load`].
struct Walk {
    root: PathBuf,
    files: Vec<CoverFile>,
    total: u64,
    /// Canonical directories on the current descent: a symlink back to one of
    /// them is a loop and is skipped. (A directory reachable by two paths is
    /// served under both, as nginx would.)
    ancestors: Vec<PathBuf>,
}

impl Walk {
    fn dir(&mut self, dir: &Path, prefix: &str, depth: usize) -> Result<(), CoverError> {
        if depth > MAX_DEPTH || self.ancestors.iter().any(|a| a == dir) {
            return Ok(());
        }
        self.ancestors.push(dir.to_path_buf());
        let result = self.entries(dir, prefix, depth);
        self.ancestors.pop();
        result
    }

    fn entries(&mut self, dir: &Path, prefix: &str, depth: usize) -> Result<(), CoverError> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            names.push(entry.map_err(io_err(dir))?.file_name());
        }
        names.sort(); // deterministic order, so errors name the same file each run
        for name in names {
            let path = dir.join(&name);
            let Some(name) = name.to_str() else {
                return Err(CoverError::BadName(name.to_string_lossy().into_owned()));
            };
            let rel = format!("{prefix}{name}");
            let link = fs::symlink_metadata(&path).map_err(io_err(&path))?;
            let real = if link.file_type().is_symlink() {
                let real = fs::canonicalize(&path).map_err(io_err(&path))?;
                if !real.starts_with(&self.root) {
                    return Err(CoverError::SymlinkOutside {
                        path,
                        root: self.root.clone(),
                    });
                }
                real
            } else {
                path
            };
            let meta = fs::metadata(&real).map_err(io_err(&real))?;
            if meta.is_dir() {
                self.dir(&real, &format!("{rel}/"), depth + 1)?;
            } else if meta.is_file() {
                self.file(&real, rel, &meta)?;
            }
            // Sockets, FIFOs and devices are skipped: reading them could block.
        }
        Ok(())
    }

    fn file(&mut self, path: &Path, rel: String, meta: &fs::Metadata) -> Result<(), CoverError> {
        if self.files.len() >= MAX_FILES {
            return Err(CoverError::TooManyFiles);
        }
        // Check the size before reading so a stray disk image is never loaded.
        if self.total + meta.len() > MAX_TOTAL_BYTES {
            return Err(CoverError::TooLarge { path: rel });
        }
        let body = fs::read(path).map_err(io_err(path))?;
        self.total += body.len() as u64;
        if self.total > MAX_TOTAL_BYTES {
            return Err(CoverError::TooLarge { path: rel });
        }
        self.files.push(CoverFile {
            path: rel,
            body: Bytes::from(body),
            modified: meta.modified().unwrap_or(UNIX_EPOCH),
        });
        Ok(())
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CoverError + '_ {
    move |source| CoverError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks a relative file path and returns its absolute key (`/a/b`).
fn validate_relative(path: &str) -> Result<String, CoverError> {
    let bad = || CoverError::BadName(path.to_owned());
    let mut key = String::with_capacity(path.len() + 1);
    for segment in path.split('/') {
        let control = segment.chars().any(|c| c.is_control());
        if segment.is_empty() || segment == "." || segment == ".." || control {
            return Err(bad());
        }
        key.push('/');
        key.push_str(segment);
    }
    Ok(key)
}

/// Decodes and normalises a request path like nginx does before mapping it to
/// a file: the query and fragment are cut off, `%XX` escapes are decoded,
/// repeated slashes merged, `.` dropped and `..` resolved. A trailing slash is
/// kept, since it asks for a directory.
pub fn normalize_path(raw: &str) -> Result<Vec<u8>, PathError> {
    let raw = raw.as_bytes();
    let end = raw
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(raw.len());
    let raw = &raw[..end];
    if raw.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let mut b = raw[i];
        if b == b'%' {
            let hex = |j: usize| raw.get(j).and_then(|&c| (c as char).to_digit(16));
            let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                return Err(PathError::BadEscape);
            };
            b = (hi * 16 + lo) as u8;
            i += 2;
        }
        if b == 0 {
            return Err(PathError::Nul);
        }
        decoded.push(b);
        i += 1;
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut dir = false;
    for segment in decoded.split(|&b| b == b'/') {
        dir = matches!(segment, b"" | b"." | b"..");
        match segment {
            b"" | b"." => {}
            b".." => {
                segments.pop().ok_or(PathError::AboveRoot)?;
            }
            _ => segments.push(segment),
        }
    }
    let mut out = Vec::with_capacity(decoded.len());
    for segment in &segments {
        out.push(b'/');
        out.extend_from_slice(segment);
    }
    if dir || segments.is_empty() {
        out.push(b'/');
    }
    Ok(out)
}

/// Content-Type by extension, with nginx's `mime.types` names.
fn content_type(key: &str) -> &'static str {
    let name = key.rsplit('/').next().unwrap_or(key);
    let ext = match name.rsplit_once('.') {
        Some((_, ext)) => ext.to_ascii_lowercase(),
        None => String::new(),
    };
    match ext.as_str() {
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" => "application/javascript",
        "svg" | "svgz" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain",
        "xml" => "text/xml",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

/// A strong ETag: the first 128 bits of the content's SHA-256, quoted hex.
fn representation(body: Bytes) -> Representation {
    let digest = ring::digest::digest(&ring::digest::SHA256, &body);
    let mut tag = String::with_capacity(34);
    tag.push('"');
    for byte in &digest.as_ref()[..16] {
        tag.push_str(&format!("{byte:02x}"));
    }
    tag.push('"');
    Representation {
        body,
        etag: header_value(&tag),
    }
}

/// For values we build ourselves from printable ASCII.
fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Serves one file: content negotiation and conditional GET.
fn serve(entry: &Entry, status: StatusCode, headers: &HeaderMap) -> Response<Bytes> {
    let coding = choose_coding(headers, entry.br.is_some(), entry.gzip.is_some());
    let rep = match coding {
        Coding::Br => entry.br.as_ref(),
        Coding::Gzip => entry.gzip.as_ref(),
        Coding::Identity => None,
    }
    .unwrap_or(&entry.identity);
    let has_variants = entry.br.is_some() || entry.gzip.is_some();
    // nginx only turns 200 responses into 304s.
    if status == StatusCode::OK && not_modified(entry, &rep.etag, headers) {
        let mut resp = Response::new(Bytes::new());
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        let h = resp.headers_mut();
        h.insert(LAST_MODIFIED, entry.last_modified.clone());
        h.insert(ETAG, rep.etag.clone());
        if has_variants {
            h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        }
        return resp;
    }
    let mut resp = Response::new(rep.body.clone());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, entry.content_type.clone());
    h.insert(CONTENT_LENGTH, HeaderValue::from(rep.body.len()));
    h.insert(LAST_MODIFIED, entry.last_modified.clone());
    h.insert(ETAG, rep.etag.clone());
    let encoding = match coding {
        Coding::Br => Some("br"),
        Coding::Gzip => Some("gzip"),
        Coding::Identity => None,
    };
    if let Some(encoding) = encoding {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    if has_variants {
        h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    resp
}

/// If-None-Match wins when present (weak comparison, RFC 9110 §13.1.2);
/// otherwise If-Modified-Since must equal Last-Modified exactly, which is
/// nginx's default `if_modified_since exact`.
fn not_modified(entry: &Entry, etag: &HeaderValue, headers: &HeaderMap) -> bool {
    let mut inm = headers.get_all(IF_NONE_MATCH).iter().peekable();
    if inm.peek().is_some() {
        let ours = etag
            .as_bytes()
            .strip_prefix(b"W/")
            .unwrap_or(etag.as_bytes());
        return inm.any(|value| {
            value.as_bytes().split(|&b| b == b',').any(|tag| {
                let tag = tag.trim_ascii();
                tag == b"*" || tag.strip_prefix(b"W/").unwrap_or(tag) == ours
            })
        });
    }
    let Some(since) = headers.get(IF_MODIFIED_SINCE) else {
        return false;
    };
    let Some(since) = since
        .to_str()
        .ok()
        .and_then(|s| httpdate::parse_http_date(s).ok())
    else {
        return false;
    };
    since.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs()) == Some(entry.mtime_unix)
}

/// Picks the best precompressed variant the client accepts: highest q wins,
/// a tie goes to br (smaller), and identity is the fallback.
fn choose_coding(headers: &HeaderMap, have_br: bool, have_gzip: bool) -> Coding {
    if !have_br && !have_gzip {
        return Coding::Identity;
    }
    // q in thousandths; None = not mentioned.
    let (mut br, mut gzip, mut star) = (None, None, None);
    for value in headers.get_all(ACCEPT_ENCODING) {
        for item in value.as_bytes().split(|&b| b == b',') {
            let mut parts = item.split(|&b| b == b';');
            let coding = parts.next().unwrap_or_default().trim_ascii();
            let mut q = Some(1000);
            for param in parts {
                let param = param.trim_ascii();
                if param.len() > 2 && param[..2].eq_ignore_ascii_case(b"q=") {
                    q = parse_qvalue(&param[2..]);
                }
            }
            let Some(q) = q else { continue }; // bad q-value: ignore the item
            if coding.eq_ignore_ascii_case(b"br") {
                br = Some(q);
            } else if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip")
            {
                gzip = Some(q);
            } else if coding == b"*" {
                star = Some(q);
            }
        }
    }
    let br = if have_br { br.or(star).unwrap_or(0) } else { 0 };
    let gzip = if have_gzip {
        gzip.or(star).unwrap_or(0)
    } else {
        0
    };
    if br > 0 && br >= gzip {
        Coding::Br
    } else if gzip > 0 {
        Coding::Gzip
    } else {
        Coding::Identity
    }
}

/// RFC 9110 qvalue: `0[.ddd]` or `1[.000]`, as thousandths.
fn parse_qvalue(s: &[u8]) -> Option<u16> {
    let (int, frac) = match s.iter().position(|&b| b == b'.') {
        Some(dot) => (&s[..dot], &s[dot + 1..]),
        None => (s, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// nginx's built-in error page; one implementation serves the whole front.
fn error_page(status: StatusCode, server: &str) -> Response<Bytes> {
    super::errors::page(status, None, server)
}

fn not_allowed(server: &str) -> Response<Bytes> {
    let mut resp = error_page(StatusCode::METHOD_NOT_ALLOWED, server);
    // RFC 9110 §15.5.6 requires Allow on a 405 (nginx omits it).
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    resp
}

/// `/dir` names a directory: 301 to `/dir/`, keeping the query like nginx.
fn redirect_to_dir(key: &str, raw: &str, server: &str) -> Response<Bytes> {
    let mut resp = error_page(StatusCode::MOVED_PERMANENTLY, server);
    let query = match raw.find(['?', '#']) {
        Some(at) if raw.as_bytes()[at] == b'?' => raw[at + 1..].split('#').next(),
        _ => None,
    };
    let location = query
        .filter(|q| !q.is_empty())
        .and_then(|q| HeaderValue::from_str(&format!("{key}/?{q}")).ok())
        .unwrap_or_else(|| header_value(&format!("{key}/")));
    resp.headers_mut().insert(LOCATION, location);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSS: &[u8] = include_bytes!("../../cover/css/site.css");
    const CSS_GZ: &[u8] = include_bytes!("../../cover/css/site.css.gz");

    fn get(site: &CoverSite, path: &str) -> Response<Bytes> {
        site.respond(&Method::GET, path, &HeaderMap::new())
    }

    fn with(site: &CoverSite, method: &str, path: &str, hdrs: &[(&str, &str)]) -> Response<Bytes> {
        let mut map = HeaderMap::new();
        for (name, value) in hdrs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        site.respond(&method, path, &map)
    }

    fn header<'a>(resp: &'a Response<Bytes>, name: &str) -> Option<&'a str> {
        resp.headers().get(name).map(|v| v.to_str().unwrap())
    }

    fn file(path: &str, body: &'static [u8]) -> CoverFile {
        CoverFile {
            path: path.to_owned(),
            body: Bytes::from_static(body),
            modified: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    /// A site with both precompressed variants of app.js.
    fn site_with_variants() -> CoverSite {
        CoverSite::from_files(vec![
            file("index.html", b"<h1>home</h1>"),
            file("404.html", b"<h1>gone</h1>"),
            file("app.js", b"console.log(1)"),
            file("app.js.gz", b"GZ-BYTES"),
            file("app.js.br", b"BR-BYTES"),
            file("docs/index.html", b"docs"),
        ])
        .unwrap()
    }

    #[test]
    fn cover_site_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<CoverSite>();
    }

    #[test]
    fn builtin_site_serves_index() {
        let site = CoverSite::builtin();
        let resp = get(&site, "/");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.body().as_ref(),
            include_bytes!("../../cover/index.html")
        );
        assert_eq!(header(&resp, "content-type"), Some("text/html"));
        let len = resp.body().len().to_string();
        assert_eq!(header(&resp, "content-length"), Some(len.as_str()));
        assert_eq!(
            header(&resp, "last-modified"),
            Some("Tue, 14 Jan 2025 10:22:07 GMT")
        );
        let etag = header(&resp, "etag").unwrap();
        assert_eq!(etag.len(), 34);
        assert!(etag.starts_with('"') && etag.ends_with('"'));
        assert!(etag[1..33].bytes().all(|b| b.is_ascii_hexdigit()));
        // The HTTP layer owns these.
        assert!(resp.headers().get("server").is_none());
        assert!(resp.headers().get("date").is_none());
        // index.html has no variants, so no Vary.
        assert!(resp.headers().get("vary").is_none());
    }

    #[test]
    fn builtin_files_have_their_types() {
        let site = CoverSite::builtin();
        for (path, kind) in [
            ("/about.html", "text/html"),
            ("/contact.html", "text/html"),
            ("/404.html", "text/html"),
            ("/robots.txt", "text/plain"),
            ("/favicon.svg", "image/svg+xml"),
            ("/css/site.css", "text/css"),
        ] {
            let resp = get(&site, path);
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            assert_eq!(header(&resp, "content-type"), Some(kind), "{path}");
            assert!(!resp.body().is_empty());
        }
    }

    /// Plain CRC-32 (IEEE), only to check the shipped .gz against its source.
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn shipped_gzip_matches_its_source() {
        // The gzip trailer holds the CRC-32 and length of the original; if
        // site.css changes, rerun `gzip -9 -n -k -f cover/css/site.css`.
        assert_eq!(&CSS_GZ[..2], &[0x1f, 0x8b]);
        let trailer = &CSS_GZ[CSS_GZ.len() - 8..];
        let crc = u32::from_le_bytes(trailer[..4].try_into().unwrap());
        let size = u32::from_le_bytes(trailer[4..].try_into().unwrap());
        assert_eq!(crc, crc32(CSS), "cover/css/site.css.gz is stale");
        assert_eq!(size as usize, CSS.len(), "cover/css/site.css.gz is stale");
    }

    #[test]
    fn builtin_serves_gzip_variant() {
        let site = CoverSite::builtin();
        let resp = with(
            &site,
            "GET",
            "/css/site.css",
            &[("accept-encoding", "gzip, deflate, br")],
        );
        assert_eq!(resp.body().as_ref(), CSS_GZ);
        assert_eq!(header(&resp, "content-encoding"), Some("gzip"));
        assert_eq!(header(&resp, "vary"), Some("Accept-Encoding"));
        assert_eq!(header(&resp, "content-type"), Some("text/css"));
        let plain = get(&site, "/css/site.css");
        assert_eq!(plain.body().as_ref(), CSS);
        assert_eq!(header(&plain, "vary"), Some("Accept-Encoding"));
        assert!(plain.headers().get("content-encoding").is_none());
        assert_ne!(header(&plain, "etag"), header(&resp, "etag"));
    }

    #[test]
    fn variant_files_are_plain_files_too() {
        let resp = get(&CoverSite::builtin(), "/css/site.css.gz");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            header(&resp, "content-type"),
            Some("application/octet-stream")
        );
        assert!(resp.headers().get("content-encoding").is_none());
    }

    #[test]
    fn accept_encoding_negotiation() {
        let site = site_with_variants();
        let cases = [
            ("gzip, br", "BR-BYTES"),
            ("br;q=0.5, gzip;q=0.8", "GZ-BYTES"),
            ("gzip;q=1.0, br;q=1", "BR-BYTES"),
            ("br;q=0, gzip", "GZ-BYTES"),
            ("BR;Q=0.001", "BR-BYTES"),
            ("x-gzip", "GZ-BYTES"),
            ("*", "BR-BYTES"),
            ("*;q=0.5, br;q=0.1", "GZ-BYTES"),
            ("gzip;q=0, br;q=0", "console.log(1)"),
            ("identity", "console.log(1)"),
            ("deflate", "console.log(1)"),
            ("br;q=2, gzip;q=abc", "console.log(1)"), // bad q-values are ignored
            ("br;q=0.1234", "console.log(1)"),
            ("", "console.log(1)"),
        ];
        for (accept, want) in cases {
            let resp = with(&site, "GET", "/app.js", &[("accept-encoding", accept)]);
            assert_eq!(resp.body().as_ref(), want.as_bytes(), "{accept:?}");
            assert_eq!(header(&resp, "vary"), Some("Accept-Encoding"));
        }
        let two_headers = [
            ("accept-encoding", "gzip;q=0.2"),
            ("accept-encoding", "br;q=0.1"),
        ];
        let resp = with(&site, "GET", "/app.js", &two_headers);
        assert_eq!(resp.body().as_ref(), b"GZ-BYTES");
        assert_eq!(header(&resp, "content-encoding"), Some("gzip"));
        assert_eq!(header(&resp, "content-length"), Some("8"));
    }

    #[test]
    fn head_has_headers_but_no_body() {
        let site = CoverSite::builtin();
        let full = get(&site, "/about.html");
        let head = with(&site, "HEAD", "/about.html", &[]);
        assert_eq!(head.status(), StatusCode::OK);
        assert!(head.body().is_empty());
        assert_eq!(head.headers(), full.headers());
        let missing = with(&site, "HEAD", "/missing", &[]);
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert!(missing.body().is_empty());
        let len = include_bytes!("../../cover/404.html").len().to_string();
        assert_eq!(header(&missing, "content-length"), Some(len.as_str()));
        let bad = with(&site, "HEAD", "/%zz", &[]);
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert!(bad.body().is_empty());
    }

    #[test]
    fn unknown_path_gets_the_sites_404() {
        let site = CoverSite::builtin();
        for path in [
            "/nope",
            "/wp-login.php",
            "/about.html/",
            "/css/x.css",
            "/ABOUT.HTML",
        ] {
            let resp = get(&site, path);
            assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(resp.body().as_ref(), include_bytes!("../../cover/404.html"));
            assert_eq!(header(&resp, "content-type"), Some("text/html"));
        }
        // A 404 never becomes a 304, even with its own ETag.
        let etag = header(&get(&site, "/404.html"), "etag").unwrap().to_owned();
        let resp = with(&site, "GET", "/nope", &[("if-none-match", &etag)]);
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn paths_are_decoded_and_normalised() {
        let site = CoverSite::builtin();
        let about = get(&site, "/about.html");
        for path in [
            "/%61bout.html",
            "/about%2ehtml",
            "//about.html",
            "/./about.html",
            "/css/../about.html",
            "/css%2F..%2Fabout.html",
            "/about.html?utm_source=x",
            "/about.html#top",
        ] {
            let resp = get(&site, path);
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            assert_eq!(resp.body(), about.body(), "{path}");
        }
        assert_eq!(get(&site, "/?q=1").status(), StatusCode::OK);
        assert_eq!(get(&site, "/index.html").status(), StatusCode::OK);
        assert_eq!(get(&site, "/%C3%A9").status(), StatusCode::NOT_FOUND);
        assert_eq!(get(&site, "/%ff").status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn escapes_and_bad_paths_are_400() {
        let site = CoverSite::builtin();
        for path in [
            "/..",
            "/../etc/passwd",
            "/css/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc",
            "/a/%00",
            "/bad%zz",
            "/%",
            "/%4",
            "index.html",
            "",
            "*",
        ] {
            let resp = get(&site, path);
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path:?}");
            assert_eq!(header(&resp, "content-type"), Some("text/html"));
            let body = std::str::from_utf8(resp.body()).unwrap();
            assert!(body.contains("<title>400 Bad Request</title>"), "{body}");
            assert!(body.contains("<hr><center>nginx</center>"));
        }
    }

    #[test]
    fn normalize_path_cases() {
        let ok: [(&str, &str); 9] = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a//b/", "/a/b/"),
            ("/a/./b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/a/..", "/"),
            ("/%2F", "/"),
            ("/a%20b", "/a b"),
            ("/a?b/../../..", "/a"),
        ];
        for (raw, want) in ok {
            assert_eq!(normalize_path(raw).unwrap(), want.as_bytes(), "{raw}");
        }
        assert_eq!(normalize_path("x"), Err(PathError::NotAbsolute));
        assert_eq!(normalize_path("?/"), Err(PathError::NotAbsolute));
        assert_eq!(normalize_path("/%g0"), Err(PathError::BadEscape));
        assert_eq!(normalize_path("/%00"), Err(PathError::Nul));
        assert_eq!(normalize_path("/\0"), Err(PathError::Nul));
        assert_eq!(normalize_path("/a/../.."), Err(PathError::AboveRoot));
    }

    #[test]
    fn directories_redirect_or_forbid() {
        let site = CoverSite::builtin();
        let resp = get(&site, "/css");
        assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(header(&resp, "location"), Some("/css/"));
        let body = std::str::from_utf8(resp.body()).unwrap();
        assert!(body.contains("<title>301 Moved Permanently</title>"));
        let resp = get(&site, "/css?v=2");
        assert_eq!(header(&resp, "location"), Some("/css/?v=2"));
        assert_eq!(get(&site, "/css/").status(), StatusCode::FORBIDDEN);
        assert_eq!(get(&site, "/img/").status(), StatusCode::NOT_FOUND);
        let site = site_with_variants();
        assert_eq!(get(&site, "/docs/").body().as_ref(), b"docs");
        assert_eq!(header(&get(&site, "/docs"), "location"), Some("/docs/"));
    }

    #[test]
    fn conditional_requests() {
        let site = CoverSite::builtin();
        let full = get(&site, "/about.html");
        let etag = header(&full, "etag").unwrap().to_owned();
        let date = header(&full, "last-modified").unwrap().to_owned();
        let weak = format!("W/{etag}");
        let listed = format!("\"nope\", {etag}");
        let not_modified: [&[(&str, &str)]; 5] = [
            &[("if-none-match", &etag)],
            &[("if-none-match", &weak)],
            &[("if-none-match", &listed)],
            &[("if-none-match", "*")],
            &[("if-modified-since", &date)],
        ];
        for hdrs in not_modified {
            let resp = with(&site, "GET", "/about.html", hdrs);
            assert_eq!(resp.status(), StatusCode::NOT_MODIFIED, "{hdrs:?}");
            assert!(resp.body().is_empty());
            assert_eq!(header(&resp, "etag"), Some(etag.as_str()));
            assert_eq!(header(&resp, "last-modified"), Some(date.as_str()));
            assert!(resp.headers().get("content-length").is_none());
            assert!(resp.headers().get("content-type").is_none());
        }
        let modified: [&[(&str, &str)]; 4] = [
            // If-None-Match takes precedence over a matching If-Modified-Since.
            &[("if-none-match", "\"other\""), ("if-modified-since", &date)],
            // nginx's default `if_modified_since exact`.
            &[("if-modified-since", "Wed, 15 Jan 2025 10:22:07 GMT")],
            &[("if-modified-since", "yesterday")],
            &[("if-none-match", "")],
        ];
        for hdrs in modified {
            let resp = with(&site, "GET", "/about.html", hdrs);
            assert_eq!(resp.status(), StatusCode::OK, "{hdrs:?}");
            assert_eq!(resp.body(), full.body());
        }
        let head = with(&site, "HEAD", "/about.html", &[("if-none-match", &etag)]);
        assert_eq!(head.status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn conditional_uses_the_variants_etag() {
        let site = site_with_variants();
        let gz = with(&site, "GET", "/app.js", &[("accept-encoding", "gzip")]);
        let tag = header(&gz, "etag").unwrap().to_owned();
        let hit = with(
            &site,
            "GET",
            "/app.js",
            &[("accept-encoding", "gzip"), ("if-none-match", &tag)],
        );
        assert_eq!(hit.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header(&hit, "vary"), Some("Accept-Encoding"));
        let miss = with(&site, "GET", "/app.js", &[("if-none-match", &tag)]);
        assert_eq!(miss.status(), StatusCode::OK);
    }

    #[test]
    fn other_methods_are_refused() {
        let site = CoverSite::builtin();
        for (method, path) in [
            ("POST", "/"),
            ("POST", "/about.html"),
            ("PUT", "/about.html"),
            ("PUT", "/missing"),
            ("DELETE", "/"),
            ("OPTIONS", "/"),
            ("TRACE", "/"),
            ("PATCH", "/css/"),
            ("PROPFIND", "/"),
            ("FOO_BAR-X", "/"),
        ] {
            let resp = with(&site, method, path, &[]);
            assert_eq!(
                resp.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(header(&resp, "allow"), Some("GET, HEAD"));
            let body = std::str::from_utf8(resp.body()).unwrap();
            assert!(body.contains("<title>405 Not Allowed</title>"));
            let len = resp.body().len().to_string();
            assert_eq!(header(&resp, "content-length"), Some(len.as_str()));
        }
        // POST is looked up first, as in nginx.
        assert_eq!(
            with(&site, "POST", "/missing", &[]).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            with(&site, "POST", "/css", &[]).status(),
            StatusCode::MOVED_PERMANENTLY
        );
        // Methods nginx's parser would not accept.
        for method in ["get", "Get", "M1", "A.B"] {
            let resp = with(&site, method, "/", &[]);
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{method}");
        }
    }

    #[test]
    fn error_page_footer_follows_server_name() {
        let site = CoverSite::builtin().with_server_name("Apache");
        let body = get(&site, "/%zz").into_body();
        assert!(body.ends_with(b"<hr><center>Apache</center>\r\n</body>\r\n</html>\r\n"));
        let site = CoverSite::builtin().with_server_name("");
        let body = with(&site, "PUT", "/", &[]).into_body();
        let want = "<html>\r\n<head><title>405 Not Allowed</title></head>\r\n<body>\r\n\
                    <center><h1>405 Not Allowed</h1></center>\r\n</body>\r\n</html>\r\n";
        assert_eq!(body, want.as_bytes());
    }

    #[test]
    fn content_types_by_extension() {
        for (name, want) in [
            ("/a.html", "text/html"),
            ("/a.HTM", "text/html"),
            ("/a.css", "text/css"),
            ("/a.js", "application/javascript"),
            ("/a.svg", "image/svg+xml"),
            ("/a.png", "image/png"),
            ("/a.jpg", "image/jpeg"),
            ("/a.jpeg", "image/jpeg"),
            ("/a.ico", "image/x-icon"),
            ("/a.webp", "image/webp"),
            ("/a.woff2", "font/woff2"),
            ("/a.txt", "text/plain"),
            ("/a.xml", "text/xml"),
            ("/a.json", "application/json"),
            ("/site.webmanifest", "application/manifest+json"),
            ("/a.css.gz", "application/octet-stream"),
            ("/Makefile", "application/octet-stream"),
            ("/.d/x", "application/octet-stream"),
        ] {
            assert_eq!(content_type(name), want, "{name}");
        }
    }

    #[test]
    fn from_files_rejects_bad_sites() {
        let only_index = vec![file("index.html", b"x")];
        assert!(matches!(
            CoverSite::from_files(only_index),
            Err(CoverError::Missing("404.html"))
        ));
        let only_404 = vec![file("404.html", b"x")];
        assert!(matches!(
            CoverSite::from_files(only_404),
            Err(CoverError::Missing("index.html"))
        ));
        let base = || vec![file("index.html", b"x"), file("404.html", b"y")];
        let mut dup = base();
        dup.push(file("index.html", b"z"));
        assert!(matches!(
            CoverSite::from_files(dup),
            Err(CoverError::Duplicate(_))
        ));
        let mut clash = base();
        clash.extend([file("a", b"1"), file("a/b", b"2")]);
        assert!(matches!(
            CoverSite::from_files(clash),
            Err(CoverError::Duplicate(_))
        ));
        for bad in ["", "/a", "a/", "a//b", "./a", "a/../b", "a\nb", "a\0"] {
            let mut files = base();
            files.push(file(bad, b"1"));
            assert!(
                matches!(CoverSite::from_files(files), Err(CoverError::BadName(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn mtimes_outside_http_dates_are_clamped() {
        let mut files = vec![file("index.html", b"x"), file("404.html", b"y")];
        files[0].modified = UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        files[1].modified = UNIX_EPOCH - Duration::from_secs(10);
        let site = CoverSite::from_files(files).unwrap();
        let resp = get(&site, "/");
        assert_eq!(
            header(&resp, "last-modified"),
            Some("Fri, 31 Dec 9999 23:59:59 GMT")
        );
        let resp = get(&site, "/404.html");
        assert_eq!(
            header(&resp, "last-modified"),
            Some("Thu, 01 Jan 1970 00:00:00 GMT")
        );
    }

    fn write(dir: &Path, rel: &str, body: &[u8]) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, body).unwrap();
    }

    #[test]
    fn load_reads_a_directory_tree() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "index.html", b"home");
        write(dir.path(), "404.html", b"lost");
        write(dir.path(), "blog/index.html", b"blog");
        write(dir.path(), "blog/2024/post.html", b"post");
        std::os::unix::fs::symlink(dir.path().join("blog/2024"), dir.path().join("archive"))
            .unwrap();
        let site = CoverSite::load(dir.path()).unwrap();
        assert_eq!(get(&site, "/").body().as_ref(), b"home");
        assert_eq!(get(&site, "/blog/").body().as_ref(), b"blog");
        assert_eq!(get(&site, "/blog/2024/post.html").body().as_ref(), b"post");
        assert_eq!(get(&site, "/archive/post.html").body().as_ref(), b"post");
        assert_eq!(get(&site, "/blog/2024/").status(), StatusCode::FORBIDDEN);
        let resp = get(&site, "/nothing");
        assert_eq!(
            (resp.status(), resp.body().as_ref()),
            (StatusCode::NOT_FOUND, &b"lost"[..])
        );
        // Last-Modified comes from the file's mtime.
        let mtime = fs::metadata(dir.path().join("index.html"))
            .unwrap()
            .modified()
            .unwrap();
        let date = httpdate::fmt_http_date(mtime);
        assert_eq!(
            header(&get(&site, "/"), "last-modified"),
            Some(date.as_str())
        );
    }

    #[test]
    fn load_survives_a_symlink_loop() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "index.html", b"home");
        write(dir.path(), "404.html", b"lost");
        std::os::unix::fs::symlink(dir.path(), dir.path().join("again")).unwrap();
        let site = CoverSite::load(dir.path()).unwrap();
        assert_eq!(get(&site, "/").status(), StatusCode::OK);
    }

    #[test]
    fn load_refuses_symlinks_outside() {
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "secret.txt", b"secret");
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "index.html", b"home");
        write(dir.path(), "404.html", b"lost");
        let link = dir.path().join("leak.txt");
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), &link).unwrap();
        let err = CoverSite::load(dir.path()).err().unwrap();
        assert!(matches!(err, CoverError::SymlinkOutside { .. }), "{err}");
        fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(outside.path(), &link).unwrap();
        let err = CoverSite::load(dir.path()).err().unwrap();
        assert!(matches!(err, CoverError::SymlinkOutside { .. }), "{err}");
    }

    #[test]
    fn load_errors_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "index.html", b"home");
        let err = CoverSite::load(dir.path()).err().unwrap();
        assert!(err.to_string().contains("404.html"), "{err}");
        let err = CoverSite::load(&dir.path().join("absent")).err().unwrap();
        assert!(matches!(err, CoverError::Io { .. }), "{err}");
        // A sparse file: the size check fires before anything is read.
        write(dir.path(), "404.html", b"lost");
        let big = fs::File::create(dir.path().join("disk.img")).unwrap();
        big.set_len(MAX_TOTAL_BYTES + 1).unwrap();
        let err = CoverSite::load(dir.path()).err().unwrap();
        assert!(matches!(err, CoverError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("disk.img"), "{err}");
    }
}
