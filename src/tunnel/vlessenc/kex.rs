//! The key exchanges both sides share: X25519 with Go's all-zero check, and
//! ML-KEM-768 from a 64-byte seed, with secrets zeroized.

use ml_kem::kem::{Decapsulate, Encapsulate, KeyExport, TryKeyInit};
use ml_kem::{DecapsulationKey, EncapsulationKey, MlKem768, Seed};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use super::keys::{MLKEM_CT_LEN, MLKEM_EK_LEN};
use super::{random, Error};

/// A fresh X25519 secret and its public key.
pub fn x25519_ephemeral() -> Result<(StaticSecret, [u8; 32]), Error> {
    let mut k = random::array::<32>()?;
    let secret = StaticSecret::from(k);
    k.zeroize();
    let public = PublicKey::from(&secret).to_bytes();
    Ok((secret, public))
}

/// X25519; fails like Go's `ecdh` when the result is all zeros (a
/// low-order peer point).
pub fn x25519(secret: &StaticSecret, peer: [u8; 32]) -> Result<Zeroizing<[u8; 32]>, Error> {
    let shared = secret.diffie_hellman(&PublicKey::from(peer));
    if !shared.was_contributory() {
        return Err(Error::Handshake("X25519 peer key is a low-order point"));
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

/// A fresh ML-KEM-768 key pair; returns the key and its 1184-byte ek.
pub fn mlkem_generate() -> Result<(DecapsulationKey<MlKem768>, Vec<u8>), Error> {
    let mut seed = random::array::<64>()?;
    let dk = DecapsulationKey::<MlKem768>::from_seed(Seed::from(seed));
    seed.zeroize();
    let ek = dk.encapsulation_key().to_bytes().to_vec();
    debug_assert_eq!(ek.len(), MLKEM_EK_LEN);
    Ok((dk, ek))
}

/// Encapsulates to a validated key: (ciphertext, shared key).
pub fn mlkem_encapsulate(ek: &EncapsulationKey<MlKem768>) -> (Vec<u8>, Zeroizing<[u8; 32]>) {
    // `encapsulate` draws from getrandom and panics only if the OS RNG is
    // gone; ml-kem 0.3 has no fallible variant.
    let (ct, ss) = ek.encapsulate();
    (ct.to_vec(), Zeroizing::new(ss.into()))
}

/// Validates (FIPS 203 §7.2) and encapsulates to a peer's ek.
pub fn mlkem_encapsulate_to(ek: &[u8]) -> Result<(Vec<u8>, Zeroizing<[u8; 32]>), Error> {
    let ek = EncapsulationKey::<MlKem768>::new_from_slice(ek)
        .map_err(|_| Error::Handshake("ML-KEM-768 encapsulation key does not validate"))?;
    Ok(mlkem_encapsulate(&ek))
}

/// Decapsulates a 1088-byte ciphertext (implicit rejection: a wrong one
/// yields a wrong key, caught by the next AEAD open).
pub fn mlkem_decapsulate(
    dk: &DecapsulationKey<MlKem768>,
    ct: &[u8],
) -> Result<Zeroizing<[u8; 32]>, Error> {
    if ct.len() != MLKEM_CT_LEN {
        return Err(Error::Handshake(
            "ML-KEM-768 ciphertext has the wrong length",
        ));
    }
    let ss = dk
        .decapsulate_slice(ct)
        .map_err(|_| Error::Handshake("ML-KEM-768 ciphertext has the wrong length"))?;
    Ok(Zeroizing::new(ss.into()))
}

/// pfsKey = ML-KEM shared key ‖ X25519 shared key.
pub fn pfs_key(mlkem: &[u8; 32], x25519: &[u8; 32]) -> Zeroizing<[u8; 64]> {
    let mut k = Zeroizing::new([0u8; 64]);
    k[..32].copy_from_slice(mlkem);
    k[32..].copy_from_slice(x25519);
    k
}
