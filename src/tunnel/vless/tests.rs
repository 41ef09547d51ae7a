//! Properties of the whole request codec over many generated requests and
//! hostile inputs. Field-by-field golden vectors live beside each part.

use super::testgen::Rng;
use super::*;

fn encoded(req: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    req.encode(&mut out).expect("generated requests are valid");
    out
}

/// What any decoder answer must satisfy, whatever the input.
fn check_answer(buf: &[u8]) {
    match Request::decode(buf) {
        Ok(Decoded::Complete { value, consumed }) => {
            assert!(consumed <= buf.len() && consumed <= MAX_REQUEST_LEN);
            // What was accepted can be written back, and reads the same.
            assert_eq!(
                Request::decode(&encoded(&value)),
                Ok(Decoded::Complete {
                    consumed: encoded(&value).len(),
                    value
                })
            );
        }
        Ok(Decoded::Incomplete { need_at_least }) => {
            assert!(need_at_least > buf.len() && need_at_least <= MAX_REQUEST_LEN);
        }
        Err(_) => {}
    }
}

#[test]
fn decode_inverts_encode() {
    let mut rng = Rng::new(1);
    for _ in 0..5000 {
        let req = rng.request();
        let bytes = encoded(&req);
        assert!(bytes.len() <= MAX_REQUEST_LEN);
        assert_eq!(
            Request::decode(&bytes),
            Ok(Decoded::Complete {
                value: req,
                consumed: bytes.len()
            })
        );
    }
}

#[test]
fn every_truncation_is_incomplete_with_a_true_lower_bound() {
    let mut rng = Rng::new(2);
    for _ in 0..300 {
        let bytes = encoded(&rng.request());
        for cut in 0..bytes.len() {
            match Request::decode(&bytes[..cut]) {
                Ok(Decoded::Incomplete { need_at_least }) => {
                    assert!(need_at_least > cut && need_at_least <= bytes.len());
                }
                other => panic!("{cut} of {} bytes gave {other:?}", bytes.len()),
            }
        }
    }
}

#[test]
fn bytes_after_the_header_are_left_for_the_payload() {
    let mut rng = Rng::new(3);
    for _ in 0..1000 {
        let req = rng.request();
        let mut bytes = encoded(&req);
        let header_len = bytes.len();
        let garbage_len = rng.below(64) as usize;
        let garbage = rng.bytes(garbage_len);
        bytes.extend_from_slice(&garbage);
        assert_eq!(
            Request::decode(&bytes),
            Ok(Decoded::Complete {
                value: req,
                consumed: header_len
            })
        );
        assert_eq!(&bytes[header_len..], garbage);
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(4);
    for _ in 0..20_000 {
        let len = rng.below(600) as usize;
        let mut buf = rng.bytes(len);
        // Mostly start like a header, or nearly every input dies at byte 0.
        if !buf.is_empty() && rng.below(4) != 0 {
            buf[0] = 0;
        }
        check_answer(&buf);
        let _ = decode_response(&buf);
    }
}

#[test]
fn mutated_requests_never_panic() {
    let mut rng = Rng::new(5);
    for _ in 0..20_000 {
        let mut bytes = encoded(&rng.request());
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] = rng.next() as u8;
        }
        let keep = rng.below(bytes.len() as u64 + 1) as usize;
        check_answer(&bytes[..keep]);
    }
}
