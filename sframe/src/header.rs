//! RFC 9605 §4.3 SFrame header: a config byte `X|KKK|Y|CCC`, then the KID and
//! the CTR in minimal big-endian form when they do not fit in three bits.

use crate::error::{Error, Field, Result};

/// The largest encoded header: config byte plus 8-byte KID and 8-byte CTR.
pub const MAX_HEADER_LEN: usize = 17;

/// A decoded SFrame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Key identifier.
    pub kid: u64,
    /// Frame counter.
    pub ctr: u64,
}

/// Bytes needed after the config byte for `v` (0 when it fits in three bits).
const fn extra_len(v: u64) -> usize {
    if v < 8 {
        0
    } else {
        8 - (v.leading_zeros() as usize / 8)
    }
}

/// The 4-bit nibble (flag + three bits) for `v`.
const fn nibble(v: u64) -> u8 {
    let n = extra_len(v);
    if n == 0 {
        v as u8
    } else {
        0x8 | (n as u8 - 1)
    }
}

fn put_be(out: &mut Vec<u8>, v: u64) {
    let n = extra_len(v);
    out.extend_from_slice(&v.to_be_bytes()[8 - n..]);
}

impl Header {
    /// A header for `kid` and `ctr`.
    pub const fn new(kid: u64, ctr: u64) -> Self {
        Self { kid, ctr }
    }

    /// Length of the minimal encoding, 1..=17 bytes.
    pub const fn encoded_len(&self) -> usize {
        1 + extra_len(self.kid) + extra_len(self.ctr)
    }

    /// Appends the minimal encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push((nibble(self.kid) << 4) | nibble(self.ctr));
        put_be(out, self.kid);
        put_be(out, self.ctr);
    }

    /// The minimal encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Decodes a header from the start of `buf`, returning it and its length.
    ///
    /// Rejects truncated input and, as RFC 9605 §4.3 requires minimal
    /// encoding, any value sent in extended form that has a leading zero
    /// byte or would have fit in the config byte.
    pub fn decode(buf: &[u8]) -> Result<(Header, usize)> {
        let Some(&config) = buf.first() else {
            return Err(Error::TruncatedHeader { needed: 1, have: 0 });
        };
        let kid_len = field_len(config >> 4);
        let ctr_len = field_len(config & 0x0f);
        let needed = 1 + kid_len + ctr_len;
        if buf.len() < needed {
            return Err(Error::TruncatedHeader {
                needed,
                have: buf.len(),
            });
        }
        let kid = read_field(config >> 4, &buf[1..1 + kid_len], Field::Kid)?;
        let ctr = read_field(config & 0x0f, &buf[1 + kid_len..needed], Field::Ctr)?;
        Ok((Header { kid, ctr }, needed))
    }
}

/// Extra bytes announced by a nibble.
fn field_len(nibble: u8) -> usize {
    if nibble & 0x8 == 0 {
        0
    } else {
        (nibble & 0x7) as usize + 1
    }
}

fn read_field(nibble: u8, bytes: &[u8], field: Field) -> Result<u64> {
    if nibble & 0x8 == 0 {
        return Ok(u64::from(nibble & 0x7));
    }
    // Extended form: no leading zero byte, and the value must not fit in 3 bits.
    if bytes[0] == 0 {
        return Err(Error::NonMinimal(field));
    }
    let v = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    if v < 8 {
        return Err(Error::NonMinimal(field));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples() {
        assert_eq!(Header::new(0, 0).encode(), [0x00]);
        assert_eq!(Header::new(0, 0xff).encode(), [0x08, 0xff]);
        assert_eq!(Header::new(1, 0).encode(), [0x10]);
        assert_eq!(Header::new(7, 7).encode(), [0x77]);
        assert_eq!(Header::new(8, 0).encode(), [0x80, 0x08,]);
        let max = Header::new(u64::MAX, u64::MAX);
        assert_eq!(max.encoded_len(), MAX_HEADER_LEN);
        assert_eq!(
            Header::decode(&max.encode()).unwrap(),
            (max, MAX_HEADER_LEN)
        );
    }

    #[test]
    fn decode_ignores_trailing_bytes() {
        assert_eq!(
            Header::decode(&[0x08, 0xff, 0xaa, 0xbb]).unwrap(),
            (Header::new(0, 0xff), 2)
        );
    }

    #[test]
    fn truncated_input_is_rejected() {
        assert_eq!(
            Header::decode(&[]),
            Err(Error::TruncatedHeader { needed: 1, have: 0 })
        );
        // X=1 KID length 2, Y=1 CTR length 3: needs 1 + 2 + 3 bytes.
        let full = [0x9a, 0x01, 0x23, 0x01, 0x00, 0x00];
        for cut in 1..full.len() {
            assert_eq!(
                Header::decode(&full[..cut]),
                Err(Error::TruncatedHeader {
                    needed: 6,
                    have: cut
                })
            );
        }
        assert!(Header::decode(&full).is_ok());
    }

    #[test]
    fn non_minimal_is_rejected() {
        // Leading zero byte in KID (the oxpulse clients' fixed 4-byte KID).
        assert_eq!(
            Header::decode(&[0xb8, 0x00, 0x01, 0x00, 0x02, 0x09]),
            Err(Error::NonMinimal(Field::Kid))
        );
        // Extended KID whose value fits in three bits.
        assert_eq!(
            Header::decode(&[0x80, 0x07]),
            Err(Error::NonMinimal(Field::Kid))
        );
        // Extended CTR with leading zero / small value.
        assert_eq!(
            Header::decode(&[0x09, 0x00, 0xff]),
            Err(Error::NonMinimal(Field::Ctr))
        );
        assert_eq!(
            Header::decode(&[0x08, 0x00]),
            Err(Error::NonMinimal(Field::Ctr))
        );
    }

    #[test]
    fn every_length_round_trips() {
        for shift in 0..64 {
            for v in [1u64 << shift, (1u64 << shift) - 1, (1u64 << shift) + 1] {
                let h = Header::new(v, v.rotate_left(17));
                let enc = h.encode();
                assert_eq!(enc.len(), h.encoded_len());
                assert_eq!(Header::decode(&enc).unwrap(), (h, enc.len()));
            }
        }
    }
}
