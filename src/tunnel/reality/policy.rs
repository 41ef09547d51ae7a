//! The server's REALITY verdict (XTLS/REALITY `tls.go`, TUNNEL.md §2): a hello
//! is ours only if every rule holds; anything else is spliced to `dest`
//! untouched, so a prober sees the real site.
//!
//! Each failed rule has its own [`RealityReject`] so metrics can count them;
//! the variants carry no data, so nothing secret can leak into a log.

use std::fmt;

use thiserror::Error;
use x25519_dalek::StaticSecret;

use super::auth::{auth_key, open_session_id, server_shared, AuthBlock, ShortId};
use super::hello::RealityHello;

/// What the server accepts (the `realitySettings` of an Xray inbound).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerPolicy {
    /// Allowed SNI values, compared case-insensitively; `""` admits hellos
    /// without SNI.
    pub server_names: Vec<String>,
    /// Allowed short ids (exact match; `""` in the config is all zeros).
    pub short_ids: Vec<ShortId>,
    /// Inclusive bounds on the client version (x.y.z compared in order).
    pub min_client_ver: Option<[u8; 3]>,
    pub max_client_ver: Option<[u8; 3]>,
    /// Largest |now − client time| in milliseconds; 0 turns the check off.
    pub max_time_diff_ms: u64,
}

/// Why a hello is not an authenticated REALITY client.
#[derive(Error, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RealityReject {
    #[error("TLS 1.3 not offered")]
    NoTls13,
    #[error("server name not allowed")]
    ServerName,
    #[error("no X25519 key share")]
    NoX25519Share,
    #[error("session id is not 32 bytes")]
    SessionIdLength,
    #[error("low-order X25519 key share")]
    LowOrderShare,
    #[error("session id does not decrypt")]
    OpenFailed,
    #[error("client version below the minimum")]
    ClientTooOld,
    #[error("client version above the maximum")]
    ClientTooNew,
    #[error("client clock outside the allowed skew")]
    TimeSkew,
    #[error("short id not allowed")]
    ShortId,
}

impl RealityReject {
    pub const ALL: [RealityReject; 10] = [
        RealityReject::NoTls13,
        RealityReject::ServerName,
        RealityReject::NoX25519Share,
        RealityReject::SessionIdLength,
        RealityReject::LowOrderShare,
        RealityReject::OpenFailed,
        RealityReject::ClientTooOld,
        RealityReject::ClientTooNew,
        RealityReject::TimeSkew,
        RealityReject::ShortId,
    ];

    /// Stable metric label.
    pub fn label(self) -> &'static str {
        match self {
            RealityReject::NoTls13 => "no_tls13",
            RealityReject::ServerName => "server_name",
            RealityReject::NoX25519Share => "no_x25519_share",
            RealityReject::SessionIdLength => "session_id_length",
            RealityReject::LowOrderShare => "low_order_share",
            RealityReject::OpenFailed => "open_failed",
            RealityReject::ClientTooOld => "client_too_old",
            RealityReject::ClientTooNew => "client_too_new",
            RealityReject::TimeSkew => "time_skew",
            RealityReject::ShortId => "short_id",
        }
    }
}

/// A client that passed every rule.
#[derive(Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub block: AuthBlock,
    /// Keys the temporary certificate's HMAC for this connection.
    pub auth_key: [u8; 32],
}

impl fmt::Debug for Authenticated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticated")
            .field("block", &self.block)
            .field("auth_key", &"<redacted>")
            .finish()
    }
}

impl ServerPolicy {
    /// The rules readable from the hello alone (cheap, before any crypto);
    /// returns the client X25519 key to authenticate with.
    pub fn check_hello(&self, hello: &RealityHello) -> Result<[u8; 32], RealityReject> {
        if !hello.offers_tls13() {
            return Err(RealityReject::NoTls13);
        }
        let sni = hello.sni().unwrap_or("");
        let allowed = self
            .server_names
            .iter()
            .any(|name| name.trim_end_matches('.').eq_ignore_ascii_case(sni));
        if !allowed {
            return Err(RealityReject::ServerName);
        }
        let key = hello.auth_x25519().ok_or(RealityReject::NoX25519Share)?;
        hello.session_id().ok_or(RealityReject::SessionIdLength)?;
        Ok(key)
    }

    /// The rules on the decrypted block. `now_unix_ms`: the server's clock.
    pub fn check_block(&self, block: &AuthBlock, now_unix_ms: u64) -> Result<(), RealityReject> {
        if self.min_client_ver.is_some_and(|min| block.version < min) {
            return Err(RealityReject::ClientTooOld);
        }
        if self.max_client_ver.is_some_and(|max| block.version > max) {
            return Err(RealityReject::ClientTooNew);
        }
        let client_ms = u64::from(block.unix_time) * 1000;
        if self.max_time_diff_ms != 0 && now_unix_ms.abs_diff(client_ms) > self.max_time_diff_ms {
            return Err(RealityReject::TimeSkew);
        }
        if !self.short_ids.contains(&block.short_id) {
            return Err(RealityReject::ShortId);
        }
        Ok(())
    }

    /// Every rule, for a block already opened from this hello.
    pub fn check(
        &self,
        hello: &RealityHello,
        block: &AuthBlock,
        now_unix_ms: u64,
    ) -> Result<(), RealityReject> {
        self.check_hello(hello)?;
        self.check_block(block, now_unix_ms)
    }

    /// The whole server side: hello rules, ECDH with the static key, HKDF,
    /// opening the session_id, block rules.
    pub fn authenticate(
        &self,
        static_priv: &StaticSecret,
        hello: &RealityHello,
        now_unix_ms: u64,
    ) -> Result<Authenticated, RealityReject> {
        let client_x25519 = self.check_hello(hello)?;
        let (Some(session_id), Some(aad)) =
            (hello.session_id(), hello.message_with_zero_session_id())
        else {
            return Err(RealityReject::SessionIdLength);
        };
        let shared =
            server_shared(static_priv, &client_x25519).ok_or(RealityReject::LowOrderShare)?;
        let key = auth_key(&shared, hello.random());
        let block = open_session_id(&key, hello.random(), &session_id, &aad)
            .ok_or(RealityReject::OpenFailed)?;
        self.check_block(&block, now_unix_ms)?;
        Ok(Authenticated {
            block,
            auth_key: key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::reality::hello::{Extracted, GROUP_X25519, GROUP_X25519MLKEM768};
    use crate::tunnel::reality::test_hello::{client_seal, synthetic_hello, HelloSpec};
    use x25519_dalek::PublicKey;

    const NOW_S: u32 = 1_760_000_000;
    const NOW_MS: u64 = NOW_S as u64 * 1000;
    const SHORT_ID: ShortId = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
    const BLOCK: AuthBlock = AuthBlock {
        version: [26, 3, 27],
        unix_time: NOW_S,
        short_id: SHORT_ID,
    };

    fn server_key() -> StaticSecret {
        StaticSecret::from([0x21; 32])
    }

    fn client_key() -> StaticSecret {
        StaticSecret::from([0x43; 32])
    }

    fn policy() -> ServerPolicy {
        ServerPolicy {
            server_names: vec!["example.com".into(), "www.example.com".into()],
            short_ids: vec![[0; 8], SHORT_ID],
            min_client_ver: Some([26, 3, 27]),
            max_client_ver: Some([26, 9, 0]),
            max_time_diff_ms: 60_000,
        }
    }

    fn base_spec() -> HelloSpec {
        let share = PublicKey::from(&client_key()).to_bytes().to_vec();
        HelloSpec {
            shares: vec![(GROUP_X25519, share)],
            ..HelloSpec::default()
        }
    }

    fn extract(records: &[u8]) -> RealityHello {
        match RealityHello::from_records(records) {
            Ok(Extracted::Complete { hello, .. }) => hello,
            other => panic!("not a complete hello: {other:?}"),
        }
    }

    /// A hello sealed by the client steps with `block`, as the server sees it.
    fn sealed(spec: &HelloSpec, block: &AuthBlock) -> Vec<u8> {
        let mut records = synthetic_hello(spec);
        let server_pub = PublicKey::from(&server_key()).to_bytes();
        client_seal(&mut records, &client_key(), &server_pub, block);
        records
    }

    fn verdict(records: &[u8]) -> Result<Authenticated, RealityReject> {
        policy().authenticate(&server_key(), &extract(records), NOW_MS)
    }

    #[test]
    fn accepts_a_sealed_hello() {
        let auth = verdict(&sealed(&base_spec(), &BLOCK)).unwrap();
        assert_eq!(auth.block, BLOCK);
        let hello = extract(&sealed(&base_spec(), &BLOCK));
        assert_eq!(policy().check(&hello, &BLOCK, NOW_MS), Ok(()));
    }

    #[test]
    fn accepts_the_hybrid_tail_when_alone() {
        let mut hybrid = vec![0x33; 1184];
        hybrid.extend_from_slice(PublicKey::from(&client_key()).as_bytes());
        let spec = HelloSpec {
            shares: vec![(GROUP_X25519MLKEM768, hybrid)],
            ..base_spec()
        };
        assert_eq!(verdict(&sealed(&spec, &BLOCK)).unwrap().block, BLOCK);
    }

    #[test]
    fn no_tls13() {
        let spec = HelloSpec {
            versions: vec![0x0303],
            ..base_spec()
        };
        assert_eq!(verdict(&sealed(&spec, &BLOCK)), Err(RealityReject::NoTls13));
        let spec = HelloSpec {
            versions: vec![],
            ..base_spec()
        };
        assert_eq!(verdict(&sealed(&spec, &BLOCK)), Err(RealityReject::NoTls13));
    }

    #[test]
    fn wrong_sni() {
        let spec = HelloSpec {
            sni: Some("other.example"),
            ..base_spec()
        };
        assert_eq!(
            verdict(&sealed(&spec, &BLOCK)),
            Err(RealityReject::ServerName)
        );
        let no_sni = HelloSpec {
            sni: None,
            ..base_spec()
        };
        let records = sealed(&no_sni, &BLOCK);
        assert_eq!(verdict(&records), Err(RealityReject::ServerName));
        // An empty name in the policy admits hellos without SNI.
        let mut open = policy();
        open.server_names.push(String::new());
        let hello = extract(&records);
        assert!(open.authenticate(&server_key(), &hello, NOW_MS).is_ok());
    }

    #[test]
    fn configured_names_ignore_case_and_trailing_dot() {
        let mut p = policy();
        p.server_names = vec!["Example.COM.".into()];
        let hello = extract(&sealed(&base_spec(), &BLOCK));
        assert!(p.authenticate(&server_key(), &hello, NOW_MS).is_ok());
    }

    #[test]
    fn no_x25519_share() {
        let spec = HelloSpec {
            shares: vec![(0x0017, vec![0x04; 65])],
            ..base_spec()
        };
        let hello = extract(&synthetic_hello(&spec));
        assert_eq!(
            policy().authenticate(&server_key(), &hello, NOW_MS),
            Err(RealityReject::NoX25519Share)
        );
    }

    #[test]
    fn short_session_id() {
        let spec = HelloSpec {
            session_id: vec![0; 16],
            ..base_spec()
        };
        let hello = extract(&synthetic_hello(&spec));
        assert_eq!(
            policy().authenticate(&server_key(), &hello, NOW_MS),
            Err(RealityReject::SessionIdLength)
        );
    }

    #[test]
    fn low_order_share() {
        let spec = HelloSpec {
            shares: vec![(GROUP_X25519, vec![0; 32])],
            ..base_spec()
        };
        let hello = extract(&synthetic_hello(&spec));
        assert_eq!(
            policy().authenticate(&server_key(), &hello, NOW_MS),
            Err(RealityReject::LowOrderShare)
        );
    }

    #[test]
    fn tampered_hello_byte_fails_to_open() {
        let mut records = sealed(&base_spec(), &BLOCK);
        let at = records
            .windows(11)
            .position(|w| w == b"example.com")
            .expect("SNI bytes");
        // Still the same name to the policy, but not the bytes that were sealed.
        records[at] = b'E';
        assert_eq!(verdict(&records), Err(RealityReject::OpenFailed));
    }

    #[test]
    fn wrong_server_key_fails_to_open() {
        let hello = extract(&sealed(&base_spec(), &BLOCK));
        let other = StaticSecret::from([0x22; 32]);
        assert_eq!(
            policy().authenticate(&other, &hello, NOW_MS),
            Err(RealityReject::OpenFailed)
        );
    }

    #[test]
    fn client_versions() {
        let old = AuthBlock {
            version: [24, 11, 21],
            ..BLOCK
        };
        assert_eq!(
            verdict(&sealed(&base_spec(), &old)),
            Err(RealityReject::ClientTooOld)
        );
        let new = AuthBlock {
            version: [26, 9, 1],
            ..BLOCK
        };
        assert_eq!(
            verdict(&sealed(&base_spec(), &new)),
            Err(RealityReject::ClientTooNew)
        );
        let mut unbounded = policy();
        unbounded.min_client_ver = None;
        unbounded.max_client_ver = None;
        assert_eq!(unbounded.check_block(&old, NOW_MS), Ok(()));
        assert_eq!(unbounded.check_block(&new, NOW_MS), Ok(()));
    }

    #[test]
    fn time_skew() {
        let p = policy();
        let at = |s: u32| AuthBlock {
            unix_time: s,
            ..BLOCK
        };
        assert_eq!(p.check_block(&at(NOW_S - 60), NOW_MS), Ok(()));
        assert_eq!(p.check_block(&at(NOW_S + 60), NOW_MS), Ok(()));
        assert_eq!(
            p.check_block(&at(NOW_S - 61), NOW_MS),
            Err(RealityReject::TimeSkew)
        );
        assert_eq!(
            p.check_block(&at(NOW_S + 61), NOW_MS),
            Err(RealityReject::TimeSkew)
        );
        let skewed = sealed(&base_spec(), &at(NOW_S - 3600));
        assert_eq!(verdict(&skewed), Err(RealityReject::TimeSkew));
        let off = ServerPolicy {
            max_time_diff_ms: 0,
            ..policy()
        };
        assert_eq!(off.check_block(&at(0), NOW_MS), Ok(()));
    }

    #[test]
    fn wrong_short_id() {
        let stranger = AuthBlock {
            short_id: [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xee],
            ..BLOCK
        };
        assert_eq!(
            verdict(&sealed(&base_spec(), &stranger)),
            Err(RealityReject::ShortId)
        );
        let zero = AuthBlock {
            short_id: [0; 8],
            ..BLOCK
        };
        assert!(verdict(&sealed(&base_spec(), &zero)).is_ok());
    }

    #[test]
    fn labels_are_distinct_and_debug_hides_the_key() {
        let mut labels: Vec<_> = RealityReject::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), RealityReject::ALL.len());
        let auth = verdict(&sealed(&base_spec(), &BLOCK)).unwrap();
        assert!(format!("{auth:?}").contains("<redacted>"));
    }
}
