//! Deterministic random values for the codec's property tests: the same seed
//! gives the same cases on every run, so a failure can be replayed.

use uuid::Uuid;

use super::{Address, Command, Request, Target};

/// splitmix64: tiny, fast, and good enough to pick test cases.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (n > 0); the slight bias does not matter here.
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub(super) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    fn pick<'a>(&mut self, from: &'a [u8]) -> &'a u8 {
        &from[self.below(from.len() as u64) as usize]
    }

    /// `len` characters drawn from `alphabet`.
    fn text(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len).map(|_| char::from(*self.pick(alphabet))).collect()
    }

    /// A valid request, with lengths spread over their whole ranges.
    pub(super) fn request(&mut self) -> Request {
        let uuid = Uuid::from_bytes(self.array());
        let flow = match self.below(3) {
            0 => None,
            1 => Some("xtls-rprx-vision".to_owned()),
            _ => {
                // Up to the longest flow the addons' length byte allows.
                let len = 1 + self.below(252) as usize;
                Some(self.text(b"abcdefghijklmnopqrstuvwxyz-0123456789", len))
            }
        };
        let command = match self.below(3) {
            0 => Command::Tcp,
            1 => Command::Udp,
            _ => Command::Mux,
        };
        let target = (command != Command::Mux).then(|| self.target());
        Request {
            uuid,
            flow,
            command,
            target,
        }
    }

    fn target(&mut self) -> Target {
        let addr = match self.below(3) {
            0 => Address::Ipv4(self.array()),
            1 => Address::Ipv6(self.array()),
            _ => {
                let len = 1 + self.below(255) as usize;
                let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._";
                Address::Domain(self.text(alphabet, len))
            }
        };
        Target {
            addr,
            port: self.next() as u16,
        }
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        out.iter_mut().for_each(|b| *b = self.next() as u8);
        out
    }
}
