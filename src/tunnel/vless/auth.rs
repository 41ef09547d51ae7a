//! The server's user check.

use std::hint::black_box;

use uuid::Uuid;

use super::{Request, VlessError};

/// Accepts the request if its UUID is one of `allowed`.
///
/// The UUID is the only credential a VLESS client has, so the comparison must
/// not tell a prober how many leading bytes it guessed right: every byte of
/// every allowed id is compared, with no early exit on a mismatch or a match.
pub fn authorize(req: &Request, allowed: &[Uuid]) -> Result<(), VlessError> {
    let sent = req.uuid.as_bytes();
    let mut matched = 0u8;
    for id in allowed {
        let diff = sent
            .iter()
            .zip(id.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        // black_box keeps the optimiser from turning the fold into a
        // byte-by-byte compare that stops early.
        matched |= is_zero(black_box(diff));
    }
    if matched == 1 {
        Ok(())
    } else {
        Err(VlessError::UnknownUser)
    }
}

/// 1 if `x` is zero, else 0, without a branch: widened to 16 bits, only zero
/// borrows into the top bit when one is subtracted.
fn is_zero(x: u8) -> u8 {
    (u16::from(x).wrapping_sub(1) >> 15) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::vless::Command;

    fn request(id: Uuid) -> Request {
        Request {
            uuid: id,
            flow: None,
            command: Command::Mux,
            target: None,
        }
    }

    const A: Uuid = Uuid::from_bytes([1; 16]);
    const B: Uuid = Uuid::from_bytes([2; 16]);

    #[test]
    fn any_allowed_id_is_accepted() {
        assert_eq!(authorize(&request(A), &[A]), Ok(()));
        assert_eq!(authorize(&request(B), &[A, B]), Ok(()));
        assert_eq!(authorize(&request(A), &[A, A]), Ok(()));
    }

    #[test]
    fn others_are_unknown_users() {
        assert_eq!(authorize(&request(B), &[A]), Err(VlessError::UnknownUser));
        assert_eq!(authorize(&request(A), &[]), Err(VlessError::UnknownUser));
        let mut near = *A.as_bytes();
        near[15] ^= 0x80;
        assert_eq!(
            authorize(&request(Uuid::from_bytes(near)), &[A]),
            Err(VlessError::UnknownUser)
        );
    }

    #[test]
    fn is_zero_is_exact() {
        for x in 0..=u8::MAX {
            assert_eq!(is_zero(x), u8::from(x == 0), "{x}");
        }
    }
}
