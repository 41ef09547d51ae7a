//! The body of a UDP request: each datagram as `len(2, BE) | payload`, in
//! both directions.

use bytes::{Buf, Bytes, BytesMut};

use super::VlessError;

/// Largest datagram the two-byte length can describe.
pub const MAX_UDP_PAYLOAD: usize = u16::MAX as usize;
const LEN_PREFIX: usize = 2;
/// Largest frame, and so the most bytes a [`UdpDeframer`] holds.
pub const MAX_UDP_FRAME: usize = LEN_PREFIX + MAX_UDP_PAYLOAD;

/// Writes datagrams as frames.
#[derive(Clone, Copy, Debug, Default)]
pub struct UdpFramer;

impl UdpFramer {
    /// Appends one frame; a payload the length cannot describe is refused
    /// and `out` is left as it was.
    pub fn encode_packet(payload: &[u8], out: &mut Vec<u8>) -> Result<(), VlessError> {
        let len = u16::try_from(payload.len()).map_err(|_| VlessError::PacketTooLarge)?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(payload);
        Ok(())
    }
}

/// Reassembles datagrams from a byte stream cut anywhere.
///
/// It never holds more than [`MAX_UDP_FRAME`] bytes, so [`feed`] may take
/// only part of its input. Since a full buffer always starts with a whole
/// frame, the caller alternates: feed, drain [`next_packet`], feed the rest.
///
/// [`feed`]: UdpDeframer::feed
/// [`next_packet`]: UdpDeframer::next_packet
#[derive(Debug, Default)]
pub struct UdpDeframer {
    buf: BytesMut,
}

impl UdpDeframer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Copies as much of `input` as fits and returns how many bytes it took.
    /// Taking fewer than offered means a whole packet is waiting.
    pub fn feed(&mut self, input: &[u8]) -> usize {
        let taken = input.len().min(MAX_UDP_FRAME - self.buf.len());
        self.buf.extend_from_slice(&input[..taken]);
        taken
    }

    /// The next whole datagram, if one has arrived (possibly empty: a
    /// zero-length frame is a valid empty datagram).
    pub fn next_packet(&mut self) -> Option<Bytes> {
        let head = self.buf.get(..LEN_PREFIX)?;
        let len = usize::from(u16::from_be_bytes([head[0], head[1]]));
        if self.buf.len() < LEN_PREFIX + len {
            return None;
        }
        self.buf.advance(LEN_PREFIX);
        Some(self.buf.split_to(len).freeze())
    }

    /// Bytes held that are not yet a whole packet. Non-zero at the end of the
    /// stream means the peer cut a datagram short.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::vless::testgen::Rng;

    fn frames(packets: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in packets {
            UdpFramer::encode_packet(p, &mut out).unwrap();
        }
        out
    }

    /// Feeds `stream` in chunks of the sizes `chunk` picks and collects what
    /// comes out.
    fn deframe(stream: &[u8], mut chunk: impl FnMut() -> usize) -> (Vec<Bytes>, usize) {
        let mut d = UdpDeframer::new();
        let mut got = Vec::new();
        let mut rest = stream;
        while !rest.is_empty() {
            let n = chunk().min(rest.len());
            let mut piece = &rest[..n];
            rest = &rest[n..];
            while !piece.is_empty() {
                let taken = d.feed(piece);
                piece = &piece[taken..];
                let before = got.len();
                got.extend(std::iter::from_fn(|| d.next_packet()));
                assert!(taken > 0 || got.len() > before, "stuck with a full buffer");
            }
        }
        (got, d.buffered())
    }

    #[test]
    fn frames_are_length_prefixed() {
        assert_eq!(frames(&[b"abc".to_vec(), vec![]]), b"\x00\x03abc\x00\x00");
    }

    #[test]
    fn the_largest_payload_fits_and_one_more_byte_does_not() {
        let mut out = b"kept".to_vec();
        let big = vec![7; MAX_UDP_PAYLOAD + 1];
        assert_eq!(
            UdpFramer::encode_packet(&big, &mut out),
            Err(VlessError::PacketTooLarge)
        );
        assert_eq!(out, b"kept");
        UdpFramer::encode_packet(&big[1..], &mut out).unwrap();
        assert_eq!(&out[4..6], [0xff, 0xff]);
    }

    #[test]
    fn one_byte_feeds_give_back_every_packet() {
        let packets = vec![
            b"dns query".to_vec(),
            vec![],
            vec![0xab; 300],
            b"x".to_vec(),
        ];
        let (got, left) = deframe(&frames(&packets), || 1);
        assert_eq!(got, packets);
        assert_eq!(left, 0);
    }

    #[test]
    fn splits_anywhere_give_the_same_packets() {
        let mut rng = Rng::new(7);
        let packets: Vec<Vec<u8>> = (0..200)
            .map(|_| {
                let len = rng.below(1500) as usize;
                rng.bytes(len)
            })
            .collect();
        let stream = frames(&packets);
        for _ in 0..20 {
            let (got, left) = deframe(&stream, || 1 + rng.below(3000) as usize);
            assert_eq!(got, packets);
            assert_eq!(left, 0);
        }
    }

    #[test]
    fn a_huge_input_is_taken_in_bounded_steps() {
        let packets = vec![
            vec![1; MAX_UDP_PAYLOAD],
            vec![2; MAX_UDP_PAYLOAD],
            vec![3; 10],
        ];
        let stream = frames(&packets);
        let mut d = UdpDeframer::new();
        assert_eq!(d.feed(&stream), MAX_UDP_FRAME);
        assert_eq!(d.feed(&stream[MAX_UDP_FRAME..]), 0);
        let (got, left) = deframe(&stream, || usize::MAX);
        assert_eq!(got, packets);
        assert_eq!(left, 0);
    }

    #[test]
    fn a_cut_datagram_stays_buffered() {
        let stream = frames(&[b"whole".to_vec(), b"cut short".to_vec()]);
        let (got, left) = deframe(&stream[..stream.len() - 3], || 4);
        assert_eq!(got, [b"whole".to_vec()]);
        assert_eq!(left, 2 + 9 - 3);
    }
}
