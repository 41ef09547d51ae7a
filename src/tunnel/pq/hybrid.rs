//! The X25519MLKEM768 (0x11EC) key exchange as a rustls kx group.
//!
//! ring has no ML-KEM, so rustls' ring provider lacks this group. It is built
//! from ring's own X25519 (through rustls' `kx_group::X25519`) and the ML-KEM
//! half in [`super::mlkem`]. The client half ([`HybridKx`]) is shared with the
//! reusable-key variant in [`super::reusable`], which only swaps the X25519
//! key for one that can be used twice.

use std::sync::Arc;

use rustls::crypto::ring::kx_group;
use rustls::crypto::{ActiveKeyExchange, CompletedKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::ffdhe_groups::FfdheGroup;
use rustls::{Error, NamedGroup, ProtocolVersion};

use super::layout::{join, split_client_share, split_server_share};
use super::mlkem::{self, INVALID_SHARE};

/// X25519MLKEM768 with fresh keys for every handshake, for clients and
/// servers alike.
#[derive(Debug)]
pub struct X25519MlKem768;

/// The group as rustls wants it in `CryptoProvider::kx_groups`.
pub static X25519MLKEM768: &dyn SupportedKxGroup = &X25519MlKem768;

impl SupportedKxGroup for X25519MlKem768 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let mlkem = Arc::new(mlkem::generate()?);
        let x25519 = kx_group::X25519.start()?;
        Ok(Box::new(HybridKx::new(mlkem, x25519)))
    }

    // The default (start, then complete) is wrong for a KEM: the server's
    // share is a ciphertext made from the client's key, not a key of its own.
    fn start_and_complete(&self, client_share: &[u8]) -> Result<CompletedKeyExchange, Error> {
        server_complete(client_share)
    }

    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        None
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519MLKEM768
    }

    // Hybrid groups are defined for TLS 1.3 key_share only.
    fn usable_for_version(&self, version: ProtocolVersion) -> bool {
        version == ProtocolVersion::TLSv1_3
    }
}

/// The server's whole side of the exchange: validate the client's
/// ek ‖ x25519 share, encapsulate to ek, run X25519 with a fresh key, and
/// answer with ct ‖ x25519 and the secret ss ‖ x25519_ss.
pub(super) fn server_complete(client_share: &[u8]) -> Result<CompletedKeyExchange, Error> {
    let (ek, x25519_share) = split_client_share(client_share).ok_or(INVALID_SHARE)?;
    // The cheap checks (length, ek modulus) run before any key is made.
    let (ct, mlkem_ss) = mlkem::encapsulate(ek)?;
    let x25519 = kx_group::X25519.start_and_complete(x25519_share)?;
    Ok(CompletedKeyExchange {
        group: NamedGroup::X25519MLKEM768,
        pub_key: join(&ct, &x25519.pub_key),
        secret: SharedSecret::from(join(&mlkem_ss, x25519.secret.secret_bytes())),
    })
}

/// The client's side between ClientHello and ServerHello.
pub(super) struct HybridKx {
    mlkem: Arc<mlkem::Secret>,
    x25519: Box<dyn ActiveKeyExchange>,
    /// ek ‖ x25519, kept because rustls borrows it from `pub_key`.
    share: Vec<u8>,
}

impl HybridKx {
    /// `x25519` must be an X25519 (0x001D) exchange; its key becomes both the
    /// classical half of the hybrid share and the standalone X25519 share.
    pub(super) fn new(mlkem: Arc<mlkem::Secret>, x25519: Box<dyn ActiveKeyExchange>) -> Self {
        debug_assert_eq!(x25519.group(), NamedGroup::X25519);
        let share = join(&mlkem::encapsulation_key(&mlkem), x25519.pub_key());
        Self {
            mlkem,
            x25519,
            share,
        }
    }
}

impl ActiveKeyExchange for HybridKx {
    fn complete(self: Box<Self>, server_share: &[u8]) -> Result<SharedSecret, Error> {
        let (ct, x25519_share) = split_server_share(server_share).ok_or(INVALID_SHARE)?;
        let mlkem_ss = mlkem::decapsulate(&self.mlkem, ct)?;
        let x25519_ss = self.x25519.complete(x25519_share)?;
        Ok(SharedSecret::from(join(
            &mlkem_ss,
            x25519_ss.secret_bytes(),
        )))
    }

    // Lets rustls put a standalone X25519 share with the same key next to the
    // hybrid one (when X25519 is also in kx_groups), so a server without
    // 0x11EC needs no HelloRetryRequest, and REALITY servers older than Xray
    // 25.7.23, which only look at 0x001D, find their share.
    fn hybrid_component(&self) -> Option<(NamedGroup, &[u8])> {
        Some((self.x25519.group(), self.x25519.pub_key()))
    }

    fn complete_hybrid_component(
        self: Box<Self>,
        server_share: &[u8],
    ) -> Result<SharedSecret, Error> {
        self.x25519.complete(server_share)
    }

    fn pub_key(&self) -> &[u8] {
        &self.share
    }

    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        None
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519MLKEM768
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::pq::layout::{
        CLIENT_SHARE_LEN, MLKEM768_EK_LEN, SECRET_LEN, SERVER_SHARE_LEN, X25519_LEN,
    };

    #[test]
    fn client_and_server_agree_on_ss_then_x25519_ss() {
        let client = X25519MLKEM768.start().unwrap();
        assert_eq!(client.group(), NamedGroup::X25519MLKEM768);
        assert_eq!(client.pub_key().len(), CLIENT_SHARE_LEN);

        let server = X25519MLKEM768.start_and_complete(client.pub_key()).unwrap();
        assert_eq!(server.group, NamedGroup::X25519MLKEM768);
        assert_eq!(server.pub_key.len(), SERVER_SHARE_LEN);
        let server_secret = server.secret.secret_bytes().to_vec();
        assert_eq!(server_secret.len(), SECRET_LEN);

        let client_secret = client.complete(&server.pub_key).unwrap();
        assert_eq!(client_secret.secret_bytes(), &server_secret[..]);
        // The halves come from independent exchanges (their exact order is
        // checked with known keys in `reusable`).
        assert_ne!(&server_secret[..32], &server_secret[32..]);
    }

    #[test]
    fn hybrid_component_is_the_tail_of_the_share() {
        let client = X25519MLKEM768.start().unwrap();
        let (group, x25519) = client.hybrid_component().unwrap();
        assert_eq!(group, NamedGroup::X25519);
        assert_eq!(x25519, &client.pub_key()[MLKEM768_EK_LEN..]);

        // A plain X25519 server completing against the component gives the
        // client the same secret through complete_hybrid_component.
        let x25519 = x25519.to_vec();
        let server = kx_group::X25519.start_and_complete(&x25519).unwrap();
        let client_secret = client.complete_hybrid_component(&server.pub_key).unwrap();
        assert_eq!(client_secret.secret_bytes(), server.secret.secret_bytes());
    }

    #[test]
    fn servers_refuse_malformed_client_shares() {
        let good = X25519MLKEM768.start().unwrap().pub_key().to_vec();
        let mut bad_ek = good.clone();
        bad_ek[..MLKEM768_EK_LEN].fill(0xff);
        for share in [
            Vec::new(),
            good[..32].to_vec(),
            good[..CLIENT_SHARE_LEN - 1].to_vec(),
            [good.as_slice(), &[0]].concat(),
            bad_ek,
        ] {
            let err = X25519MLKEM768.start_and_complete(&share).err();
            assert_eq!(err, Some(INVALID_SHARE), "share of {} bytes", share.len());
        }
    }

    #[test]
    fn clients_refuse_malformed_server_shares() {
        for len in [0, X25519_LEN, SERVER_SHARE_LEN - 1, SERVER_SHARE_LEN + 1] {
            let client = X25519MLKEM768.start().unwrap();
            assert_eq!(
                client.complete(&vec![7; len]).err(),
                Some(INVALID_SHARE),
                "{len}"
            );
        }
    }

    #[test]
    fn only_offered_for_tls13() {
        assert!(X25519MLKEM768.usable_for_version(ProtocolVersion::TLSv1_3));
        assert!(!X25519MLKEM768.usable_for_version(ProtocolVersion::TLSv1_2));
        assert_eq!(X25519MLKEM768.name(), NamedGroup::X25519MLKEM768);
        assert_eq!(u16::from(X25519MLKEM768.name()), 0x11ec);
    }
}
