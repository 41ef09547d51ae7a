//! The Ed25519 key behind the temporary certificate, as a rustls
//! `SigningKey`, so that a stock rustls `ServerConnection` can run the REALITY
//! server handshake.
//!
//! Chrome-like ClientHellos (Xray's uTLS "chrome") do not offer Ed25519
//! (0x0807), yet Xray's server signs CertificateVerify with it and those
//! clients accept it. So `choose_scheme` ignores `offered`: rustls would
//! otherwise find no common scheme and abort the handshake.

use std::sync::Arc;

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use rustls::pki_types::{CertificateDer, SubjectPublicKeyInfoDer};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};

use super::cert::temp_cert_der;

/// DER header of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the key.
const SPKI_HEADER: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// One Ed25519 key per process, as Xray generates it.
#[derive(Debug, Clone)]
pub struct Ed25519SigningKey {
    pair: Arc<Ed25519KeyPair>,
    public: [u8; 32],
}

impl Ed25519SigningKey {
    /// A fresh key from the system's CSPRNG.
    pub fn generate() -> Result<Self, ring::error::Unspecified> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    /// A key from a PKCS#8 v1/v2 document (as `generate` makes them).
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, ring::error::Unspecified> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|_| ring::error::Unspecified)?;
        let public = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| ring::error::Unspecified)?;
        Ok(Ed25519SigningKey {
            pair: Arc::new(pair),
            public,
        })
    }

    /// The raw 32-byte public key that goes into the temporary certificate.
    pub fn raw_public_key(&self) -> [u8; 32] {
        self.public
    }

    /// What a per-connection `ResolvesServerCert` hands rustls (e.g. through
    /// `rustls::sign::SingleCertAndKey`): the temporary certificate keyed
    /// by this connection's `auth_key`, signed for with this key.
    pub fn temp_certified_key(&self, auth_key: &[u8; 32]) -> CertifiedKey {
        let der = temp_cert_der(&self.public, auth_key);
        CertifiedKey::new(vec![CertificateDer::from(der)], Arc::new(self.clone()))
    }
}

impl SigningKey for Ed25519SigningKey {
    fn choose_scheme(&self, _offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        Some(Box::new(Ed25519Signer(Arc::clone(&self.pair))))
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        let mut spki = SPKI_HEADER.to_vec();
        spki.extend_from_slice(&self.public);
        Some(SubjectPublicKeyInfoDer::from(spki))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ED25519
    }
}

#[derive(Debug)]
struct Ed25519Signer(Arc<Ed25519KeyPair>);

impl Signer for Ed25519Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        Ok(self.0.sign(message).as_ref().to_vec())
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::reality::cert::{temp_cert_public_key, verify_temp_cert};
    use ring::signature::{UnparsedPublicKey, ED25519};

    #[test]
    fn signs_ed25519_whatever_the_client_offered() {
        let key = Ed25519SigningKey::generate().unwrap();
        for offered in [
            &[][..],
            &[
                SignatureScheme::ECDSA_NISTP256_SHA256,
                SignatureScheme::RSA_PSS_SHA256,
            ][..],
        ] {
            let signer = key.choose_scheme(offered).expect("always a signer");
            assert_eq!(signer.scheme(), SignatureScheme::ED25519);
            let sig = signer.sign(b"transcript").unwrap();
            UnparsedPublicKey::new(&ED25519, key.raw_public_key())
                .verify(b"transcript", &sig)
                .expect("valid Ed25519 signature");
        }
        assert_eq!(key.algorithm(), SignatureAlgorithm::ED25519);
    }

    #[test]
    fn spki_matches_the_certificate() {
        let key = Ed25519SigningKey::generate().unwrap();
        let spki = key.public_key().unwrap();
        assert_eq!(spki.as_ref()[..12], SPKI_HEADER);
        assert_eq!(spki.as_ref()[12..], key.raw_public_key());
        let auth_key = [3u8; 32];
        let certified = key.temp_certified_key(&auth_key);
        let der = certified.cert[0].as_ref();
        assert!(verify_temp_cert(der, &auth_key));
        assert_eq!(temp_cert_public_key(der), Some(key.raw_public_key()));
        // rustls' own consistency check parses the certificate's SPKI.
        certified.keys_match().expect("certificate and key agree");
    }

    #[test]
    fn pkcs8_round_trip_and_garbage() {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let a = Ed25519SigningKey::from_pkcs8(doc.as_ref()).unwrap();
        let b = Ed25519SigningKey::from_pkcs8(doc.as_ref()).unwrap();
        assert_eq!(a.raw_public_key(), b.raw_public_key());
        assert!(Ed25519SigningKey::from_pkcs8(b"not a key").is_err());
    }
}
