//! The REALITY client on stock rustls (TUNNEL.md §2 client, §5 "two-pass ClientHello").
//!
//! REALITY hides an authenticator in the ClientHello's session_id, sealed with the whole
//! hello (session_id zeroed) as associated data, so the exact hello bytes must be known
//! before the session_id can be computed. rustls offers no hook between building and sending
//! the hello, so it is built twice from the same inputs:
//!
//! 1. with a scripted all-zero session_id, to learn the bytes;
//! 2. with the sealed session_id, everything else replayed (extension-order seed, client
//!    random, the same reusable key shares).
//!
//! The two first flights must then differ only in the 32 session_id bytes (record offset
//! 44..76); anything else means rustls changed how it builds hellos, and the connection is
//! refused rather than sent unauthenticated. The second connection is the one that is used.
//!
//! The hello is TLS 1.3 only, AES-GCM suites first (servers before Xray 25.5.16 pick the
//! session_id AEAD from the first suite), no ALPN (a REALITY server sends none), no
//! resumption, no ECH, with a standalone X25519 share (old servers only read 0x001D) and,
//! optionally, an X25519MLKEM768 share on the same X25519 key.

mod first_flight;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use ring::rand::{SecureRandom as _, SystemRandom};
use rustls::client::Resumption;
use rustls::crypto::ring::cipher_suite;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use thiserror::Error;

use super::auth::{auth_key, seal_session_id, AuthBlock, ShortId};
use super::hello::{Extracted, RealityHello, RECORD_SESSION_ID_OFFSET, SESSION_ID_LEN};
use super::verifier::TempCertVerifier;
use crate::tunnel::pq::ReusableKeys;
use first_flight::{
    with_first_flight, FirstFlight, REALITY_X25519, REALITY_X25519MLKEM768, SCRIPTED_RANDOM,
};

/// The version a client announces: the minimum that Xray ≥ 26.7.11 servers accept by default
/// (`minClientVer` 26.3.27); older servers check nothing.
pub const DEFAULT_CLIENT_VERSION: [u8; 3] = [26, 3, 27];

/// Where the sealed session_id sits in the first flight.
const SESSION_ID_BYTES: std::ops::Range<usize> =
    RECORD_SESSION_ID_OFFSET..RECORD_SESSION_ID_OFFSET + SESSION_ID_LEN;

/// What a client needs to reach one REALITY server (an Xray outbound's `realitySettings`).
#[derive(Clone, PartialEq, Eq)]
pub struct RealityClientConfig {
    /// SNI; must be one of the server's `serverNames`.
    pub server_name: String,
    /// The server's X25519 public key (`xray x25519` "Public key", `publicKey`/`password`).
    pub server_public_key: [u8; 32],
    /// One of the server's `shortIds`, parsed with [`super::parse_short_id`].
    pub short_id: ShortId,
    /// Version bytes x.y.z announced in the auth block.
    pub client_version: [u8; 3],
    /// Also offer X25519MLKEM768 (the session is PQ only if the server's `dest` picks it).
    pub offer_pq: bool,
}

impl RealityClientConfig {
    /// A config with [`DEFAULT_CLIENT_VERSION`] and no PQ offer.
    pub fn new(
        server_name: impl Into<String>,
        server_public_key: [u8; 32],
        short_id: ShortId,
    ) -> Self {
        RealityClientConfig {
            server_name: server_name.into(),
            server_public_key,
            short_id,
            client_version: DEFAULT_CLIENT_VERSION,
            offer_pq: false,
        }
    }
}

// The short id is a (weak) credential: keep it out of logs.
impl fmt::Debug for RealityClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RealityClientConfig")
            .field("server_name", &self.server_name)
            .field("short_id", &"<redacted>")
            .field("client_version", &self.client_version)
            .field("offer_pq", &self.offer_pq)
            .finish_non_exhaustive()
    }
}

/// Parses a REALITY public key as Xray prints it: 32 bytes in base64url without padding
/// (padding is tolerated).
pub fn parse_public_key(text: &str) -> Result<[u8; 32], RealityClientError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim().trim_end_matches('='))
        .map_err(|_| RealityClientError::PublicKey)?;
    bytes.try_into().map_err(|_| RealityClientError::PublicKey)
}

/// Why no REALITY client connection could be built. No variant carries key material.
#[derive(Error, Debug)]
pub enum RealityClientError {
    #[error("REALITY server name is not a valid DNS name")]
    ServerName,
    #[error("REALITY public key is not 32 bytes of base64url")]
    PublicKey,
    #[error("REALITY server public key has small order")]
    SmallOrderKey,
    #[error("system randomness unavailable")]
    Random,
    #[error("building the TLS client failed: {0}")]
    Rustls(#[from] rustls::Error),
    /// rustls no longer draws session_id, extension seed, random in that order.
    #[error("rustls drew its ClientHello randomness in an unexpected order")]
    DrawOrder,
    /// The first flight is not the expected single ClientHello record, or the two passes
    /// differ outside the session_id.
    #[error("unexpected ClientHello from rustls: {0}")]
    HelloShape(&'static str),
}

/// A REALITY client connection, its ClientHello already built and taken out.
pub struct RealityClient {
    conn: ClientConnection,
    first_flight: Vec<u8>,
}

impl RealityClient {
    /// The connection and its first flight (the ClientHello record with the sealed
    /// session_id). The flight has been taken out of the connection with `write_tls`: send it
    /// on the transport before anything the connection writes.
    pub fn into_parts(self) -> (ClientConnection, Vec<u8>) {
        (self.conn, self.first_flight)
    }

    pub fn first_flight(&self) -> &[u8] {
        &self.first_flight
    }
}

impl fmt::Debug for RealityClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RealityClient")
            .field("first_flight_len", &self.first_flight.len())
            .finish_non_exhaustive()
    }
}

/// The random inputs of one connection attempt; fixed values make the hello reproducible.
struct Inputs {
    keys: ReusableKeys,
    order_seed: [u8; 2],
    random: [u8; 32],
}

impl Inputs {
    fn generate() -> Result<Self, RealityClientError> {
        let rng = SystemRandom::new();
        let (mut order_seed, mut random) = ([0u8; 2], [0u8; 32]);
        rng.fill(&mut order_seed)
            .and_then(|()| rng.fill(&mut random))
            .map_err(|_| RealityClientError::Random)?;
        Ok(Inputs {
            keys: ReusableKeys::generate()?,
            order_seed,
            random,
        })
    }
}

/// Builds the client connection for `cfg`; `now_unix` (seconds) goes into the auth block,
/// which servers with `maxTimeDiff` compare with their clock.
pub fn reality_client(
    cfg: &RealityClientConfig,
    now_unix: u64,
) -> Result<RealityClient, RealityClientError> {
    let (client, _probe) = two_passes(cfg, now_unix, Inputs::generate()?)?;
    Ok(client)
}

/// The connection to use, and the first pass's flight (zero session_id) for the tests.
fn two_passes(
    cfg: &RealityClientConfig,
    now_unix: u64,
    inputs: Inputs,
) -> Result<(RealityClient, Vec<u8>), RealityClientError> {
    let name = ServerName::try_from(cfg.server_name.clone())
        .map_err(|_| RealityClientError::ServerName)?;
    let shared = inputs
        .keys
        .x25519_shared(&cfg.server_public_key)
        .ok_or(RealityClientError::SmallOrderKey)?;
    // Known before either pass: the client random is scripted, so one config (and one
    // verifier keyed by the auth key) serves both.
    let key = auth_key(&shared, &inputs.random);
    let config = Arc::new(client_config(cfg.offer_pq, key)?);

    let (probe_conn, probe) = build(&config, &name, &inputs, [0; SESSION_ID_LEN])?;
    drop(probe_conn);
    let hello = single_hello(&probe)?;
    if hello.random() != &inputs.random || hello.session_id() != Some([0; SESSION_ID_LEN]) {
        return Err(RealityClientError::HelloShape(
            "scripted random not in the hello",
        ));
    }
    if hello.x25519_share != Some(inputs.keys.x25519_public()) {
        return Err(RealityClientError::HelloShape("no standalone X25519 share"));
    }

    let block = AuthBlock {
        version: cfg.client_version,
        // Truncated like Go's uint32(time.Now().Unix()), which the server compares with.
        unix_time: now_unix as u32,
        short_id: cfg.short_id,
    };
    let session_id = seal_session_id(&key, &inputs.random, &block.to_plaintext(), &hello.message);
    let (conn, first_flight) = build(&config, &name, &inputs, session_id)?;

    let same_elsewhere = first_flight.len() == probe.len()
        && first_flight[..SESSION_ID_BYTES.start] == probe[..SESSION_ID_BYTES.start]
        && first_flight[SESSION_ID_BYTES.end..] == probe[SESSION_ID_BYTES.end..]
        && first_flight[SESSION_ID_BYTES] == session_id;
    debug_assert!(
        same_elsewhere,
        "the two ClientHello passes differ outside the session id"
    );
    if !same_elsewhere {
        return Err(RealityClientError::HelloShape(
            "the two passes differ outside the session id",
        ));
    }
    Ok((RealityClient { conn, first_flight }, probe))
}

/// TLS 1.3 only, AES-GCM first, the forwarding kx groups and scripted random, the REALITY
/// certificate check, nothing that would add per-connection randomness or state.
fn client_config(offer_pq: bool, auth_key: [u8; 32]) -> Result<ClientConfig, rustls::Error> {
    let kx_groups = if offer_pq {
        // The hybrid first so its share is sent; rustls adds the standalone X25519 share
        // (same key) because X25519 is listed too.
        vec![REALITY_X25519MLKEM768, REALITY_X25519]
    } else {
        vec![REALITY_X25519]
    };
    let provider = CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups,
        secure_random: SCRIPTED_RANDOM,
        ..rustls::crypto::ring::default_provider()
    };
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TempCertVerifier::new(auth_key)))
        .with_no_client_auth();
    // Resumption would change the hello between passes and link connections.
    config.resumption = Resumption::disabled();
    Ok(config)
}

/// One pass: a connection whose hello uses `session_id`, and that hello as sent.
fn build(
    config: &Arc<ClientConfig>,
    name: &ServerName<'static>,
    inputs: &Inputs,
    session_id: [u8; SESSION_ID_LEN],
) -> Result<(ClientConnection, Vec<u8>), RealityClientError> {
    let flight = FirstFlight::new(
        inputs.keys.clone(),
        session_id,
        inputs.order_seed,
        inputs.random,
    );
    let (made, flight) = with_first_flight(flight, || {
        ClientConnection::new(Arc::clone(config), name.clone())
    });
    if !flight.drawn_as_scripted() {
        return Err(RealityClientError::DrawOrder);
    }
    let mut conn = made?;
    // rustls queued the whole hello inside `new`; writing to a Vec cannot fail or block.
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out)
            .map_err(|_| RealityClientError::HelloShape("hello not writable"))?;
    }
    Ok((conn, out))
}

/// The first flight must be exactly one record holding the whole ClientHello, so the
/// session_id sits at its fixed offset.
fn single_hello(flight: &[u8]) -> Result<RealityHello, RealityClientError> {
    match RealityHello::from_records(flight) {
        Ok(Extracted::Complete { hello, consumed })
            if consumed == flight.len() && hello.message.len() + 5 == flight.len() =>
        {
            Ok(hello)
        }
        _ => Err(RealityClientError::HelloShape(
            "first flight is not one ClientHello record",
        )),
    }
}
