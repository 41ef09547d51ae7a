//! The padding spec of the config string and the random plan drawn from it.
//!
//! A spec is dot-separated `prob-from-to` items that alternate between a
//! padding *length* and a *gap* (milliseconds) before the next fragment:
//! `len.gap.len.gap.len…`. Each item applies when `prob ≥ rand[0,100)`, then
//! takes a value in `[from, to)`. The first length must have `prob ≥ 100`
//! and `from, to ≥ 35` (room for a sealed 2-byte length and a 1-byte sealed
//! padding block), and the sum of the lengths' maxima must fit a sealed
//! 2-byte length (≤ 18 + 65535). An empty spec means the default.
//!
//! The hello is sent as fragments: the first is the hello proper plus the
//! first length, the next ones are the following lengths, each followed by
//! its gap. The stream adapter writes the fragments as separate writes but
//! does not sleep for the gaps (it has no timer); a driver that has one can
//! honour [`Flight::fragments`].

use std::time::Duration;

use super::{random, Error};

/// Xray's default, used when the config leaves the padding out.
pub const DEFAULT_PADDING: &str = "100-111-1111.75-0-111.50-0-3333";

/// Smallest first padding length: sealed length (18) + sealed ≥1 byte (17).
pub const MIN_FIRST_LEN: u32 = 18 + 17;

/// Largest sum of length maxima.
pub const MAX_TOTAL: u64 = 18 + 65535;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Item {
    pub prob: u32,
    pub from: u32,
    pub to: u32,
}

impl Item {
    fn draw(&self) -> Result<u64, Error> {
        if u64::from(self.prob) >= random::between(0, 100)? {
            random::between(self.from.into(), self.to.into())
        } else {
            Ok(0)
        }
    }
}

/// A parsed padding spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaddingSpec {
    pub lens: Vec<Item>,
    pub gaps: Vec<Item>,
}

/// One draw from a spec: `lens` sum to `total`, `gaps[i]` follows `lens[i]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaddingPlan {
    pub total: usize,
    pub lens: Vec<usize>,
    pub gaps: Vec<Duration>,
}

impl Default for PaddingSpec {
    fn default() -> Self {
        PaddingSpec::parse(DEFAULT_PADDING).expect("the default spec parses")
    }
}

impl PaddingSpec {
    /// Parses a spec; `""` is the default.
    pub fn parse(spec: &str) -> Result<PaddingSpec, String> {
        if spec.is_empty() {
            return Ok(PaddingSpec::default());
        }
        let mut out = PaddingSpec {
            lens: Vec::new(),
            gaps: Vec::new(),
        };
        let mut max_total = 0u64;
        for (i, s) in spec.split('.').enumerate() {
            let parts: Vec<&str> = s.split('-').collect();
            // Like Xray: at least three non-empty fields, extra ones ignored.
            if parts.len() < 3 || parts[..3].iter().any(|p| p.is_empty()) {
                return Err(format!(
                    "padding item {s:?} must be prob-from-to, e.g. 100-111-1111"
                ));
            }
            let num = |p: &str| {
                p.parse::<u32>()
                    .map_err(|_| format!("padding item {s:?}: {p:?} is not a number"))
            };
            let item = Item {
                prob: num(parts[0])?,
                from: num(parts[1])?,
                to: num(parts[2])?,
            };
            if i == 0 && (item.prob < 100 || item.from < MIN_FIRST_LEN || item.to < MIN_FIRST_LEN) {
                return Err(format!(
                    "first padding item {s:?}: prob must be 100 and lengths at least {MIN_FIRST_LEN}"
                ));
            }
            if i % 2 == 0 {
                max_total += u64::from(item.from.max(item.to));
                out.lens.push(item);
            } else {
                out.gaps.push(item);
            }
        }
        if max_total > MAX_TOTAL {
            return Err(format!(
                "padding lengths may add up to {max_total}, more than {MAX_TOTAL}"
            ));
        }
        Ok(out)
    }

    /// Draws lengths and gaps. The first length is always ≥ 35 because its
    /// probability is 100 and both bounds are ≥ 35.
    pub fn plan(&self) -> Result<PaddingPlan, Error> {
        let mut plan = PaddingPlan {
            total: 0,
            lens: Vec::with_capacity(self.lens.len()),
            gaps: Vec::with_capacity(self.gaps.len()),
        };
        for item in &self.lens {
            let l = item.draw()? as usize;
            plan.total += l;
            plan.lens.push(l);
        }
        for item in &self.gaps {
            plan.gaps.push(Duration::from_millis(item.draw()?));
        }
        Ok(plan)
    }
}

/// A hello with its padding, and how to cut it into writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flight {
    pub bytes: Vec<u8>,
    /// (fragment length, gap after it); lengths sum to `bytes.len()`.
    pub pieces: Vec<(usize, Duration)>,
}

impl Flight {
    /// Cuts `bytes` (hello ‖ padding of `plan.total`) per the plan: the hello
    /// rides with the first padding length.
    pub fn new(bytes: Vec<u8>, plan: &PaddingPlan) -> Flight {
        let hello_len = bytes.len() - plan.total;
        let pieces = plan
            .lens
            .iter()
            .enumerate()
            .map(|(i, &l)| {
                let l = if i == 0 { l + hello_len } else { l };
                (l, plan.gaps.get(i).copied().unwrap_or_default())
            })
            .collect();
        Flight { bytes, pieces }
    }

    /// A flight sent in one write (0-RTT hellos, noise).
    pub fn single(bytes: Vec<u8>) -> Flight {
        let pieces = vec![(bytes.len(), Duration::ZERO)];
        Flight { bytes, pieces }
    }

    /// The non-empty fragments in order with the gap that follows each.
    pub fn fragments(&self) -> impl Iterator<Item = (&[u8], Duration)> {
        let mut at = 0;
        self.pieces.iter().filter_map(move |&(l, gap)| {
            let piece = &self.bytes[at..at + l];
            at += l;
            (l > 0).then_some((piece, gap))
        })
    }
}

/// Appends the sealed padding block of `total` bytes (≥ 35):
/// `Seal(len = total − 18) ‖ Seal(zeros of total − 34)`.
pub fn seal_padding(aead: &mut super::aead::Aead, out: &mut Vec<u8>, total: usize) {
    debug_assert!(total >= MIN_FIRST_LEN as usize);
    aead.seal_len(out, (total - 18) as u16);
    let zeros = vec![0u8; total - 18 - 16];
    aead.seal_append(out, &zeros, &[]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec() {
        let spec = PaddingSpec::default();
        assert_eq!(
            spec.lens,
            vec![
                Item {
                    prob: 100,
                    from: 111,
                    to: 1111
                },
                Item {
                    prob: 50,
                    from: 0,
                    to: 3333
                }
            ]
        );
        assert_eq!(
            spec.gaps,
            vec![Item {
                prob: 75,
                from: 0,
                to: 111
            }]
        );
        assert_eq!(PaddingSpec::parse("").unwrap(), spec);
    }

    #[test]
    fn plans_respect_bounds() {
        let spec = PaddingSpec::default();
        for _ in 0..200 {
            let plan = spec.plan().unwrap();
            assert_eq!(plan.lens.len(), 2);
            assert!((111..1111).contains(&plan.lens[0]));
            assert!(plan.lens[1] < 3333);
            assert_eq!(plan.total, plan.lens.iter().sum::<usize>());
            assert!(plan.gaps[0] < Duration::from_millis(111));
        }
    }

    #[test]
    fn rules_are_enforced() {
        for bad in [
            "99-111-1111",
            "100-34-1111",
            "100-111-34",
            "100-111",
            "100--1111",
            "100-x-1111",
            "100-35-35.",
            "100-35-65535.0-0-0.100-35-35",
        ] {
            assert!(PaddingSpec::parse(bad).is_err(), "{bad}");
        }
        assert!(PaddingSpec::parse("100-35-35").is_ok());
        assert!(PaddingSpec::parse("100-35-35-9").is_ok());
        assert!(PaddingSpec::parse("100-35-65553").is_ok());
        assert!(PaddingSpec::parse("100-35-65554").is_err());
    }

    #[test]
    fn flight_fragments_cover_everything() {
        let plan = PaddingPlan {
            total: 47,
            lens: vec![40, 0, 7],
            gaps: vec![Duration::from_millis(3), Duration::from_millis(4)],
        };
        let flight = Flight::new((0..100u8).collect(), &plan);
        let frags: Vec<_> = flight.fragments().collect();
        assert_eq!(frags.len(), 2);
        assert_eq!(frags[0].0.len(), 53 + 40);
        assert_eq!(frags[0].1, Duration::from_millis(3));
        assert_eq!(frags[1].0, &(93..100u8).collect::<Vec<_>>()[..]);
        assert_eq!(frags[1].1, Duration::ZERO);
    }
}
