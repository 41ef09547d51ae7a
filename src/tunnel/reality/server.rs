//! The REALITY server's two decisions that need no socket (TUNNEL.md §2, §5
//! "Stock rustls 0.23 — Server"):
//!
//! - [`decide`]: from a connection's first bytes, is this one of our clients
//!   (run TLS ourselves), someone else (splice everything to `dest`), or is
//!   it too early to say?
//! - [`server_connection`]: the rustls session an accepted client gets. It is
//!   fed the *unchanged* bytes that [`decide`] looked at, so rustls sees the
//!   very ClientHello the client sealed its session_id over.
//! - [`KeyExchange::of`]: whether a finished session is post-quantum, for
//!   the server's counters.
//!
//! Anything that is not an authenticated REALITY hello — random bytes, plain
//! HTTP, a malformed or oversized hello, a real browser — falls back: a
//! prober must always meet `dest`'s real certificate and content.

use std::fmt;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::server::NoServerSessionStorage;
use rustls::sign::SingleCertAndKey;
use rustls::{NamedGroup, ServerConfig, ServerConnection};
use x25519_dalek::{PublicKey, StaticSecret};

use super::auth::AuthBlock;
use super::hello::{Extracted, RealityHello};
use super::policy::{RealityReject, ServerPolicy};
use super::signer::Ed25519SigningKey;
use crate::tunnel::pq;

/// The server's long-lived secrets: the X25519 key clients seal their
/// session_id to (Xray's `privateKey`) and the Ed25519 key behind every
/// temporary certificate (one per process, shared read-only by all shards).
#[derive(Clone)]
pub struct RealityServerKeys {
    pub x25519: StaticSecret,
    pub signer: Ed25519SigningKey,
}

impl RealityServerKeys {
    /// What clients configure as `publicKey` (base64url without padding).
    pub fn x25519_public(&self) -> [u8; 32] {
        PublicKey::from(&self.x25519).to_bytes()
    }
}

// Both keys are secrets; only the public halves may reach a log.
impl fmt::Debug for RealityServerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RealityServerKeys")
            .field("x25519_public", &self.x25519_public())
            .field("signer_public", &self.signer.raw_public_key())
            .finish()
    }
}

/// What to do with a connection, given the bytes read so far.
#[derive(Clone, PartialEq, Eq)]
pub enum Decision {
    /// No verdict before the stream holds at least this many bytes in total.
    NeedMore(usize),
    /// Splice everything (the bytes already read first) to `dest`. `None`:
    /// the stream is not a well-formed TLS ClientHello at all.
    Fallback { reason: Option<RealityReject> },
    /// One of our clients: run [`server_connection`] keyed by `auth_key`.
    Accept {
        auth_key: [u8; 32],
        block: AuthBlock,
    },
}

// The auth key keys the certificate HMAC of a live connection.
impl fmt::Debug for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::NeedMore(n) => f.debug_tuple("NeedMore").field(n).finish(),
            Decision::Fallback { reason } => {
                f.debug_struct("Fallback").field("reason", reason).finish()
            }
            Decision::Accept { block, .. } => f
                .debug_struct("Accept")
                .field("auth_key", &"<redacted>")
                .field("block", block)
                .finish(),
        }
    }
}

/// Judges the first bytes of a connection. `now_unix_ms` is the server's
/// clock (for the policy's time-skew rule). Never panics, whatever `buf`
/// holds; asks for more bytes only up to the front parser's hello limit.
pub fn decide(
    keys: &RealityServerKeys,
    policy: &ServerPolicy,
    buf: &[u8],
    now_unix_ms: u64,
) -> Decision {
    let hello = match RealityHello::from_records(buf) {
        Ok(Extracted::Complete { hello, .. }) => hello,
        Ok(Extracted::Incomplete { need_at_least }) => return Decision::NeedMore(need_at_least),
        // Not TLS, SSLv2, malformed, too large: dest answers those too.
        Err(_) => return Decision::Fallback { reason: None },
    };
    match policy.authenticate(&keys.x25519, &hello, now_unix_ms) {
        Ok(auth) => Decision::Accept {
            auth_key: auth.auth_key,
            block: auth.block,
        },
        Err(reject) => Decision::Fallback {
            reason: Some(reject),
        },
    }
}

/// The rustls session for an accepted client: TLS 1.3 only, no ALPN (Xray's
/// REALITY server negotiates none), the temporary certificate for
/// `auth_key` signed with `signer`.
///
/// Key exchange: X25519MLKEM768 and ring's groups ([`provider`]); rustls
/// takes the first of the *client's* groups it supports, so an edge client
/// offering the hybrid first gets it and an X25519-only client (Xray
/// 24.11.21) gets X25519, as before.
///
/// No session tickets and no session cache: REALITY clients never resume
/// (uTLS runs with tickets off) and a per-connection cache would only hold
/// memory.
pub fn server_connection(
    signer: &Ed25519SigningKey,
    auth_key: &[u8; 32],
) -> Result<ServerConnection, rustls::Error> {
    let resolver = SingleCertAndKey::from(signer.temp_certified_key(auth_key));
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    ServerConnection::new(Arc::new(config))
}

/// ring's stock provider with X25519MLKEM768 ahead of its own groups, built
/// once: the certificate changes per connection, the algorithms never do.
/// ring's groups stay as they were (X25519, P-256, P-384), so no client that
/// worked before is now sent a HelloRetryRequest or refused.
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let ring = rustls::crypto::ring::default_provider();
            let kx_groups = std::iter::once(pq::X25519MLKEM768)
                .chain(ring.kx_groups.iter().copied())
                .collect();
            Arc::new(CryptoProvider { kx_groups, ..ring })
        })
        .clone()
}

/// How a finished REALITY session agreed on its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyExchange {
    /// X25519MLKEM768 (0x11EC): the session's secrecy also rests on
    /// ML-KEM-768, so recording it now does not help a future quantum
    /// attacker.
    PostQuantum,
    /// A classical group (X25519, or a NIST curve).
    Classical,
}

impl KeyExchange {
    /// The key exchange of `conn`; `None` until its handshake has finished
    /// (rustls knows the group earlier, but a handshake that then fails is
    /// no session to count).
    pub fn of(conn: &ServerConnection) -> Option<KeyExchange> {
        if conn.is_handshaking() {
            return None;
        }
        let group = conn.negotiated_key_exchange_group()?.name();
        Some(if group == NamedGroup::X25519MLKEM768 {
            KeyExchange::PostQuantum
        } else {
            KeyExchange::Classical
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::reality::hello::GROUP_X25519;
    use crate::tunnel::reality::test_hello::{
        client_seal, fragment, rustls_hello, synthetic_hello, HelloSpec, XorShift,
    };
    use crate::tunnel::reality::TempCertVerifier;
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ClientConnection, ProtocolVersion};

    const NOW_S: u32 = 1_760_000_000;
    const NOW_MS: u64 = NOW_S as u64 * 1000;
    const SHORT_ID: [u8; 8] = [0xab, 0xcd, 0, 0, 0, 0, 0, 0];
    const BLOCK: AuthBlock = AuthBlock {
        version: [24, 11, 21],
        unix_time: NOW_S,
        short_id: SHORT_ID,
    };

    fn keys() -> RealityServerKeys {
        RealityServerKeys {
            x25519: StaticSecret::from([0x5a; 32]),
            signer: Ed25519SigningKey::generate().unwrap(),
        }
    }

    fn policy() -> ServerPolicy {
        ServerPolicy {
            server_names: vec!["example.com".into()],
            short_ids: vec![SHORT_ID],
            min_client_ver: None,
            max_client_ver: None,
            max_time_diff_ms: 60_000,
        }
    }

    fn client_key() -> StaticSecret {
        StaticSecret::from([0x17; 32])
    }

    /// A one-record hello sealed to `keys` with `block`.
    fn sealed_hello(keys: &RealityServerKeys, block: &AuthBlock) -> Vec<u8> {
        let spec = HelloSpec {
            shares: vec![(
                GROUP_X25519,
                PublicKey::from(&client_key()).to_bytes().to_vec(),
            )],
            ..HelloSpec::default()
        };
        let mut records = synthetic_hello(&spec);
        client_seal(&mut records, &client_key(), &keys.x25519_public(), block);
        records
    }

    #[test]
    fn a_sealed_hello_is_accepted_and_its_prefixes_ask_for_more() {
        let keys = keys();
        let records = sealed_hello(&keys, &BLOCK);
        match decide(&keys, &policy(), &records, NOW_MS) {
            Decision::Accept { block, .. } => assert_eq!(block, BLOCK),
            other => panic!("{other:?}"),
        }
        for k in 0..records.len() {
            match decide(&keys, &policy(), &records[..k], NOW_MS) {
                Decision::NeedMore(n) => assert!(n > k && n <= records.len(), "prefix {k}: {n}"),
                other => panic!("prefix {k}: {other:?}"),
            }
        }
        // Split into many records, the same client is still ours.
        let split = fragment(&records, 50);
        assert!(matches!(
            decide(&keys, &policy(), &split, NOW_MS),
            Decision::Accept { .. }
        ));
    }

    #[test]
    fn policy_failures_fall_back_with_their_reason() {
        let keys = keys();
        let stranger = AuthBlock {
            short_id: [1; 8],
            ..BLOCK
        };
        let records = sealed_hello(&keys, &stranger);
        assert_eq!(
            decide(&keys, &policy(), &records, NOW_MS),
            Decision::Fallback {
                reason: Some(RealityReject::ShortId)
            }
        );
        let other_server = RealityServerKeys {
            x25519: StaticSecret::from([0x5b; 32]),
            ..keys.clone()
        };
        assert_eq!(
            decide(&other_server, &policy(), &records, NOW_MS),
            Decision::Fallback {
                reason: Some(RealityReject::OpenFailed)
            }
        );
        // A real browser-like hello (rustls) cannot carry our seal.
        assert_eq!(
            decide(&keys, &policy(), &rustls_hello("example.com"), NOW_MS),
            Decision::Fallback {
                reason: Some(RealityReject::OpenFailed)
            }
        );
    }

    #[test]
    fn non_tls_and_garbage_fall_back_without_a_reason() {
        let keys = keys();
        let fallback = Decision::Fallback { reason: None };
        assert_eq!(
            decide(&keys, &policy(), b"GET / HTTP/1.1\r\n", NOW_MS),
            fallback
        );
        assert_eq!(decide(&keys, &policy(), &[0u8; 64], NOW_MS), fallback);
        // A handshake record whose hello claims more than any hello may be.
        assert_eq!(
            decide(
                &keys,
                &policy(),
                &[0x16, 0x03, 0x01, 0xff, 0xff, 0x01],
                NOW_MS
            ),
            fallback
        );
        let mut rng = XorShift(0x0dd_ba11);
        for _ in 0..2000 {
            let len = rng.below(600);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if rng.below(2) == 0 && !bytes.is_empty() {
                bytes[0] = 0x16; // look like a handshake record
            }
            // Must not panic; any verdict but Accept is fine.
            let verdict = decide(&keys, &policy(), &bytes, NOW_MS);
            assert!(!matches!(verdict, Decision::Accept { .. }), "{verdict:?}");
        }
    }

    #[test]
    fn debug_hides_the_auth_key() {
        let keys = keys();
        let verdict = decide(&keys, &policy(), &sealed_hello(&keys, &BLOCK), NOW_MS);
        let text = format!("{verdict:?} {keys:?}");
        assert!(text.contains("<redacted>"), "{text}");
    }

    /// Runs both ends in memory until neither has anything to send.
    fn pump(client: &mut ClientConnection, server: &mut ServerConnection) {
        loop {
            let mut moved = false;
            let mut wire = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut wire).unwrap();
            }
            if !wire.is_empty() {
                moved = true;
                let mut rest = &wire[..];
                while !rest.is_empty() {
                    server.read_tls(&mut rest).unwrap();
                    server.process_new_packets().unwrap();
                }
            }
            let mut wire = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut wire).unwrap();
            }
            if !wire.is_empty() {
                moved = true;
                let mut rest = &wire[..];
                while !rest.is_empty() {
                    client.read_tls(&mut rest).unwrap();
                    client.process_new_packets().unwrap();
                }
            }
            if !moved {
                return;
            }
        }
    }

    #[test]
    fn the_session_presents_the_temp_cert_over_tls13_without_alpn() {
        let signer = Ed25519SigningKey::generate().unwrap();
        let auth_key = [0x33; 32];
        let mut server = server_connection(&signer, &auth_key).unwrap();

        // A client that accepts only this connection's temporary certificate
        // and, like Chrome, asks for h2.
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(TempCertVerifier::new(auth_key)))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let name = ServerName::try_from("example.com").unwrap();
        let mut client = ClientConnection::new(Arc::new(config), name).unwrap();

        pump(&mut client, &mut server);
        assert!(!client.is_handshaking() && !server.is_handshaking());
        assert_eq!(server.protocol_version(), Some(ProtocolVersion::TLSv1_3));
        assert_eq!(server.alpn_protocol(), None);
        assert_eq!(client.alpn_protocol(), None);
        let cert = &client.peer_certificates().unwrap()[0];
        assert_eq!(
            cert.as_ref(),
            signer.temp_certified_key(&auth_key).cert[0].as_ref()
        );
        assert_eq!(
            client.handshake_kind(),
            Some(rustls::HandshakeKind::Full),
            "no resumption, no HelloRetryRequest"
        );
        // Nothing queued after the handshake: no session tickets.
        assert!(!server.wants_write());

        // The same session with another auth key is refused by the client.
        let mut server = server_connection(&signer, &[0x34; 32]).unwrap();
        let config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(TempCertVerifier::new(auth_key)))
            .with_no_client_auth();
        let mut client = ClientConnection::new(
            Arc::new(config),
            ServerName::try_from("example.com").unwrap(),
        )
        .unwrap();
        let mut wire = Vec::new();
        client.write_tls(&mut wire).unwrap();
        server.read_tls(&mut &wire[..]).unwrap();
        server.process_new_packets().unwrap();
        let mut wire = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut wire).unwrap();
        }
        client.read_tls(&mut &wire[..]).unwrap();
        assert!(client.process_new_packets().is_err());
    }

    #[test]
    fn the_key_exchange_follows_the_clients_preference() {
        use rustls::crypto::ring::kx_group;
        let signer = Ed25519SigningKey::generate().unwrap();
        let auth_key = [0x35; 32];
        let cases = [
            // The edge client with offer_pq: the hybrid first, X25519 also.
            (
                vec![pq::X25519MLKEM768, kx_group::X25519],
                NamedGroup::X25519MLKEM768,
                KeyExchange::PostQuantum,
            ),
            // Xray 24.11.21 and the edge client without offer_pq.
            (
                vec![kx_group::X25519],
                NamedGroup::X25519,
                KeyExchange::Classical,
            ),
            // The server does not override a client preferring X25519.
            (
                vec![kx_group::X25519, pq::X25519MLKEM768],
                NamedGroup::X25519,
                KeyExchange::Classical,
            ),
            // ring's NIST curves are still served.
            (
                vec![kx_group::SECP384R1],
                NamedGroup::secp384r1,
                KeyExchange::Classical,
            ),
        ];
        for (offered, group, kx) in cases {
            let mut server = server_connection(&signer, &auth_key).unwrap();
            assert_eq!(KeyExchange::of(&server), None, "not finished yet");
            let provider = CryptoProvider {
                kx_groups: offered,
                ..rustls::crypto::ring::default_provider()
            };
            let config = ClientConfig::builder_with_provider(Arc::new(provider))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(TempCertVerifier::new(auth_key)))
                .with_no_client_auth();
            let name = ServerName::try_from("example.com").unwrap();
            let mut client = ClientConnection::new(Arc::new(config), name).unwrap();
            pump(&mut client, &mut server);
            assert!(!server.is_handshaking(), "{group:?}");
            let negotiated = server.negotiated_key_exchange_group().map(|g| g.name());
            assert_eq!(negotiated, Some(group));
            assert_eq!(KeyExchange::of(&server), Some(kx), "{group:?}");
            // Each client sent a share for its first group: one round trip.
            assert_eq!(client.handshake_kind(), Some(rustls::HandshakeKind::Full));
        }
    }
}
