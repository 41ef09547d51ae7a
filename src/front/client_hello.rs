//! Sans-IO parser for the first TLS ClientHello of a connection.
//!
//! The front reads the first bytes of every TCP connection and decides where to
//! send it (cover site, app, REALITY …) *before* any TLS library sees them, so
//! this parser must cope with anything a stranger sends: partial reads, a hello
//! split over many records, lies in length fields. It never panics, never reads
//! past `buf`, and never allocates more than [`MAX_HELLO_BYTES`] however large
//! the declared lengths are.
//!
//! It only reads; the caller keeps its buffer and hands the very same bytes to
//! rustls (or forwards them) once the route is known.

use thiserror::Error;

/// Content type of a TLS handshake record.
const HANDSHAKE_RECORD: u8 = 0x16;
/// Handshake message type of a ClientHello.
const CLIENT_HELLO: u8 = 0x01;
const RECORD_HEADER_LEN: usize = 5;
const HANDSHAKE_HEADER_LEN: usize = 4;
/// RFC 8446 §5.1: a plaintext record carries at most 2^14 bytes.
const MAX_RECORD_PAYLOAD: usize = 1 << 14;
/// Record headers budgeted for a fragmented hello. Real clients use one
/// record; a full-size hello in more pieces than this may not fit the budget.
const MAX_RECORDS: usize = 32;

/// Most bytes the caller must ever buffer to get a verdict: a 16 KiB
/// handshake message plus the headers of [`MAX_RECORDS`] records. If the hello
/// cannot be complete within this many bytes, [`parse`] answers
/// [`HelloError::TooLarge`].
pub const MAX_HELLO_BYTES: usize = MAX_RECORD_PAYLOAD + MAX_RECORDS * RECORD_HEADER_LEN;

const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_PRE_SHARED_KEY: u16 = 41;
const EXT_SUPPORTED_VERSIONS: u16 = 43;
const EXT_KEY_SHARE: u16 = 51;

/// The fields of a ClientHello the front routes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHello {
    /// Version in the header of the first record (0x0301 from most clients).
    pub record_version: u16,
    /// `legacy_version` of the hello (0x0303 for TLS 1.2 and 1.3).
    pub legacy_version: u16,
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
    pub cipher_suites: Vec<u16>,
    pub compression_methods: Vec<u8>,
    /// host_name from server_name: ASCII, lowercased, without a trailing dot.
    pub sni: Option<String>,
    /// ALPN protocol names in the client's order of preference.
    pub alpn: Vec<Vec<u8>>,
    /// From the supported_versions extension (empty when absent).
    pub supported_versions: Vec<u16>,
    /// Named groups of the key_share entries, in order.
    pub key_share_groups: Vec<u16>,
    /// Extension types in the order the client sent them.
    pub extensions: Vec<u16>,
}

/// Outcome of [`parse`] on the bytes received so far.
// Returned once per connection and destructured at once; boxing the hello
// would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The hello ended at the end of a record; `consumed` counts the bytes of
    /// the records that carried it.
    Complete { hello: ClientHello, consumed: usize },
    /// Read more: no verdict is possible with fewer than `need_at_least` bytes
    /// in total (always more than were given).
    Incomplete { need_at_least: usize },
}

#[derive(Error, Debug, PartialEq, Eq)]
pub enum HelloError {
    /// The stream does not start with a TLS handshake record (plain HTTP,
    /// random bytes …).
    #[error("not a TLS handshake")]
    NotTls,
    /// An SSLv2-style (or SSLv2-compatible) ClientHello, which we never speak.
    #[error("SSLv2-style ClientHello")]
    SslV2,
    /// Looked like TLS but broke the grammar; the text names the field.
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
    /// The hello cannot fit within [`MAX_HELLO_BYTES`].
    #[error("ClientHello larger than {MAX_HELLO_BYTES} bytes")]
    TooLarge,
}

/// Parses the start of a connection's byte stream.
pub fn parse(buf: &[u8]) -> Result<Parsed, HelloError> {
    let Some(&first) = buf.first() else {
        return Ok(incomplete(1));
    };
    if first != HANDSHAKE_RECORD {
        return classify_non_tls(buf);
    }
    let (message, consumed, record_version) = match reassemble(buf)? {
        Reassembled::Done {
            message,
            consumed,
            record_version,
        } => (message, consumed, record_version),
        Reassembled::Need(n) if n > MAX_HELLO_BYTES => return Err(HelloError::TooLarge),
        Reassembled::Need(n) => return Ok(incomplete(n)),
    };
    let mut hello = parse_body(&message[HANDSHAKE_HEADER_LEN..])?;
    hello.record_version = record_version;
    Ok(Parsed::Complete { hello, consumed })
}

fn incomplete(need_at_least: usize) -> Parsed {
    Parsed::Incomplete { need_at_least }
}

/// Tells an SSLv2 hello (2-byte header with the top bit set, then
/// msg_type 1 and a version) from everything else that is not TLS.
fn classify_non_tls(buf: &[u8]) -> Result<Parsed, HelloError> {
    if buf[0] & 0x80 == 0 {
        return Err(HelloError::NotTls);
    }
    if buf.len() < 5 {
        if buf.len() >= 3 && buf[2] != CLIENT_HELLO {
            return Err(HelloError::NotTls);
        }
        return Ok(incomplete(5));
    }
    let version_ok = matches!((buf[3], buf[4]), (0x00, 0x02) | (0x03, _));
    if buf[2] == CLIENT_HELLO && version_ok {
        Err(HelloError::SslV2)
    } else {
        Err(HelloError::NotTls)
    }
}

enum Reassembled {
    Done {
        message: Vec<u8>,
        consumed: usize,
        record_version: u16,
    },
    /// Lower bound on the total bytes needed; may exceed the cap.
    Need(usize),
}

/// Collects the handshake message from consecutive handshake records.
///
/// The copy is bounded: every record we copy from must end within
/// `MAX_HELLO_BYTES`, and we copy at most its declared length.
fn reassemble(buf: &[u8]) -> Result<Reassembled, HelloError> {
    let mut message: Vec<u8> = Vec::new();
    let mut record_version = None;
    let mut pos = 0;
    loop {
        // Bytes of the message still missing, as far as we know yet.
        let missing = match message_len(&message)? {
            Some(total) => total - message.len(),
            None => HANDSHAKE_HEADER_LEN - message.len(),
        };
        let Some(header) = buf.get(pos..pos + RECORD_HEADER_LEN) else {
            check_header_prefix(&buf[pos..])?;
            return Ok(Reassembled::Need(pos + RECORD_HEADER_LEN + missing));
        };
        let (version, len) = check_header(header)?;
        let version = *record_version.get_or_insert(version);
        let body_start = pos + RECORD_HEADER_LEN;
        let body_end = body_start + len;
        if body_end > MAX_HELLO_BYTES {
            return Err(HelloError::TooLarge);
        }
        let before = message.len();
        message.extend_from_slice(&buf[body_start..body_end.min(buf.len())]);
        let total = message_len(&message)?;
        if let Some(total) = total {
            if before + len > total {
                return Err(HelloError::Malformed(
                    "data after ClientHello in its record",
                ));
            }
        }
        if body_end > buf.len() {
            let after = before + len;
            let still_missing = match total {
                Some(t) => t - after,
                None => HANDSHAKE_HEADER_LEN.saturating_sub(after),
            };
            let extra = if still_missing > 0 {
                RECORD_HEADER_LEN + still_missing
            } else {
                0
            };
            return Ok(Reassembled::Need(body_end + extra));
        }
        if total == Some(message.len()) {
            return Ok(Reassembled::Done {
                message,
                consumed: body_end,
                record_version: version,
            });
        }
        pos = body_end;
    }
}

/// Total length of the handshake message once its header is known; checks
/// that it is a ClientHello and not larger than a record can carry.
fn message_len(message: &[u8]) -> Result<Option<usize>, HelloError> {
    if let Some(&kind) = message.first() {
        if kind != CLIENT_HELLO {
            return Err(HelloError::Malformed(
                "first handshake message is not ClientHello",
            ));
        }
    }
    let Some(h) = message.get(..HANDSHAKE_HEADER_LEN) else {
        return Ok(None);
    };
    let body = usize::from(h[1]) << 16 | usize::from(h[2]) << 8 | usize::from(h[3]);
    let total = HANDSHAKE_HEADER_LEN + body;
    if total > MAX_RECORD_PAYLOAD {
        return Err(HelloError::TooLarge);
    }
    Ok(Some(total))
}

/// Validates a complete record header; returns (version, payload length).
fn check_header(h: &[u8]) -> Result<(u16, usize), HelloError> {
    check_header_prefix(h)?;
    let len = usize::from(u16::from_be_bytes([h[3], h[4]]));
    if len == 0 {
        // RFC 8446 §5.1 forbids zero-length handshake fragments.
        return Err(HelloError::Malformed("empty handshake record"));
    }
    if len > MAX_RECORD_PAYLOAD {
        return Err(HelloError::Malformed("record longer than 2^14 bytes"));
    }
    Ok((u16::from_be_bytes([h[1], h[2]]), len))
}

/// Checks the bytes of a (possibly partial) record header we already have,
/// so garbage after the first record fails early instead of waiting.
fn check_header_prefix(h: &[u8]) -> Result<(), HelloError> {
    if h.first().is_some_and(|&t| t != HANDSHAKE_RECORD) {
        return Err(HelloError::Malformed(
            "non-handshake record inside ClientHello",
        ));
    }
    if h.get(1).is_some_and(|&major| major != 0x03) {
        return Err(HelloError::Malformed("record version"));
    }
    Ok(())
}

/// Parses the ClientHello body (after the 4-byte handshake header).
fn parse_body(body: &[u8]) -> Result<ClientHello, HelloError> {
    let mut r = Reader::new(body);
    let legacy_version = r.u16("legacy_version")?;
    let mut random = [0u8; 32];
    random.copy_from_slice(r.take(32, "random")?);
    let session_id = r.vec8("session_id")?;
    if session_id.len() > 32 {
        return Err(HelloError::Malformed("session_id longer than 32 bytes"));
    }
    let suites = r.vec16("cipher_suites")?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(HelloError::Malformed("cipher_suites length"));
    }
    let compression = r.vec8("compression_methods")?;
    if compression.is_empty() {
        return Err(HelloError::Malformed("compression_methods empty"));
    }
    let mut hello = ClientHello {
        record_version: 0,
        legacy_version,
        random,
        session_id: session_id.to_vec(),
        cipher_suites: u16s(suites),
        compression_methods: compression.to_vec(),
        sni: None,
        alpn: Vec::new(),
        supported_versions: Vec::new(),
        key_share_groups: Vec::new(),
        extensions: Vec::new(),
    };
    // A TLS 1.2 hello may end right after compression_methods.
    if r.is_empty() {
        return Ok(hello);
    }
    let mut exts = Reader::new(r.vec16("extensions")?);
    if !r.is_empty() {
        return Err(HelloError::Malformed("data after extensions"));
    }
    while !exts.is_empty() {
        let kind = exts.u16("extension type")?;
        let data = exts.vec16("extension data")?;
        if hello.extensions.contains(&kind) {
            return Err(HelloError::Malformed("duplicate extension"));
        }
        if hello.extensions.last() == Some(&EXT_PRE_SHARED_KEY) {
            // RFC 8446 §4.2.11: pre_shared_key must be the last extension.
            return Err(HelloError::Malformed("pre_shared_key not last"));
        }
        hello.extensions.push(kind);
        match kind {
            EXT_SERVER_NAME => hello.sni = parse_sni(data)?,
            EXT_ALPN => hello.alpn = parse_alpn(data)?,
            EXT_SUPPORTED_VERSIONS => hello.supported_versions = parse_versions(data)?,
            EXT_KEY_SHARE => hello.key_share_groups = parse_key_share(data)?,
            _ => {}
        }
    }
    Ok(hello)
}

fn u16s(bytes: &[u8]) -> Vec<u16> {
    bytes
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

/// server_name (RFC 6066 §3): a list of (name_type, name); we keep host_name.
fn parse_sni(data: &[u8]) -> Result<Option<String>, HelloError> {
    let mut outer = Reader::new(data);
    let mut list = Reader::new(outer.vec16("server_name list")?);
    if !outer.is_empty() || list.is_empty() {
        return Err(HelloError::Malformed("server_name list length"));
    }
    let mut host = None;
    while !list.is_empty() {
        let name_type = list.u8("server_name type")?;
        let name = list.vec16("server_name")?;
        if name_type != 0 {
            continue; // unknown name types are skipped, as the RFC allows
        }
        if host.is_some() {
            return Err(HelloError::Malformed("two host_name entries"));
        }
        host = Some(normalize_host(name)?);
    }
    Ok(host)
}

/// Accepts an ASCII DNS name (letters, digits, '-', '_' for the real-world
/// names that have one), lowercases it and drops one trailing dot so routing
/// compares like with like.
fn normalize_host(name: &[u8]) -> Result<String, HelloError> {
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return Err(HelloError::Malformed("host_name length"));
    }
    for label in name.split(|&b| b == b'.') {
        let ok_chars = label
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if label.is_empty() || label.len() > 63 || !ok_chars {
            return Err(HelloError::Malformed("host_name is not a DNS name"));
        }
    }
    // Only ASCII passed the check above, so this cannot fail.
    let host = String::from_utf8(name.to_ascii_lowercase())
        .map_err(|_| HelloError::Malformed("host_name is not ASCII"))?;
    Ok(host)
}

/// application_layer_protocol_negotiation (RFC 7301 §3.1).
fn parse_alpn(data: &[u8]) -> Result<Vec<Vec<u8>>, HelloError> {
    let mut outer = Reader::new(data);
    let mut list = Reader::new(outer.vec16("alpn list")?);
    if !outer.is_empty() || list.is_empty() {
        return Err(HelloError::Malformed("alpn list length"));
    }
    let mut protocols = Vec::new();
    while !list.is_empty() {
        let name = list.vec8("alpn protocol")?;
        if name.is_empty() {
            return Err(HelloError::Malformed("empty alpn protocol"));
        }
        protocols.push(name.to_vec());
    }
    Ok(protocols)
}

/// supported_versions in a ClientHello (RFC 8446 §4.2.1).
fn parse_versions(data: &[u8]) -> Result<Vec<u16>, HelloError> {
    let mut r = Reader::new(data);
    let list = r.vec8("supported_versions")?;
    if !r.is_empty() || list.is_empty() || list.len() % 2 != 0 {
        return Err(HelloError::Malformed("supported_versions length"));
    }
    Ok(u16s(list))
}

/// key_share in a ClientHello (RFC 8446 §4.2.8); an empty list is legal.
fn parse_key_share(data: &[u8]) -> Result<Vec<u16>, HelloError> {
    let mut outer = Reader::new(data);
    let mut list = Reader::new(outer.vec16("key_share list")?);
    if !outer.is_empty() {
        return Err(HelloError::Malformed("key_share length"));
    }
    let mut groups = Vec::new();
    while !list.is_empty() {
        groups.push(list.u16("key_share group")?);
        if list.vec16("key_exchange")?.is_empty() {
            return Err(HelloError::Malformed("empty key_exchange"));
        }
    }
    Ok(groups)
}

/// Bounds-checked cursor; every short read is a `Malformed` naming the field.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(rest: &'a [u8]) -> Self {
        Reader { rest }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], HelloError> {
        if n > self.rest.len() {
            return Err(HelloError::Malformed(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, HelloError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, HelloError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn vec8(&mut self, what: &'static str) -> Result<&'a [u8], HelloError> {
        let n = self.u8(what)?;
        self.take(usize::from(n), what)
    }

    fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], HelloError> {
        let n = self.u16(what)?;
        self.take(usize::from(n), what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A real TLS 1.3 ClientHello as rustls writes it.
    fn rustls_hello(host: &str) -> Vec<u8> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let name = rustls::pki_types::ServerName::try_from(host.to_owned()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).unwrap();
        }
        out
    }

    /// Hand-written TLS 1.2 hello without extensions (47 bytes).
    const TLS12_BARE: [u8; 52] = [
        0x16, 0x03, 0x01, 0x00, 0x2f, // record: handshake, TLS 1.0, 47 bytes
        0x01, 0x00, 0x00, 0x2b, // ClientHello, 43 bytes
        0x03, 0x03, // legacy_version TLS 1.2
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
        0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,
        0x1e, 0x1f, // random
        0x00, // session_id: empty
        0x00, 0x04, 0xc0, 0x2f, 0x00, 0x9c, // two cipher suites
        0x01, 0x00, // compression: null
    ];

    /// Hand-written TLS 1.2 hello with SNI "Example.COM.", ALPN http/1.1 and
    /// ec_point_formats.
    const TLS12_SNI: [u8; 96] = [
        0x16, 0x03, 0x01, 0x00, 0x5b, // record, 91 bytes
        0x01, 0x00, 0x00, 0x57, // ClientHello, 87 bytes
        0x03, 0x03, // legacy_version
        0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
        0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
        0xaa, 0xaa, // random
        0x00, // session_id
        0x00, 0x04, 0xc0, 0x2f, 0x00, 0x9c, // cipher suites
        0x01, 0x00, // compression
        0x00, 0x2a, // extensions: 42 bytes
        0x00, 0x00, 0x00, 0x11, // server_name, 17 bytes
        0x00, 0x0f, 0x00, 0x00, 0x0c, b'E', b'x', b'a', b'm', b'p', b'l', b'e', b'.', b'C', b'O',
        b'M', b'.', // host_name "Example.COM."
        0x00, 0x10, 0x00, 0x0b, // ALPN, 11 bytes
        0x00, 0x09, 0x08, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1', 0x00, 0x0b, 0x00, 0x02,
        0x01, 0x00, // ec_point_formats: uncompressed
    ];

    fn complete(buf: &[u8]) -> (ClientHello, usize) {
        match parse(buf) {
            Ok(Parsed::Complete { hello, consumed }) => (hello, consumed),
            other => panic!("expected a complete hello, got {other:?}"),
        }
    }

    /// Splits the handshake message inside `single` (one record) into records
    /// of at most `size` bytes.
    fn fragment(single: &[u8], size: usize) -> Vec<u8> {
        let message = &single[RECORD_HEADER_LEN..];
        let mut out = Vec::new();
        for chunk in message.chunks(size) {
            out.extend_from_slice(&[0x16, 0x03, 0x01]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    /// Wraps a ClientHello body in a handshake header and one record.
    fn wrap(body: &[u8]) -> Vec<u8> {
        let mut message = vec![CLIENT_HELLO, 0];
        message.extend_from_slice(&(body.len() as u16).to_be_bytes());
        message.extend_from_slice(body);
        let mut out = vec![0x16, 0x03, 0x01];
        out.extend_from_slice(&(message.len() as u16).to_be_bytes());
        out.extend_from_slice(&message);
        out
    }

    /// A TLS 1.2 body carrying the given raw extension block.
    fn body_with_extensions(exts: &[u8]) -> Vec<u8> {
        let mut body = TLS12_BARE[9..].to_vec();
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(exts);
        body
    }

    fn ext(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut out = kind.to_be_bytes().to_vec();
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
        out
    }

    fn sni_ext(host: &[u8]) -> Vec<u8> {
        let mut entry = vec![0u8];
        entry.extend_from_slice(&(host.len() as u16).to_be_bytes());
        entry.extend_from_slice(host);
        let mut data = (entry.len() as u16).to_be_bytes().to_vec();
        data.extend_from_slice(&entry);
        ext(EXT_SERVER_NAME, &data)
    }

    fn parse_exts(exts: &[u8]) -> Result<Parsed, HelloError> {
        parse(&wrap(&body_with_extensions(exts)))
    }

    #[test]
    fn rustls_hello_fields() {
        let bytes = rustls_hello("Example.com");
        let (hello, consumed) = complete(&bytes);
        assert_eq!(consumed, bytes.len());
        assert_eq!(hello.record_version, 0x0301);
        assert_eq!(hello.legacy_version, 0x0303);
        assert_eq!(hello.random[..], bytes[11..43]);
        assert_eq!(
            hello.session_id.len(),
            32,
            "rustls sends a compat session id"
        );
        assert!(hello.cipher_suites.contains(&0x1301)); // TLS_AES_128_GCM_SHA256
        assert!(hello.cipher_suites.contains(&0xc02f)); // ECDHE-RSA-AES128-GCM
        assert_eq!(hello.compression_methods, vec![0]);
        assert_eq!(hello.sni.as_deref(), Some("example.com"));
        assert_eq!(hello.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert_eq!(hello.supported_versions, vec![0x0304, 0x0303]);
        assert_eq!(hello.key_share_groups.first(), Some(&0x001d)); // X25519
        for kind in [
            EXT_SERVER_NAME,
            EXT_ALPN,
            EXT_SUPPORTED_VERSIONS,
            EXT_KEY_SHARE,
        ] {
            assert!(hello.extensions.contains(&kind), "missing extension {kind}");
        }
    }

    /// A ClientHello written by OpenSSL (Python's ssl module), kept as a fuzz
    /// seed: a second, independent implementation with padding, GREASE-free
    /// TLS 1.3 and session tickets.
    #[test]
    fn openssl_hello_fields() {
        let bytes = include_bytes!("../../fuzz/seeds/client_hello/openssl_tls13.bin");
        let (hello, consumed) = complete(bytes);
        assert_eq!(consumed, bytes.len());
        assert_eq!(hello.sni.as_deref(), Some("www.example.org"));
        assert_eq!(hello.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert!(hello.supported_versions.contains(&0x0304));
        assert!(hello.key_share_groups.contains(&0x001d));
        assert!(hello.extensions.contains(&21), "OpenSSL pads to 512 bytes");
        let fragmented = include_bytes!("../../fuzz/seeds/client_hello/openssl_fragmented.bin");
        assert_eq!(complete(fragmented).0, hello);
    }

    #[test]
    fn tls12_bare_hello() {
        let (hello, consumed) = complete(&TLS12_BARE);
        assert_eq!(consumed, TLS12_BARE.len());
        assert_eq!(hello.record_version, 0x0301);
        assert_eq!(hello.legacy_version, 0x0303);
        assert_eq!(hello.random[31], 0x1f);
        assert!(hello.session_id.is_empty());
        assert_eq!(hello.cipher_suites, vec![0xc02f, 0x009c]);
        assert_eq!(hello.compression_methods, vec![0]);
        assert_eq!(hello.sni, None);
        assert!(hello.alpn.is_empty() && hello.extensions.is_empty());
        assert!(hello.supported_versions.is_empty() && hello.key_share_groups.is_empty());
    }

    #[test]
    fn tls12_hello_with_sni_is_normalised() {
        let (hello, consumed) = complete(&TLS12_SNI);
        assert_eq!(consumed, TLS12_SNI.len());
        assert_eq!(hello.random, [0xaa; 32]);
        assert_eq!(hello.sni.as_deref(), Some("example.com"));
        assert_eq!(hello.alpn, vec![b"http/1.1".to_vec()]);
        assert_eq!(hello.extensions, vec![0, 16, 11]);
    }

    #[test]
    fn trailing_bytes_after_the_record_are_not_consumed() {
        let mut bytes = TLS12_SNI.to_vec();
        bytes.extend_from_slice(&[0x14, 0x03, 0x03, 0x00, 0x01, 0x01]); // a CCS record
        let (_, consumed) = complete(&bytes);
        assert_eq!(consumed, TLS12_SNI.len());
    }

    /// Every strict prefix must ask for more, with a bound that is above the
    /// prefix and never above the real length.
    fn assert_prefixes_incomplete(bytes: &[u8]) {
        for k in 0..bytes.len() {
            match parse(&bytes[..k]) {
                Ok(Parsed::Incomplete { need_at_least }) => {
                    assert!(need_at_least > k, "prefix {k}: bound {need_at_least}");
                    assert!(need_at_least <= bytes.len(), "prefix {k}: {need_at_least}");
                }
                other => panic!("prefix {k}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_prefix_is_incomplete() {
        assert_prefixes_incomplete(&TLS12_BARE);
        assert_prefixes_incomplete(&TLS12_SNI);
        assert_prefixes_incomplete(&rustls_hello("example.com"));
    }

    #[test]
    fn fragmented_hello_matches_single_record() {
        let single = rustls_hello("cdn.example.net");
        let (expected, _) = complete(&single);
        for size in [1usize, 2, 3, 4, 5, 17, 100, 255] {
            let frags = fragment(&single, size);
            if frags.len() > MAX_HELLO_BYTES {
                assert_eq!(parse(&frags), Err(HelloError::TooLarge), "size {size}");
                continue;
            }
            let (hello, consumed) = complete(&frags);
            assert_eq!(consumed, frags.len());
            assert_eq!(hello, expected, "size {size}");
            assert_prefixes_incomplete(&frags);
        }
    }

    #[test]
    fn fragments_must_all_be_handshake_records() {
        let mut frags = fragment(&TLS12_BARE, 20);
        frags[RECORD_HEADER_LEN + 20] = 0x17; // second record claims application data
        assert!(matches!(parse(&frags), Err(HelloError::Malformed(_))));
        // Fails as soon as the bad type byte arrives.
        assert!(matches!(
            parse(&frags[..RECORD_HEADER_LEN + 21]),
            Err(HelloError::Malformed(_))
        ));
    }

    #[test]
    fn data_after_hello_in_same_record_is_malformed() {
        let mut bytes = TLS12_BARE.to_vec();
        bytes[4] += 1; // record one byte longer than the message
        bytes.push(0);
        assert!(matches!(parse(&bytes), Err(HelloError::Malformed(_))));
        // Known as soon as both lengths are visible.
        assert!(matches!(parse(&bytes[..9]), Err(HelloError::Malformed(_))));
    }

    #[test]
    fn plain_http_is_not_tls() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Err(HelloError::NotTls)
        );
        assert_eq!(parse(b"G"), Err(HelloError::NotTls));
        assert_eq!(parse(b"\x00\x00"), Err(HelloError::NotTls));
    }

    #[test]
    fn empty_input_needs_one_byte() {
        assert_eq!(parse(&[]), Ok(Parsed::Incomplete { need_at_least: 1 }));
    }

    #[test]
    fn sslv2_hello_is_recognised() {
        // SSLv2-compatible hello as old clients sent it: 2-byte header with the
        // top bit set, CLIENT-HELLO, version TLS 1.0, spec lengths …
        let v2 = [
            0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10, 0x07, 0x00, 0xc0,
        ];
        assert_eq!(parse(&v2), Err(HelloError::SslV2));
        assert_eq!(
            parse(&[0x80, 0x2e, 0x01, 0x00, 0x02]),
            Err(HelloError::SslV2)
        );
        assert_eq!(parse(&v2[..2]), Ok(Parsed::Incomplete { need_at_least: 5 }));
        assert_eq!(parse(&[0x80, 0x2e, 0x02]), Err(HelloError::NotTls));
        assert_eq!(
            parse(&[0xff, 0xff, 0x01, 0x7f, 0x00]),
            Err(HelloError::NotTls)
        );
    }

    #[test]
    fn huge_declared_lengths_are_too_large() {
        // Handshake message declaring 16 MiB.
        let bytes = [0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0xff, 0xff, 0xff];
        assert_eq!(parse(&bytes), Err(HelloError::TooLarge));
        // Record over 2^14 bytes.
        let bytes = [0x16, 0x03, 0x01, 0x40, 0x01];
        assert!(matches!(parse(&bytes), Err(HelloError::Malformed(_))));
        // A modest hello chopped so finely that the headers blow the budget.
        let frags = fragment(&wrap(&[0; 3000]), 1);
        assert_eq!(parse(&frags), Err(HelloError::TooLarge));
    }

    #[test]
    fn bad_record_headers_are_malformed() {
        assert!(matches!(
            parse(&[0x16, 0x02]),
            Err(HelloError::Malformed(_))
        ));
        let empty = [0x16, 0x03, 0x01, 0x00, 0x00];
        assert!(matches!(parse(&empty), Err(HelloError::Malformed(_))));
        let server_hello = [0x16, 0x03, 0x03, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00];
        assert!(matches!(
            parse(&server_hello),
            Err(HelloError::Malformed(_))
        ));
    }

    #[test]
    fn overrunning_inner_lengths_are_malformed() {
        let mut body = TLS12_BARE[9..].to_vec();
        body[34] = 33; // session_id longer than allowed (and than the body)
        assert!(matches!(parse(&wrap(&body)), Err(HelloError::Malformed(_))));
        let mut body = TLS12_BARE[9..].to_vec();
        body[36] = 0xff; // cipher_suites length overruns
        assert!(matches!(parse(&wrap(&body)), Err(HelloError::Malformed(_))));
        let mut body = body_with_extensions(&ext(0x1234, b"abc"));
        let last = body.len() - 1;
        body.truncate(last); // extension data shorter than declared
        assert!(matches!(parse(&wrap(&body)), Err(HelloError::Malformed(_))));
        let mut body = body_with_extensions(&[]);
        body.push(0); // stray byte after the extension block
        assert!(matches!(parse(&wrap(&body)), Err(HelloError::Malformed(_))));
    }

    #[test]
    fn duplicate_extensions_are_malformed() {
        let mut exts = ext(0x000b, &[0x01, 0x00]);
        exts.extend(ext(0x000b, &[0x01, 0x00]));
        assert_eq!(
            parse_exts(&exts),
            Err(HelloError::Malformed("duplicate extension"))
        );
    }

    #[test]
    fn pre_shared_key_must_be_last() {
        let mut exts = ext(EXT_PRE_SHARED_KEY, &[0; 4]);
        exts.extend(ext(0x000b, &[0x01, 0x00]));
        assert!(matches!(parse_exts(&exts), Err(HelloError::Malformed(_))));
        let mut exts = ext(0x000b, &[0x01, 0x00]);
        exts.extend(ext(EXT_PRE_SHARED_KEY, &[0; 4]));
        assert!(matches!(parse_exts(&exts), Ok(Parsed::Complete { .. })));
    }

    #[test]
    fn sni_validation() {
        let good: [(&[u8], &str); 4] = [
            (b"a.b", "a.b"),
            (b"WWW.Example.ORG.", "www.example.org"),
            (b"_acme.x-y.example", "_acme.x-y.example"),
            (b"localhost", "localhost"),
        ];
        for (raw, want) in good {
            let (hello, _) = complete(&wrap(&body_with_extensions(&sni_ext(raw))));
            assert_eq!(hello.sni.as_deref(), Some(want));
        }
        let long_label = [b'a'; 64];
        let long_name = [b"a.".as_slice(); 128].concat();
        let bad: [&[u8]; 9] = [
            b"",
            b".",
            b"a..b",
            b".a",
            b"a b",
            b"a\0b",
            "bücher.de".as_bytes(),
            &long_label,
            &long_name,
        ];
        for raw in bad {
            let result = parse_exts(&sni_ext(raw));
            assert!(
                matches!(result, Err(HelloError::Malformed(_))),
                "{raw:?}: {result:?}"
            );
        }
    }

    #[test]
    fn sni_list_rules() {
        // Two host_name entries.
        let data = [0, 8, 0, 0, 1, b'a', 0, 0, 1, b'b'];
        assert!(matches!(
            parse_exts(&ext(EXT_SERVER_NAME, &data)),
            Err(HelloError::Malformed(_))
        ));
        // Unknown name type only: skipped, no SNI.
        let data = [0, 4, 7, 0, 1, b'a'];
        let (hello, _) = complete(&wrap(&body_with_extensions(&ext(0, &data))));
        assert_eq!(hello.sni, None);
        // Empty list.
        assert!(matches!(
            parse_exts(&ext(EXT_SERVER_NAME, &[0, 0])),
            Err(HelloError::Malformed(_))
        ));
    }

    #[test]
    fn alpn_versions_and_key_share_rules() {
        let cases: [(u16, &[u8]); 6] = [
            (EXT_ALPN, &[0, 0]),                     // empty list
            (EXT_ALPN, &[0, 1, 0]),                  // empty protocol name
            (EXT_SUPPORTED_VERSIONS, &[0]),          // empty list
            (EXT_SUPPORTED_VERSIONS, &[3, 3, 4, 3]), // odd length
            (EXT_KEY_SHARE, &[0, 4, 0, 0x1d, 0, 0]), // empty key_exchange
            (EXT_KEY_SHARE, &[0, 3, 0, 0x1d, 0]),    // truncated entry
        ];
        for (kind, data) in cases {
            let result = parse_exts(&ext(kind, data));
            assert!(matches!(result, Err(HelloError::Malformed(_))), "{kind}");
        }
        // An empty key_share list is legal (the client waits for a retry).
        let (hello, _) = complete(&wrap(&body_with_extensions(&ext(EXT_KEY_SHARE, &[0, 0]))));
        assert!(hello.key_share_groups.is_empty());
    }

    /// Deterministic xorshift64* so failures reproduce.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn check_invariants(buf: &[u8]) {
        match parse(buf) {
            Ok(Parsed::Complete { consumed, .. }) => assert!(consumed <= buf.len()),
            Ok(Parsed::Incomplete { need_at_least }) => {
                assert!(need_at_least > buf.len() && need_at_least <= MAX_HELLO_BYTES)
            }
            Err(_) => {}
        }
    }

    #[test]
    fn random_and_mutated_inputs_never_panic() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let seeds = [
            TLS12_BARE.to_vec(),
            TLS12_SNI.to_vec(),
            rustls_hello("example.com"),
            fragment(&TLS12_SNI, 7),
        ];
        for i in 0..20_000 {
            let buf = if i % 2 == 0 {
                // Pure noise, half of it dressed as a handshake record.
                let len = rng.below(300);
                let mut buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if i % 4 == 0 && len > 2 {
                    buf[0] = 0x16;
                    buf[1] = 0x03;
                }
                buf
            } else {
                // A valid hello with a few bytes flipped and maybe truncated.
                let mut buf = seeds[rng.below(seeds.len())].clone();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(buf.len());
                    buf[at] ^= 1 << rng.below(8);
                }
                let keep = buf.len() - rng.below(buf.len() / 4 + 1);
                buf.truncate(keep);
                buf
            };
            check_invariants(&buf);
        }
    }
}
