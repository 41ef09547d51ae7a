//! The client against an in-memory REALITY server built from the sans-IO pieces: the
//! server authenticates the hello with [`ServerPolicy::authenticate`] and answers with a
//! stock rustls `ServerConnection` presenting the temporary certificate.

use std::io::{Read, Write};

use rustls::crypto::ring::default_provider;
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::SingleCertAndKey;
use rustls::{
    CertificateError, CipherSuite, Connection, Error, NamedGroup, ServerConfig, ServerConnection,
};
use x25519_dalek::{PublicKey, StaticSecret};

use super::*;
use crate::tunnel::pq::provider_with_pq;
use crate::tunnel::reality::hello::{GROUP_X25519, GROUP_X25519MLKEM768};
use crate::tunnel::reality::{
    parse_short_id, Authenticated, Ed25519SigningKey, RealityReject, ServerPolicy,
};

const NOW: u64 = 1_760_000_000;

fn server_secret() -> StaticSecret {
    StaticSecret::from([0x21; 32])
}

fn server_public() -> [u8; 32] {
    PublicKey::from(&server_secret()).to_bytes()
}

fn short_id() -> ShortId {
    parse_short_id("0123456789abcdef").unwrap()
}

fn policy() -> ServerPolicy {
    ServerPolicy {
        server_names: vec!["example.com".into()],
        short_ids: vec![[0; 8], short_id()],
        min_client_ver: Some(DEFAULT_CLIENT_VERSION),
        max_client_ver: None,
        max_time_diff_ms: 60_000,
    }
}

fn config() -> RealityClientConfig {
    RealityClientConfig::new("example.com", server_public(), short_id())
}

fn hello_of(flight: &[u8]) -> RealityHello {
    single_hello(flight).expect("one ClientHello record")
}

/// The server's verdict on a first flight.
fn authenticate(flight: &[u8]) -> Result<Authenticated, RealityReject> {
    policy().authenticate(&server_secret(), &hello_of(flight), NOW * 1000)
}

/// A REALITY server connection for an authenticated client: the temporary certificate.
fn reality_server(auth: &Authenticated, provider: CryptoProvider) -> ServerConnection {
    let signer = Ed25519SigningKey::generate().unwrap();
    let certified = signer.temp_certified_key(&auth.auth_key);
    let config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    ServerConnection::new(Arc::new(config)).unwrap()
}

/// What a REALITY server falls back to: `dest` with its real certificate.
fn cover_site() -> ServerConnection {
    let made = rcgen::generate_simple_self_signed(vec!["example.com".to_owned()]).unwrap();
    let key = PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
    let config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)
        .unwrap();
    ServerConnection::new(Arc::new(config)).unwrap()
}

fn drain(from: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut out).unwrap();
    }
    out
}

fn deliver(bytes: &[u8], to: &mut Connection) -> Result<(), Error> {
    let mut rest = bytes;
    while !rest.is_empty() {
        to.read_tls(&mut rest).unwrap();
        to.process_new_packets()?;
    }
    Ok(())
}

/// Feeds the first flight to the server, then moves records both ways until both sides are
/// done or one fails.
fn handshake(client: &mut Connection, server: &mut Connection, first: &[u8]) -> Result<(), Error> {
    deliver(first, server)?;
    // A TLS 1.3 handshake takes two client flights; the bound only stops a broken test.
    for _ in 0..8 {
        let reply = drain(server);
        deliver(&reply, client)?;
        let flight = drain(client);
        deliver(&flight, server)?;
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
    }
    panic!("handshake did not finish");
}

fn round_trip(client: &mut Connection, server: &mut Connection) {
    client.writer().write_all(b"vless request").unwrap();
    let bytes = drain(client);
    deliver(&bytes, server).unwrap();
    let mut got = [0u8; 13];
    server.reader().read_exact(&mut got).unwrap();
    assert_eq!(&got, b"vless request");
    server.writer().write_all(b"\x00\x00payload").unwrap();
    let bytes = drain(server);
    deliver(&bytes, client).unwrap();
    let mut got = [0u8; 9];
    client.reader().read_exact(&mut got).unwrap();
    assert_eq!(&got, b"\x00\x00payload");
}

/// A whole connection: client built, hello authenticated, handshake, data both ways.
fn connect(cfg: &RealityClientConfig, server_provider: CryptoProvider) -> (Connection, Connection) {
    let (conn, first) = reality_client(cfg, NOW).unwrap().into_parts();
    let auth = authenticate(&first).expect("the server authenticates the hello");
    assert_eq!(
        auth.block,
        AuthBlock {
            version: cfg.client_version,
            unix_time: NOW as u32,
            short_id: cfg.short_id,
        }
    );
    let mut client = Connection::from(conn);
    let mut server = Connection::from(reality_server(&auth, server_provider));
    handshake(&mut client, &mut server, &first).unwrap();
    round_trip(&mut client, &mut server);
    (client, server)
}

#[test]
fn handshake_completes_with_an_in_memory_reality_server() {
    let (client, _server) = connect(&config(), default_provider());
    let group = client.negotiated_key_exchange_group().unwrap().name();
    assert_eq!(group, NamedGroup::X25519);
    let suite = client.negotiated_cipher_suite().unwrap().suite();
    assert_eq!(suite, CipherSuite::TLS13_AES_256_GCM_SHA384);
    assert_eq!(client.alpn_protocol(), None);
}

#[test]
fn the_empty_short_id_is_all_zeros() {
    let cfg = RealityClientConfig {
        short_id: parse_short_id("").unwrap(),
        ..config()
    };
    connect(&cfg, default_provider());
}

#[test]
fn pq_offer_sends_both_shares_on_one_key_and_completes() {
    let cfg = RealityClientConfig {
        offer_pq: true,
        ..config()
    };
    let (conn, first) = reality_client(&cfg, NOW).unwrap().into_parts();
    let hello = hello_of(&first);
    let hybrid = hello.x25519mlkem768_share.as_deref().expect("0x11EC share");
    let standalone = hello.x25519_share.expect("0x001D share");
    assert_eq!(hybrid[hybrid.len() - 32..], standalone);
    // rustls orders the shares as kx_groups: the hybrid first.
    assert_eq!(
        hello.fields.key_share_groups,
        [GROUP_X25519MLKEM768, GROUP_X25519]
    );
    drop(conn);

    let (client, _server) = connect(&cfg, provider_with_pq());
    let group = client.negotiated_key_exchange_group().unwrap().name();
    assert_eq!(group, NamedGroup::X25519MLKEM768);
    // A server without the hybrid picks the standalone share, no HelloRetryRequest.
    let (client, _server) = connect(&cfg, default_provider());
    let group = client.negotiated_key_exchange_group().unwrap().name();
    assert_eq!(group, NamedGroup::X25519);
}

#[test]
fn wrong_server_key_is_rejected_by_the_server() {
    let stranger = PublicKey::from(&StaticSecret::from([0x22; 32])).to_bytes();
    let cfg = RealityClientConfig {
        server_public_key: stranger,
        ..config()
    };
    let first = reality_client(&cfg, NOW).unwrap().first_flight().to_vec();
    assert_eq!(authenticate(&first).unwrap_err(), RealityReject::OpenFailed);
}

#[test]
fn server_rules_see_the_version_and_the_clock() {
    let old = RealityClientConfig {
        client_version: [24, 11, 21],
        ..config()
    };
    let first = reality_client(&old, NOW).unwrap().first_flight().to_vec();
    assert_eq!(
        authenticate(&first).unwrap_err(),
        RealityReject::ClientTooOld
    );
    let first = reality_client(&config(), NOW - 3600)
        .unwrap()
        .first_flight()
        .to_vec();
    assert_eq!(authenticate(&first).unwrap_err(), RealityReject::TimeSkew);
}

/// The server fell back to its cover site: a real certificate arrives, and the client's
/// verifier refuses it.
#[test]
fn a_real_certificate_is_refused() {
    let (conn, first) = reality_client(&config(), NOW).unwrap().into_parts();
    let mut client = Connection::from(conn);
    let mut server = Connection::from(cover_site());
    let err = handshake(&mut client, &mut server, &first).unwrap_err();
    assert_eq!(
        err,
        Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
    );
}

fn fixed_inputs() -> Inputs {
    Inputs {
        keys: ReusableKeys::from_bytes([0x43; 32], std::array::from_fn(|i| i as u8)),
        order_seed: [0x5a, 0xa5],
        random: std::array::from_fn(|i| 0x80 | i as u8),
    }
}

#[test]
fn the_two_passes_differ_only_in_the_session_id() {
    for offer_pq in [false, true] {
        let cfg = RealityClientConfig {
            offer_pq,
            ..config()
        };
        let (client, probe) = two_passes(&cfg, NOW, fixed_inputs()).unwrap();
        let sealed = client.first_flight();
        assert_eq!(sealed.len(), probe.len());
        let differing: Vec<usize> = (0..sealed.len())
            .filter(|&i| sealed[i] != probe[i])
            .collect();
        assert!(!differing.is_empty());
        assert!(
            differing.iter().all(|i| SESSION_ID_BYTES.contains(i)),
            "bytes outside 44..76 differ: {differing:?}"
        );
        assert!(probe[SESSION_ID_BYTES].iter().all(|&b| b == 0));
        // Fixed inputs give the same hello every time: nothing else is random.
        let (again, again_probe) = two_passes(&cfg, NOW, fixed_inputs()).unwrap();
        assert_eq!(again_probe, probe);
        assert_eq!(again.first_flight(), sealed);
    }
}

#[test]
fn every_connection_has_its_own_keys_and_random() {
    let a = hello_of(reality_client(&config(), NOW).unwrap().first_flight());
    let b = hello_of(reality_client(&config(), NOW).unwrap().first_flight());
    assert_ne!(a.random(), b.random());
    assert_ne!(a.x25519_share, b.x25519_share);
    assert_ne!(a.session_id(), b.session_id());
}

#[test]
fn the_hello_offers_tls13_aes_gcm_first_and_no_alpn() {
    let hello = hello_of(reality_client(&config(), NOW).unwrap().first_flight());
    assert_eq!(hello.sni(), Some("example.com"));
    assert!(hello.offers_tls13());
    assert_eq!(hello.cipher_suites(), &[0x1302, 0x1301, 0x1303]);
    assert!(hello.fields.alpn.is_empty());
    assert_eq!(hello.x25519mlkem768_share, None);
}

#[test]
fn bad_configs_are_refused() {
    let cfg = RealityClientConfig {
        server_name: "not a name".into(),
        ..config()
    };
    assert!(matches!(
        reality_client(&cfg, NOW),
        Err(RealityClientError::ServerName)
    ));
    let cfg = RealityClientConfig {
        server_public_key: [0; 32],
        ..config()
    };
    assert!(matches!(
        reality_client(&cfg, NOW),
        Err(RealityClientError::SmallOrderKey)
    ));
}

#[test]
fn public_keys_parse_as_xray_prints_them() {
    let key = parse_public_key("hedx5amdlyM4Q7v5BYM1x4kZFQ3Vv3Bg63GYkuaf0Gs").unwrap();
    assert_eq!(key[..3], [0x85, 0xe7, 0x71]);
    assert_eq!(
        parse_public_key("hedx5amdlyM4Q7v5BYM1x4kZFQ3Vv3Bg63GYkuaf0Gs=").unwrap(),
        key
    );
    for bad in [
        "",
        "hedx5amdlyM4Q7v5BYM1x4kZFQ3Vv3Bg63GYkuaf0G",
        "a+b/",
        "hedx5amdlyM4Q7v5BYM1x4kZFQ3Vv3Bg63GYkuaf0GsAA",
    ] {
        assert!(matches!(
            parse_public_key(bad),
            Err(RealityClientError::PublicKey)
        ));
    }
}

#[test]
fn debug_hides_the_short_id() {
    let shown = format!("{:?}", config());
    assert!(
        shown.contains("<redacted>") && !shown.contains("137, 171"),
        "{shown}"
    );
}
