//! Feeds arbitrary bytes to the ClientHello parser: it must never panic and
//! its answers must be self-consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxpulse_edge::front::client_hello::{parse, Parsed, MAX_HELLO_BYTES};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(Parsed::Complete { hello, consumed }) => {
            assert!(consumed <= data.len());
            assert!(consumed <= MAX_HELLO_BYTES);
            // The verdict depends only on the bytes it consumed …
            let again = parse(&data[..consumed]);
            assert_eq!(
                again,
                Ok(Parsed::Complete {
                    hello: hello.clone(),
                    consumed
                })
            );
            // … and one byte fewer is never enough.
            match parse(&data[..consumed - 1]) {
                Ok(Parsed::Incomplete { need_at_least }) => {
                    assert!(need_at_least > consumed - 1 && need_at_least <= consumed)
                }
                other => panic!("prefix of a complete hello gave {other:?}"),
            }
            if let Some(sni) = &hello.sni {
                assert!(!sni.is_empty() && !sni.ends_with('.'));
                assert!(sni
                    .bytes()
                    .all(|b| !b.is_ascii_uppercase() && b.is_ascii_graphic()));
            }
        }
        Ok(Parsed::Incomplete { need_at_least }) => {
            assert!(need_at_least > data.len());
            assert!(need_at_least <= MAX_HELLO_BYTES);
        }
        Err(_) => {}
    }
});
