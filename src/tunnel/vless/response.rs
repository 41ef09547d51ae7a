//! The response header the server sends before its first payload:
//! `ver(1) | addons_len(1) | addons`. Xray's server always sends `00 00`.

use super::cursor::Cursor;
use super::{Decoded, VlessError, VERSION};

/// Appends the response header: version 0, no addons.
pub fn encode_response(out: &mut Vec<u8>) {
    out.extend_from_slice(&[VERSION, 0]);
}

/// Parses a response header from the start of `buf`; its addons, which no
/// server fills, are skipped unread. On `Complete`, the bytes from `consumed`
/// on are payload.
pub fn decode_response(buf: &[u8]) -> Result<Decoded<()>, VlessError> {
    Cursor::run(buf, |c| {
        let version = c.byte(1)?;
        if version != VERSION {
            return Err(VlessError::BadVersion(version).into());
        }
        let addons_len = c.byte(0)?;
        c.take(usize::from(addons_len), 0)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_two_zero_bytes() {
        let mut out = b"x".to_vec();
        encode_response(&mut out);
        assert_eq!(out, b"x\x00\x00");
    }

    #[test]
    fn payload_follows_the_header() {
        assert_eq!(
            decode_response(b"\x00\x00HTTP/1.1 200"),
            Ok(Decoded::Complete {
                value: (),
                consumed: 2
            })
        );
    }

    #[test]
    fn addons_are_skipped() {
        assert_eq!(
            decode_response(b"\x00\x03abcdef"),
            Ok(Decoded::Complete {
                value: (),
                consumed: 5
            })
        );
    }

    #[test]
    fn short_headers_ask_for_the_rest() {
        let need = |n| Ok(Decoded::Incomplete { need_at_least: n });
        assert_eq!(decode_response(b""), need(2));
        assert_eq!(decode_response(b"\x00"), need(2));
        assert_eq!(decode_response(b"\x00\x04ab"), need(6));
    }

    #[test]
    fn other_versions_are_refused_at_once() {
        assert_eq!(decode_response(b"\x01"), Err(VlessError::BadVersion(1)));
        assert_eq!(
            decode_response(b"\x15\x03"),
            Err(VlessError::BadVersion(0x15))
        );
    }
}
