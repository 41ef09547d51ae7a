//! The client side of the handshake, sans-IO.
//!
//! [`start`] builds the first flight. In 1-RTT it is
//! `iv(16) ‖ relay ‖ Seal_nfs(1232) ‖ Seal_nfs(ek 1184 ‖ x25519 32) ‖
//! Seal_nfs(padLen) ‖ Seal_nfs(zeros)`; the client then reads the 1186-byte
//! server hello prefix ([`AwaitServerHello`]) and the server's padding is
//! read lazily, before the first record. In 0-RTT (a cached ticket, config
//! `0rtt`) it is `iv ‖ relay ‖ Seal_nfs(32) ‖ Seal_nfs(ticket)`, which rides
//! in front of the first data record: no round trip before data.
//!
//! `relay` is the client's ephemeral X25519 public key (nfsKey = ECDH with
//! the server's static key) or an ML-KEM-768 ciphertext to the server's
//! encapsulation key (nfsKey = the encapsulated key); `nfs = NewAEAD(iv,
//! nfsKey)`.

use ml_kem::{DecapsulationKey, MlKem768};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use super::aead::{Aead, Cipher, MAX_NONCE, SEALED_LEN_LEN, TAG_LEN};
use super::keys::{ClientKey, ClientKeys, MLKEM_CT_LEN, MLKEM_EK_LEN, X25519_LEN};
use super::padding::{seal_padding, Flight};
use super::record::{united_key, Receiver, Sender, Session};
use super::tickets::{ClientTickets, Ticket, TICKET_LEN};
use super::{kex, random, Error};

/// The sealed client key exchange: ek ‖ x25519 + tag.
pub const CLIENT_KEX_SEALED_LEN: usize = MLKEM_EK_LEN + X25519_LEN + TAG_LEN;
/// The server's sealed ct ‖ x25519 (under MaxNonce).
pub const SERVER_KEX_SEALED_LEN: usize = MLKEM_CT_LEN + X25519_LEN + TAG_LEN;
/// The sealed ticket.
pub const SEALED_TICKET_LEN: usize = TICKET_LEN + TAG_LEN;
/// What the client reads of the server hello before returning: key
/// exchange, ticket and the sealed padding length.
pub const SERVER_HELLO_LEN: usize = SERVER_KEX_SEALED_LEN + SEALED_TICKET_LEN + SEALED_LEN_LEN;

/// The client's first flight and what comes next.
#[derive(Debug)]
pub enum ClientStart {
    /// Send `flight`, then read [`SERVER_HELLO_LEN`] bytes into `hello`.
    OneRtt {
        flight: Flight,
        hello: Box<AwaitServerHello>,
    },
    /// Ready: the hello is the session's pre-write, sent with the first
    /// record. If the server answers with something that is not a record,
    /// the receiver reports [`Error::NewHandshakeNeeded`] and the caller
    /// should [`ClientTickets::forget`] `ticket`.
    ZeroRtt {
        session: Box<Session>,
        ticket: Ticket,
    },
}

/// State between the client hello and the server hello.
pub struct AwaitServerHello {
    nfs: Aead,
    nfs_key: Zeroizing<[u8; 32]>,
    mlkem: Box<DecapsulationKey<MlKem768>>,
    x25519: StaticSecret,
    /// ek ‖ x25519 public: the context of the client's send AEAD.
    pfs_public: Vec<u8>,
    cipher: Cipher,
    keep_ticket: bool,
}

impl std::fmt::Debug for AwaitServerHello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwaitServerHello")
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

/// Builds the first flight. With `zero_rtt` in the config and a valid
/// ticket in `tickets`, the result is 0-RTT.
pub fn start(keys: &ClientKeys, tickets: &ClientTickets) -> Result<ClientStart, Error> {
    let cipher = keys.cipher;
    let iv = random::array::<16>()?;
    let mut hello = Vec::with_capacity(16 + MLKEM_CT_LEN + 2 * SEALED_LEN_LEN + 1300);
    hello.extend_from_slice(&iv);
    let nfs_key = match &keys.key {
        ClientKey::X25519(server) => {
            let (secret, public) = kex::x25519_ephemeral()?;
            hello.extend_from_slice(&public);
            kex::x25519(&secret, server.to_bytes())?
        }
        ClientKey::MlKem768(ek) => {
            let (ct, ss) = kex::mlkem_encapsulate(ek);
            hello.extend_from_slice(&ct);
            ss
        }
    };
    let mut nfs = Aead::new(&iv, &nfs_key[..], cipher);

    if keys.zero_rtt {
        if let Some((ticket, pfs_key)) = tickets.get(tickets.now()) {
            let united = united_key(&pfs_key, &nfs_key);
            nfs.seal_len(&mut hello, SEALED_TICKET_LEN as u16);
            let at = hello.len();
            nfs.seal_append(&mut hello, &ticket, &[]);
            // The sealed ticket keys the upload: unchangeable by the server
            // and a different context length than the server's 16 bytes.
            let send = Aead::new(&hello[at..], &united[..], cipher);
            let session = Session {
                sender: Sender::new(send, united.clone(), cipher, hello),
                receiver: Receiver::zero_rtt_client(united, cipher),
            };
            return Ok(ClientStart::ZeroRtt {
                session: Box::new(session),
                ticket,
            });
        }
    }

    let (dk, ek) = kex::mlkem_generate()?;
    let (x25519, x_public) = kex::x25519_ephemeral()?;
    let mut pfs_public = ek;
    pfs_public.extend_from_slice(&x_public);
    nfs.seal_len(&mut hello, CLIENT_KEX_SEALED_LEN as u16);
    nfs.seal_append(&mut hello, &pfs_public, &[]);
    let plan = keys.padding.plan()?;
    seal_padding(&mut nfs, &mut hello, plan.total);
    Ok(ClientStart::OneRtt {
        flight: Flight::new(hello, &plan),
        hello: Box::new(AwaitServerHello {
            nfs,
            nfs_key,
            mlkem: Box::new(dk),
            x25519,
            pfs_public,
            cipher,
            keep_ticket: keys.zero_rtt,
        }),
    })
}

impl AwaitServerHello {
    /// Consumes the first [`SERVER_HELLO_LEN`] bytes of the server hello.
    /// A `0rtt` client caches the ticket when the server gave it a lifetime.
    pub fn finish(
        self,
        input: &[u8; SERVER_HELLO_LEN],
        tickets: &ClientTickets,
    ) -> Result<Session, Error> {
        let mut buf = *input;
        let (kex_part, rest) = buf.split_at_mut(SERVER_KEX_SEALED_LEN);
        let (ticket_part, len_part) = rest.split_at_mut(SEALED_TICKET_LEN);

        // Xray's client ignores this open's result (a bad block then fails
        // at the ticket); we stop here, which is the same outcome, sooner.
        let server_public = self
            .nfs
            .open_in_place_with(MAX_NONCE, kex_part, &[])
            .map_err(|_| Error::Handshake("server key exchange does not open"))?;
        let (ct, x_public) = server_public.split_at(MLKEM_CT_LEN);
        let mlkem_ss = kex::mlkem_decapsulate(&self.mlkem, ct)?;
        let x_public: [u8; 32] = x_public.try_into().expect("32 bytes");
        let x_ss = kex::x25519(&self.x25519, x_public)?;
        let pfs_key = kex::pfs_key(&mlkem_ss, &x_ss);
        let united = united_key(&pfs_key, &self.nfs_key);
        let send = Aead::new(&self.pfs_public, &united[..], self.cipher);
        let mut peer = Aead::new(server_public, &united[..], self.cipher);

        let ticket = peer
            .open_in_place(ticket_part, &[])
            .map_err(|_| Error::Handshake("server ticket does not open"))?;
        let ticket: Ticket = (&*ticket).try_into().expect("16 bytes");
        let secs = u16::from_be_bytes([ticket[0], ticket[1]]);
        if self.keep_ticket && secs > 0 {
            tickets.store(ticket, pfs_key, secs, tickets.now());
        }
        let len_part: &[u8; SEALED_LEN_LEN] = (&*len_part).try_into().expect("18 bytes");
        let padding_len = peer
            .open_len(len_part)
            .map_err(|_| Error::Handshake("server padding length does not open"))?;
        Ok(Session {
            sender: Sender::new(send, united.clone(), self.cipher, Vec::new()),
            receiver: Receiver::after_padding(peer, united, self.cipher, padding_len.into()),
        })
    }
}
