//! Key shares that come out the same every time, for the REALITY client.
//!
//! The REALITY client builds its ClientHello twice: once with a zero
//! session_id to learn the exact bytes, then again with the sealed session_id
//! (TUNNEL.md §5). Both hellos must carry the same key shares, but rustls
//! calls `SupportedKxGroup::start()` afresh for each connection and ring's
//! X25519 keys are single-use and cannot be exported. So these groups keep
//! their keys in [`ReusableKeys`] (x25519-dalek `StaticSecret`, ML-KEM from a
//! seed) and hand out the same share on every `start()`. The same X25519 key
//! also feeds the REALITY authentication ECDH ([`ReusableKeys::x25519_shared`]).
//!
//! Use one `ReusableKeys` per connection attempt: a share seen twice on the
//! wire would link the two connections and forfeit forward secrecy.
//!
//! rustls wants `&'static dyn SupportedKxGroup` in `CryptoProvider::kx_groups`,
//! so the owned groups made here must be reached through something static
//! (for example a per-thread slot read by a static group that forwards to
//! them), or leaked.

use std::fmt;
use std::sync::Arc;

use rustls::crypto::ring::kx_group;
use rustls::crypto::{ActiveKeyExchange, CompletedKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::ffdhe_groups::FfdheGroup;
use rustls::{Error, NamedGroup, ProtocolVersion};
use x25519_dalek::{PublicKey, StaticSecret};

use super::hybrid::{server_complete, HybridKx};
use super::layout::{join, X25519_LEN};
use super::mlkem::{self, INVALID_SHARE, SEED_LEN};

/// An X25519 key and an ML-KEM-768 key that outlive one `start()`.
#[derive(Clone)]
pub struct ReusableKeys {
    x25519: StaticSecret,
    x25519_public: PublicKey,
    /// Shared, not copied: expanding the seed costs far more than the
    /// X25519 key, and the secret is needed by every `start()`.
    mlkem: Arc<mlkem::Secret>,
}

impl ReusableKeys {
    /// Fresh keys from the system RNG.
    pub fn generate() -> Result<Self, Error> {
        Ok(Self::from_bytes(
            mlkem::random_bytes()?,
            mlkem::random_bytes()?,
        ))
    }

    /// Keys from an X25519 secret and an ML-KEM-768 seed (d ‖ z, 64 bytes,
    /// the form Go's `mlkem.NewDecapsulationKey768` takes).
    pub fn from_bytes(x25519_secret: [u8; 32], mlkem_seed: [u8; SEED_LEN]) -> Self {
        let x25519 = StaticSecret::from(x25519_secret);
        Self {
            x25519_public: PublicKey::from(&x25519),
            x25519,
            mlkem: Arc::new(mlkem::from_seed(mlkem_seed)),
        }
    }

    /// The X25519 public key, as sent in the 0x001D share and as the tail
    /// of the 0x11EC share.
    pub fn x25519_public(&self) -> [u8; X25519_LEN] {
        self.x25519_public.to_bytes()
    }

    /// The 1216-byte 0x11EC share (encapsulation key ‖ X25519 public key).
    pub fn hybrid_share(&self) -> Vec<u8> {
        join(
            &mlkem::encapsulation_key(&self.mlkem),
            self.x25519_public.as_bytes(),
        )
    }

    /// X25519 with this key, for the REALITY auth key. `None` if the peer's
    /// key is of small order (the result would be all zeros, known to anyone).
    pub fn x25519_shared(&self, peer_public: &[u8; X25519_LEN]) -> Option<[u8; X25519_LEN]> {
        let shared = self.x25519.diffie_hellman(&PublicKey::from(*peer_public));
        shared.was_contributory().then(|| shared.to_bytes())
    }

    /// A plain X25519 (0x001D) group whose `start()` always yields this key.
    pub fn x25519_group(&self) -> ReusableX25519Group {
        ReusableX25519Group { keys: self.clone() }
    }

    /// An X25519MLKEM768 (0x11EC) group whose `start()` always yields
    /// [`Self::hybrid_share`], with this X25519 key as its hybrid component.
    pub fn hybrid_group(&self) -> ReusableHybridGroup {
        ReusableHybridGroup { keys: self.clone() }
    }
}

// Only public halves: these keys must never reach a log.
impl fmt::Debug for ReusableKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReusableKeys")
            .field("x25519_public", self.x25519_public.as_bytes())
            .finish_non_exhaustive()
    }
}

/// X25519 (0x001D) with the key of a [`ReusableKeys`].
#[derive(Clone, Debug)]
pub struct ReusableX25519Group {
    keys: ReusableKeys,
}

impl SupportedKxGroup for ReusableX25519Group {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        Ok(Box::new(ReusableX25519Kx {
            keys: self.keys.clone(),
        }))
    }

    // Only clients need a reusable key; as a server this stays ephemeral.
    fn start_and_complete(&self, client_share: &[u8]) -> Result<CompletedKeyExchange, Error> {
        kx_group::X25519.start_and_complete(client_share)
    }

    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        None
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

/// X25519MLKEM768 (0x11EC) with the keys of a [`ReusableKeys`].
#[derive(Clone, Debug)]
pub struct ReusableHybridGroup {
    keys: ReusableKeys,
}

impl SupportedKxGroup for ReusableHybridGroup {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let x25519 = Box::new(ReusableX25519Kx {
            keys: self.keys.clone(),
        });
        Ok(Box::new(HybridKx::new(self.keys.mlkem.clone(), x25519)))
    }

    // As for the X25519 group: a server answers with fresh keys.
    fn start_and_complete(&self, client_share: &[u8]) -> Result<CompletedKeyExchange, Error> {
        server_complete(client_share)
    }

    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        None
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519MLKEM768
    }

    fn usable_for_version(&self, version: ProtocolVersion) -> bool {
        version == ProtocolVersion::TLSv1_3
    }
}

/// A client X25519 exchange that borrows its key instead of consuming it.
struct ReusableX25519Kx {
    keys: ReusableKeys,
}

impl ActiveKeyExchange for ReusableX25519Kx {
    fn complete(self: Box<Self>, peer_share: &[u8]) -> Result<SharedSecret, Error> {
        let peer: &[u8; X25519_LEN] = peer_share.try_into().map_err(|_| INVALID_SHARE)?;
        let shared = self.keys.x25519_shared(peer).ok_or(INVALID_SHARE)?;
        Ok(SharedSecret::from(&shared[..]))
    }

    fn pub_key(&self) -> &[u8] {
        self.keys.x25519_public.as_bytes()
    }

    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        None
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::pq::hybrid::X25519MLKEM768;
    use crate::tunnel::pq::layout::{CLIENT_SHARE_LEN, MLKEM768_CT_LEN, MLKEM768_EK_LEN};

    fn fixed_keys() -> ReusableKeys {
        ReusableKeys::from_bytes([9; 32], std::array::from_fn(|i| i as u8))
    }

    #[test]
    fn start_yields_identical_shares_every_time() {
        let keys = ReusableKeys::generate().unwrap();
        let hybrid = keys.hybrid_group();
        let (one, two) = (hybrid.start().unwrap(), hybrid.start().unwrap());
        assert_eq!(one.pub_key(), two.pub_key());
        assert_eq!(one.pub_key(), &keys.hybrid_share()[..]);
        assert_eq!(one.pub_key().len(), CLIENT_SHARE_LEN);
        assert_eq!(one.hybrid_component(), two.hybrid_component());

        let x25519 = keys.x25519_group();
        let (one, two) = (x25519.start().unwrap(), x25519.start().unwrap());
        assert_eq!(one.pub_key(), two.pub_key());
        assert_eq!(one.pub_key(), &keys.x25519_public()[..]);
    }

    #[test]
    fn hybrid_component_and_x25519_group_share_one_key() {
        let keys = fixed_keys();
        let hybrid = keys.hybrid_group().start().unwrap();
        let (group, component) = hybrid.hybrid_component().unwrap();
        assert_eq!(group, NamedGroup::X25519);
        assert_eq!(component, &keys.x25519_public()[..]);
        assert_eq!(&hybrid.pub_key()[MLKEM768_EK_LEN..], component);
    }

    #[test]
    fn from_bytes_is_deterministic() {
        assert_eq!(fixed_keys().hybrid_share(), fixed_keys().hybrid_share());
        let other = ReusableKeys::from_bytes([8; 32], std::array::from_fn(|i| i as u8));
        assert_ne!(other.x25519_public(), fixed_keys().x25519_public());
    }

    /// Splits the secret with keys the test knows: the first 32 bytes are
    /// the ML-KEM key of the server's ciphertext, the last 32 the X25519
    /// secret with the server's public key.
    #[test]
    fn secret_is_mlkem_then_x25519() {
        let keys = fixed_keys();
        let client = keys.hybrid_group().start().unwrap();
        let server = X25519MLKEM768.start_and_complete(client.pub_key()).unwrap();
        let (ct, server_x25519) = server.pub_key.split_at(MLKEM768_CT_LEN);

        let mlkem_ss = mlkem::decapsulate(&keys.mlkem, ct).unwrap();
        let x25519_ss = keys
            .x25519_shared(server_x25519.try_into().unwrap())
            .unwrap();
        let expected = join(&mlkem_ss, &x25519_ss);

        assert_eq!(server.secret.secret_bytes(), &expected[..]);
        let client_secret = client.complete(&server.pub_key).unwrap();
        assert_eq!(client_secret.secret_bytes(), &expected[..]);
    }

    #[test]
    fn plain_x25519_exchange_completes() {
        let keys = ReusableKeys::generate().unwrap();
        let client = keys.x25519_group().start().unwrap();
        let server = kx_group::X25519
            .start_and_complete(client.pub_key())
            .unwrap();
        let client_secret = client.complete(&server.pub_key).unwrap();
        assert_eq!(client_secret.secret_bytes(), server.secret.secret_bytes());
    }

    #[test]
    fn small_order_and_malformed_peers_are_refused() {
        let keys = ReusableKeys::generate().unwrap();
        // The all-zero point (and the identity, u = 1) has small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(keys.x25519_shared(&[0; 32]), None);
        assert_eq!(keys.x25519_shared(&identity), None);

        for share in [&[0u8; 32][..], &[1u8; 31][..], &[]] {
            let client = keys.x25519_group().start().unwrap();
            assert_eq!(client.complete(share).err(), Some(INVALID_SHARE));
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let keys = fixed_keys();
        let shown = format!("{keys:?}");
        assert!(shown.contains("x25519_public"));
        assert!(!shown.contains("x25519:"));
        assert!(!shown.contains("9, 9, 9"));
    }
}
