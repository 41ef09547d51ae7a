//! End to end on real rustls bytes: a rustls ClientHello goes through the
//! REALITY client steps, then the server steps; a stock rustls server with the
//! temporary certificate completes a handshake with the REALITY verifier.

use std::fmt;
use std::sync::Arc;

use rustls::crypto::{ActiveKeyExchange, CryptoProvider, SharedSecret, SupportedKxGroup};
use rustls::pki_types::ServerName;
use rustls::sign::SingleCertAndKey;
use rustls::{ClientConfig, ClientConnection, NamedGroup, ServerConfig, ServerConnection};
use x25519_dalek::{PublicKey, StaticSecret};

use super::hello::SESSION_ID_LEN;
use super::test_hello::{client_seal, rustls_hello_with};
use super::*;

/// X25519 for rustls with a secret the test knows (ring's keys cannot be
/// exported, and the client needs the secret for the REALITY ECDH).
struct KnownX25519(StaticSecret);

impl fmt::Debug for KnownX25519 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KnownX25519")
    }
}

struct KnownShare {
    secret: StaticSecret,
    public: [u8; 32],
}

impl SupportedKxGroup for KnownX25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        Ok(Box::new(KnownShare {
            secret: self.0.clone(),
            public: PublicKey::from(&self.0).to_bytes(),
        }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

impl ActiveKeyExchange for KnownShare {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, rustls::Error> {
        let peer: [u8; 32] = peer
            .try_into()
            .map_err(|_| rustls::Error::General("X25519 share length".into()))?;
        let shared = client_shared(&self.secret, &peer)
            .ok_or_else(|| rustls::Error::General("low-order X25519 share".into()))?;
        Ok(SharedSecret::from(&shared[..]))
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

const CLIENT_SECRET: [u8; 32] = [0x43; 32];
const SERVER_SECRET: [u8; 32] = [0x21; 32];
const NOW_S: u32 = 1_760_000_000;
const BLOCK: AuthBlock = AuthBlock {
    version: [26, 3, 27],
    unix_time: NOW_S,
    short_id: [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef],
};

fn client_provider() -> CryptoProvider {
    // The provider wants `'static` groups; leaking one per test is fine.
    let group: &'static KnownX25519 =
        Box::leak(Box::new(KnownX25519(StaticSecret::from(CLIENT_SECRET))));
    CryptoProvider {
        kx_groups: vec![group],
        ..rustls::crypto::ring::default_provider()
    }
}

fn policy() -> ServerPolicy {
    ServerPolicy {
        server_names: vec!["example.com".into()],
        short_ids: vec![parse_short_id("0123456789abcdef").unwrap()],
        min_client_ver: Some([26, 3, 27]),
        max_client_ver: None,
        max_time_diff_ms: 60_000,
    }
}

fn extract(records: &[u8]) -> RealityHello {
    match RealityHello::from_records(records) {
        Ok(Extracted::Complete { hello, consumed }) => {
            assert_eq!(consumed, records.len());
            hello
        }
        other => panic!("not a complete hello: {other:?}"),
    }
}

#[test]
fn rustls_hello_client_steps_then_server_steps() {
    let server = StaticSecret::from(SERVER_SECRET);
    let server_pub = PublicKey::from(&server).to_bytes();
    let client = StaticSecret::from(CLIENT_SECRET);

    // Client: a real rustls hello, then zero sid → seal → place at offset 44.
    let original = rustls_hello_with(client_provider(), "example.com");
    assert_eq!(
        extract(&original).x25519_share,
        Some(PublicKey::from(&client).to_bytes())
    );
    let mut records = original.clone();
    client_seal(&mut records, &client, &server_pub, &BLOCK);
    let sid = RECORD_SESSION_ID_OFFSET..RECORD_SESSION_ID_OFFSET + SESSION_ID_LEN;
    assert_eq!(records[..sid.start], original[..sid.start]);
    assert_eq!(records[sid.end..], original[sid.end..]);

    // Server, step by step.
    let hello = extract(&records);
    let client_x25519 = policy().check_hello(&hello).unwrap();
    let shared = server_shared(&server, &client_x25519).unwrap();
    let key = auth_key(&shared, hello.random());
    let session_id = hello.session_id().unwrap();
    let aad = hello.message_with_zero_session_id().unwrap();
    let block = open_session_id(&key, hello.random(), &session_id, &aad).unwrap();
    assert_eq!(block, BLOCK);
    let now_ms = u64::from(NOW_S) * 1000 + 1_500;
    assert_eq!(policy().check(&hello, &block, now_ms), Ok(()));

    // Server, in one call; the client derives the same auth key.
    let auth = policy().authenticate(&server, &hello, now_ms).unwrap();
    assert_eq!(auth.block, BLOCK);
    let client_key = auth_key(
        &client_shared(&client, &server_pub).unwrap(),
        hello.random(),
    );
    assert_eq!(auth.auth_key, client_key);

    // The certificate the server will present passes the client's check.
    let signer = Ed25519SigningKey::generate().unwrap();
    let der = temp_cert_der(&signer.raw_public_key(), &auth.auth_key);
    assert_eq!(der.len(), TEMP_CERT_LEN);
    assert!(verify_temp_cert(&der, &client_key));

    // The unsealed hello is not authenticated.
    assert_eq!(
        policy().authenticate(&server, &extract(&original), now_ms),
        Err(RealityReject::OpenFailed)
    );
}

/// Moves bytes between the two ends until neither has anything to say.
fn handshake(client: &mut ClientConnection, server: &mut ServerConnection) -> Result<(), String> {
    for _ in 0..16 {
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        let client_spoke = !buf.is_empty();
        if client_spoke {
            server.read_tls(&mut &buf[..]).unwrap();
            server.process_new_packets().map_err(|e| e.to_string())?;
        }
        let mut buf = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        let server_spoke = !buf.is_empty();
        if server_spoke {
            client.read_tls(&mut &buf[..]).unwrap();
            client.process_new_packets().map_err(|e| e.to_string())?;
        }
        if !client_spoke && !server_spoke {
            break;
        }
    }
    if client.is_handshaking() || server.is_handshaking() {
        return Err("handshake did not finish".into());
    }
    Ok(())
}

fn connections(server_key: [u8; 32], client_key: [u8; 32]) -> (ClientConnection, ServerConnection) {
    let signer = Ed25519SigningKey::generate().unwrap();
    let resolver = SingleCertAndKey::from(signer.temp_certified_key(&server_key));
    let ring = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = ServerConfig::builder_with_provider(ring.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    let client_config = ClientConfig::builder_with_provider(ring)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TempCertVerifier::new(client_key)))
        .with_no_client_auth();
    let name = ServerName::try_from("example.com").unwrap();
    (
        ClientConnection::new(Arc::new(client_config), name).unwrap(),
        ServerConnection::new(Arc::new(server_config)).unwrap(),
    )
}

#[test]
fn stock_rustls_handshake_with_the_temp_cert() {
    let (mut client, mut server) = connections([9; 32], [9; 32]);
    handshake(&mut client, &mut server).unwrap();
    let der = client.peer_certificates().unwrap()[0].as_ref().to_vec();
    assert!(verify_temp_cert(&der, &[9; 32]));
    assert_eq!(server.alpn_protocol(), None);
}

#[test]
fn client_refuses_a_temp_cert_for_another_key() {
    let (mut client, mut server) = connections([9; 32], [8; 32]);
    let err = handshake(&mut client, &mut server).unwrap_err();
    assert!(err.contains("certificate"), "{err}");
}
