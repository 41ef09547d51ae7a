//! Feeds arbitrary bytes, split at an arbitrary point, to the WebSocket frame decoder:
//! no panic, nothing decoded past the message cap, the same frames whether the bytes
//! arrive at once or in two reads, and what a client encoder makes decodes back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxpulse_edge::sfu::ws::{encode_client_frame, Decoder, Frame, Opcode};

const CAP: usize = 4096;

fn run(chunks: &[&[u8]]) -> (Vec<Frame>, bool) {
    let mut d = Decoder::new(CAP);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match d.decode(&mut buf) {
                Ok(Some(f)) => out.push(f),
                Ok(None) => break,
                Err(e) => {
                    assert!(matches!(e.close_code(), 1002 | 1007 | 1009));
                    return (out, true);
                }
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(split).min(rest.len());
    let (whole, failed) = run(&[rest]);
    let (parts, failed_parts) = run(&[&rest[..at], &rest[at..]]);
    assert_eq!(whole, parts);
    assert_eq!(failed, failed_parts);
    for f in &whole {
        match f {
            Frame::Text(t) => assert!(t.len() <= CAP),
            Frame::Binary(b) => assert!(b.len() <= CAP),
            Frame::Ping(p) | Frame::Pong(p) => assert!(p.len() <= 125),
            Frame::Close(Some((code, reason))) => {
                assert!(*code >= 1000);
                assert!(reason.len() <= 123);
            }
            Frame::Close(None) => {}
        }
    }
    // Round trip: the input as a masked text message (lossy UTF-8), split in two fragments.
    let text = String::from_utf8_lossy(rest);
    if text.len() <= CAP {
        let cut = (0..=at.min(text.len())).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        let mut wire = encode_client_frame(Opcode::Text, false, &text.as_bytes()[..cut], [1, 2, 3, 4]);
        wire.extend(encode_client_frame(Opcode::Continuation, true, &text.as_bytes()[cut..], [5, 6, 7, 8]));
        let (frames, failed) = run(&[&wire]);
        assert!(!failed);
        assert_eq!(frames, vec![Frame::Text(text.into_owned())]);
    }
});
