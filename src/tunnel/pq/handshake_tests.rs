//! Whole rustls handshakes in memory with the PQ groups: records are moved
//! between a `ClientConnection` and a `ServerConnection` by hand, so what goes
//! on the wire (the ClientHello's key shares) can be inspected too.

use std::sync::Arc;

use rustls::crypto::ring::kx_group;
use rustls::crypto::{ActiveKeyExchange, CryptoProvider, SupportedKxGroup};
use rustls::pki_types::{PrivateKeyDer, ServerName};
use rustls::version::{TLS12, TLS13};
use rustls::{
    ClientConfig, ClientConnection, Connection, Error, NamedGroup, PeerMisbehaved, RootCertStore,
    ServerConfig, ServerConnection, SupportedProtocolVersion,
};

use super::layout::{CLIENT_SHARE_LEN, MLKEM768_EK_LEN, X25519_LEN};
use super::{provider_with_pq, ReusableKeys, X25519MLKEM768};
use crate::front::client_hello::{self, Parsed};

const X25519_ID: u16 = 0x001d;
const HYBRID_ID: u16 = 0x11ec;

fn provider(kx_groups: Vec<&'static dyn SupportedKxGroup>) -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        kx_groups,
        ..rustls::crypto::ring::default_provider()
    })
}

fn configs(
    client: Arc<CryptoProvider>,
    server: Arc<CryptoProvider>,
    versions: &[&'static SupportedProtocolVersion],
) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = made.cert.der().clone();
    let key = PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
    let server = ServerConfig::builder_with_provider(server)
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    // webpki takes the self-signed leaf as its own trust anchor.
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = ClientConfig::builder_with_provider(client)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(client), Arc::new(server))
}

fn client_for(config: &Arc<ClientConfig>) -> Connection {
    let name = ServerName::try_from("localhost").unwrap();
    ClientConnection::new(config.clone(), name).unwrap().into()
}

/// Everything `from` has to send, as it would go on the wire.
fn drain(from: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut out).unwrap();
    }
    out
}

/// Hands `bytes` to `to` and lets it process them.
fn deliver(bytes: &[u8], to: &mut Connection) -> Result<(), Error> {
    let mut rest = bytes;
    while !rest.is_empty() {
        to.read_tls(&mut rest).unwrap();
        to.process_new_packets()?;
    }
    Ok(())
}

/// How a handshake went: the client's flights (the first is its hello).
struct Run {
    client: Connection,
    server: Connection,
    client_flights: Vec<Vec<u8>>,
}

/// Runs a handshake to the end, or to the first error on either side.
fn handshake(client: Arc<ClientConfig>, server: Arc<ServerConfig>) -> Result<Run, Error> {
    let mut client = client_for(&client);
    let mut server: Connection = ServerConnection::new(server).unwrap().into();
    let mut client_flights = Vec::new();
    // A TLS 1.3 handshake takes two client flights (three with a
    // HelloRetryRequest); the bound only stops a broken test from spinning.
    for _ in 0..8 {
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(Run {
                client,
                server,
                client_flights,
            });
        }
        let flight = drain(&mut client);
        if !flight.is_empty() {
            deliver(&flight, &mut server)?;
            client_flights.push(flight);
        }
        let reply = drain(&mut server);
        deliver(&reply, &mut client)?;
    }
    panic!("handshake did not finish");
}

fn negotiated(conn: &Connection) -> NamedGroup {
    conn.negotiated_key_exchange_group().unwrap().name()
}

/// Application data flows both ways, so both sides hold the same keys.
fn exchange_data(run: &mut Run) {
    use std::io::{Read, Write};
    run.client.writer().write_all(b"ping").unwrap();
    let bytes = drain(&mut run.client);
    deliver(&bytes, &mut run.server).unwrap();
    let mut got = [0u8; 4];
    run.server.reader().read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");

    run.server.writer().write_all(b"pong").unwrap();
    let bytes = drain(&mut run.server);
    deliver(&bytes, &mut run.client).unwrap();
    run.client.reader().read_exact(&mut got).unwrap();
    assert_eq!(&got, b"pong");
}

/// The (group, share) entries of the key_share extension of a ClientHello
/// record, read by hand because the front's parser keeps only the groups.
fn key_shares(record: &[u8]) -> Vec<(u16, Vec<u8>)> {
    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }
    // record header 5, handshake header 4, legacy_version 2, random 32
    let mut at = 5 + 4 + 2 + 32;
    at += 1 + usize::from(record[at]); // session_id
    at += 2 + usize::from(u16_at(record, at)); // cipher_suites
    at += 1 + usize::from(record[at]); // compression_methods
    let extensions_end = at + 2 + usize::from(u16_at(record, at));
    at += 2;
    while at < extensions_end {
        let (kind, len) = (u16_at(record, at), usize::from(u16_at(record, at + 2)));
        at += 4;
        if kind == 51 {
            let mut entries = Vec::new();
            let mut entry = at + 2;
            while entry < at + len {
                let share_len = usize::from(u16_at(record, entry + 2));
                let share = record[entry + 4..entry + 4 + share_len].to_vec();
                entries.push((u16_at(record, entry), share));
                entry += 4 + share_len;
            }
            return entries;
        }
        at += len;
    }
    Vec::new()
}

fn parsed_groups(record: &[u8]) -> Vec<u16> {
    match client_hello::parse(record).unwrap() {
        Parsed::Complete { hello, .. } => hello.key_share_groups,
        Parsed::Incomplete { .. } => panic!("hello split"),
    }
}

#[test]
fn hybrid_is_negotiated_when_both_sides_offer_it_first() {
    let pq = Arc::new(provider_with_pq());
    let (client, server) = configs(pq.clone(), pq, &[&TLS13]);
    let mut run = handshake(client, server).unwrap();
    assert_eq!(negotiated(&run.client), NamedGroup::X25519MLKEM768);
    assert_eq!(negotiated(&run.server), NamedGroup::X25519MLKEM768);
    assert_eq!(u16::from(negotiated(&run.client)), HYBRID_ID);
    assert_eq!(run.client_flights.len(), 2, "no HelloRetryRequest");
    exchange_data(&mut run);
}

#[test]
fn server_without_hybrid_takes_the_standalone_x25519_share() {
    let (client, server) = configs(
        Arc::new(provider_with_pq()),
        Arc::new(rustls::crypto::ring::default_provider()),
        &[&TLS13],
    );
    let mut run = handshake(client, server).unwrap();
    assert_eq!(negotiated(&run.client), NamedGroup::X25519);
    assert_eq!(negotiated(&run.server), NamedGroup::X25519);
    // The X25519 share was already in the hello: one round trip, no retry.
    assert_eq!(run.client_flights.len(), 2);
    exchange_data(&mut run);
}

#[test]
fn client_without_hybrid_gets_x25519_from_a_pq_server() {
    let (client, server) = configs(
        Arc::new(rustls::crypto::ring::default_provider()),
        Arc::new(provider_with_pq()),
        &[&TLS13],
    );
    let mut run = handshake(client, server).unwrap();
    assert_eq!(negotiated(&run.server), NamedGroup::X25519);
    exchange_data(&mut run);
}

#[test]
fn tls12_never_uses_the_hybrid() {
    let pq = Arc::new(provider_with_pq());
    let (client, server) = configs(pq.clone(), pq, &[&TLS12]);
    let mut run = handshake(client, server).unwrap();
    assert_eq!(negotiated(&run.client), NamedGroup::X25519);
    exchange_data(&mut run);
}

#[test]
fn hello_carries_hybrid_and_x25519_shares_on_one_key() {
    let pq = Arc::new(provider_with_pq());
    let (client, _) = configs(pq.clone(), pq, &[&TLS13]);
    let hello = drain(&mut client_for(&client));

    assert_eq!(parsed_groups(&hello), [HYBRID_ID, X25519_ID]);
    let shares = key_shares(&hello);
    assert_eq!(shares.len(), 2);
    let (hybrid, x25519) = (&shares[0].1, &shares[1].1);
    assert_eq!(hybrid.len(), CLIENT_SHARE_LEN);
    assert_eq!(x25519.len(), X25519_LEN);
    assert_eq!(&hybrid[MLKEM768_EK_LEN..], &x25519[..]);
}

/// A client group that sends whatever share it is given under 0x11EC.
#[derive(Debug)]
struct ForgedHybrid(Vec<u8>);

struct ForgedKx(Vec<u8>);

impl SupportedKxGroup for ForgedHybrid {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        Ok(Box::new(ForgedKx(self.0.clone())))
    }
    fn name(&self) -> NamedGroup {
        NamedGroup::X25519MLKEM768
    }
}

impl ActiveKeyExchange for ForgedKx {
    fn complete(
        self: Box<Self>,
        _server_share: &[u8],
    ) -> Result<rustls::crypto::SharedSecret, Error> {
        Err(Error::General("a forged share cannot complete".into()))
    }
    fn pub_key(&self) -> &[u8] {
        &self.0
    }
    fn group(&self) -> NamedGroup {
        NamedGroup::X25519MLKEM768
    }
}

#[test]
fn server_refuses_truncated_or_garbage_hybrid_shares() {
    let honest = X25519MLKEM768.start().unwrap().pub_key().to_vec();
    let mut bad_ek = honest.clone();
    bad_ek[..MLKEM768_EK_LEN].fill(0xff);
    let forged = [
        honest[..CLIENT_SHARE_LEN - 1].to_vec(),
        honest[..X25519_LEN].to_vec(),
        [honest.as_slice(), b"!"].concat(),
        bad_ek,
    ];
    for share in forged {
        let len = share.len();
        let group: &'static dyn SupportedKxGroup = Box::leak(Box::new(ForgedHybrid(share)));
        let (client, server) = configs(
            provider(vec![group]),
            Arc::new(provider_with_pq()),
            &[&TLS13],
        );
        let err = handshake(client, server).err();
        assert_eq!(
            err,
            Some(Error::PeerMisbehaved(PeerMisbehaved::InvalidKeyShare)),
            "share of {len} bytes"
        );
    }
}

fn reusable_provider(keys: &ReusableKeys) -> Arc<CryptoProvider> {
    // Leaked: rustls wants 'static groups, and a test may spend a few bytes.
    let hybrid: &'static dyn SupportedKxGroup = Box::leak(Box::new(keys.hybrid_group()));
    let x25519: &'static dyn SupportedKxGroup = Box::leak(Box::new(keys.x25519_group()));
    provider(vec![hybrid, x25519])
}

#[test]
fn reusable_keys_repeat_their_shares_across_hellos() {
    let keys = ReusableKeys::generate().unwrap();
    let pq = Arc::new(provider_with_pq());
    let (client, _) = configs(reusable_provider(&keys), pq, &[&TLS13]);
    let first = drain(&mut client_for(&client));
    let second = drain(&mut client_for(&client));

    assert_ne!(first, second, "random and session id still differ");
    let shares = key_shares(&first);
    assert_eq!(shares, key_shares(&second));
    assert_eq!(
        shares,
        [
            (HYBRID_ID, keys.hybrid_share()),
            (X25519_ID, keys.x25519_public().to_vec()),
        ]
    );
}

#[test]
fn reusable_keys_complete_hybrid_and_x25519_handshakes() {
    let keys = ReusableKeys::generate().unwrap();
    for (server, expected) in [
        (provider_with_pq(), NamedGroup::X25519MLKEM768),
        (rustls::crypto::ring::default_provider(), NamedGroup::X25519),
    ] {
        let (client, server) = configs(reusable_provider(&keys), Arc::new(server), &[&TLS13]);
        let mut run = handshake(client, server).unwrap();
        assert_eq!(negotiated(&run.client), expected);
        assert_eq!(negotiated(&run.server), expected);
        exchange_data(&mut run);
    }
}

#[test]
fn provider_lists_hybrid_then_x25519_then_p256() {
    let names: Vec<NamedGroup> = provider_with_pq()
        .kx_groups
        .iter()
        .map(|g| g.name())
        .collect();
    assert_eq!(
        names,
        [
            NamedGroup::X25519MLKEM768,
            NamedGroup::X25519,
            NamedGroup::secp256r1
        ]
    );
    assert_eq!(kx_group::X25519.name(), NamedGroup::X25519);
}
