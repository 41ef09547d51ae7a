//! Randomness from ring's system RNG; a failing OS RNG fails the handshake,
//! never the process.

use ring::rand::{SecureRandom, SystemRandom};

use super::Error;

pub fn fill(buf: &mut [u8]) -> Result<(), Error> {
    SystemRandom::new().fill(buf).map_err(|_| Error::Random)
}

pub fn array<const N: usize>() -> Result<[u8; N], Error> {
    let mut out = [0u8; N];
    fill(&mut out)?;
    Ok(out)
}

/// Xray's `crypto.RandBetween`: uniform in `[from, to)`, the bounds swapped
/// if reversed, `from` when equal. The ranges here are at most 2^32 wide, so
/// reducing a 64-bit draw modulo the width has a bias below 2^-32.
pub fn between(from: u64, to: u64) -> Result<u64, Error> {
    let (lo, hi) = if from <= to { (from, to) } else { (to, from) };
    if lo == hi {
        return Ok(lo);
    }
    let draw = u64::from_be_bytes(array()?);
    Ok(lo + draw % (hi - lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn between_stays_in_half_open_range() {
        assert_eq!(between(5, 5).unwrap(), 5);
        for _ in 0..1000 {
            let v = between(10, 13).unwrap();
            assert!((10..13).contains(&v));
            let w = between(13, 10).unwrap();
            assert!((10..13).contains(&w));
        }
    }
}
