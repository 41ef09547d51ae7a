//! Room tokens for the load generator: HS256 JWTs with the claims the edge
//! checks (`room`, `sub`, `exp`; `docs/PROTOCOLS.md`), signed with ring's HMAC
//! under the node's signalling secret.

use std::path::Path;

use anyhow::{ensure, Context as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;
use serde::Serialize;

/// The fixed header: exactly HS256 (the edge refuses any other `alg`).
const HEADER_JSON: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

#[derive(Serialize)]
struct Claims<'a> {
    room: &'a str,
    sub: &'a str,
    exp: u64,
}

/// Reads the secret file as the edge does: the raw bytes, with one trailing
/// newline (`\n` or `\r\n`) dropped because editors and `echo` add it.
pub fn load_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut bytes =
        std::fs::read(path).with_context(|| format!("reading secret file {}", path.display()))?;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    ensure!(!bytes.is_empty(), "secret file {} is empty", path.display());
    Ok(bytes)
}

/// Mints `header.claims.signature` (base64url without padding).
pub fn mint(secret: &[u8], room: &str, sub: &str, exp: u64) -> String {
    let claims = serde_json::to_string(&Claims { room, sub, exp })
        // Two strings and an integer always serialise.
        .unwrap_or_default();
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER_JSON),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_verifies_with_ring_and_carries_the_claims() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let jwt = mint(secret, "lg-1-0", "p3", 1_900_000_000);
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        hmac::verify(&key, input.as_bytes(), &sig).expect("signature verifies");
        let wrong = hmac::Key::new(hmac::HMAC_SHA256, b"another secret");
        assert!(hmac::verify(&wrong, input.as_bytes(), &sig).is_err());

        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "HS256");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["room"], "lg-1-0");
        assert_eq!(claims["sub"], "p3");
        assert_eq!(claims["exp"], 1_900_000_000u64);
        assert!(!jwt.contains('=') && !jwt.contains('+') && !jwt.contains('/'));
    }

    #[test]
    fn secret_file_loses_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, b"abc\n\n").unwrap();
        assert_eq!(load_secret(&path).unwrap(), b"abc\n");
        std::fs::write(&path, b"abc\r\n").unwrap();
        assert_eq!(load_secret(&path).unwrap(), b"abc");
        std::fs::write(&path, b"\n").unwrap();
        assert!(load_secret(&path).is_err());
    }
}
