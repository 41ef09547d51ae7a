//! Feeds arbitrary tokens to the room-token verifier: it must never panic, must only
//! accept tokens that carry our MAC, and must accept every token `mint` makes from
//! claims it would issue.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxpulse_edge::sfu::jwt::{mint, verify, Claims, JwtError};

const SECRET: &[u8] = b"fuzzing secret, thirty-two bytes";
const NOW: u64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // As a token: anything goes in, and acceptance implies the exact room and a sane sub.
    match verify(text, SECRET, "room", NOW) {
        Ok(c) => {
            assert_eq!(c.room, "room");
            assert!((1..=64).contains(&c.sub.chars().count()));
            // Accepted means our MAC: the same bytes under another secret are refused.
            assert_eq!(
                verify(text, b"another secret, thirty-two bytes", "room", NOW),
                Err(JwtError::BadSignature)
            );
        }
        Err(e) => {
            let _ = e.is_authenticated();
        }
    }
    // As claims: the first line is the peer id, the rest the room.
    let (sub, room) = text.split_once('\n').unwrap_or((text, "room"));
    let claims = Claims {
        room: room.to_owned(),
        sub: sub.to_owned(),
        exp: NOW + 60,
        nbf: None,
        iat: Some(NOW),
    };
    let token = mint(&claims, SECRET);
    let issued = (1..=64).contains(&sub.chars().count()) && !sub.chars().any(char::is_control);
    match verify(&token, SECRET, room, NOW) {
        Ok(c) => assert!(issued && c == claims),
        Err(JwtError::Malformed(_)) => assert!(!issued || token.len() > 4096),
        Err(e) => panic!("a fresh token was refused: {e:?}"),
    }
});
