//! The server side of the handshake, sans-IO.
//!
//! 1. [`read_first`]: `iv(16) ‖ relay ‖ Seal_nfs(len)` → nfsKey and the
//!    cipher (AES-GCM, else ChaCha20-Poly1305, tried on this first block).
//!    `len = 32` announces 0-RTT ([`AwaitTicket`]); `len ≥ 1232` a 1-RTT key
//!    exchange ([`AwaitKeyExchange`]).
//! 2. 1-RTT: open ek ‖ x25519, encapsulate, answer with the server hello
//!    `Seal_nfs(MaxNonce, ct ‖ x25519) ‖ Seal_S(ticket) ‖ Seal_S(padLen) ‖
//!    Seal_S(zeros)`, then read the client's sealed padding
//!    ([`AwaitClientPadding`], nfs nonces 3 and 4).
//! 3. 0-RTT: open the ticket, look it up (unknown → noise, see
//!    [`TicketOutcome::Unknown`]), refuse a replayed nfsKey, and send 16
//!    random bytes before the first record.
//!
//! Any error before the session exists means the peer is not a client with
//! our key: the caller stops answering and closes or drains, like a server
//! of random bytes.

use zeroize::Zeroizing;

use super::aead::{Aead, Cipher, MAX_NONCE, SEALED_LEN_LEN, TAG_LEN};
use super::client::{CLIENT_KEX_SEALED_LEN, SEALED_TICKET_LEN};
use super::keys::{ServerKey, ServerKeys, MLKEM_EK_LEN};
use super::padding::{seal_padding, Flight};
use super::record::{
    decode_header, united_key, Receiver, Sender, Session, HEADER_LEN, SERVER_RANDOM_LEN,
};
use super::tickets::{Redeem, ServerTickets, Ticket, TICKET_LEN};
use super::{kex, random, Error};

/// Bytes [`read_first`] takes for these keys.
pub fn first_len(keys: &ServerKeys) -> usize {
    16 + keys.key.relay_len() + SEALED_LEN_LEN
}

/// What the first length announced.
#[derive(Debug)]
pub enum ServerFirst {
    ZeroRtt(AwaitTicket),
    OneRtt(AwaitKeyExchange),
}

struct Nfs {
    aead: Aead,
    key: Zeroizing<[u8; 32]>,
    cipher: Cipher,
}

/// Opens the first [`first_len`] bytes.
pub fn read_first(
    keys: &ServerKeys,
    tickets: &ServerTickets,
    input: &[u8],
) -> Result<ServerFirst, Error> {
    if input.len() != first_len(keys) {
        return Err(Error::Handshake("first read of the wrong size"));
    }
    let (iv, rest) = input.split_at(16);
    let (relay, sealed_len) = rest.split_at(keys.key.relay_len());
    let nfs_key = match &keys.key {
        ServerKey::X25519(secret) => {
            let public: [u8; 32] = relay.try_into().expect("32 bytes");
            // Xray refuses a set top bit so that no bit of the hello can be
            // flipped without breaking the connection.
            if public[31] > 127 {
                return Err(Error::Handshake(
                    "the top bit of the client's X25519 public key is set",
                ));
            }
            kex::x25519(secret, public)?
        }
        ServerKey::MlKem768(dk) => kex::mlkem_decapsulate(dk, relay)?,
    };
    let sealed_len: &[u8; SEALED_LEN_LEN] = sealed_len.try_into().expect("18 bytes");
    let mut cipher = Cipher::Aes256Gcm;
    let mut aead = Aead::new(iv, &nfs_key[..], cipher);
    let len = match aead.open_len(sealed_len) {
        Ok(len) => len,
        Err(_) => {
            cipher = cipher.other();
            aead = Aead::new(iv, &nfs_key[..], cipher);
            aead.open_len(sealed_len)
                .map_err(|_| Error::Handshake("first length does not open"))?
        }
    };
    let nfs = Nfs {
        aead,
        key: nfs_key,
        cipher,
    };
    if usize::from(len) == SEALED_TICKET_LEN {
        if !tickets.lifetime().enabled() {
            return Err(Error::ZeroRttNotAllowed);
        }
        return Ok(ServerFirst::ZeroRtt(AwaitTicket { nfs }));
    }
    // Longer is allowed: Xray reads it all and uses the first 1216 bytes,
    // leaving room for more public keys in future versions.
    if usize::from(len) < CLIENT_KEX_SEALED_LEN {
        return Err(Error::Handshake("client key exchange too short"));
    }
    Ok(ServerFirst::OneRtt(AwaitKeyExchange {
        nfs,
        len: len.into(),
    }))
}

/// 0-RTT: the sealed ticket comes next.
pub struct AwaitTicket {
    nfs: Nfs,
}

impl std::fmt::Debug for AwaitTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwaitTicket").finish_non_exhaustive()
    }
}

/// The result of a 0-RTT ticket.
#[derive(Debug)]
pub enum TicketOutcome {
    /// Ready: the server random is the session's pre-write.
    Accepted(Box<Session>),
    /// Unknown or expired: write `noise` (1279–2279 random bytes that a
    /// client cannot take for a record) and close; the client then drops
    /// its ticket and reports "new handshake needed".
    Unknown { noise: Vec<u8> },
}

impl AwaitTicket {
    pub const LEN: usize = SEALED_TICKET_LEN;

    pub fn finish(
        mut self,
        input: &[u8; SEALED_TICKET_LEN],
        tickets: &ServerTickets,
    ) -> Result<TicketOutcome, Error> {
        let mut buf = *input;
        let ticket = self
            .nfs
            .aead
            .open_in_place(&mut buf, &[])
            .map_err(|_| Error::Handshake("ticket does not open"))?;
        let ticket: Ticket = (&*ticket).try_into().expect("16 bytes");
        let pfs_key = match tickets.redeem(&ticket, &self.nfs.key, tickets.now()) {
            Ok(k) => k,
            Err(Redeem::Unknown) => return Ok(TicketOutcome::Unknown { noise: noise()? }),
            Err(Redeem::Replay) => return Err(Error::Replay),
        };
        // The same nfsKey links both directions of this connection.
        let united = united_key(&pfs_key, &self.nfs.key);
        let cipher = self.nfs.cipher;
        // Our own random, not the client's: the download key never depends
        // on client-chosen bytes alone.
        let server_random = random::array::<SERVER_RANDOM_LEN>()?;
        let send = Aead::new(&server_random, &united[..], cipher);
        let peer = Aead::new(input, &united[..], cipher);
        Ok(TicketOutcome::Accepted(Box::new(Session {
            sender: Sender::new(send, united.clone(), cipher, server_random.to_vec()),
            receiver: Receiver::records(peer, united, cipher),
        })))
    }
}

/// Noise for an unknown ticket. Xray checks that its first 5 bytes are not a
/// record header, but its client reads the header *after* 16 bytes taken as
/// the server random; we keep both positions non-headers.
fn noise() -> Result<Vec<u8>, Error> {
    let len = random::between(1279, 2279)? as usize;
    let mut noise = vec![0u8; len];
    loop {
        random::fill(&mut noise)?;
        let at = |i: usize| -> [u8; HEADER_LEN] {
            noise[i..i + HEADER_LEN].try_into().expect("5 bytes")
        };
        if decode_header(&at(0)).is_none() && decode_header(&at(SERVER_RANDOM_LEN)).is_none() {
            return Ok(noise);
        }
    }
}

/// 1-RTT: the sealed client key exchange of [`AwaitKeyExchange::wants`] bytes.
pub struct AwaitKeyExchange {
    nfs: Nfs,
    len: usize,
}

impl std::fmt::Debug for AwaitKeyExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwaitKeyExchange")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl AwaitKeyExchange {
    pub fn wants(&self) -> usize {
        self.len
    }

    /// Opens the key exchange and builds the server hello flight. A ticket
    /// with a lifetime is cached in `tickets`.
    pub fn finish(
        mut self,
        input: &[u8],
        keys: &ServerKeys,
        tickets: &ServerTickets,
    ) -> Result<(Flight, AwaitClientPadding), Error> {
        if input.len() != self.len {
            return Err(Error::Handshake("key exchange of the wrong size"));
        }
        let mut buf = input.to_vec();
        let client_public = self
            .nfs
            .aead
            .open_in_place(&mut buf, &[])
            .map_err(|_| Error::Handshake("client key exchange does not open"))?;
        let client_public = &client_public[..MLKEM_EK_LEN + 32];
        let (ek, x_public) = client_public.split_at(MLKEM_EK_LEN);
        let (ct, mlkem_ss) = kex::mlkem_encapsulate_to(ek)?;
        let (x_secret, x_server) = kex::x25519_ephemeral()?;
        let x_ss = kex::x25519(&x_secret, x_public.try_into().expect("32 bytes"))?;
        let pfs_key = kex::pfs_key(&mlkem_ss, &x_ss);
        let mut pfs_public = ct;
        pfs_public.extend_from_slice(&x_server);
        let united = united_key(&pfs_key, &self.nfs.key);
        let cipher = self.nfs.cipher;
        let mut send = Aead::new(&pfs_public, &united[..], cipher);
        let peer = Aead::new(client_public, &united[..], cipher);

        let mut ticket: Ticket = random::array::<TICKET_LEN>()?;
        let secs = keys.tickets.draw()?;
        ticket[..2].copy_from_slice(&secs.to_be_bytes());
        if secs > 0 {
            tickets.insert(ticket, pfs_key, tickets.now());
        }

        let plan = keys.padding.plan()?;
        let mut hello =
            Vec::with_capacity(pfs_public.len() + TAG_LEN + SEALED_TICKET_LEN + plan.total);
        // The one explicit nonce: the nfs counter stays at 2 for the
        // client's padding (nonces 3 and 4).
        self.nfs
            .aead
            .seal_append_with(MAX_NONCE, &mut hello, &pfs_public, &[]);
        send.seal_append(&mut hello, &ticket, &[]);
        seal_padding(&mut send, &mut hello, plan.total);
        let next = AwaitClientPadding {
            nfs: self.nfs.aead,
            len: None,
            session: Session {
                sender: Sender::new(send, united.clone(), cipher, Vec::new()),
                receiver: Receiver::records(peer, united, cipher),
            },
        };
        Ok((Flight::new(hello, &plan), next))
    }
}

/// 1-RTT, after our hello: the client's sealed padding length, then the
/// padding itself.
#[derive(Debug)]
pub struct AwaitClientPadding {
    nfs: Aead,
    len: Option<usize>,
    session: Session,
}

impl AwaitClientPadding {
    /// Bytes the next [`AwaitClientPadding::input`] takes.
    pub fn wants(&self) -> usize {
        self.len.unwrap_or(SEALED_LEN_LEN)
    }

    /// Feeds one unit; returns the session once the padding opened.
    pub fn input(mut self, unit: &[u8]) -> Result<Result<Session, Self>, Error> {
        if unit.len() != self.wants() {
            return Err(Error::Handshake("padding unit of the wrong size"));
        }
        match self.len {
            None => {
                let sealed: &[u8; SEALED_LEN_LEN] = unit.try_into().expect("18 bytes");
                let len = self
                    .nfs
                    .open_len(sealed)
                    .map_err(|_| Error::Handshake("client padding length does not open"))?;
                self.len = Some(len.into());
                Ok(Err(self))
            }
            Some(_) => {
                let mut buf = unit.to_vec();
                self.nfs
                    .open_in_place(&mut buf, &[])
                    .map_err(|_| Error::Handshake("client padding does not open"))?;
                Ok(Ok(self.session))
            }
        }
    }
}
