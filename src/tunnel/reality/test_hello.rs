//! ClientHello builders shared by the REALITY tests: real ones from rustls and
//! hand-made ones for shapes rustls/ring cannot produce (hybrid-only shares,
//! TLS 1.2 only, short session ids).

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use x25519_dalek::StaticSecret;

use super::auth::{auth_key, client_shared, seal_session_id, AuthBlock};
use super::hello::{Extracted, RealityHello, RECORD_SESSION_ID_OFFSET, SESSION_ID_LEN};

/// A ClientHello (as TLS records) written by rustls with `provider`.
pub fn rustls_hello_with(provider: CryptoProvider, host: &str) -> Vec<u8> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("the provider supports TLS 1.3")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).expect("DNS name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write to a Vec");
    }
    out
}

/// A ClientHello written by rustls with the stock ring provider.
pub fn rustls_hello(host: &str) -> Vec<u8> {
    rustls_hello_with(rustls::crypto::ring::default_provider(), host)
}

/// REALITY client steps 1–5 on a one-record hello whose X25519 share
/// belongs to `client`: zero the session_id, seal `block` over the zeroed
/// message, write the result in place.
pub fn client_seal(
    records: &mut [u8],
    client: &StaticSecret,
    server_pub: &[u8; 32],
    block: &AuthBlock,
) {
    let sid = RECORD_SESSION_ID_OFFSET..RECORD_SESSION_ID_OFFSET + SESSION_ID_LEN;
    records[sid.clone()].fill(0);
    let hello = match RealityHello::from_records(records) {
        Ok(Extracted::Complete { hello, .. }) => hello,
        other => panic!("not a complete hello: {other:?}"),
    };
    let shared = client_shared(client, server_pub).expect("contributory server key");
    let key = auth_key(&shared, hello.random());
    let sealed = seal_session_id(&key, hello.random(), &block.to_plaintext(), &hello.message);
    records[sid].copy_from_slice(&sealed);
}

/// Re-splits the handshake message of a one-record hello into records of at
/// most `size` bytes.
pub fn fragment(single: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in single[5..].chunks(size) {
        out.extend_from_slice(&[0x16, 0x03, 0x01]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// The knobs of [`synthetic_hello`].
pub struct HelloSpec {
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
    pub sni: Option<&'static str>,
    /// Empty: no supported_versions extension (a TLS 1.2-only client).
    pub versions: Vec<u16>,
    pub shares: Vec<(u16, Vec<u8>)>,
}

impl Default for HelloSpec {
    fn default() -> Self {
        HelloSpec {
            random: [0x42; 32],
            session_id: vec![0; 32],
            sni: Some("example.com"),
            versions: vec![0x0304],
            shares: vec![(0x001d, vec![0x11; 32])],
        }
    }
}

fn vec16(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn ext(kind: u16, data: &[u8]) -> Vec<u8> {
    let mut out = kind.to_be_bytes().to_vec();
    out.extend(vec16(data));
    out
}

/// A one-record TLS 1.3-style ClientHello built from `spec`.
pub fn synthetic_hello(spec: &HelloSpec) -> Vec<u8> {
    let mut exts = Vec::new();
    if let Some(host) = spec.sni {
        let mut entry = vec![0u8];
        entry.extend(vec16(host.as_bytes()));
        exts.extend(ext(0, &vec16(&entry)));
    }
    if !spec.versions.is_empty() {
        let list: Vec<u8> = spec.versions.iter().flat_map(|v| v.to_be_bytes()).collect();
        let mut data = vec![list.len() as u8];
        data.extend(list);
        exts.extend(ext(43, &data));
    }
    let mut shares = Vec::new();
    for (group, value) in &spec.shares {
        shares.extend(group.to_be_bytes());
        shares.extend(vec16(value));
    }
    exts.extend(ext(51, &vec16(&shares)));

    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&spec.random);
    body.push(spec.session_id.len() as u8);
    body.extend_from_slice(&spec.session_id);
    body.extend(vec16(&[0x13, 0x01, 0x13, 0x02, 0x13, 0x03]));
    body.extend_from_slice(&[0x01, 0x00]);
    body.extend(vec16(&exts));

    let mut message = vec![0x01, 0x00];
    message.extend_from_slice(&(body.len() as u16).to_be_bytes());
    message.extend(body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend(vec16(&message));
    record
}

/// Deterministic xorshift64* so failures reproduce.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
