//! Validation of `[sfu]`. The secret file itself is checked with the other files
//! (`files.rs`: mode, readability, length), since `edge check` must read it the same way.

use super::problem::ConfigProblem;
use super::schema::SfuConfig;
use super::validate::in_range;

/// The most participants a room may have: the SFU forwards every publisher to every
/// other participant, so the work grows with the square of this.
pub const MAX_PARTICIPANTS: u64 = 6;

pub(super) fn check(sfu: &SfuConfig, out: &mut Vec<ConfigProblem>) {
    in_range(
        out,
        "sfu.max_participants",
        sfu.max_participants,
        1..=MAX_PARTICIPANTS,
        "participants",
    );
    in_range(
        out,
        "sfu.offer_timeout_secs",
        sfu.offer_timeout_secs,
        1..=300,
        "seconds",
    );
    if sfu
        .secret_file
        .as_ref()
        .is_some_and(|p| p.as_os_str().is_empty())
    {
        out.push(ConfigProblem::new(
            "sfu.secret_file",
            "is empty",
            "remove the key to turn group calls off, or point it at a file made with `openssl rand -hex 32 > FILE && chmod 600 FILE`",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked() {
        let mut out = Vec::new();
        check(&SfuConfig::default(), &mut out);
        assert!(out.is_empty());
        let bad = SfuConfig {
            max_participants: 7,
            offer_timeout_secs: 0,
            secret_file: Some(Default::default()),
            ..SfuConfig::default()
        };
        check(&bad, &mut out);
        let keys: Vec<_> = out.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "sfu.max_participants",
                "sfu.offer_timeout_secs",
                "sfu.secret_file"
            ]
        );
    }
}
