//! Certificates and the rustls server configuration of the front.
//!
//! A [`CertSet`] is loaded once (at start and on SIGHUP) and shared by every
//! shard as an `Arc`; each shard builds its own `ServerConfig` from it so the
//! session cache is per shard (no cross-core lock per handshake).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// Why certificates could not be loaded. Operator-facing: names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)")]
    NoKey { path: PathBuf },
    #[error("{path}: {message}")]
    BadPem { path: PathBuf, message: String },
    #[error("key {key} does not fit certificate {cert}: {source}")]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("generating the self-signed dev certificate failed: {0}")]
    SelfSigned(String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("no certificate configured")]
    Empty,
}

/// The crypto provider used by the front: ring, as the architecture guide chose.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM chain and its private key into a rustls `CertifiedKey`.
pub fn load_pem_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsSetupError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsSetupError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsSetupError::BadPem {
            path: cert.to_path_buf(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            path: cert.to_path_buf(),
        });
    }
    let key_der = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| TlsSetupError::BadPem {
            path: key.to_path_buf(),
            message: e.to_string(),
        })?
        .ok_or_else(|| TlsSetupError::NoKey {
            path: key.to_path_buf(),
        })?;
    CertifiedKey::from_der(chain, key_der, &provider()).map_err(|source| {
        TlsSetupError::KeyMismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            source,
        }
    })
}

/// A self-signed ECDSA P-256 certificate for the dev node, with its PEM text
/// (the PEM is for tests and `curl --cacert`; the key never leaves memory).
pub fn self_signed(names: &[String]) -> Result<(CertifiedKey, String), TlsSetupError> {
    let generated = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsSetupError::SelfSigned(e.to_string()))?;
    let cert_pem = generated.cert.pem();
    let key_der = PrivateKeyDer::try_from(generated.signing_key.serialize_der())
        .map_err(|e| TlsSetupError::SelfSigned(e.to_string()))?;
    let ck = CertifiedKey::from_der(vec![generated.cert.der().clone()], key_der, &provider())?;
    Ok((ck, cert_pem))
}

/// Certificates by server name, plus the default for no or unknown SNI.
#[derive(Debug)]
pub struct CertSet {
    default: Arc<CertifiedKey>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl CertSet {
    /// `entries` in configuration order; the first is the default certificate.
    pub fn new(entries: Vec<(Vec<String>, CertifiedKey)>) -> Result<Self, TlsSetupError> {
        let mut by_name = HashMap::new();
        let mut default = None;
        for (names, ck) in entries {
            let ck = Arc::new(ck);
            default.get_or_insert_with(|| ck.clone());
            for n in names {
                by_name
                    .entry(n.to_ascii_lowercase())
                    .or_insert_with(|| ck.clone());
            }
        }
        Ok(Self {
            default: default.ok_or(TlsSetupError::Empty)?,
            by_name,
        })
    }

    /// Exact name first, then a `*.parent` wildcard entry, then the default.
    pub fn pick(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        if let Some(name) = sni {
            if let Some(ck) = self.by_name.get(name) {
                return ck.clone();
            }
            if let Some((_, parent)) = name.split_once('.') {
                if let Some(ck) = self.by_name.get(&format!("*.{parent}")) {
                    return ck.clone();
                }
            }
        }
        self.default.clone()
    }
}

impl ResolvesServerCert for CertSet {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()))
    }
}

/// ALPN protocols accepted by the front, most preferred first. nginx also
/// accepts http/1.0 (and refuses a hello offering none of its protocols), so we do too.
pub const ALPN: [&[u8]; 3] = [b"h2", b"http/1.1", b"http/1.0"];

/// Builds one shard's server configuration: TLS 1.3 and 1.2, h2 and http/1.1.
pub fn server_config(
    certs: Arc<CertSet>,
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    cfg.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    cfg.ticketer = ticketer;
    cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    Ok(Arc::new(cfg))
}

/// One ticket-key rotator shared by all shards, so a resumed session may land on any shard.
pub fn ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, TlsSetupError> {
    Ok(rustls::crypto::ring::Ticketer::new()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn picks_exact_wildcard_and_default() {
        let (a, _) = self_signed(&names(&["a.example"])).unwrap();
        let (b, _) = self_signed(&names(&["*.b.example"])).unwrap();
        let a_der = a.cert[0].clone();
        let b_der = b.cert[0].clone();
        let set = CertSet::new(vec![
            (names(&["a.example"]), a),
            (names(&["*.b.example"]), b),
        ])
        .unwrap();
        assert_eq!(set.pick(Some("a.example")).cert[0], a_der);
        assert_eq!(set.pick(Some("x.b.example")).cert[0], b_der);
        assert_eq!(set.pick(Some("unknown.example")).cert[0], a_der);
        assert_eq!(set.pick(None).cert[0], a_der);
    }

    #[test]
    fn pem_round_trip_and_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let one = rcgen::generate_simple_self_signed(names(&["one.example"])).unwrap();
        let two = rcgen::generate_simple_self_signed(names(&["two.example"])).unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let other_key = dir.path().join("other.pem");
        std::fs::write(&cert, one.cert.pem()).unwrap();
        std::fs::write(&key, one.signing_key.serialize_pem()).unwrap();
        std::fs::write(&other_key, two.signing_key.serialize_pem()).unwrap();
        load_pem_pair(&cert, &key).unwrap();
        let err = load_pem_pair(&cert, &other_key).unwrap_err();
        assert!(matches!(err, TlsSetupError::KeyMismatch { .. }), "{err}");
        let err = load_pem_pair(&key, &key).unwrap_err();
        assert!(matches!(err, TlsSetupError::NoCertificate { .. }), "{err}");
        let err = load_pem_pair(&dir.path().join("missing"), &key).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn loads_rsa_pairs_too() {
        // Fixture made with `openssl req -x509 -newkey rsa:2048` (rcgen cannot make RSA keys on ring).
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let ck = load_pem_pair(&dir.join("rsa.crt"), &dir.join("rsa.key")).unwrap();
        assert_eq!(ck.key.algorithm(), rustls::SignatureAlgorithm::RSA);
        ck.keys_match().unwrap();
    }

    #[test]
    fn config_offers_h2_and_both_versions() {
        let (ck, _) = self_signed(&names(&["localhost"])).unwrap();
        let set = Arc::new(CertSet::new(vec![(names(&["localhost"]), ck)]).unwrap());
        let cfg = server_config(set, ticketer().unwrap()).unwrap();
        assert_eq!(cfg.alpn_protocols[0], b"h2");
    }
}
