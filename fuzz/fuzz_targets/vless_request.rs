//! Feeds arbitrary bytes to the VLESS request decoder: it must never panic,
//! its answers must be self-consistent, and whatever it accepts must survive
//! a round trip through the encoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxpulse_edge::tunnel::vless::{Decoded, Request, MAX_REQUEST_LEN};

fuzz_target!(|data: &[u8]| {
    match Request::decode(data) {
        Ok(Decoded::Complete { value, consumed }) => {
            assert!(consumed <= data.len());
            assert!(consumed <= MAX_REQUEST_LEN);
            // The verdict depends only on the bytes it consumed …
            assert_eq!(
                Request::decode(&data[..consumed]),
                Ok(Decoded::Complete {
                    value: value.clone(),
                    consumed
                })
            );
            // … one byte fewer is never enough …
            match Request::decode(&data[..consumed - 1]) {
                Ok(Decoded::Incomplete { need_at_least }) => {
                    assert!(need_at_least > consumed - 1 && need_at_least <= consumed)
                }
                other => panic!("prefix of a complete request gave {other:?}"),
            }
            // … and the request reads the same once written back.
            let mut out = Vec::new();
            value
                .encode(&mut out)
                .expect("a decoded request can be encoded");
            assert_eq!(
                Request::decode(&out),
                Ok(Decoded::Complete {
                    value,
                    consumed: out.len()
                })
            );
        }
        Ok(Decoded::Incomplete { need_at_least }) => {
            assert!(need_at_least > data.len());
            assert!(need_at_least <= MAX_REQUEST_LEN);
        }
        Err(_) => {}
    }
});
