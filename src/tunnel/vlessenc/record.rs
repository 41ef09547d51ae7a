//! Data records after the handshake, both directions, sans-IO.
//!
//! A record is `17 03 03 len(2)` ‖ AEAD(plaintext ≤ 8192, aad = the 5-byte
//! header), `len` = plaintext + 16. A receiver accepts `len` in 17..=16640
//! (TLS 1.3's limit). When a direction's counter reaches all-`0xff`, the
//! record sealed with the wrapped nonce re-keys that direction:
//! `NewAEAD(header ‖ sealed record, UnitedKey)` (Xray `CommonConn`).

use zeroize::Zeroizing;

use super::aead::{Aead, Cipher, TAG_LEN};
use super::Error;

pub const HEADER_LEN: usize = 5;
/// Largest plaintext a sender puts in one record.
pub const MAX_PLAINTEXT: usize = 8192;
pub const MIN_RECORD_LEN: usize = 1 + TAG_LEN;
pub const MAX_RECORD_LEN: usize = 16384 + 256;
/// Random bytes the server sends first in 0-RTT (its send-AEAD context).
pub const SERVER_RANDOM_LEN: usize = 16;

/// pfsKey (ML-KEM ss ‖ X25519 ss, 64 B) ‖ nfsKey (32 B).
pub type UnitedKey = Zeroizing<[u8; 96]>;

pub fn united_key(pfs_key: &[u8; 64], nfs_key: &[u8; 32]) -> UnitedKey {
    let mut k = Zeroizing::new([0u8; 96]);
    k[..64].copy_from_slice(pfs_key);
    k[64..].copy_from_slice(nfs_key);
    k
}

pub fn encode_header(len: usize) -> [u8; HEADER_LEN] {
    [23, 3, 3, (len >> 8) as u8, len as u8]
}

/// The sealed length a header announces, or `None` if it is not a record
/// header (wrong type/version or length out of 17..=16640).
pub fn decode_header(h: &[u8; HEADER_LEN]) -> Option<usize> {
    let len = usize::from(h[3]) << 8 | usize::from(h[4]);
    (h[..3] == [23, 3, 3] && (MIN_RECORD_LEN..=MAX_RECORD_LEN).contains(&len)).then_some(len)
}

/// The sending half.
pub struct Sender {
    aead: Aead,
    united_key: UnitedKey,
    cipher: Cipher,
    /// Hello bytes (client 0-RTT) or server random (server 0-RTT) that go
    /// out in front of the first record.
    pre_write: Vec<u8>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("aead", &self.aead)
            .field("pre_write", &self.pre_write.len())
            .finish_non_exhaustive()
    }
}

impl Sender {
    pub fn new(aead: Aead, united_key: UnitedKey, cipher: Cipher, pre_write: Vec<u8>) -> Sender {
        Sender {
            aead,
            united_key,
            cipher,
            pre_write,
        }
    }

    /// Bytes that must precede the next record (empty once sent).
    pub fn pending_pre_write(&self) -> &[u8] {
        &self.pre_write
    }

    /// Takes the pre-write out, for sending it alone (e.g. before a read
    /// when the application has nothing to write yet).
    pub fn take_pre_write(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pre_write)
    }

    /// Appends `data` to `out` as records of at most 8192 plaintext bytes,
    /// preceded by any pending pre-write. Empty data writes nothing.
    pub fn seal(&mut self, data: &[u8], out: &mut Vec<u8>) {
        for chunk in data.chunks(MAX_PLAINTEXT) {
            self.seal_record(chunk, out);
        }
    }

    /// One record of `plaintext` (≤ 8192 bytes).
    pub fn seal_record(&mut self, plaintext: &[u8], out: &mut Vec<u8>) {
        assert!(
            plaintext.len() <= MAX_PLAINTEXT,
            "record plaintext too long"
        );
        if !self.pre_write.is_empty() {
            out.append(&mut self.pre_write);
        }
        let start = out.len();
        let header = encode_header(plaintext.len() + TAG_LEN);
        out.extend_from_slice(&header);
        let rekey = self.aead.counter_is_max();
        self.aead.seal_append(out, plaintext, &header);
        if rekey {
            self.aead = Aead::new(&out[start..], &self.united_key[..], self.cipher);
        }
    }

    #[cfg(test)]
    pub fn aead_mut(&mut self) -> &mut Aead {
        &mut self.aead
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Client 0-RTT: the server's 16 random bytes come first.
    ServerRandom,
    /// Client 1-RTT: the server's sealed padding of this many bytes.
    PeerPadding(usize),
    Header,
    Body {
        header: [u8; HEADER_LEN],
        len: usize,
    },
}

/// The receiving half: asks for exact-size units ([`Receiver::wants`]) and
/// opens them ([`Receiver::input`]).
pub struct Receiver {
    stage: Stage,
    /// `None` only while waiting for the 0-RTT server random.
    aead: Option<Aead>,
    united_key: UnitedKey,
    cipher: Cipher,
    /// Client 0-RTT before the first valid header: a bad header means the
    /// server did not know our ticket.
    zero_rtt_unconfirmed: bool,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("stage", &self.stage)
            .field("aead", &self.aead)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// Records opened with `aead` straight away (servers).
    pub fn records(aead: Aead, united_key: UnitedKey, cipher: Cipher) -> Receiver {
        Receiver {
            stage: Stage::Header,
            aead: Some(aead),
            united_key,
            cipher,
            zero_rtt_unconfirmed: false,
        }
    }

    /// Client 1-RTT: the server's padding (`len` sealed bytes) comes first.
    pub fn after_padding(
        aead: Aead,
        united_key: UnitedKey,
        cipher: Cipher,
        len: usize,
    ) -> Receiver {
        Receiver {
            stage: Stage::PeerPadding(len),
            ..Receiver::records(aead, united_key, cipher)
        }
    }

    /// Client 0-RTT: 16 server random bytes key the receive direction.
    pub fn zero_rtt_client(united_key: UnitedKey, cipher: Cipher) -> Receiver {
        Receiver {
            stage: Stage::ServerRandom,
            aead: None,
            united_key,
            cipher,
            zero_rtt_unconfirmed: true,
        }
    }

    /// Between records, where the peer may end the stream cleanly.
    pub fn at_record_boundary(&self) -> bool {
        self.stage == Stage::Header
    }

    /// Exactly how many bytes the next [`Receiver::input`] takes.
    pub fn wants(&self) -> usize {
        match self.stage {
            Stage::ServerRandom => SERVER_RANDOM_LEN,
            Stage::PeerPadding(len) => len,
            Stage::Header => HEADER_LEN,
            Stage::Body { len, .. } => len,
        }
    }

    /// Consumes one unit of exactly [`Receiver::wants`] bytes (opened in
    /// place) and returns the plaintext when the unit completed a record.
    pub fn input<'b>(&mut self, unit: &'b mut [u8]) -> Result<Option<&'b [u8]>, Error> {
        if unit.len() != self.wants() {
            return Err(Error::Record("unit of the wrong size"));
        }
        match self.stage {
            Stage::ServerRandom => {
                self.aead = Some(Aead::new(unit, &self.united_key[..], self.cipher));
                self.stage = Stage::Header;
                Ok(None)
            }
            Stage::PeerPadding(_) => {
                self.aead_mut()?
                    .open_in_place(unit, &[])
                    .map_err(|_| Error::Handshake("server padding does not open"))?;
                self.stage = Stage::Header;
                Ok(None)
            }
            Stage::Header => {
                let header: [u8; HEADER_LEN] = (&*unit).try_into().expect("5 bytes");
                match decode_header(&header) {
                    Some(len) => {
                        self.zero_rtt_unconfirmed = false;
                        self.stage = Stage::Body { header, len };
                        Ok(None)
                    }
                    None if self.zero_rtt_unconfirmed => Err(Error::NewHandshakeNeeded),
                    None => Err(Error::Record("invalid record header")),
                }
            }
            Stage::Body { header, .. } => {
                self.stage = Stage::Header;
                let aead = self.aead_mut()?;
                // The re-key context is the record as received, so compute
                // it before opening in place.
                let next = aead.counter_is_max().then(|| {
                    let mut ctx = header.to_vec();
                    ctx.extend_from_slice(unit);
                    ctx
                });
                let opened = aead.open_in_place(unit, &header);
                if let Some(ctx) = next {
                    self.aead = Some(Aead::new(&ctx, &self.united_key[..], self.cipher));
                }
                let plain = opened.map_err(|_| Error::Record("record does not open"))?;
                Ok(Some(plain))
            }
        }
    }

    fn aead_mut(&mut self) -> Result<&mut Aead, Error> {
        self.aead.as_mut().ok_or(Error::Record("no key yet"))
    }

    #[cfg(test)]
    pub fn aead_for_test(&mut self) -> &mut Aead {
        self.aead.as_mut().unwrap()
    }
}

/// Both halves of an established connection.
#[derive(Debug)]
pub struct Session {
    pub sender: Sender,
    pub receiver: Receiver,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::vlessenc::aead::MAX_NONCE;

    fn pair() -> (Sender, Receiver) {
        let key = united_key(&[7; 64], &[9; 32]);
        let s = Sender::new(
            Aead::new(b"ctx", &key[..], Cipher::Aes256Gcm),
            key.clone(),
            Cipher::Aes256Gcm,
            Vec::new(),
        );
        let r = Receiver::records(
            Aead::new(b"ctx", &key[..], Cipher::Aes256Gcm),
            key,
            Cipher::Aes256Gcm,
        );
        (s, r)
    }

    /// Feeds `wire` through `r` unit by unit; returns the plaintext.
    fn drain(r: &mut Receiver, mut wire: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        while !wire.is_empty() {
            let n = r.wants();
            if n > wire.len() {
                return Err(Error::Record("truncated"));
            }
            let mut unit = wire[..n].to_vec();
            wire = &wire[n..];
            if let Some(p) = r.input(&mut unit)? {
                out.extend_from_slice(p);
            }
        }
        Ok(out)
    }

    #[test]
    fn headers() {
        assert_eq!(encode_header(16 + 8192), [23, 3, 3, 0x20, 0x10]);
        assert_eq!(decode_header(&[23, 3, 3, 0, 17]), Some(17));
        assert_eq!(decode_header(&[23, 3, 3, 0, 16]), None);
        assert_eq!(decode_header(&[23, 3, 3, 0x41, 0x00]), Some(16640));
        assert_eq!(decode_header(&[23, 3, 3, 0x41, 0x01]), None);
        assert_eq!(decode_header(&[22, 3, 3, 0, 20]), None);
        assert_eq!(decode_header(&[23, 3, 1, 0, 20]), None);
    }

    #[test]
    fn record_boundaries() {
        for len in [0usize, 1, 8191, 8192, 8193, 16384, 20000] {
            let (mut s, mut r) = pair();
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut wire = Vec::new();
            s.seal(&data, &mut wire);
            let records = len.div_ceil(MAX_PLAINTEXT);
            assert_eq!(wire.len(), len + records * (HEADER_LEN + TAG_LEN));
            assert_eq!(drain(&mut r, &wire).unwrap(), data);
        }
    }

    #[test]
    fn pre_write_goes_first_once() {
        let (mut s, _) = pair();
        s.pre_write = b"HELLO".to_vec();
        let mut wire = Vec::new();
        s.seal(b"a", &mut wire);
        s.seal(b"b", &mut wire);
        assert!(wire.starts_with(b"HELLO\x17\x03\x03\x00\x11"));
        assert_eq!(wire.len(), 5 + 2 * (5 + 1 + 16));
    }

    #[test]
    fn max_nonce_rekeys_both_sides() {
        let (mut s, mut r) = pair();
        let mut almost = MAX_NONCE;
        almost[11] = 0xfe;
        s.aead_mut().set_counter(almost);
        r.aead_for_test().set_counter(almost);
        let mut wire = Vec::new();
        for i in 0..4u8 {
            s.seal(&[i; 100], &mut wire);
        }
        let got = drain(&mut r, &wire).unwrap();
        assert_eq!(got.len(), 400);
        assert_eq!(&got[300..], &[3; 100]);
    }

    #[test]
    fn tampering_fails_cleanly() {
        let (mut s, _) = pair();
        let mut wire = Vec::new();
        s.seal(b"some secret data", &mut wire);
        for i in 0..wire.len() {
            let (_, mut r) = pair();
            let mut bad = wire.clone();
            bad[i] ^= 1;
            assert!(drain(&mut r, &bad).is_err(), "byte {i}");
        }
    }

    #[test]
    fn zero_rtt_client_reports_new_handshake() {
        let key = united_key(&[1; 64], &[2; 32]);
        let mut r = Receiver::zero_rtt_client(key, Cipher::Aes256Gcm);
        let mut noise = [0x42u8; 16];
        assert_eq!(r.input(&mut noise).unwrap(), None);
        let mut bad_header = [0x99u8; 5];
        assert!(matches!(
            r.input(&mut bad_header),
            Err(Error::NewHandshakeNeeded)
        ));
    }
}
