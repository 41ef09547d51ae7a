//! REALITY's temporary certificate (TUNNEL.md §2): the 178-byte self-signed
//! Ed25519 certificate Xray 24.11.21 servers send, whose "signature" is not a
//! signature but HMAC-SHA512(auth_key, public key). A client that finds the
//! HMAC knows it reached the REALITY server and not the cover site `dest`.
//!
//! The bytes are a fixed template: only the public key (once per process)
//! and the HMAC (once per connection) change, so building and checking need
//! no X.509 library.

use ring::hmac;

/// DER length of the whole certificate.
pub const TEMP_CERT_LEN: usize = 178;

/// Everything before the public key: SEQUENCE headers, v3, serial 0,
/// signature algorithm Ed25519, empty issuer, validity 0001-01-01 … 0001-01-01
/// (expired on purpose, as Go writes it), empty subject, Ed25519 SPKI header.
const PREFIX: [u8; 72] = [
    0x30, 0x81, 0xaf, 0x30, 0x63, 0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
    0x03, 0x2b, 0x65, 0x70, 0x30, 0x00, 0x30, 0x22, 0x18, 0x0f, 0x30, 0x30, 0x30, 0x31, 0x30, 0x31,
    0x30, 0x31, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x5a, 0x18, 0x0f, 0x30, 0x30, 0x30, 0x31, 0x30,
    0x31, 0x30, 0x31, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x5a, 0x30, 0x00, 0x30, 0x2a, 0x30, 0x05,
    0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// signatureAlgorithm Ed25519, then the BIT STRING header of a 64-byte value.
const SIGNATURE_HEADER: [u8; 10] = [0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x41, 0x00];

const KEY_AT: usize = PREFIX.len();
const HEADER_AT: usize = KEY_AT + 32;
const SIGNATURE_AT: usize = HEADER_AT + SIGNATURE_HEADER.len();

fn cert_hmac(auth_key: &[u8; 32]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA512, auth_key)
}

/// The certificate for one connection.
pub fn temp_cert_der(ed25519_pub: &[u8; 32], auth_key: &[u8; 32]) -> Vec<u8> {
    let mut der = Vec::with_capacity(TEMP_CERT_LEN);
    der.extend_from_slice(&PREFIX);
    der.extend_from_slice(ed25519_pub);
    der.extend_from_slice(&SIGNATURE_HEADER);
    der.extend_from_slice(hmac::sign(&cert_hmac(auth_key), ed25519_pub).as_ref());
    der
}

/// The Ed25519 public key of a certificate shaped like the template.
pub fn temp_cert_public_key(der: &[u8]) -> Option<[u8; 32]> {
    if der.len() != TEMP_CERT_LEN
        || der[..KEY_AT] != PREFIX
        || der[HEADER_AT..SIGNATURE_AT] != SIGNATURE_HEADER
    {
        return None;
    }
    der[KEY_AT..HEADER_AT].try_into().ok()
}

/// Client step 6: is this the server's temporary certificate for `auth_key`?
/// The HMAC comparison is constant-time.
pub fn verify_temp_cert(der: &[u8], auth_key: &[u8; 32]) -> bool {
    let Some(key) = temp_cert_public_key(der) else {
        return false;
    };
    hmac::verify(&cert_hmac(auth_key), &key, &der[SIGNATURE_AT..]).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUB: [u8; 32] = [0xab; 32];
    const KEY: [u8; 32] = [0x17; 32];

    #[test]
    fn layout() {
        let der = temp_cert_der(&PUB, &KEY);
        assert_eq!(der.len(), TEMP_CERT_LEN);
        // Outer SEQUENCE length covers the rest.
        assert_eq!(usize::from(der[2]) + 3, TEMP_CERT_LEN);
        let prefix_hex: String = der[..KEY_AT].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            prefix_hex,
            "3081af3063a003020102020100300506032b657030003022180f303030313031303130303030\
             30305a180f30303031303130313030303030305a3000302a300506032b6570032100"
        );
        assert_eq!(der[KEY_AT..HEADER_AT], PUB);
        assert_eq!(der[HEADER_AT..SIGNATURE_AT], SIGNATURE_HEADER);
        let mac = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA512, &KEY), &PUB);
        assert_eq!(der[SIGNATURE_AT..], *mac.as_ref());
        assert_eq!(temp_cert_public_key(&der), Some(PUB));
    }

    #[test]
    fn only_the_hmac_changes_per_connection() {
        let a = temp_cert_der(&PUB, &KEY);
        let b = temp_cert_der(&PUB, &[0x18; 32]);
        assert_eq!(a[..SIGNATURE_AT], b[..SIGNATURE_AT]);
        assert_ne!(a[SIGNATURE_AT..], b[SIGNATURE_AT..]);
    }

    #[test]
    fn verify_accepts_only_the_right_key_and_bytes() {
        let der = temp_cert_der(&PUB, &KEY);
        assert!(verify_temp_cert(&der, &KEY));
        assert!(!verify_temp_cert(&der, &[0x18; 32]));
        for at in 0..der.len() {
            let mut flipped = der.clone();
            flipped[at] ^= 0x01;
            assert!(!verify_temp_cert(&flipped, &KEY), "byte {at} flipped");
        }
        assert!(!verify_temp_cert(&der[..TEMP_CERT_LEN - 1], &KEY));
        let mut longer = der.clone();
        longer.push(0);
        assert!(!verify_temp_cert(&longer, &KEY));
        assert!(!verify_temp_cert(&[], &KEY));
    }
}
