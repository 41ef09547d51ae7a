//! Client step 6 for a rustls `ClientConnection`: accept exactly the REALITY
//! server's temporary certificate for this connection's `auth_key`.
//!
//! The certificate is expired and self-signed by design, so WebPKI path
//! validation must be bypassed; what authenticates the server is the HMAC
//! keyed by the ECDH secret only the holder of the server's static key can
//! compute. CertificateVerify is still checked with the certificate's key.

use std::fmt;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};

use super::cert::verify_temp_cert;

/// One connection's verifier (the auth key is per connection, so is the
/// `ClientConfig` holding this).
pub struct TempCertVerifier {
    auth_key: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl TempCertVerifier {
    pub fn new(auth_key: [u8; 32]) -> Self {
        TempCertVerifier {
            auth_key,
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }
}

impl fmt::Debug for TempCertVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TempCertVerifier")
            .field("auth_key", &"<redacted>")
            .finish()
    }
}

impl ServerCertVerifier for TempCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if verify_temp_cert(end_entity.as_ref(), &self.auth_key) {
            Ok(ServerCertVerified::assertion())
        } else {
            // A real certificate: we reached `dest`, not the REALITY server.
            Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Err(Error::General("REALITY runs over TLS 1.3 only".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::reality::cert::temp_cert_der;

    fn check(verifier: &TempCertVerifier, der: Vec<u8>) -> Result<ServerCertVerified, Error> {
        let name = ServerName::try_from("example.com").unwrap();
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_760_000_000));
        verifier.verify_server_cert(&CertificateDer::from(der), &[], &name, &[], now)
    }

    #[test]
    fn accepts_the_expired_temp_cert_and_nothing_else() {
        let verifier = TempCertVerifier::new([5; 32]);
        assert!(check(&verifier, temp_cert_der(&[1; 32], &[5; 32])).is_ok());
        assert_eq!(
            check(&verifier, temp_cert_der(&[1; 32], &[6; 32])).unwrap_err(),
            Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
        );
        assert!(check(&verifier, b"a real certificate".to_vec()).is_err());
    }

    #[test]
    fn offers_ed25519_and_hides_the_key() {
        let verifier = TempCertVerifier::new([5; 32]);
        assert!(verifier
            .supported_verify_schemes()
            .contains(&SignatureScheme::ED25519));
        assert!(!format!("{verifier:?}").contains("5, 5"));
    }
}
