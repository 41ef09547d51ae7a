//! TLS client configuration shared by every job.
//!
//! The benchmark machines are offline, so there are no system or webpki roots
//! to fall back on: the caller must either name the CA (or self-signed
//! certificate) to trust, or explicitly opt out of verification.
//!
//! Session resumption is always disabled. Every connection then pays for a
//! full handshake, which is what "handshakes per second" is meant to measure
//! and keeps keep-alive and new-connection runs comparable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

mod insecure;
mod pinned;

use anyhow::{bail, Context as _};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::Resumption;
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use rustls::ClientConfig;

use insecure::AcceptAnyCert;
use pinned::PinnedOrChained;

/// How the server certificate is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// Accept any certificate (dev node self-signed certs, benchmark certs).
    Insecure,
    /// Trust the certificates in this PEM file: as CAs the server's chain
    /// must lead to, or as the exact server certificate (pinned).
    CaFile(PathBuf),
}

impl Trust {
    /// Picks the trust mode from the CLI flags, refusing to guess when neither
    /// is given.
    pub fn from_flags(insecure: bool, ca: Option<&Path>) -> anyhow::Result<Self> {
        match (insecure, ca) {
            (true, Some(_)) => bail!("--insecure and --ca are mutually exclusive"),
            (true, None) => Ok(Trust::Insecure),
            (false, Some(path)) => Ok(Trust::CaFile(path.to_path_buf())),
            (false, None) => bail!(
                "no way to verify the server certificate: there are no built-in root \
                 certificates offline, so pass --ca FILE (PEM CA or self-signed certificate \
                 to trust) or --insecure (accept any certificate)"
            ),
        }
    }
}

/// Builds a client config on the `ring` provider that offers exactly the given
/// ALPN protocols (most preferred first).
pub fn client_config(trust: &Trust, alpn: &[&[u8]]) -> anyhow::Result<Arc<ClientConfig>> {
    let provider = Arc::new(ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        Trust::Insecure => Arc::new(AcceptAnyCert::new(&provider)),
        Trust::CaFile(path) => Arc::new(PinnedOrChained::new(
            load_certs(path)?,
            Arc::clone(&provider),
        )?),
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("ring provider rejected the default TLS versions")?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading CA file {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing PEM in {}", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_needs_an_explicit_choice() {
        let err = Trust::from_flags(false, None).unwrap_err().to_string();
        assert!(err.contains("--ca") && err.contains("--insecure"), "{err}");
        assert!(Trust::from_flags(true, Some(Path::new("x"))).is_err());
        assert_eq!(Trust::from_flags(true, None).unwrap(), Trust::Insecure);
        assert_eq!(
            Trust::from_flags(false, Some(Path::new("ca.pem"))).unwrap(),
            Trust::CaFile(PathBuf::from("ca.pem"))
        );
    }

    #[test]
    fn insecure_config_offers_the_requested_alpn() {
        let cfg = client_config(&Trust::Insecure, &[b"h2"]).unwrap();
        assert_eq!(cfg.alpn_protocols, vec![b"h2".to_vec()]);
    }

    #[test]
    fn missing_or_empty_ca_file_is_an_error() {
        let missing = Trust::CaFile(PathBuf::from("/nonexistent/loadgen-ca.pem"));
        assert!(client_config(&missing, &[]).is_err());
        let dir = std::env::temp_dir().join(format!("loadgen-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = client_config(&Trust::CaFile(empty), &[]).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
