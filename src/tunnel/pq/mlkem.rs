//! The ML-KEM-768 half of X25519MLKEM768, on RustCrypto `ml-kem`.
//!
//! Keys are always made from a 64-byte seed (d ‖ z, FIPS 203 §6.1, the same
//! form Go and Xray store), so an ephemeral key and a reusable one take the
//! same path, and the randomness comes from ring where a failure can be
//! reported to rustls instead of panicking.

use ml_kem::kem::{Decapsulate, Encapsulate, KeyExport, TryKeyInit};
use ml_kem::{DecapsulationKey, EncapsulationKey, MlKem768, Seed};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::{Error, PeerMisbehaved};

use super::layout::MLKEM768_CT_LEN;

/// Length of a decapsulation-key seed (d ‖ z).
pub const SEED_LEN: usize = 64;

/// An ML-KEM-768 decapsulation key (it also holds its encapsulation key).
pub(super) type Secret = DecapsulationKey<MlKem768>;

/// The only error rustls gets for a share that does not parse or validate:
/// the peer sent it, and rustls turns it into an `illegal_parameter` alert.
pub(super) const INVALID_SHARE: Error = Error::PeerMisbehaved(PeerMisbehaved::InvalidKeyShare);

/// Expands a seed into a key pair (deterministic: same seed, same keys).
pub(super) fn from_seed(seed: [u8; SEED_LEN]) -> Secret {
    DecapsulationKey::from_seed(Seed::from(seed))
}

/// A fresh key pair from the system RNG.
pub(super) fn generate() -> Result<Secret, Error> {
    Ok(from_seed(random_bytes()?))
}

/// The 1184-byte encoding of the public half, as sent in the client share.
pub(super) fn encapsulation_key(secret: &Secret) -> Vec<u8> {
    secret.encapsulation_key().to_bytes().to_vec()
}

/// Server side: validates the client's encapsulation key (FIPS 203 §7.2
/// modulus check, done by `new_from_slice`) and encapsulates a fresh shared
/// key to it. Returns (ciphertext, shared key).
pub(super) fn encapsulate(ek: &[u8]) -> Result<(Vec<u8>, [u8; 32]), Error> {
    let ek = EncapsulationKey::<MlKem768>::new_from_slice(ek).map_err(|_| INVALID_SHARE)?;
    // `encapsulate` draws its 32 random bytes from getrandom and would panic
    // only if the OS RNG failed; ml-kem offers no fallible variant.
    let (ct, ss) = ek.encapsulate();
    Ok((ct.to_vec(), ss.into()))
}

/// Client side: recovers the shared key from the server's ciphertext. Any
/// ciphertext of the right length yields a key (implicit rejection); a bad
/// one simply makes the handshake fail at Finished.
pub(super) fn decapsulate(secret: &Secret, ct: &[u8]) -> Result<[u8; 32], Error> {
    if ct.len() != MLKEM768_CT_LEN {
        return Err(INVALID_SHARE);
    }
    let ss = secret.decapsulate_slice(ct).map_err(|_| INVALID_SHARE)?;
    Ok(ss.into())
}

/// Random bytes from ring, failing the handshake (not the process) if the OS
/// RNG is unavailable.
pub(super) fn random_bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| Error::FailedToGetRandomBytes)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::pq::layout::MLKEM768_EK_LEN;

    fn counting_seed() -> [u8; SEED_LEN] {
        std::array::from_fn(|i| i as u8)
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Known answers computed independently with OpenSSL 4.0 (through
    /// pyca/cryptography `MLKEM768PrivateKey.from_seed_bytes(bytes(range(64)))`):
    /// SHA-256 of the encapsulation key, and the implicit-rejection key that
    /// decapsulating an all-zero ciphertext yields.
    #[test]
    fn from_seed_matches_openssl() {
        let secret = from_seed(counting_seed());
        let ek = encapsulation_key(&secret);
        assert_eq!(ek.len(), MLKEM768_EK_LEN);
        let digest = ring::digest::digest(&ring::digest::SHA256, &ek);
        assert_eq!(
            hex(digest.as_ref()),
            "0b7934c83125c788995e2ba6bd761e33046b3e40571be53e023309a29f398cc9"
        );
        let rejected = decapsulate(&secret, &[0u8; MLKEM768_CT_LEN]).unwrap();
        assert_eq!(
            hex(&rejected),
            "c8fbeddafdacef2ffeb8b354ea644f11b5c150f3e2c4a74ce38abba8f854ae16"
        );
    }

    #[test]
    fn from_seed_is_deterministic() {
        let one = encapsulation_key(&from_seed(counting_seed()));
        let two = encapsulation_key(&from_seed(counting_seed()));
        assert_eq!(one, two);
        let mut other_seed = counting_seed();
        other_seed[63] ^= 1;
        // z only drives implicit rejection, so flipping it keeps the public key.
        assert_eq!(encapsulation_key(&from_seed(other_seed)), one);
        other_seed[0] ^= 1;
        assert_ne!(encapsulation_key(&from_seed(other_seed)), one);
    }

    #[test]
    fn encapsulation_round_trips() {
        let secret = generate().unwrap();
        let (ct, sent) = encapsulate(&encapsulation_key(&secret)).unwrap();
        assert_eq!(ct.len(), MLKEM768_CT_LEN);
        assert_eq!(decapsulate(&secret, &ct).unwrap(), sent);
    }

    #[test]
    fn malformed_encapsulation_keys_are_refused() {
        let good = encapsulation_key(&generate().unwrap());
        assert_eq!(encapsulate(&good[1..]).unwrap_err(), INVALID_SHARE);
        // Every coefficient 0xFFF is ≥ q = 3329, which the modulus check rejects.
        assert_eq!(
            encapsulate(&[0xff; MLKEM768_EK_LEN]).unwrap_err(),
            INVALID_SHARE
        );
    }

    #[test]
    fn short_ciphertexts_are_refused() {
        let secret = generate().unwrap();
        assert_eq!(
            decapsulate(&secret, &[0; MLKEM768_CT_LEN - 1]).unwrap_err(),
            INVALID_SHARE
        );
    }
}
