//! The `decryption` / `encryption` config strings and their keys.
//!
//! Server: `mlkem768x25519plus.native.<600s|300-600s|0s>.[padding.]<key>`,
//! key = X25519 private key (32 B) or ML-KEM-768 seed d‖z (64 B).
//! Client: `mlkem768x25519plus.native.<0rtt|1rtt>.[padding.]<key>`,
//! key = X25519 public key (32 B) or ML-KEM-768 encapsulation key (1184 B).
//! Keys are unpadded base64url. As in Xray, a dot-separated item shorter
//! than 20 characters is a padding item and a longer one is a key.
//! Only `native` mode and a single key (no relay chain) are implemented.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ml_kem::kem::{KeyExport, TryKeyInit};
use ml_kem::{DecapsulationKey, EncapsulationKey, MlKem768, Seed};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use super::aead::Cipher;
use super::padding::PaddingSpec;
use super::{random, Error};

const PREFIX: &str = "mlkem768x25519plus";

/// X25519 key length (private or public).
pub const X25519_LEN: usize = 32;
/// ML-KEM-768 seed (d ‖ z) length.
pub const MLKEM_SEED_LEN: usize = 64;
/// ML-KEM-768 encapsulation key length.
pub const MLKEM_EK_LEN: usize = 1184;
/// ML-KEM-768 ciphertext length.
pub const MLKEM_CT_LEN: usize = 1088;

/// The server's static key, which authenticates it (the "nfs" key).
pub enum ServerKey {
    X25519(StaticSecret),
    MlKem768(Box<DecapsulationKey<MlKem768>>),
}

impl ServerKey {
    /// Bytes of the relay the client sends: its ephemeral X25519 public
    /// key, or an ML-KEM ciphertext.
    pub fn relay_len(&self) -> usize {
        match self {
            ServerKey::X25519(_) => X25519_LEN,
            ServerKey::MlKem768(_) => MLKEM_CT_LEN,
        }
    }
}

/// The server's public key as the client holds it.
#[derive(Clone)]
pub enum ClientKey {
    X25519(PublicKey),
    MlKem768(Box<EncapsulationKey<MlKem768>>),
}

impl ClientKey {
    pub fn relay_len(&self) -> usize {
        match self {
            ClientKey::X25519(_) => X25519_LEN,
            ClientKey::MlKem768(_) => MLKEM_CT_LEN,
        }
    }
}

/// Ticket lifetime setting: `600s` (from = 600, to = 0: 50–99 % of 600),
/// `300-600s` (uniform in [300, 600)), `0s` (no tickets, no 0-RTT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TicketLifetime {
    pub from: u16,
    pub to: u16,
}

impl TicketLifetime {
    pub fn enabled(&self) -> bool {
        self.from > 0 || self.to > 0
    }

    /// The longest lifetime a ticket can get, in seconds.
    pub fn max_secs(&self) -> u64 {
        u64::from(self.from.max(self.to))
    }

    /// A lifetime for a new ticket, as Xray draws it.
    pub fn draw(&self) -> Result<u16, Error> {
        let secs = if self.to == 0 {
            u64::from(self.from) * random::between(50, 100)? / 100
        } else {
            random::between(self.from.into(), self.to.into())?
        };
        Ok(secs as u16)
    }
}

/// A parsed server `decryption` string.
pub struct ServerKeys {
    pub key: ServerKey,
    pub tickets: TicketLifetime,
    pub padding: PaddingSpec,
}

impl std::fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.key {
            ServerKey::X25519(_) => "X25519",
            ServerKey::MlKem768(_) => "ML-KEM-768",
        };
        f.debug_struct("ServerKeys")
            .field("key", &kind)
            .field("tickets", &self.tickets)
            .field("padding", &self.padding)
            .finish()
    }
}

/// A parsed client `encryption` string.
#[derive(Clone)]
pub struct ClientKeys {
    pub key: ClientKey,
    /// `0rtt`: reuse a ticket when one is cached.
    pub zero_rtt: bool,
    pub padding: PaddingSpec,
    /// Xray's client uses AES-GCM when the CPU has AES instructions, else
    /// ChaCha20-Poly1305; the server accepts either. Defaults to AES-GCM.
    pub cipher: Cipher,
}

impl std::fmt::Debug for ClientKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.key {
            ClientKey::X25519(_) => "X25519",
            ClientKey::MlKem768(_) => "ML-KEM-768",
        };
        f.debug_struct("ClientKeys")
            .field("key", &kind)
            .field("zero_rtt", &self.zero_rtt)
            .field("padding", &self.padding)
            .field("cipher", &self.cipher)
            .finish()
    }
}

/// The fields common to both strings: (third field, padding, key bytes).
fn split_config<'a>(
    setting: &str,
    s: &'a str,
) -> Result<(&'a str, PaddingSpec, Zeroizing<Vec<u8>>), Error> {
    let bad = |why: String| Error::Config(format!("{setting} {why}"));
    let fields: Vec<&str> = s.split('.').collect();
    if fields.len() < 4 || fields[0] != PREFIX {
        return Err(bad(format!(
            "must look like {PREFIX}.native.<…>.<base64url key>"
        )));
    }
    match fields[1] {
        "native" => {}
        m @ ("xorpub" | "random") => {
            return Err(bad(format!(
                "mode {m:?} is not supported yet; use \"native\""
            )))
        }
        m => return Err(bad(format!("unknown mode {m:?}; use \"native\""))),
    }
    let rest = &fields[3..];
    let n_padding = rest.iter().take_while(|r| r.len() < 20).count();
    let keys = &rest[n_padding..];
    if keys.is_empty() {
        return Err(bad("has no key".into()));
    }
    if let Some(late) = keys.iter().find(|k| k.len() < 20) {
        return Err(bad(format!(
            "padding item {late:?} after a key; padding goes before the keys"
        )));
    }
    if keys.len() > 1 {
        return Err(bad(format!(
            "has {} keys; relay chains are not supported yet, use one key",
            keys.len()
        )));
    }
    let padding = PaddingSpec::parse(&rest[..n_padding].join("."))
        .map_err(|e| bad(format!("padding: {e}")))?;
    let key = URL_SAFE_NO_PAD
        .decode(keys[0])
        .map_err(|_| bad("key is not unpadded base64url".into()))?;
    Ok((fields[2], padding, Zeroizing::new(key)))
}

impl ServerKeys {
    /// Parses a server `decryption` string.
    pub fn parse(s: &str) -> Result<ServerKeys, Error> {
        let (ticket, padding, key) = split_config("decryption", s)?;
        let bad_ticket = || {
            Error::Config(format!(
                "decryption ticket lifetime {ticket:?} must be like 600s, 300-600s or 0s (seconds ≤ 65535)"
            ))
        };
        let t = ticket.strip_suffix('s').unwrap_or(ticket);
        let (from, to) = match t.split_once('-') {
            Some((a, b)) => (a, Some(b)),
            None => (t, None),
        };
        let tickets = TicketLifetime {
            from: from.parse().map_err(|_| bad_ticket())?,
            to: match to {
                Some(b) => b.parse().map_err(|_| bad_ticket())?,
                None => 0,
            },
        };
        let key = match key.len() {
            X25519_LEN => {
                let mut k = [0u8; X25519_LEN];
                k.copy_from_slice(&key);
                let secret = StaticSecret::from(k);
                k.zeroize();
                ServerKey::X25519(secret)
            }
            MLKEM_SEED_LEN => {
                let mut seed = [0u8; MLKEM_SEED_LEN];
                seed.copy_from_slice(&key);
                let dk = DecapsulationKey::from_seed(Seed::from(seed));
                seed.zeroize();
                ServerKey::MlKem768(Box::new(dk))
            }
            n => {
                return Err(Error::Config(format!(
                "decryption key is {n} bytes; want an X25519 private key (32) or ML-KEM-768 seed (64)"
            )))
            }
        };
        Ok(ServerKeys {
            key,
            tickets,
            padding,
        })
    }

    /// The client's key for this server, base64url.
    pub fn client_key(&self) -> String {
        match &self.key {
            ServerKey::X25519(s) => URL_SAFE_NO_PAD.encode(PublicKey::from(s).as_bytes()),
            ServerKey::MlKem768(dk) => {
                URL_SAFE_NO_PAD.encode(dk.encapsulation_key().to_bytes().as_slice())
            }
        }
    }
}

impl ClientKeys {
    /// Parses a client `encryption` string.
    pub fn parse(s: &str) -> Result<ClientKeys, Error> {
        let (rtt, padding, key) = split_config("encryption", s)?;
        let zero_rtt = match rtt {
            "0rtt" => true,
            "1rtt" => false,
            r => {
                return Err(Error::Config(format!(
                    "encryption {r:?} must be 0rtt or 1rtt"
                )))
            }
        };
        let key = match key.len() {
            X25519_LEN => {
                let mut k = [0u8; X25519_LEN];
                k.copy_from_slice(&key);
                ClientKey::X25519(PublicKey::from(k))
            }
            MLKEM_EK_LEN => ClientKey::MlKem768(Box::new(
                EncapsulationKey::<MlKem768>::new_from_slice(&key).map_err(|_| {
                    Error::Config("encryption ML-KEM-768 key does not validate (FIPS 203 §7.2)".into())
                })?,
            )),
            n => {
                return Err(Error::Config(format!(
                    "encryption key is {n} bytes; want an X25519 public key (32) or ML-KEM-768 encapsulation key (1184)"
                )))
            }
        };
        Ok(ClientKeys {
            key,
            zero_rtt,
            padding,
            cipher: Cipher::Aes256Gcm,
        })
    }
}

/// A fresh server/client key pair, base64url (Xray's `xray vlessenc`).
pub struct KeyPair {
    /// Goes into the server's `decryption` (secret).
    pub server: Zeroizing<String>,
    /// Goes into the client's `encryption`.
    pub client: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("server", &"<redacted>")
            .field("client", &self.client)
            .finish()
    }
}

impl KeyPair {
    /// An X25519 pair (authentication not post-quantum; the session key
    /// exchange is hybrid PQ either way).
    pub fn x25519() -> Result<KeyPair, Error> {
        let mut k = random::array::<X25519_LEN>()?;
        let secret = StaticSecret::from(k);
        let pair = KeyPair {
            server: Zeroizing::new(URL_SAFE_NO_PAD.encode(k)),
            client: URL_SAFE_NO_PAD.encode(PublicKey::from(&secret).as_bytes()),
        };
        k.zeroize();
        Ok(pair)
    }

    /// An ML-KEM-768 pair (post-quantum authentication).
    pub fn mlkem768() -> Result<KeyPair, Error> {
        let mut seed = random::array::<MLKEM_SEED_LEN>()?;
        let dk = DecapsulationKey::<MlKem768>::from_seed(Seed::from(seed));
        let pair = KeyPair {
            server: Zeroizing::new(URL_SAFE_NO_PAD.encode(seed)),
            client: URL_SAFE_NO_PAD.encode(dk.encapsulation_key().to_bytes().as_slice()),
        };
        seed.zeroize();
        Ok(pair)
    }

    /// `mlkem768x25519plus.native.<ticket>.<server key>`.
    pub fn server_config(&self, ticket: &str) -> Zeroizing<String> {
        Zeroizing::new(format!("{PREFIX}.native.{ticket}.{}", *self.server))
    }

    /// `mlkem768x25519plus.native.<0rtt|1rtt>.<client key>`.
    pub fn client_config(&self, rtt: &str) -> String {
        format!("{PREFIX}.native.{rtt}.{}", self.client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pairs_parse_and_match() {
        for pair in [KeyPair::x25519().unwrap(), KeyPair::mlkem768().unwrap()] {
            let server = ServerKeys::parse(&pair.server_config("600s")).unwrap();
            assert_eq!(server.client_key(), pair.client);
            assert_eq!(server.tickets, TicketLifetime { from: 600, to: 0 });
            assert_eq!(server.padding, PaddingSpec::default());
            let client = ClientKeys::parse(&pair.client_config("0rtt")).unwrap();
            assert!(client.zero_rtt);
            assert_eq!(client.key.relay_len(), server.key.relay_len());
        }
    }

    #[test]
    fn ticket_lifetimes() {
        let pair = KeyPair::x25519().unwrap();
        let parse = |t: &str| ServerKeys::parse(&pair.server_config(t)).map(|k| k.tickets);
        assert_eq!(
            parse("300-600s").unwrap(),
            TicketLifetime { from: 300, to: 600 }
        );
        assert_eq!(parse("0s").unwrap(), TicketLifetime { from: 0, to: 0 });
        assert!(!parse("0s").unwrap().enabled());
        assert!(parse("abc").is_err());
        assert!(parse("70000s").is_err());
        let t = parse("600s").unwrap();
        for _ in 0..100 {
            assert!((300..600).contains(&t.draw().unwrap()));
        }
        let t = parse("300-600s").unwrap();
        for _ in 0..100 {
            assert!((300..600).contains(&t.draw().unwrap()));
        }
    }

    #[test]
    fn padding_goes_before_the_key() {
        let pair = KeyPair::x25519().unwrap();
        let s = format!(
            "mlkem768x25519plus.native.1rtt.100-40-50.10-0-5.30-0-9.{}",
            pair.client
        );
        let keys = ClientKeys::parse(&s).unwrap();
        assert!(!keys.zero_rtt);
        assert_eq!(keys.padding.lens.len(), 2);
        assert_eq!(keys.padding.gaps.len(), 1);
        let late = format!("mlkem768x25519plus.native.1rtt.{}.100-40-50", pair.client);
        assert!(ClientKeys::parse(&late).is_err());
        let bad_pad = format!("mlkem768x25519plus.native.1rtt.50-40-50.{}", pair.client);
        assert!(ClientKeys::parse(&bad_pad).is_err());
    }

    #[test]
    fn clear_errors() {
        let pair = KeyPair::x25519().unwrap();
        let msg = |r: Result<ClientKeys, Error>| r.unwrap_err().to_string();
        assert!(msg(ClientKeys::parse(&format!(
            "mlkem768x25519plus.xorpub.0rtt.{}",
            pair.client
        )))
        .contains("not supported yet"));
        assert!(msg(ClientKeys::parse(&format!(
            "mlkem768x25519plus.random.0rtt.{}",
            pair.client
        )))
        .contains("not supported yet"));
        assert!(msg(ClientKeys::parse(&format!(
            "mlkem768x25519plus.native.0rtt.{}.{}",
            pair.client, pair.client
        )))
        .contains("relay chains are not supported"));
        assert!(msg(ClientKeys::parse(
            "mlkem768x25519plus.native.2rtt.AAAAAAAAAAAAAAAAAAAAAAAA"
        ))
        .contains("0rtt or 1rtt"));
        assert!(msg(ClientKeys::parse("none")).contains("must look like"));
        assert!(msg(ClientKeys::parse(
            "mlkem768x25519plus.native.0rtt.AAAAAAAAAAAAAAAAAAAAAAAA"
        ))
        .contains("18 bytes"));
        // An ML-KEM seed (64 B) is a server key, not a client key.
        let seed = KeyPair::mlkem768().unwrap();
        assert!(ClientKeys::parse(&seed.server_config("0rtt")).is_err());
        // An invalid ML-KEM encapsulation key (coefficients ≥ q).
        let bad_ek = URL_SAFE_NO_PAD.encode([0xffu8; MLKEM_EK_LEN]);
        assert!(msg(ClientKeys::parse(&format!(
            "mlkem768x25519plus.native.0rtt.{bad_ek}"
        )))
        .contains("validate"));
    }

    #[test]
    fn debug_never_prints_keys() {
        let pair = KeyPair::x25519().unwrap();
        let server = ServerKeys::parse(&pair.server_config("600s")).unwrap();
        let text = format!("{server:?} {pair:?}");
        assert!(!text.contains(pair.server.as_str()));
    }
}
