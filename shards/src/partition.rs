//! Which shard owns a key (a room id, a peer index…).
//!
//! The mapping must be identical on every machine and in every version, because separate
//! processes (and a restarted process) must agree on owners. It is therefore spelled out
//! here rather than taken from `std::hash`, whose output is allowed to change.

/// FNV-1a 64-bit offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The shard in `0..shards` that owns `key`.
///
/// Algorithm (frozen; changing it moves every room to another shard):
/// 1. FNV-1a 64-bit over the key bytes;
/// 2. the MurmurHash3 `fmix64` finaliser, because FNV-1a's top bits barely change when
///    only the last byte differs (`room-1`, `room-2`, …) and step 3 uses the top bits;
/// 3. Lemire's multiply-shift reduction: `(hash as u128 * shards as u128) >> 64`, which
///    maps the hash uniformly onto `0..shards` without a division.
///
/// # Panics
/// Only if `shards == 0`, which is a caller bug: there is always at least one shard.
pub fn shard_of(key: &[u8], shards: usize) -> usize {
    assert!(shards > 0, "shard_of: shards must be at least 1");
    let hash = fmix64(fnv1a64(key));
    ((u128::from(hash) * shards as u128) >> 64) as usize
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
    })
}

/// Avalanche step: every input bit affects every output bit with probability ≈ 1/2.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    /// These values must never change: they are the contract between versions and hosts.
    /// (Cross-checked against an independent Python implementation of the same steps.)
    #[test]
    fn golden_values() {
        let cases: [(&[u8], usize, usize); 10] = [
            (b"", 2, 1),
            (b"room-1", 2, 0),
            (b"room-2", 2, 0),
            (b"room-3", 2, 1),
            (b"room-1", 7, 2),
            (b"room-2", 7, 0),
            (b"peer:42", 16, 13),
            (b"peer:43", 16, 3),
            (&[0xff; 32], 3, 0),
            (b"x", 1, 0),
        ];
        for (key, shards, want) in cases {
            assert_eq!(shard_of(key, shards), want, "key {key:?} over {shards}");
        }
        assert_eq!(fmix64(fnv1a64(b"room-1")), 0x656b_b5e5_6c35_0c3f);
    }

    #[test]
    fn balanced_within_a_few_percent() {
        const KEYS: usize = 100_000;
        for shards in 2..=16 {
            let mut counts = vec![0usize; shards];
            for i in 0..KEYS {
                counts[shard_of(format!("room-{i}").as_bytes(), shards)] += 1;
            }
            let expected = KEYS as f64 / shards as f64;
            for (shard, &n) in counts.iter().enumerate() {
                let off = (n as f64 - expected).abs() / expected;
                assert!(
                    off < 0.05,
                    "{shards} shards: shard {shard} has {n}, expected {expected}"
                );
            }
        }
    }

    #[test]
    fn every_result_is_in_range() {
        for shards in 1..=33 {
            for i in 0u32..1000 {
                assert!(shard_of(&i.to_le_bytes(), shards) < shards);
            }
        }
    }

    #[test]
    #[should_panic(expected = "at least 1")]
    fn zero_shards_panics() {
        shard_of(b"k", 0);
    }
}
