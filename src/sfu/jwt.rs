//! Room tokens: HS256 JWTs signed with the node's signalling secret (sans-IO).
//!
//! Only one algorithm exists here, HS256, and the header must say so exactly: a token
//! whose header names `none`, `RS256` or a differently cased `hs256` is refused before
//! its signature is looked at, so no key meant for another algorithm can ever be used as
//! the HMAC secret ("alg confusion"). The MAC is checked with `ring::hmac::verify`,
//! which compares in constant time.
//!
//! Errors come in two classes, because the front answers them differently
//! (`docs/PROTOCOLS.md`): anything that does not prove the token is ours is
//! *unauthenticated* and gets the cover site's 404, so a prober learns nothing; a token we
//! signed that is merely expired, early or for another room is *refused* with a 401.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;
use serde::{Deserialize, Serialize};

/// Clock skew allowed on `exp`, `nbf` and `iat`, seconds.
pub const SKEW_SECS: u64 = 30;
/// Longest token looked at; a room token is a few hundred bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Longest peer id (`sub`), in characters.
pub const MAX_SUB_CHARS: usize = 64;

/// The claims of a room token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The room this token admits to; must equal the room in the URL.
    pub room: String,
    /// The participant's peer id, 1–64 characters.
    pub sub: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not a well-formed HS256 JWT with the claims we issue (the reason is for tests and
    /// debugging; it never names token content).
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header names another algorithm (or none at all).
    #[error("token algorithm is not HS256")]
    BadAlg,
    /// The MAC does not match: not signed with our secret.
    #[error("bad token signature")]
    BadSignature,
    /// Ours, but past `exp` (plus skew).
    #[error("token expired")]
    Expired,
    /// Ours, but before `nbf` or `iat` (minus skew).
    #[error("token not yet valid")]
    NotYetValid,
    /// Ours, but for another room.
    #[error("token is for another room")]
    WrongRoom,
}

impl JwtError {
    /// True when the token was signed by us (so the holder may learn it was refused);
    /// false when nothing proves that (the answer must be the cover site's 404).
    pub fn is_authenticated(self) -> bool {
        matches!(
            self,
            JwtError::Expired | JwtError::NotYetValid | JwtError::WrongRoom
        )
    }
}

#[derive(Deserialize)]
struct Header {
    /// Required: a header without `alg` is refused as `BadAlg`.
    alg: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    /// RFC 7515 §4.1.11: extensions the recipient must understand. We understand none.
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

const HEADER_JSON: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn b64(segment: &str) -> Result<Vec<u8>, JwtError> {
    // URL_SAFE_NO_PAD refuses padding, the standard alphabet and non-canonical trailing
    // bits, so each token has exactly one spelling.
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JwtError::Malformed("bad base64url"))
}

/// Checks `token` against `secret` and the room in the URL at time `now_unix`.
pub fn verify(
    token: &str,
    secret: &[u8],
    expected_room: &str,
    now_unix: u64,
) -> Result<Claims, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed("too long"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("not three segments"));
    };
    let header: Header = serde_json::from_slice(&b64(h)?)
        .map_err(|_| JwtError::Malformed("header is not a JSON object"))?;
    // Exact match: "hs256", "HS256 " or "none" are other algorithms as far as we know.
    if header.alg.as_deref() != Some("HS256") {
        return Err(JwtError::BadAlg);
    }
    if header.typ.as_deref().is_some_and(|t| t != "JWT") {
        return Err(JwtError::Malformed("typ is not JWT"));
    }
    if header.crit.is_some() {
        return Err(JwtError::Malformed("crit extensions are not supported"));
    }
    let sig = b64(s)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let signed = &token[..h.len() + 1 + p.len()];
    hmac::verify(&key, signed.as_bytes(), &sig).map_err(|_| JwtError::BadSignature)?;

    // Signed by us from here on; still, a claim set we would never issue is malformed.
    let claims: Claims = serde_json::from_slice(&b64(p)?)
        .map_err(|_| JwtError::Malformed("claims are not the room-token claims"))?;
    let sub_chars = claims.sub.chars().count();
    if sub_chars == 0 || sub_chars > MAX_SUB_CHARS || claims.sub.chars().any(char::is_control) {
        return Err(JwtError::Malformed("sub is not a 1-64 character peer id"));
    }
    if now_unix > claims.exp.saturating_add(SKEW_SECS) {
        return Err(JwtError::Expired);
    }
    let early = |t: Option<u64>| t.is_some_and(|t| t > now_unix.saturating_add(SKEW_SECS));
    if early(claims.nbf) || early(claims.iat) {
        return Err(JwtError::NotYetValid);
    }
    if claims.room != expected_room {
        return Err(JwtError::WrongRoom);
    }
    Ok(claims)
}

/// Signs `claims` as an HS256 JWT (for tests, the load generator and issuers).
pub fn mint(claims: &Claims, secret: &[u8]) -> String {
    // Serialising plain strings and integers cannot fail.
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    sign_parts(HEADER_JSON.as_bytes(), &payload, secret)
}

/// Signs an arbitrary header and payload; lets tests build tokens we would never issue.
pub fn sign_parts(header_json: &[u8], payload_json: &[u8], secret: &[u8]) -> String {
    let mut token = URL_SAFE_NO_PAD.encode(header_json);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(payload_json));
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, token.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(tag.as_ref()));
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_800_000_000;

    fn claims() -> Claims {
        Claims {
            room: "room-1".into(),
            sub: "alice".into(),
            exp: NOW + 300,
            nbf: None,
            iat: Some(NOW),
        }
    }

    fn check(token: &str) -> Result<Claims, JwtError> {
        verify(token, SECRET, "room-1", NOW)
    }

    #[test]
    fn a_minted_token_verifies() {
        assert_eq!(check(&mint(&claims(), SECRET)), Ok(claims()));
        let bare = Claims {
            iat: None,
            ..claims()
        };
        let t = sign_parts(
            br#"{"alg":"HS256"}"#,
            &serde_json::to_vec(&bare).unwrap(),
            SECRET,
        );
        assert_eq!(check(&t), Ok(bare), "typ is optional");
    }

    #[test]
    fn time_claims_allow_thirty_seconds_of_skew() {
        let at = |exp, nbf, iat| {
            let c = Claims {
                exp,
                nbf,
                iat,
                ..claims()
            };
            check(&mint(&c, SECRET))
        };
        assert!(at(NOW - 30, None, None).is_ok());
        assert_eq!(at(NOW - 31, None, None), Err(JwtError::Expired));
        assert!(at(NOW + 60, Some(NOW + 30), None).is_ok());
        assert_eq!(
            at(NOW + 60, Some(NOW + 31), None),
            Err(JwtError::NotYetValid)
        );
        assert!(at(NOW + 60, None, Some(NOW + 30)).is_ok());
        assert_eq!(
            at(NOW + 60, None, Some(NOW + 31)),
            Err(JwtError::NotYetValid)
        );
        assert_eq!(at(0, None, None), Err(JwtError::Expired));
    }

    #[test]
    fn wrong_room_is_refused_not_unauthenticated() {
        let e = verify(&mint(&claims(), SECRET), SECRET, "room-2", NOW).unwrap_err();
        assert_eq!(e, JwtError::WrongRoom);
        assert!(e.is_authenticated());
        assert!(JwtError::Expired.is_authenticated());
        assert!(JwtError::NotYetValid.is_authenticated());
    }

    #[test]
    fn a_token_signed_with_another_secret_is_unauthenticated() {
        let t = mint(&claims(), b"another secret, also 32 bytes...");
        assert_eq!(check(&t), Err(JwtError::BadSignature));
        assert!(!JwtError::BadSignature.is_authenticated());
        // Expired *and* forged: the forgery wins, so a prober learns nothing.
        let old = Claims { exp: 1, ..claims() };
        assert_eq!(check(&mint(&old, b"x")), Err(JwtError::BadSignature));
    }

    #[test]
    fn tampered_segments_fail_the_signature() {
        let t = mint(&claims(), SECRET);
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        let evil = Claims {
            room: "room-1".into(),
            sub: "mallory".into(),
            ..claims()
        };
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&evil).unwrap());
        assert_eq!(check(&parts.join(".")), Err(JwtError::BadSignature));
        let mut sig = URL_SAFE_NO_PAD
            .decode(t.rsplit('.').next().unwrap())
            .unwrap();
        sig[0] ^= 1;
        let (body, _) = t.rsplit_once('.').unwrap();
        let flipped = format!("{body}.{}", URL_SAFE_NO_PAD.encode(&sig));
        assert_eq!(check(&flipped), Err(JwtError::BadSignature));
        let (body, sig) = t.rsplit_once('.').unwrap();
        let short = format!("{body}.{}", &sig[..sig.len() - 4]);
        assert_eq!(check(&short), Err(JwtError::BadSignature));
        assert_eq!(check(&format!("{body}.")), Err(JwtError::BadSignature));
    }

    #[test]
    fn alg_confusion_is_refused_whatever_the_signature() {
        let payload = serde_json::to_vec(&claims()).unwrap();
        for header in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"RS256","typ":"JWT"}"#,
            r#"{"alg":"ES256"}"#,
            r#"{"alg":"HS512"}"#,
            r#"{"alg":"hs256"}"#,
            r#"{"alg":"HS256 "}"#,
            r#"{"alg":null}"#,
            r#"{"typ":"JWT"}"#,
        ] {
            // Even correctly HMAC-ed with our own secret: the header alone decides.
            let t = sign_parts(header.as_bytes(), &payload, SECRET);
            assert_eq!(check(&t), Err(JwtError::BadAlg), "{header}");
            assert!(!JwtError::BadAlg.is_authenticated());
        }
        // The classic "none" token: empty signature.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(&payload)
        );
        assert_eq!(check(&none), Err(JwtError::BadAlg));
        // A non-string alg is not a header we can read.
        let t = sign_parts(br#"{"alg":256}"#, &payload, SECRET);
        assert!(matches!(check(&t), Err(JwtError::Malformed(_))));
    }

    #[test]
    fn malformed_tokens_are_unauthenticated() {
        let good = mint(&claims(), SECRET);
        let (h, rest) = good.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        let cases = [
            String::new(),
            "abc".into(),
            format!("{h}.{p}"),
            format!("{good}.{s}"),
            format!("{h}.{p}.{s}."),
            format!("{h}=.{p}.{s}"),
            format!("{h}.{p}+.{s}"),
            format!("{h}.{p}.{s}="),
            format!("{}.{p}.{s}", URL_SAFE_NO_PAD.encode("not json")),
            format!("{}.{p}.{s}", URL_SAFE_NO_PAD.encode("[1]")),
            "a".repeat(MAX_TOKEN_BYTES + 1),
        ];
        for t in cases {
            let e = check(&t).unwrap_err();
            assert!(
                matches!(e, JwtError::Malformed(_) | JwtError::BadSignature),
                "{t:.60}: {e:?}"
            );
            assert!(!e.is_authenticated());
        }
        let crit = sign_parts(
            br#"{"alg":"HS256","crit":["exp"]}"#,
            &serde_json::to_vec(&claims()).unwrap(),
            SECRET,
        );
        assert!(matches!(check(&crit), Err(JwtError::Malformed(_))));
        let typ = sign_parts(
            br#"{"alg":"HS256","typ":"JOSE+JSON"}"#,
            &serde_json::to_vec(&claims()).unwrap(),
            SECRET,
        );
        assert!(matches!(check(&typ), Err(JwtError::Malformed(_))));
    }

    #[test]
    fn signed_claims_we_would_never_issue_are_malformed() {
        let signed = |payload: &str| {
            check(&sign_parts(
                br#"{"alg":"HS256"}"#,
                payload.as_bytes(),
                SECRET,
            ))
        };
        let exp = NOW + 100;
        for payload in [
            "not json".to_owned(),
            r#"{"room":"room-1","sub":"a"}"#.to_owned(),
            format!(r#"{{"room":"room-1","exp":{exp}}}"#),
            format!(r#"{{"sub":"a","exp":{exp}}}"#),
            format!(r#"{{"room":"room-1","sub":"","exp":{exp}}}"#),
            format!(
                r#"{{"room":"room-1","sub":"{}","exp":{exp}}}"#,
                "x".repeat(65)
            ),
            format!(r#"{{"room":"room-1","sub":"a\n","exp":{exp}}}"#),
            format!(r#"{{"room":"room-1","sub":"a","exp":"{exp}"}}"#),
            r#"{"room":"room-1","sub":"a","exp":-1}"#.to_owned(),
            format!(r#"{{"room":"room-1","sub":"a","exp":{exp}.5}}"#),
            format!(r#"{{"room":1,"sub":"a","exp":{exp}}}"#),
        ] {
            assert!(
                matches!(signed(&payload), Err(JwtError::Malformed(_))),
                "{payload}"
            );
        }
        let ok = format!(
            r#"{{"room":"room-1","sub":"{}","exp":{exp},"extra":true}}"#,
            "é".repeat(64)
        );
        assert!(signed(&ok).is_ok(), "64 characters, unknown claims ignored");
    }
}
