//! Daily SNI rotation for the tunnel (sans-IO).
//!
//! Each node disguises its tunnel as HTTPS to one name from a pool of major-brand
//! names. The pick is deterministic, so the control plane and an auditor can
//! recompute it, and it differs per node and per day, so no single static rule
//! blocks every node:
//!
//! `index = SHA-256("<node_id>:<YYYY-MM-DD>")` read as a big-endian 256-bit
//! integer, modulo the pool size; the date is the UTC calendar date.
//!
//! The pick is evaluated at start and then daily at 04:00 UTC plus a random delay
//! of up to two hours ([`next_evaluation`]), so nodes do not all switch at once.

use std::fmt;

/// Longest random delay added to the 04:00 UTC evaluation.
pub const MAX_JITTER_SECS: u64 = 2 * 3600;
/// The hour (UTC) of the daily evaluation.
pub const EVALUATION_HOUR_UTC: u64 = 4;
const DAY: u64 = 86_400;

/// A UTC calendar date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a date in the form YYYY-MM-DD: {0:?}")]
pub struct BadDate(pub String);

impl Date {
    /// The UTC date of a Unix time.
    pub fn from_unix(secs: u64) -> Date {
        civil_from_days((secs / DAY) as i64)
    }

    /// Parses `YYYY-MM-DD` (a real calendar date, years 1970..=9999).
    pub fn parse(s: &str) -> Result<Date, BadDate> {
        let bad = || BadDate(s.to_owned());
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u32, BadDate> {
            let part = &s[r];
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse().map_err(|_| bad())
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        if year < 1970
            || !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year as i32, month as u8) as u32
        {
            return Err(bad());
        }
        Ok(Date {
            year: year as i32,
            month: month as u8,
            day: day as u8,
        })
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u8) -> u8 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (era arithmetic on
/// 400-year cycles, which avoids any loop over years).
fn civil_from_days(days: i64) -> Date {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    Date { year, month, day }
}

/// The index into a pool of `pool_len` names for this node on this date.
///
/// Panics if `pool_len` is 0 (a pool is validated non-empty when configured).
pub fn pick_index(node_id: &str, date: Date, pool_len: usize) -> usize {
    assert!(pool_len > 0, "SNI pool is empty");
    let input = format!("{node_id}:{date}");
    let digest = ring::digest::digest(&ring::digest::SHA256, input.as_bytes());
    // A 256-bit big-endian integer modulo n, one byte at a time (Horner's rule),
    // so no big-integer type is needed and the result equals `int(hex, 16) % n`.
    let n = pool_len as u128;
    digest
        .as_ref()
        .iter()
        .fold(0u128, |acc, &b| (acc * 256 + u128::from(b)) % n) as usize
}

/// The name this node uses on this date.
pub fn pick<'a>(node_id: &str, date: Date, pool: &'a [String]) -> &'a str {
    &pool[pick_index(node_id, date, pool.len())]
}

/// The Unix time of the next daily evaluation strictly after `now`: the next
/// 04:00 UTC plus `jitter_secs` (taken modulo [`MAX_JITTER_SECS`]).
pub fn next_evaluation(now_unix: u64, jitter_secs: u64) -> u64 {
    let jitter = jitter_secs % MAX_JITTER_SECS;
    let today_at = (now_unix / DAY) * DAY + EVALUATION_HOUR_UTC * 3600 + jitter;
    if today_at > now_unix {
        today_at
    } else {
        today_at + DAY
    }
}

/// Tracks the current pick and says when it changes (the rotation event every
/// shard must hear: new tunnel sessions use the new name, open ones finish).
#[derive(Debug)]
pub struct Rotation {
    node_id: String,
    pool: Vec<String>,
    current: Option<usize>,
}

impl Rotation {
    pub fn new(node_id: impl Into<String>, pool: Vec<String>) -> Self {
        Self {
            node_id: node_id.into(),
            pool,
            current: None,
        }
    }

    /// Re-evaluates at `now`; returns the new name if the pick changed (or on the
    /// first evaluation), `None` if it stayed the same or the pool is empty.
    pub fn evaluate(&mut self, now_unix: u64) -> Option<&str> {
        if self.pool.is_empty() {
            return None;
        }
        let i = pick_index(&self.node_id, Date::from_unix(now_unix), self.pool.len());
        if self.current == Some(i) {
            return None;
        }
        self.current = Some(i);
        Some(&self.pool[i])
    }

    pub fn current(&self) -> Option<&str> {
        self.current.map(|i| self.pool[i].as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    #[test]
    fn golden_picks() {
        // Expected values computed independently:
        // python3 -c "import hashlib; print(int.from_bytes(hashlib.sha256(b'<id>:<date>').digest(),'big') % n)"
        let cases = [
            ("edge-fra-1", "2026-11-28", 8, 7),
            ("edge-fra-1", "2026-11-29", 8, 5),
            ("node-a", "2026-01-01", 5, 3),
            ("dev-node", "2024-02-29", 7, 6),
            ("x", "1970-01-01", 3, 2),
        ];
        for (node, date, n, want) in cases {
            assert_eq!(pick_index(node, d(date), n), want, "{node} {date} {n}");
        }
    }

    #[test]
    fn dates_from_unix_time() {
        assert_eq!(Date::from_unix(0).to_string(), "1970-01-01");
        assert_eq!(Date::from_unix(951_782_400).to_string(), "2000-02-29");
        assert_eq!(Date::from_unix(1_795_910_399).to_string(), "2026-11-28");
        assert_eq!(Date::from_unix(1_795_910_400).to_string(), "2026-11-29");
        // Every day for 200 years round-trips through its text form.
        let mut prev = Date::from_unix(0);
        for day in 1..(200 * 366) {
            let date = Date::from_unix(day * DAY);
            assert!(date > prev);
            assert_eq!(Date::parse(&date.to_string()).unwrap(), date);
            prev = date;
        }
    }

    #[test]
    fn bad_dates_are_refused() {
        for s in [
            "2026-02-30",
            "2026-13-01",
            "2026-1-01",
            "20261128",
            "2025-02-29",
            "1969-12-31",
            "2026-11-2x",
            "",
        ] {
            assert!(Date::parse(s).is_err(), "{s}");
        }
        assert!(Date::parse("2024-02-29").is_ok());
    }

    #[test]
    fn evaluation_is_after_four_utc_with_jitter() {
        let midnight = 1_795_910_400; // 2026-11-29 00:00:00 UTC
        assert_eq!(next_evaluation(midnight, 0), midnight + 4 * 3600);
        assert_eq!(next_evaluation(midnight, 1800), midnight + 4 * 3600 + 1800);
        // Past today's slot: tomorrow's.
        assert_eq!(
            next_evaluation(midnight + 5 * 3600, 0),
            midnight + DAY + 4 * 3600
        );
        // Jitter never reaches two hours.
        assert_eq!(
            next_evaluation(midnight, MAX_JITTER_SECS),
            midnight + 4 * 3600
        );
        for now in (midnight..midnight + 2 * DAY).step_by(977) {
            let next = next_evaluation(now, now.wrapping_mul(2_654_435_761));
            assert!(next > now && next - now <= DAY + MAX_JITTER_SECS);
            let offset = next % DAY;
            assert!((4 * 3600..6 * 3600).contains(&offset));
        }
    }

    #[test]
    fn rotation_reports_changes_only() {
        let pool: Vec<String> = (0..8).map(|i| format!("n{i}.example")).collect();
        let mut r = Rotation::new("edge-fra-1", pool);
        let day1 = 1_795_910_400 - 3600; // 2026-11-28
        assert_eq!(r.evaluate(day1), Some("n7.example"));
        assert_eq!(r.evaluate(day1 + 60), None);
        assert_eq!(r.evaluate(day1 + 2 * 3600), Some("n5.example")); // 2026-11-29
        assert_eq!(r.current(), Some("n5.example"));
        assert_eq!(Rotation::new("a", vec![]).evaluate(day1), None);
    }

    #[test]
    fn picks_spread_over_the_pool() {
        let mut counts = [0u32; 8];
        for day in 0..8000u64 {
            counts[pick_index("edge-fra-1", Date::from_unix(day * DAY), 8)] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
    }
}
