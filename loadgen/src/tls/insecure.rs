//! The `--insecure` certificate verifier.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Verifier for `--insecure`: accepts any certificate chain *and* skips the
/// handshake signature check.
///
/// Skipping the signature check is deliberate: ECDSA verification costs the
/// client more than signing costs the server, so checking it would make the
/// generator, pinned to one core, the bottleneck of a handshake benchmark.
/// `--insecure` is only for talking to our own test servers.
#[derive(Debug)]
pub(super) struct AcceptAnyCert {
    schemes: Vec<SignatureScheme>,
}

impl AcceptAnyCert {
    pub(super) fn new(provider: &CryptoProvider) -> Self {
        // Advertise what the provider could verify so the server picks a
        // scheme a real client would accept too.
        Self {
            schemes: provider
                .signature_verification_algorithms
                .supported_schemes(),
        }
    }
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}
